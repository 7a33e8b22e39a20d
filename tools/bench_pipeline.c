/*  bench_pipeline.c: `zkit bench pipeline`, messages per second and CPU ns
    per message through the kit's pipeline, beside raw libzmq PUSH/PULL with
    the same process layout, in the same run.

    Every side moves messages through three stages on their own threads of
    this process, two hops over tcp://127.0.0.1: producer -> relay -> consumer
    (for the kit: the caller of zkit_ventilator_submit and the ventilator ->
    a worker -> the sink). Per payload size every side is built once, warmed
    up, then each round runs every side once, the order rotating from round
    to round so no side always goes first; the median round is quoted, with
    the ratio kit msg/s / raw msg/s. CPU time is the whole process's
    (CLOCK_PROCESS_CPUTIME_ID), since the work is spread over threads.

    The sides: raw (the anchor), raw with frames as long as the envelope's
    (equal wire bytes), the envelope on raw sockets (its cost alone), the
    fast and reliable pipelines, and redis LPUSH/BRPOP when a redis-server is
    installed. Reliable mode must deliver every message: a loss fails the run.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "bench_pipeline.h"
#include "zkit.h"
#include "zkit_cli.h"

#define S_DEFAULT_MESSAGES 50000
#define S_QUICK_MESSAGES   5000
#define S_SLOW_DIVISOR     10 /* reliable and redis move this many times fewer */
#define S_SLOW_MIN         100
#define S_MAX_SIZES        16
#define S_MAX_PAYLOAD      (16u * 1024 * 1024 - 1024) /* under the envelope's frame limit */

/*  The worker's window (tasks in flight, and handler threads): enough to
    keep the three stages busy while every task waits for its ack.         */
#define S_DEFAULT_WINDOW 8
/*  Fast mode waits for no ack, so more handlers only add threads (and on a
    small machine, context switches); with window 1 its worker runs the
    handler on its socket thread (zkit_worker.h). --window sets both.      */
#define S_DEFAULT_FAST_WINDOW 1
#define S_MAX_WINDOW          10000 /* the protocol's limit on READY's window */

/* Targets from docs/performance.md (informational): kit msg/s / raw msg/s. */
#define S_TARGET_WIRE     0.9  /* envelope vs raw at equal wire bytes        */
#define S_TARGET_64       0.6  /* envelope and fast vs raw at 64 B payload   */
#define S_TARGET_1K       0.95 /* envelope and fast vs raw at 1 KiB payload  */
#define S_TARGET_REDIS_64 20.0 /* fast vs redis unpipelined at 64 B          */

/* ---- modes and sides ------------------------------------------------------ */

typedef enum { S_MODE_RAW, S_MODE_ENVELOPE, S_MODE_FAST, S_MODE_RELIABLE, S_MODE_REDIS } s_mode_t;
static const char *const s_mode_names[] = {"raw", "envelope", "fast", "reliable", "redis"};
#define S_MODE_COUNT 5
#define S_MODES_ALL  ((1u << S_MODE_COUNT) - 1)

/*  What runs for one payload size. RAW_WIRE is raw with frames as long as
    the envelope frame, the anchor of the equal-wire-bytes comparison.      */
typedef enum {
    S_SIDE_RAW,
    S_SIDE_RAW_WIRE,
    S_SIDE_ENVELOPE,
    S_SIDE_FAST,
    S_SIDE_RELIABLE,
    S_SIDE_REDIS,
    S_SIDE_COUNT
} s_side_id_t;

/*  One side's figures at one size: per message, medians over the rounds.  */
typedef struct {
    bool measured;
    uint64_t messages; /* per round                                       */
    size_t wire_bytes; /* bytes of each frame on the wire; 0 = not known  */
    double wall_ns, cpu_ns, wall_min_ns, wall_max_ns;
    uint64_t lost; /* summed over the timed rounds                     */
} s_figures_t;

typedef struct {
    size_t payload;
    size_t envelope_wire; /* the envelope frame for this payload      */
    s_figures_t side[S_SIDE_COUNT];
} s_size_t;

