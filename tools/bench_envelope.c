/*  bench_envelope.c: `zkit bench envelope`, zkit's envelope codec against
    msgpack-c's generic API on the same fields.

    Both sides handle the same frame, the array [1, bin16 id, seq, ts, bin
    body]. zkit encodes with zkit_envelope_encode_to into a reused buffer and
    decodes with zkit_envelope_decode_bytes into a reused envelope: the
    steady-state path of a sender and a receiver. msgpack-c packs with a
    msgpack_packer into a reused msgpack_sbuffer, and decodes with
    msgpack_unpack_next into a msgpack_unpacked, then reads every field out of
    the msgpack_object and checks its type, as a real decoder would.

    Decode is also measured at 64 B, 1 KiB and 64 KiB bodies: zkit's decode
    points into the frame instead of copying the body, so its time stays flat.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "zkit.h"
#include "zkit_cli.h"

#define S_NAME             "envelope"
#define S_DEFAULT_MESSAGES 1000000
#define S_QUICK_MESSAGES   50000
#define S_DEFAULT_BODY     64
#define S_MAX_BODY         (16u * 1024 * 1024 - 1024) /* under the default frame limit */

/*  seq runs through [2^20, 2^21): always a 5-byte uint32, so every message
    costs the same on both sides whatever the round count.                   */
#define S_SEQ_BASE ((uint64_t) 1 << 20)
#define S_SEQ_MASK (((uint64_t) 1 << 20) - 1)

/* Targets from docs/performance.md (informational). */
#define S_TARGET_ENCODE_NS 60.0
#define S_TARGET_DECODE_NS 80.0
#define S_TARGET_FLAT      1.5 /* decode at 64 KiB / decode at 64 B */

static const size_t s_series_bodies[] = {64, 1024, 64 * 1024};
#define S_SERIES_COUNT (sizeof s_series_bodies / sizeof s_series_bodies[0])

/*  Everything one body size needs, built before any timing.                 */
typedef struct {
    size_t body_size;
    uint8_t *body;
    uint8_t id[ZKIT_ID_SIZE];
    uint64_t ts;
    /* zkit encode */
    zkit_envelope_t *env;
    uint8_t *buf;
    size_t capacity;
    /* msgpack-c encode */
    msgpack_sbuffer sbuf;
    msgpack_packer pk;
    /* the frame both decoders read: zkit's encoding of seq S_SEQ_BASE */
    uint8_t *frame;
    size_t frame_size;
    zkit_envelope_t *decoded;
    msgpack_unpacked unpacked;
    bool failed; /* a workload failed: its error is already printed */
} s_fixture_t;

static int s_fail(s_fixture_t *f, const char *what, const char *detail)
{
    if (!f->failed)
        fprintf(stderr, "zkit bench " S_NAME ": %s failed (body %zu B): %s\n", what, f->body_size,
                detail);
    f->failed = true;
    return -1;
}

/* ---- workloads ------------------------------------------------------------ */

static int s_zkit_encode(void *arg, uint64_t messages)
{
    s_fixture_t *f = arg;
    uint64_t acc = 0;
    for (uint64_t i = 0; i < messages; i++) {
        zkit_envelope_set_seq(f->env, S_SEQ_BASE + (i & S_SEQ_MASK));
        ssize_t size = zkit_envelope_encode_to(f->env, f->buf, f->capacity);
        if (size <= 0)
            return s_fail(f, "zkit encode", zkit_strerror(errno));
        acc += (uint64_t) size + f->buf[size - 1];
    }
    zkit__bench_consume(acc);
    return 0;
}

/*  One envelope with msgpack-c's packer. Returns 0 or -1 (out of memory). */
static int s_msgpack_pack(s_fixture_t *f, uint64_t seq)
{
    msgpack_packer *pk = &f->pk;
    msgpack_sbuffer_clear(&f->sbuf);
    return msgpack_pack_array(pk, 5) || msgpack_pack_unsigned_int(pk, ZKIT_ENVELOPE_VERSION) ||
                   msgpack_pack_bin(pk, ZKIT_ID_SIZE) ||
                   msgpack_pack_bin_body(pk, f->id, ZKIT_ID_SIZE) || msgpack_pack_uint64(pk, seq) ||
                   msgpack_pack_uint64(pk, f->ts) || msgpack_pack_bin(pk, f->body_size) ||
                   msgpack_pack_bin_body(pk, f->body, f->body_size)
               ? -1
               : 0;
}