typedef struct {
    zkit__bench_opts_t opts;
    unsigned modes; /* bit per s_mode_t                          */
    size_t sizes[S_MAX_SIZES];
    int nsizes;
    uint64_t slow_messages;   /* reliable and redis, per round    */
    uint32_t window;          /* the kit worker's window, reliable mode */
    uint32_t fast_window;     /* the kit worker's window, fast mode     */
    const char *redis_server; /* NULL: redis rows skipped        */
    const char *redis_note;
    s_size_t results[S_MAX_SIZES];
} s_report_t;

static bool s_has(const s_report_t *r, s_mode_t mode)
{
    return r->modes & (1u << mode);
}

/*  Opens a side for one payload size. Returns 0, or -1 after printing why. */
static int s_side_open(const s_report_t *r, s_side_id_t id, const s_size_t *size,
                       zkit__pipe_side_t *side)
{
    switch (id) {
    case S_SIDE_RAW: return zkit__pipe_raw_open(side, size->payload, false);
    case S_SIDE_RAW_WIRE: return zkit__pipe_raw_open(side, size->envelope_wire, false);
    case S_SIDE_ENVELOPE: return zkit__pipe_raw_open(side, size->payload, true);
    case S_SIDE_FAST: return zkit__pipe_kit_open(side, size->payload, false, r->fast_window);
    case S_SIDE_RELIABLE: return zkit__pipe_kit_open(side, size->payload, true, r->window);
    case S_SIDE_REDIS: return zkit__pipe_redis_open(side, r->redis_server, size->payload);
    default: return -1;
    }
}

static bool s_side_wanted(const s_report_t *r, s_side_id_t id)
{
    switch (id) {
    case S_SIDE_RAW: return true; /* the anchor of every ratio */
    case S_SIDE_RAW_WIRE:
    case S_SIDE_ENVELOPE: return s_has(r, S_MODE_ENVELOPE);
    case S_SIDE_FAST: return s_has(r, S_MODE_FAST);
    case S_SIDE_RELIABLE: return s_has(r, S_MODE_RELIABLE);
    case S_SIDE_REDIS: return s_has(r, S_MODE_REDIS) && r->redis_server;
    default: return false;
    }
}

static bool s_side_slow(s_side_id_t id)
{
    return id == S_SIDE_RELIABLE || id == S_SIDE_REDIS;
}

static const char *s_side_label(s_side_id_t id)
{
    static const char *const labels[] = {"raw",  "raw (wire bytes)", "envelope",
                                         "fast", "reliable",         "redis"};
    return labels[id];
}

/* ---- measuring ------------------------------------------------------------ */

/*  Runs one side for messages and returns its wall and CPU ns per message.
    Loss fails every side but fast mode, which promises at most once.        */
static int s_time(zkit__pipe_side_t *side, s_side_id_t id, size_t payload, uint64_t messages,
                  double *wall_ns, double *cpu_ns, uint64_t *lost)
{
    uint64_t outside0 = side->outside_cpu_ns ? side->outside_cpu_ns(side->self) : 0;
    uint64_t cpu0 = zkit__bench_cpu_ns(ZKIT__BENCH_CPU_PROCESS);
    uint64_t wall0 = zkit__bench_wall_ns();
    int rc = side->run(side->self, messages, lost);
    uint64_t wall1 = zkit__bench_wall_ns();
    uint64_t cpu1 = zkit__bench_cpu_ns(ZKIT__BENCH_CPU_PROCESS);
    uint64_t outside1 = side->outside_cpu_ns ? side->outside_cpu_ns(side->self) : 0;
    if (rc)
        return -1;
    if (*lost && id != S_SIDE_FAST) {
        fprintf(stderr,
                "zkit bench " ZKIT__PIPE_NAME ": %s, %zu B: %" PRIu64 " of %" PRIu64
                " messages lost; this side must deliver every one\n",
                s_side_label(id), payload, *lost, messages);
        return -1;
    }
    *wall_ns = (double) (wall1 - wall0) / (double) messages;
    *cpu_ns = (double) (cpu1 - cpu0 + outside1 - outside0) / (double) messages;
    return 0;
}

/*  Measures every wanted side at one payload size. Returns 0 or -1.        */
static int s_measure_size(s_report_t *r, s_size_t *size)
{
    int rounds = r->opts.rounds;
    zkit__pipe_side_t sides[S_SIDE_COUNT];
    s_side_id_t order[S_SIDE_COUNT];
    int n = 0, rc = 0;
    memset(sides, 0, sizeof sides);
    double *samples = calloc((size_t) rounds * 2 * S_SIDE_COUNT, sizeof *samples);
    if (!samples) {
        fprintf(stderr, "zkit bench " ZKIT__PIPE_NAME ": out of memory\n");
        return -1;
    }
    size->envelope_wire = zkit__pipe_envelope_wire_bytes(size->payload, r->opts.messages);
    for (int id = 0; id < S_SIDE_COUNT && !rc; id++) {
        if (!s_side_wanted(r, (s_side_id_t) id))
            continue;
        rc = s_side_open(r, (s_side_id_t) id, size, &sides[id]);
        if (rc && id == S_SIDE_REDIS) {
            /* redis is an optional comparison: a server that does not start
               skips its rows, it does not fail the kit's bench. */
            r->redis_server = NULL;
            r->redis_note = "redis-server did not start (see the message above)";
            rc = 0;
            continue;
        }
        if (rc)
            break;
        s_figures_t *f = &size->side[id];
        f->messages = s_side_slow((s_side_id_t) id) ? r->slow_messages : r->opts.messages;
        f->wire_bytes = id == S_SIDE_RAW                                 ? size->payload
                        : id == S_SIDE_RAW_WIRE || id == S_SIDE_ENVELOPE ? size->envelope_wire
                                                                         : 0;
        order[n++] = (s_side_id_t) id;
    }
    /* Warm-up: connections made, buffers grown, threads and caches warm. */
    for (int k = 0; k < n && !rc; k++) {
        s_side_id_t id = order[k];
        uint64_t warm = size->side[id].messages / 10, lost = 0;
        double w, c;
        rc = s_time(&sides[id], id, size->payload, warm < S_SLOW_MIN ? S_SLOW_MIN : warm, &w, &c,
                    &lost);
    }
    /* Rounds: every side once, starting one further along each round. */
    for (int round = 0; round < rounds && !rc; round++) {
        for (int k = 0; k < n && !rc; k++) {
            s_side_id_t id = order[(round + k) % n];
            s_figures_t *f = &size->side[id];
            double *wall = samples + (size_t) id * 2 * rounds, *cpu = wall + rounds;
            uint64_t lost = 0;
            rc = s_time(&sides[id], id, size->payload, f->messages, &wall[round], &cpu[round],
                        &lost);
            f->lost += lost;
        }
    }
    for (int k = 0; k < n && !rc; k++) {
        s_figures_t *f = &size->side[order[k]];
        double *wall = samples + (size_t) order[k] * 2 * rounds, *cpu = wall + rounds;
        f->wall_ns = zkit__bench_median(wall, rounds); /* sorts wall */
        f->wall_min_ns = wall[0];
        f->wall_max_ns = wall[rounds - 1];
        f->cpu_ns = zkit__bench_median(cpu, rounds);
        f->measured = true;
    }
    for (int id = 0; id < S_SIDE_COUNT; id++)
        if (sides[id].destroy)
            sides[id].destroy(sides[id].self);
    free(samples);
    return rc;
}

/* ---- rows ----------------------------------------------------------------- */

/*  A line of the report: a side, against its anchor, with its target.     */
typedef struct {
    const char *mode;
    const s_figures_t *kit;
    const char *anchor; /* "raw", "raw_wire", or NULL for the raw row itself */
    const s_figures_t *raw;
    double ratio;  /* kit msg/s / anchor msg/s; NAN for the raw row        */
    double target; /* NAN: none                                             */
} s_row_t;

static double s_msg_s(const s_figures_t *f)
{
    return 1e9 / f->wall_ns;
}

/*  The equal-payload target at this size, or NAN when the design sets none. */
static double s_payload_target(size_t payload)
{
    return payload == 64 ? S_TARGET_64 : payload == 1024 ? S_TARGET_1K : NAN;
}