static int s_msgpack_encode(void *arg, uint64_t messages)
{
    s_fixture_t *f = arg;
    uint64_t acc = 0;
    for (uint64_t i = 0; i < messages; i++) {
        if (s_msgpack_pack(f, S_SEQ_BASE + (i & S_SEQ_MASK)))
            return s_fail(f, "msgpack-c encode", "out of memory");
        acc += f->sbuf.size + (uint8_t) f->sbuf.data[f->sbuf.size - 1];
    }
    zkit__bench_consume(acc);
    return 0;
}

static int s_zkit_decode(void *arg, uint64_t messages)
{
    s_fixture_t *f = arg;
    uint64_t acc = 0;
    for (uint64_t i = 0; i < messages; i++) {
        if (zkit_envelope_decode_bytes(f->decoded, f->frame, f->frame_size))
            return s_fail(f, "zkit decode", zkit_envelope_error_detail(f->decoded));
        size_t size;
        const uint8_t *body = zkit_envelope_body(f->decoded, &size);
        const uint8_t *id = zkit_envelope_id(f->decoded);
        acc += zkit_envelope_seq(f->decoded) + zkit_envelope_ts(f->decoded) + size +
               (size ? body[0] : 0) + id[0] + id[ZKIT_ID_SIZE - 1];
    }
    zkit__bench_consume(acc);
    return 0;
}