static int s_rows(const s_size_t *size, s_row_t *rows)
{
    const s_figures_t *raw = &size->side[S_SIDE_RAW];
    int n = 0;
    rows[n++] = (s_row_t){"raw", raw, NULL, NULL, NAN, NAN};
    struct {
        s_side_id_t id;
        const char *mode, *anchor;
        double target;
    } spec[] = {
        {S_SIDE_ENVELOPE, "envelope", "raw", s_payload_target(size->payload)},
        {S_SIDE_ENVELOPE, "envelope", "raw_wire", S_TARGET_WIRE},
        {S_SIDE_FAST, "fast", "raw", s_payload_target(size->payload)},
        {S_SIDE_RELIABLE, "reliable", "raw", NAN},
        {S_SIDE_REDIS, "redis", "raw", NAN},
    };
    for (size_t i = 0; i < sizeof spec / sizeof spec[0]; i++) {
        const s_figures_t *kit = &size->side[spec[i].id];
        if (!kit->measured)
            continue;
        const s_figures_t *anchor =
            strcmp(spec[i].anchor, "raw") ? &size->side[S_SIDE_RAW_WIRE] : raw;
        rows[n++] =
            (s_row_t){spec[i].mode,  kit, spec[i].anchor, anchor, s_msg_s(kit) / s_msg_s(anchor),
                      spec[i].target};
    }
    return n;
}

#define S_MAX_ROWS 6

/*  fast msg/s / redis msg/s at this size, NAN when either is missing.     */
static double s_fast_over_redis(const s_size_t *size)
{
    const s_figures_t *fast = &size->side[S_SIDE_FAST], *redis = &size->side[S_SIDE_REDIS];
    return fast->measured && redis->measured ? s_msg_s(fast) / s_msg_s(redis) : NAN;
}

/* ---- table ---------------------------------------------------------------- */

static const zkit__bench_col_t s_columns[] = {
    {"payload", 7}, {"mode", 8},   {"wire B", 6},       {"msg/s", 9},
    {"cpu ns", 7},  {"anchor", 8}, {"anchor msg/s", 9}, {"anchor cpu ns", 7},
    {"ratio", 5},   {"target", 6}, {"met", 3},          {"lost", 4},
};
#define S_COLUMNS (int) (sizeof s_columns / sizeof s_columns[0])

static void s_print_row(const s_size_t *size, const s_row_t *row)
{
    char b[10][32];
    const char *cells[S_COLUMNS];
    snprintf(b[0], sizeof b[0], "%zu", size->payload);
    cells[0] = b[0];
    cells[1] = row->mode;
    if (row->kit->wire_bytes)
        snprintf(b[1], sizeof b[1], "%zu", row->kit->wire_bytes);
    else
        snprintf(b[1], sizeof b[1], "-");
    cells[2] = b[1];
    cells[3] = zkit__bench_fmt(b[2], s_msg_s(row->kit), 0);
    cells[4] = zkit__bench_fmt(b[3], row->kit->cpu_ns, 0);
    if (row->anchor) {
        cells[5] = strcmp(row->anchor, "raw") ? "raw=wire" : "raw";
        cells[6] = zkit__bench_fmt(b[4], s_msg_s(row->raw), 0);
        cells[7] = zkit__bench_fmt(b[5], row->raw->cpu_ns, 0);
        /* Three decimals, so a ratio just under its target never reads as
           equal to it; four far below 1 (redis), where three read 0.000. */
        cells[8] = zkit__bench_fmt(b[6], row->ratio, row->ratio < 0.01 ? 4 : 3);
    }
    else
        cells[5] = cells[6] = cells[7] = cells[8] = "-";
    if (isnan(row->target))
        cells[9] = cells[10] = "-";
    else {
        snprintf(b[7], sizeof b[7], ">=%.2f", row->target);
        cells[9] = b[7];
        cells[10] = row->ratio >= row->target ? "yes" : "no";
    }
    snprintf(b[8], sizeof b[8], "%" PRIu64, row->kit->lost);
    cells[11] = b[8];
    zkit__bench_table_row(stdout, s_columns, S_COLUMNS, cells);
}

static void s_print_layout(const s_report_t *r)
{
    printf("layout: one process; producer -> relay -> consumer, each stage on its own thread,\n"
           "two hops over tcp://127.0.0.1, one libzmq I/O thread per side\n"
           "  raw       producer PUSH (bind) -> relay PULL + PUSH (connect) -> consumer PULL "
           "(bind);\n"
           "            the relay copies each frame into a new message\n");
    if (s_has(r, S_MODE_ENVELOPE))
        printf("  envelope  the same sockets, a zkit envelope on every message: the producer "
               "encodes one\n"
               "            (src, new id, ts, seq), the relay decodes it and encodes a new one "
               "with a\n"
               "            copy of the body, the consumer decodes it and counts seq gaps\n");
    if (s_has(r, S_MODE_FAST))
        printf("  fast      zkit_ventilator (fast; the producer calls submit) -> zkit_worker "
               "(fast,\n"
               "            window %d, handler copies the body) -> zkit_sink (fast, counts "
               "results)\n",
               r->fast_window);
    if (s_has(r, S_MODE_RELIABLE))
        printf("  reliable  the same components in reliable mode: credit (window %d), RESULT, "
               "ACK and\n"
               "            DONE per task; every message must arrive\n",
               r->window);
    if (s_has(r, S_MODE_REDIS)) {
        if (r->redis_server)
            printf("  redis     producer LPUSH -> relay BRPOP + LPUSH -> consumer BRPOP, one "
                   "command at a\n"
                   "            time, through %s on a loopback port\n"
                   "            (started for the bench; its CPU time is counted with ours)\n",
                   r->redis_server);
        else
            printf("  redis     skipped: %s\n", r->redis_note);
    }
}

static void s_print_table(const s_report_t *r)
{
    printf("bench " ZKIT__PIPE_NAME ": %d rounds x %" PRIu64 " messages (reliable, redis: %" PRIu64
           "), median round\n",
           r->opts.rounds, r->opts.messages, r->slow_messages);
    s_print_layout(r);
    printf("\n");
    zkit__bench_table_header(stdout, s_columns, S_COLUMNS);
    for (int i = 0; i < r->nsizes; i++) {
        s_row_t rows[S_MAX_ROWS];
        int n = s_rows(&r->results[i], rows);
        for (int k = 0; k < n; k++)
            s_print_row(&r->results[i], &rows[k]);
    }
    printf("\nmsg/s: messages through all three stages per second; cpu ns: CPU time of the whole "
           "process\n"
           "(CLOCK_PROCESS_CPUTIME_ID) per message; ratio: msg/s / anchor msg/s (above 1, faster "
           "than\n"
           "the anchor); raw=wire: raw frames as long as the envelope frame (equal wire bytes)\n");
    for (int i = 0; i < r->nsizes; i++) {
        const s_figures_t *fast = &r->results[i].side[S_SIDE_FAST];
        if (fast->lost)
            printf("fast mode lost %" PRIu64 " messages at %zu B (at most once); a round that "
                   "lost some\nwaited %d s for them, so its msg/s is low\n",
                   fast->lost, r->results[i].payload, ZKIT__PIPE_STALL_MS / 1000);
    }
    for (int i = 0; i < r->nsizes; i++) {
        double x = s_fast_over_redis(&r->results[i]);
        if (isnan(x))
            continue;
        bool at64 = r->results[i].payload == 64;
        printf("fast vs redis at %zu B: %.1fx", r->results[i].payload, x);
        if (at64)
            printf(" (target >= %.0fx: %s)", S_TARGET_REDIS_64,
                   x >= S_TARGET_REDIS_64 ? "met" : "not met");
        printf("\n");
    }
    printf("targets (docs/performance.md, informational; the exit status ignores them):\n"
           "envelope vs raw=wire >= %.2f; envelope and fast vs raw >= %.2f at 64 B, >= %.2f at "
           "1 KiB;\n"
           "reliable: none (a task waits for its result's ack before it is retired)\n",
           S_TARGET_WIRE, S_TARGET_64, S_TARGET_1K);
}

/* ---- JSON ----------------------------------------------------------------- */