static int s_msgpack_decode(void *arg, uint64_t messages)
{
    s_fixture_t *f = arg;
    uint64_t acc = 0;
    uint8_t id[ZKIT_ID_SIZE];
    for (uint64_t i = 0; i < messages; i++) {
        size_t offset = 0;
        if (msgpack_unpack_next(&f->unpacked, (const char *) f->frame, f->frame_size, &offset) !=
            MSGPACK_UNPACK_SUCCESS)
            return s_fail(f, "msgpack-c decode", "msgpack_unpack_next");
        if (offset != f->frame_size)
            return s_fail(f, "msgpack-c decode", "trailing bytes");
        const msgpack_object *o = &f->unpacked.data;
        if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 5)
            return s_fail(f, "msgpack-c decode", "not an array of 5 or more");
        const msgpack_object *e = o->via.array.ptr;
        if (e[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || e[0].via.u64 != ZKIT_ENVELOPE_VERSION)
            return s_fail(f, "msgpack-c decode", "version");
        if (e[1].type != MSGPACK_OBJECT_BIN || e[1].via.bin.size != ZKIT_ID_SIZE)
            return s_fail(f, "msgpack-c decode", "id");
        memcpy(id, e[1].via.bin.ptr, ZKIT_ID_SIZE);
        if (e[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return s_fail(f, "msgpack-c decode", "seq");
        if (e[3].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return s_fail(f, "msgpack-c decode", "ts");
        if (e[4].type != MSGPACK_OBJECT_BIN)
            return s_fail(f, "msgpack-c decode", "body");
        if (o->via.array.size > 5 && e[5].type != MSGPACK_OBJECT_MAP)
            return s_fail(f, "msgpack-c decode", "meta");
        size_t size = e[4].via.bin.size;
        const uint8_t *body = (const uint8_t *) e[4].via.bin.ptr;
        acc += e[2].via.u64 + e[3].via.u64 + size + (size ? body[0] : 0) + id[0] +
               id[ZKIT_ID_SIZE - 1];
    }
    zkit__bench_consume(acc);
    return 0;
}

/* ---- fixtures ------------------------------------------------------------- */

static void s_fixture_destroy(s_fixture_t *f)
{
    zkit_envelope_destroy(&f->env);
    zkit_envelope_destroy(&f->decoded);
    msgpack_sbuffer_destroy(&f->sbuf);
    msgpack_unpacked_destroy(&f->unpacked);
    free(f->body);
    free(f->buf);
    free(f->frame);
    memset(f, 0, sizeof *f);
}

/*  Builds the envelope, buffers and frame for one body size, and checks both
    decoders accept the frame. Returns 0, or -1 after printing why.           */
static int s_fixture_init(s_fixture_t *f, size_t body_size, const uint8_t id[ZKIT_ID_SIZE],
                          uint64_t ts)
{
    memset(f, 0, sizeof *f);
    f->body_size = body_size;
    memcpy(f->id, id, ZKIT_ID_SIZE);
    f->ts = ts;
    msgpack_sbuffer_init(&f->sbuf);
    msgpack_packer_init(&f->pk, &f->sbuf, msgpack_sbuffer_write);
    msgpack_unpacked_init(&f->unpacked);
    f->body = malloc(body_size ? body_size : 1);
    f->env = zkit_envelope_new();
    f->decoded = zkit_envelope_new();
    if (!f->body || !f->env || !f->decoded)
        goto oom;
    for (size_t i = 0; i < body_size; i++)
        f->body[i] = (uint8_t) (i * 31 + 7);
    zkit_envelope_set_id(f->env, id);
    zkit_envelope_set_ts(f->env, ts);
    zkit_envelope_set_seq(f->env, S_SEQ_BASE);
    zkit_envelope_set_body_ref(f->env, f->body, body_size);
    f->capacity = zkit_envelope_encoded_size(f->env);
    f->buf = malloc(f->capacity);
    f->frame = malloc(f->capacity);
    if (!f->buf || !f->frame)
        goto oom;
    ssize_t size = zkit_envelope_encode_to(f->env, f->frame, f->capacity);
    if (size <= 0)
        return s_fail(f, "zkit encode", zkit_strerror(errno));
    f->frame_size = (size_t) size;
    if (s_zkit_decode(f, 1) || s_msgpack_decode(f, 1))
        return -1;
    return 0;
oom:
    return s_fail(f, "setup", "out of memory");
}

/* ---- output --------------------------------------------------------------- */

typedef struct {
    zkit__bench_opts_t opts;
    size_t body_size;
    const char *allocs_note; /* why allocations are not reported, or NULL */
    bool same_bytes;         /* zkit and msgpack-c produced identical frames */
    size_t zkit_bytes, msgpack_bytes;
    zkit__bench_result_t encode, decode;
    zkit__bench_result_t series[S_SERIES_COUNT];
} s_report_t;

/*  True when a kit figure meets its time target and allocates nothing (the
    allocation half is skipped when allocations are not counted).            */
static bool s_met(const zkit__bench_side_t *kit, double target_ns)
{
    return kit->wall_ns <= target_ns && (isnan(kit->allocs) || kit->allocs == 0);
}

static double s_flat_factor(const s_report_t *r)
{
    return r->series[S_SERIES_COUNT - 1].kit.wall_ns / r->series[0].kit.wall_ns;
}

static const zkit__bench_col_t s_columns[] = {
    {"op", 6},    {"zkit ns", 7},  {"cpu ns", 6},      {"msgpack-c ns", 7},     {"cpu ns", 6},
    {"ratio", 5}, {"x faster", 7}, {"zkit allocs", 4}, {"msgpack-c allocs", 4}, {"target", 7},
};
#define S_COLUMNS        (int) (sizeof s_columns / sizeof s_columns[0])
#define S_SERIES_COLUMNS 7 /* the series table stops before the allocations */

static void s_row(const char *label, const zkit__bench_result_t *res, const char *target, int ncols)
{
    char b[9][32];
    const char *cells[S_COLUMNS] = {
        label,
        zkit__bench_fmt(b[0], res->kit.wall_ns, 1),
        zkit__bench_fmt(b[1], res->kit.cpu_ns, 1),
        zkit__bench_fmt(b[2], res->anchor.wall_ns, 1),
        zkit__bench_fmt(b[3], res->anchor.cpu_ns, 1),
        zkit__bench_fmt(b[4], res->ratio, 2),
        b[5],
        zkit__bench_fmt(b[6], res->kit.allocs, 2),
        zkit__bench_fmt(b[7], res->anchor.allocs, 2),
        target,
    };
    snprintf(b[5], sizeof b[5], "%.2fx", res->faster);
    zkit__bench_table_row(stdout, s_columns, ncols, cells);
}

static void s_print_table(const s_report_t *r)
{
    char size[32];
    printf("bench envelope: body %s, %d rounds x %llu messages, median per message\n",
           zkit__bench_fmt_bytes(size, sizeof size, r->body_size), r->opts.rounds,
           (unsigned long long) r->opts.messages);
    zkit__bench_table_header(stdout, s_columns, S_COLUMNS);
    s_row("encode", &r->encode, s_met(&r->encode.kit, S_TARGET_ENCODE_NS) ? "met" : "not met",
          S_COLUMNS);
    s_row("decode", &r->decode, s_met(&r->decode.kit, S_TARGET_DECODE_NS) ? "met" : "not met",
          S_COLUMNS);

    printf("\ndecode by body size (zkit does not copy the body: its time should stay flat)\n");
    zkit__bench_col_t cols[S_SERIES_COLUMNS];
    memcpy(cols, s_columns, sizeof cols);
    cols[0].title = "body";
    zkit__bench_table_header(stdout, cols, S_SERIES_COLUMNS);
    for (size_t i = 0; i < S_SERIES_COUNT; i++)
        s_row(zkit__bench_fmt_bytes(size, sizeof size, s_series_bodies[i]), &r->series[i], "",
              S_SERIES_COLUMNS);
    double flat = s_flat_factor(r);
    printf("flat: zkit decode at 64 KiB takes %.2fx its time at 64 B (target <= %.1fx): %s\n", flat,
           S_TARGET_FLAT, flat <= S_TARGET_FLAT ? "met" : "not met");

    printf("\nns: wall clock; cpu ns: CLOCK_THREAD_CPUTIME_ID; ratio: zkit / msgpack-c (below 1, "
           "zkit is faster); x faster: msgpack-c / zkit\n");
    if (r->allocs_note)
        printf("allocations: %s\n", r->allocs_note);
    else
        printf("allocations: malloc/calloc/realloc calls per message in steady state\n");
    printf("targets (docs/performance.md, informational): encode <= %.0f ns, decode <= %.0f ns, "
           "0 allocations per message, decode flat from 64 B to 64 KiB\n",
           S_TARGET_ENCODE_NS, S_TARGET_DECODE_NS);
    if (!r->same_bytes)
        printf("note: the frames differ (zkit %zu B, msgpack-c %zu B), so the comparison is not "
               "byte for byte\n",
               r->zkit_bytes, r->msgpack_bytes);
}

static void s_json_pair(zkit__bench_json_t *j, const zkit__bench_result_t *res)
{
    zkit__bench_json_side(j, "zkit", &res->kit);
    zkit__bench_json_side(j, "msgpack_c", &res->anchor);
    zkit__bench_json_num(j, "ratio", res->ratio);
    zkit__bench_json_num(j, "x_faster", res->faster);
}

static void s_json_op(zkit__bench_json_t *j, const char *op, const zkit__bench_result_t *res,
                      double target_ns)
{
    zkit__bench_json_object(j, NULL);
    zkit__bench_json_str(j, "op", op);
    s_json_pair(j, res);
    zkit__bench_json_object(j, "target");
    zkit__bench_json_num(j, "wall_ns", target_ns);
    zkit__bench_json_uint(j, "allocs", 0);
    zkit__bench_json_bool(j, "met", s_met(&res->kit, target_ns));
    zkit__bench_json_end(j, '}');
    zkit__bench_json_end(j, '}');
}

static void s_print_json(const s_report_t *r)
{
    zkit__bench_json_t j;
    zkit__bench_json_init(&j, stdout);
    zkit__bench_json_object(&j, NULL);
    zkit__bench_json_str(&j, "suite", S_NAME);
    zkit__bench_json_str(&j, "zkit_version", zkit_version());
    zkit__bench_json_str(&j, "anchor", "msgpack-c");
    zkit__bench_json_uint(&j, "body", r->body_size);
    zkit__bench_json_uint(&j, "rounds", (uint64_t) r->opts.rounds);
    zkit__bench_json_uint(&j, "messages", r->opts.messages);
    zkit__bench_json_bool(&j, "quick", r->opts.quick);
    zkit__bench_json_str(&j, "statistic", "median");
    zkit__bench_json_str(&j, "cpu_clock", "CLOCK_THREAD_CPUTIME_ID");
    zkit__bench_json_bool(&j, "allocs_counted", !r->allocs_note);
    if (r->allocs_note)
        zkit__bench_json_str(&j, "allocs_note", r->allocs_note);
    else
        zkit__bench_json_null(&j, "allocs_note");
    zkit__bench_json_bool(&j, "same_bytes", r->same_bytes);
    zkit__bench_json_uint(&j, "zkit_frame_bytes", r->zkit_bytes);
    zkit__bench_json_uint(&j, "msgpack_c_frame_bytes", r->msgpack_bytes);

    zkit__bench_json_array(&j, "ops");
    s_json_op(&j, "encode", &r->encode, S_TARGET_ENCODE_NS);
    s_json_op(&j, "decode", &r->decode, S_TARGET_DECODE_NS);
    zkit__bench_json_end(&j, ']');

    zkit__bench_json_array(&j, "decode_by_body");
    for (size_t i = 0; i < S_SERIES_COUNT; i++) {
        zkit__bench_json_object(&j, NULL);
        zkit__bench_json_uint(&j, "body", s_series_bodies[i]);
        s_json_pair(&j, &r->series[i]);
        zkit__bench_json_end(&j, '}');
    }
    zkit__bench_json_end(&j, ']');

    double flat = s_flat_factor(r);
    zkit__bench_json_object(&j, "decode_flat");
    zkit__bench_json_num(&j, "factor", flat);
    zkit__bench_json_num(&j, "target_factor", S_TARGET_FLAT);
    zkit__bench_json_bool(&j, "met", flat <= S_TARGET_FLAT);
    zkit__bench_json_end(&j, '}');
    zkit__bench_json_end(&j, '}');
}

/* ---- command -------------------------------------------------------------- */

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: zkit bench envelope [--quick] [--rounds N] [--messages N] [--body BYTES]\n"
            "                           [--json]\n"
            "\n"
            "Encodes and decodes the envelope [1, id, seq, ts, body] with zkit's codec and\n"
            "with msgpack-c's generic API on the same fields, alternating, and prints wall\n"
            "and CPU ns per message (median of the rounds), the ratio zkit / msgpack-c and\n"
            "allocations per message.\n"
            "  zkit:      zkit_envelope_encode_to into a reused buffer, and\n"
            "             zkit_envelope_decode_bytes into a reused envelope (steady state)\n"
            "  msgpack-c: msgpack_packer into a reused msgpack_sbuffer, and\n"
            "             msgpack_unpack_next, then each field read and type-checked\n"
            "Decode is also measured at 64 B, 1 KiB and 64 KiB bodies: zkit does not copy\n"
            "the body, so its decode time should stay flat.\n"
            "\n"
            "options:\n"
            "  --body BYTES   body size for the encode/decode table (default "
            "%d)\n" ZKIT__BENCH_COMMON_HELP "\n"
            "Defaults: %d rounds x %d messages (--quick: %d x %d).\n"
            "Targets (docs/performance.md), informational, the exit status ignores them:\n"
            "encode <= %.0f ns, decode <= %.0f ns, 0 allocations per message, decode flat\n"
            "from 64 B to 64 KiB. Exit status: 0 done, 1 a codec failed, 2 usage error.\n",
            S_DEFAULT_BODY, ZKIT__BENCH_DEFAULT_ROUNDS, S_DEFAULT_MESSAGES,
            ZKIT__BENCH_QUICK_ROUNDS, S_QUICK_MESSAGES, S_TARGET_ENCODE_NS, S_TARGET_DECODE_NS);
}

static int s_usage_error(void)
{
    fprintf(stderr, "try 'zkit bench envelope --help'\n");
    return ZKIT_EXIT_USAGE;
}

/*  Parses argv into report->opts and report->body_size. Returns -1 to exit
    with *exit_code (help or usage error), 0 to run.                        */
static int s_parse(int argc, char **argv, s_report_t *r, int *exit_code)
{
    uint64_t body = S_DEFAULT_BODY;
    for (int i = 1; i < argc;) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            s_usage(stdout);
            *exit_code = ZKIT_EXIT_OK;
            return -1;
        }
        int used = zkit__bench_parse_common(S_NAME, argc, argv, &i, &r->opts);
        if (used > 0)
            continue;
        if (used == 0) {
            const char *value = zkit__bench_option_value(argc, argv, &i, "--body");
            if (value && !zkit__bench_parse_u64(S_NAME, "--body", value, 0, S_MAX_BODY, &body))
                continue;
            if (!value)
                fprintf(stderr, "zkit bench " S_NAME ": unknown argument '%s'\n", arg);
        }
        *exit_code = s_usage_error();
        return -1;
    }
    r->body_size = (size_t) body;
    zkit__bench_opts_finish(&r->opts, S_DEFAULT_MESSAGES, S_QUICK_MESSAGES);
    return 0;
}