static void s_json_figures(zkit__bench_json_t *j, const char *key, const s_figures_t *f)
{
    zkit__bench_json_object(j, key);
    zkit__bench_json_num(j, "msg_s", s_msg_s(f));
    zkit__bench_json_num(j, "cpu_ns", f->cpu_ns);
    zkit__bench_json_num(j, "wall_ns", f->wall_ns);
    zkit__bench_json_num(j, "wall_min_ns", f->wall_min_ns);
    zkit__bench_json_num(j, "wall_max_ns", f->wall_max_ns);
    zkit__bench_json_uint(j, "messages", f->messages);
    if (f->wire_bytes)
        zkit__bench_json_uint(j, "wire_bytes", f->wire_bytes);
    else
        zkit__bench_json_null(j, "wire_bytes");
    zkit__bench_json_uint(j, "lost", f->lost);
    zkit__bench_json_end(j, '}');
}

static void s_json_size(zkit__bench_json_t *j, const s_size_t *size)
{
    zkit__bench_json_object(j, NULL);
    zkit__bench_json_uint(j, "payload", size->payload);
    zkit__bench_json_uint(j, "envelope_wire_bytes", size->envelope_wire);
    s_json_figures(j, "raw", &size->side[S_SIDE_RAW]);
    if (size->side[S_SIDE_RAW_WIRE].measured)
        s_json_figures(j, "raw_wire", &size->side[S_SIDE_RAW_WIRE]);
    else
        zkit__bench_json_null(j, "raw_wire");
    zkit__bench_json_array(j, "rows");
    s_row_t rows[S_MAX_ROWS];
    int n = s_rows(size, rows);
    for (int k = 1; k < n; k++) { /* rows[0] is raw itself, above */
        zkit__bench_json_object(j, NULL);
        zkit__bench_json_str(j, "mode", rows[k].mode);
        zkit__bench_json_str(j, "anchor", rows[k].anchor);
        s_json_figures(j, "kit", rows[k].kit);
        s_json_figures(j, "raw", rows[k].raw);
        zkit__bench_json_num(j, "ratio", rows[k].ratio);
        if (isnan(rows[k].target))
            zkit__bench_json_null(j, "target");
        else {
            zkit__bench_json_object(j, "target");
            zkit__bench_json_num(j, "ratio", rows[k].target);
            zkit__bench_json_bool(j, "met", rows[k].ratio >= rows[k].target);
            zkit__bench_json_end(j, '}');
        }
        zkit__bench_json_uint(j, "lost", rows[k].kit->lost);
        zkit__bench_json_end(j, '}');
    }
    zkit__bench_json_end(j, ']');
    double x = s_fast_over_redis(size);
    if (isnan(x))
        zkit__bench_json_null(j, "fast_over_redis");
    else
        zkit__bench_json_num(j, "fast_over_redis", x);
    zkit__bench_json_end(j, '}');
}

static void s_print_json(const s_report_t *r)
{
    zkit__bench_json_t j;
    zkit__bench_json_init(&j, stdout);
    zkit__bench_json_object(&j, NULL);
    zkit__bench_json_str(&j, "suite", ZKIT__PIPE_NAME);
    zkit__bench_json_str(&j, "zkit_version", zkit_version());
    zkit__bench_json_str(&j, "anchor", "raw libzmq PUSH -> PULL/PUSH relay -> PULL");
    zkit__bench_json_str(&j, "layout",
                         "one process, producer -> relay -> consumer on three "
                         "threads, two hops over tcp://127.0.0.1");
    zkit__bench_json_uint(&j, "rounds", (uint64_t) r->opts.rounds);
    zkit__bench_json_uint(&j, "messages", r->opts.messages);
    zkit__bench_json_uint(&j, "slow_messages", r->slow_messages);
    zkit__bench_json_bool(&j, "quick", r->opts.quick);
    zkit__bench_json_uint(&j, "worker_window", r->window);
    zkit__bench_json_uint(&j, "fast_worker_window", r->fast_window);
    zkit__bench_json_str(&j, "statistic", "median");
    zkit__bench_json_str(&j, "cpu_clock", "CLOCK_PROCESS_CPUTIME_ID");
    zkit__bench_json_str(&j, "ratio", "msg/s / anchor msg/s");
    zkit__bench_json_array(&j, "modes");
    for (int m = 0; m < S_MODE_COUNT; m++)
        if (s_has(r, (s_mode_t) m))
            zkit__bench_json_str(&j, NULL, s_mode_names[m]);
    zkit__bench_json_end(&j, ']');
    zkit__bench_json_object(&j, "redis");
    zkit__bench_json_bool(&j, "measured", s_has(r, S_MODE_REDIS) && r->redis_server);
    if (r->redis_server)
        zkit__bench_json_str(&j, "server", r->redis_server);
    else
        zkit__bench_json_null(&j, "server");
    if (r->redis_note)
        zkit__bench_json_str(&j, "note", r->redis_note);
    else
        zkit__bench_json_null(&j, "note");
    zkit__bench_json_num(&j, "target_fast_over_redis_64", S_TARGET_REDIS_64);
    zkit__bench_json_end(&j, '}');
    zkit__bench_json_array(&j, "sizes");
    for (int i = 0; i < r->nsizes; i++)
        s_json_size(&j, &r->results[i]);
    zkit__bench_json_end(&j, ']');
    zkit__bench_json_end(&j, '}');
}

/* ---- command -------------------------------------------------------------- */

static void s_usage(FILE *out)
{
    fprintf(
        out,
        "usage: zkit bench pipeline [--quick] [--rounds N] [--messages N]\n"
        "                           [--sizes 64,256,1024] [--modes raw,envelope,fast,...]\n"
        "                           [--window N] [--json]\n"
        "\n"
        "Moves messages producer -> relay -> consumer (three threads of one process, two\n"
        "hops over tcp://127.0.0.1) through raw libzmq PUSH/PULL, the same sockets with a\n"
        "zkit envelope on every message, and zkit_ventilator -> zkit_worker -> zkit_sink\n"
        "in fast and reliable mode; redis LPUSH/BRPOP too when redis-server is installed.\n"
        "Each round runs every side once, in rotating order; prints msg/s and CPU ns per\n"
        "message (median round) with the ratio to raw.\n"
        "\n"
        "options:\n"
        "  --sizes LIST   payload sizes in bytes, comma-separated (default 64,256,1024)\n"
        "  --modes LIST   of raw,envelope,fast,reliable,redis (default all; raw, the\n"
        "                 anchor, always runs)\n"
        "  --window N     the kit worker's window: tasks in flight and handler threads\n"
        "                 (default %d in reliable mode, %d in fast mode)\n" ZKIT__BENCH_COMMON_HELP
        "\n"
        "Defaults: %d rounds x %d messages (--quick: %d x %d); reliable and redis move\n"
        "%dx fewer (at least %d).\n"
        "Targets (docs/performance.md), informational, the exit status ignores them:\n"
        "envelope vs raw at equal wire bytes >= %.2f; envelope and fast vs raw >= %.2f at\n"
        "64 B, >= %.2f at 1 KiB; fast >= %.0fx redis at 64 B.\n"
        "Exit status: 0 done, 1 a side failed or reliable mode lost a message, 2 usage.\n",
        S_DEFAULT_WINDOW, S_DEFAULT_FAST_WINDOW, ZKIT__BENCH_DEFAULT_ROUNDS, S_DEFAULT_MESSAGES,
        ZKIT__BENCH_QUICK_ROUNDS, S_QUICK_MESSAGES, S_SLOW_DIVISOR, S_SLOW_MIN, S_TARGET_WIRE,
        S_TARGET_64, S_TARGET_1K, S_TARGET_REDIS_64);
}

static int s_parse_sizes(const char *text, s_report_t *r)
{
    char buf[512];
    if (strlen(text) >= sizeof buf || !*text)
        goto bad;
    strcpy(buf, text);
    r->nsizes = 0;
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        uint64_t v;
        if (r->nsizes == S_MAX_SIZES ||
            zkit__bench_parse_u64(ZKIT__PIPE_NAME, "--sizes", item, 0, S_MAX_PAYLOAD, &v))
            goto bad;
        for (int i = 0; i < r->nsizes; i++)
            if (r->sizes[i] == v)
                goto bad;
        r->sizes[r->nsizes++] = (size_t) v;
    }
    if (r->nsizes && text[strlen(text) - 1] != ',' && !strstr(text, ",,") && *text != ',')
        return 0;
bad:
    fprintf(stderr,
            "zkit bench " ZKIT__PIPE_NAME ": bad --sizes '%s': expected up to %d distinct "
            "byte counts from 0 to %u, comma-separated\n",
            text, S_MAX_SIZES, S_MAX_PAYLOAD);
    return -1;
}