static int s_compare(const s_report_t *r, s_fixture_t *f, zkit__bench_fn_t kit,
                     zkit__bench_fn_t anchor, zkit__bench_result_t *result)
{
    zkit__bench_pair_t pair = {
        .kit = kit,
        .kit_ctx = f,
        .anchor = anchor,
        .anchor_ctx = f,
        .cpu = ZKIT__BENCH_CPU_THREAD,
        .count_allocs = !r->allocs_note,
    };
    return zkit__bench_run_pair(&pair, &r->opts, result);
}

int zkit__bench_envelope(int argc, char **argv)
{
    s_report_t r = {0};
    int exit_code = ZKIT_EXIT_OK;
    if (s_parse(argc, argv, &r, &exit_code))
        return exit_code;

    bool counter_broken = false;
    if (!zkit__alloc_count_available())
        r.allocs_note = "n/a (sanitizer build)";
    else if (zkit__alloc_count_selftest()) {
        r.allocs_note = "n/a (the counter is broken: see the error above)";
        counter_broken = true;
    }

    uint8_t id[ZKIT_ID_SIZE];
    zkit_id_generate(id);
    uint64_t ts = zkit_clock_usec();

    s_fixture_t primary = {0};
    s_fixture_t series[S_SERIES_COUNT] = {{0}};
    int rc = s_fixture_init(&primary, r.body_size, id, ts);
    for (size_t i = 0; i < S_SERIES_COUNT && !rc; i++)
        rc = s_fixture_init(&series[i], s_series_bodies[i], id, ts);
    if (rc)
        goto done;

    /* Same bytes? msgpack-c's packer and zkit's encoder on seq S_SEQ_BASE. */
    if (s_msgpack_pack(&primary, S_SEQ_BASE)) {
        rc = s_fail(&primary, "msgpack-c encode", "out of memory");
        goto done;
    }
    r.zkit_bytes = primary.frame_size;
    r.msgpack_bytes = primary.sbuf.size;
    r.same_bytes = primary.sbuf.size == primary.frame_size &&
                   !memcmp(primary.sbuf.data, primary.frame, primary.frame_size);

    rc = s_compare(&r, &primary, s_zkit_encode, s_msgpack_encode, &r.encode);
    if (!rc)
        rc = s_compare(&r, &primary, s_zkit_decode, s_msgpack_decode, &r.decode);
    for (size_t i = 0; i < S_SERIES_COUNT && !rc; i++) {
        if (s_series_bodies[i] == r.body_size)
            r.series[i] = r.decode; /* already measured */
        else
            rc = s_compare(&r, &series[i], s_zkit_decode, s_msgpack_decode, &r.series[i]);
    }
    if (rc)
        goto done;

    if (r.opts.json)
        s_print_json(&r);
    else
        s_print_table(&r);
    fflush(stdout);

done:
    s_fixture_destroy(&primary);
    for (size_t i = 0; i < S_SERIES_COUNT; i++)
        s_fixture_destroy(&series[i]);
    if (rc)
        return ZKIT_EXIT_FAILURE;
    return counter_broken ? ZKIT_EXIT_FAILURE : ZKIT_EXIT_OK;
}