static int s_parse_modes(const char *text, s_report_t *r)
{
    char buf[256];
    if (strlen(text) >= sizeof buf || !*text || *text == ',' || text[strlen(text) - 1] == ',' ||
        strstr(text, ",,"))
        goto bad;
    strcpy(buf, text);
    r->modes = 1u << S_MODE_RAW;
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        int m = 0;
        while (m < S_MODE_COUNT && strcmp(item, s_mode_names[m]))
            m++;
        if (m == S_MODE_COUNT)
            goto bad;
        r->modes |= 1u << m;
    }
    return 0;
bad:
    fprintf(stderr,
            "zkit bench " ZKIT__PIPE_NAME ": bad --modes '%s': expected a comma-separated list "
            "of raw, envelope, fast, reliable, redis\n",
            text);
    return -1;
}

/*  Parses argv into the report's options. Returns -1 to exit with
 *exit_code (help or usage error), 0 to run.                             */
static int s_parse(int argc, char **argv, s_report_t *r, int *exit_code)
{
    static const size_t default_sizes[] = {64, 256, 1024};
    r->modes = S_MODES_ALL;
    r->window = S_DEFAULT_WINDOW;
    r->fast_window = S_DEFAULT_FAST_WINDOW;
    r->nsizes = 3;
    memcpy(r->sizes, default_sizes, sizeof default_sizes);
    for (int i = 1; i < argc;) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            s_usage(stdout);
            *exit_code = ZKIT_EXIT_OK;
            return -1;
        }
        int used = zkit__bench_parse_common(ZKIT__PIPE_NAME, argc, argv, &i, &r->opts);
        if (used > 0)
            continue;
        if (used == 0) {
            const char *value;
            if ((value = zkit__bench_option_value(argc, argv, &i, "--sizes"))) {
                if (!s_parse_sizes(value, r))
                    continue;
            }
            else if ((value = zkit__bench_option_value(argc, argv, &i, "--modes"))) {
                if (!s_parse_modes(value, r))
                    continue;
            }
            else if ((value = zkit__bench_option_value(argc, argv, &i, "--window"))) {
                uint64_t v;
                if (!zkit__bench_parse_u64(ZKIT__PIPE_NAME, "--window", value, 1, S_MAX_WINDOW,
                                           &v)) {
                    r->window = r->fast_window = (uint32_t) v;
                    continue;
                }
            }
            else
                fprintf(stderr, "zkit bench " ZKIT__PIPE_NAME ": unknown argument '%s'\n", arg);
        }
        fprintf(stderr, "try 'zkit bench " ZKIT__PIPE_NAME " --help'\n");
        *exit_code = ZKIT_EXIT_USAGE;
        return -1;
    }
    zkit__bench_opts_finish(&r->opts, S_DEFAULT_MESSAGES, S_QUICK_MESSAGES);
    uint64_t slow = r->opts.messages / S_SLOW_DIVISOR;
    uint64_t floor = r->opts.messages < S_SLOW_MIN ? r->opts.messages : S_SLOW_MIN;
    r->slow_messages = slow > floor ? slow : floor;
    return 0;
}

int zkit__bench_pipeline(int argc, char **argv)
{
    s_report_t *r = calloc(1, sizeof *r);
    if (!r) {
        fprintf(stderr, "zkit bench " ZKIT__PIPE_NAME ": out of memory\n");
        return ZKIT_EXIT_FAILURE;
    }
    int exit_code = ZKIT_EXIT_OK;
    if (s_parse(argc, argv, r, &exit_code))
        goto done;
    if (s_has(r, S_MODE_REDIS)) {
        r->redis_server = zkit__pipe_redis_server();
        if (!r->redis_server)
            r->redis_note = "no redis-server on PATH";
    }
    for (int i = 0; i < r->nsizes; i++) {
        r->results[i].payload = r->sizes[i];
        if (s_measure_size(r, &r->results[i])) {
            exit_code = ZKIT_EXIT_FAILURE;
            goto done;
        }
    }
    if (r->opts.json)
        s_print_json(r);
    else
        s_print_table(r);
    fflush(stdout);
done:
    free(r);
    return exit_code;
}
