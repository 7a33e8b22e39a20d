/*  bench_pubsub.c: `zkit bench pubsub`, messages delivered per second to
    each of 1, 2, 4 subscribers through zkit_forwarder (DROP and NODROP),
    beside raw zmq_proxy(XSUB, XPUB) (plain, and NODROP) and a direct PUB -> SUB path, in the
    same run, with the messages each subscriber lost.

    Per payload size and subscriber count every path is built once, warmed
    up, then each round runs every path once, the order rotating from round
    to round; the median round is quoted. A round's figure is the mean of
    its subscribers' delivered rates (each subscriber's messages over the
    time from the first send to its last message); the slowest subscriber's
    is shown beside it. CPU time is the whole process's per delivered message
    (one message to one subscriber), since the work is spread over threads.

    Drop paths lose messages at full speed: that is reported, not failed.
    NODROP must lose none: a loss makes the suite exit 1.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "bench_pubsub.h"
#include "zkit.h"
#include "zkit_cli.h"

#define S_DEFAULT_MESSAGES 100000
#define S_QUICK_MESSAGES   2000
#define S_MAX_SIZES        8
#define S_MAX_COUNTS       ZKIT__PUBSUB_MAX_SUBS
#define S_MAX_PAYLOAD      (16u * 1024 * 1024 - 1024) /* under the envelope's frame limit */
#define S_PATHS            ZKIT__PUBSUB_PATH_COUNT

/* Targets from docs/performance.md (informational). */
#define S_TARGET_PROXY  0.95 /* forwarder (drop) vs raw zmq_proxy                 */
#define S_TARGET_DIRECT 0.7  /* forwarder (nodrop, no loss) vs direct PUB -> SUB  */

/*  One path's figures for one (size, subscribers): medians over rounds.  */
typedef struct {
    bool measured;
    double msg_s;                         /* mean delivered msg/s per subscriber               */
    double min_msg_s;                     /* the slowest subscriber's                          */
    double cpu_ns;                        /* process CPU per delivered message                 */
    double wall_ns;                       /* per published message, first send to last arrival */
    double lo_msg_s, hi_msg_s;            /* slowest and fastest round            */
    uint64_t lost[ZKIT__PUBSUB_MAX_SUBS]; /* summed over the timed rounds */
    uint64_t lost_total;
    uint64_t warm_lost; /* in the warm-up run                           */
} s_figures_t;

typedef struct {
    size_t payload;
    int subscribers;
    s_figures_t path[S_PATHS];
} s_group_t;

typedef struct {
    zkit__bench_opts_t opts;
    size_t sizes[S_MAX_SIZES];
    int nsizes;
    int counts[S_MAX_COUNTS];
    int ncounts;
    s_group_t groups[S_MAX_SIZES * S_MAX_COUNTS];
    int ngroups;
} s_report_t;

static const char *const s_labels[] = {"direct", "zmq_proxy", "zmq_proxy-nodrop", "fwd-drop",
                                       "fwd-nodrop"};

/* ---- measuring ------------------------------------------------------------ */

/*  One run's per-message figures: the subscribers' mean and slowest rate,
    CPU per delivered message, and each subscriber's loss.                  */
typedef struct {
    double msg_s, min_msg_s, cpu_ns, wall_ns;
} s_sample_t;

static void s_sample(const zkit__pubsub_run_t *run, int subs, uint64_t messages, s_sample_t *s,
                     uint64_t *lost)
{
    double sum = 0, min = INFINITY;
    uint64_t delivered = 0;
    for (int i = 0; i < subs; i++) {
        double rate =
            run->elapsed_ns[i] ? (double) run->delivered[i] * 1e9 / (double) run->elapsed_ns[i] : 0;
        sum += rate;
        min = rate < min ? rate : min;
        delivered += run->delivered[i];
        lost[i] += messages > run->delivered[i] ? messages - run->delivered[i] : 0;
    }
    s->msg_s = sum / subs;
    s->min_msg_s = min;
    s->cpu_ns = delivered ? (double) run->cpu_ns / (double) delivered : NAN;
    s->wall_ns = (double) run->wall_ns / (double) messages;
}

static int s_measure_group(const s_report_t *r, s_group_t *g)
{
    int rounds = r->opts.rounds, rc = 0;
    uint64_t messages = r->opts.messages;
    zkit__pubsub_side_t *sides[S_PATHS] = {NULL};
    s_sample_t *samples = calloc((size_t) rounds * S_PATHS, sizeof *samples);
    double *column = calloc((size_t) rounds, sizeof *column);
    if (!samples || !column) {
        fprintf(stderr, "zkit bench " ZKIT__PUBSUB_NAME ": out of memory\n");
        rc = -1;
    }
    for (int p = 0; p < S_PATHS && !rc; p++)
        if (!(sides[p] = zkit__pubsub_open((zkit__pubsub_path_t) p, g->subscribers, g->payload)))
            rc = -1;
    /* Warm-up: connections used, buffers grown, threads and caches warm. */
    for (int p = 0; p < S_PATHS && !rc; p++) {
        zkit__pubsub_run_t run;
        uint64_t warm = messages / 10 < 100 ? 100 : messages / 10;
        uint64_t lost[ZKIT__PUBSUB_MAX_SUBS] = {0};
        s_sample_t s;
        rc = zkit__pubsub_run(sides[p], warm, &run);
        s_sample(&run, g->subscribers, warm, &s, lost);
        for (int i = 0; i < g->subscribers; i++)
            g->path[p].warm_lost += lost[i];
    }
    /* Rounds: every path once, starting one further along each round. */
    for (int round = 0; round < rounds && !rc; round++) {
        for (int k = 0; k < S_PATHS && !rc; k++) {
            int p = (round + k) % S_PATHS;
            zkit__pubsub_run_t run;
            rc = zkit__pubsub_run(sides[p], messages, &run);
            s_sample(&run, g->subscribers, messages, &samples[p * rounds + round], g->path[p].lost);
        }
    }
    for (int p = 0; p < S_PATHS && !rc; p++) {
        s_figures_t *f = &g->path[p];
        const s_sample_t *s = &samples[p * rounds];
        for (int i = 0; i < rounds; i++)
            column[i] = s[i].msg_s;
        f->msg_s = zkit__bench_median(column, rounds); /* sorts column */
        f->lo_msg_s = column[0];
        f->hi_msg_s = column[rounds - 1];
        for (int i = 0; i < rounds; i++)
            column[i] = s[i].min_msg_s;
        f->min_msg_s = zkit__bench_median(column, rounds);
        for (int i = 0; i < rounds; i++)
            column[i] = s[i].cpu_ns;
        f->cpu_ns = zkit__bench_median(column, rounds);
        for (int i = 0; i < rounds; i++)
            column[i] = s[i].wall_ns;
        f->wall_ns = zkit__bench_median(column, rounds);
        for (int i = 0; i < g->subscribers; i++)
            f->lost_total += f->lost[i];
        f->measured = true;
    }
    for (int p = 0; p < S_PATHS; p++)
        zkit__pubsub_destroy(sides[p]);
    free(samples);
    free(column);
    return rc;
}

/* ---- rows ----------------------------------------------------------------- */

static double s_ratio(const s_group_t *g, int p, zkit__pubsub_path_t anchor)
{
    return p == (int) anchor ? NAN : g->path[p].msg_s / g->path[anchor].msg_s;
}

/*  Against the raw proxy with the same policy: NODROP paths against the
    NODROP proxy, the others against plain zmq_proxy. NAN for the proxies. */
static double s_vs_proxy(const s_group_t *g, int p)
{
    if (p == ZKIT__PUBSUB_PROXY || p == ZKIT__PUBSUB_PROXY_NODROP)
        return NAN;
    return s_ratio(g, p, p == ZKIT__PUBSUB_NODROP ? ZKIT__PUBSUB_PROXY_NODROP : ZKIT__PUBSUB_PROXY);
}

/*  The path's target: its ratio against its anchor, NAN when none.        */
static double s_target(int p, double *ratio, const s_group_t *g)
{
    if (p == ZKIT__PUBSUB_DROP) {
        *ratio = s_ratio(g, p, ZKIT__PUBSUB_PROXY);
        return S_TARGET_PROXY;
    }
    if (p == ZKIT__PUBSUB_NODROP) {
        *ratio = s_ratio(g, p, ZKIT__PUBSUB_DIRECT);
        return S_TARGET_DIRECT;
    }
    *ratio = NAN;
    return NAN;
}

static bool s_met(int p, const s_group_t *g)
{
    double ratio, target = s_target(p, &ratio, g);
    return ratio >= target && (p != ZKIT__PUBSUB_NODROP || !g->path[p].lost_total);
}

/*  "0,12,0,3": each subscriber's loss, no spaces, so the table splits.  */
static const char *s_fmt_lost(char *buf, size_t size, const s_figures_t *f, int subs)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < subs && used < size; i++)
        used += (size_t) snprintf(buf + used, size - used, "%s%" PRIu64, i ? "," : "", f->lost[i]);
    return buf;
}

/* ---- table ---------------------------------------------------------------- */

static const zkit__bench_col_t s_columns[] = {
    {"payload", 7}, {"subs", 4},   {"path", 16},     {"msg/s/sub", 9},
    {"min sub", 9}, {"cpu ns", 6}, {"vs proxy", 6},  {"vs direct", 6},
    {"target", 12}, {"met", 3},    {"lost/sub", 12},
};
#define S_COLUMNS (int) (sizeof s_columns / sizeof s_columns[0])

static void s_print_row(const s_group_t *g, int p)
{
    const s_figures_t *f = &g->path[p];
    char b[9][32], lost[256];
    const char *cells[S_COLUMNS];
    snprintf(b[0], sizeof b[0], "%zu", g->payload);
    snprintf(b[1], sizeof b[1], "%d", g->subscribers);
    cells[0] = b[0];
    cells[1] = b[1];
    cells[2] = s_labels[p];
    cells[3] = zkit__bench_fmt(b[2], f->msg_s, 0);
    cells[4] = zkit__bench_fmt(b[3], f->min_msg_s, 0);
    cells[5] = zkit__bench_fmt(b[4], f->cpu_ns, 0);
    double vs_proxy = s_vs_proxy(g, p);
    double vs_direct = s_ratio(g, p, ZKIT__PUBSUB_DIRECT);
    cells[6] = isnan(vs_proxy) ? "-" : zkit__bench_fmt(b[5], vs_proxy, 3);
    cells[7] = isnan(vs_direct) ? "-" : zkit__bench_fmt(b[6], vs_direct, 3);
    double ratio, target = s_target(p, &ratio, g);
    if (isnan(target))
        cells[8] = cells[9] = "-";
    else {
        snprintf(b[7], sizeof b[7], ">=%.2f %s", target,
                 p == ZKIT__PUBSUB_NODROP ? "direct" : "proxy");
        cells[8] = b[7];
        cells[9] = s_met(p, g) ? "yes" : "no";
    }
    cells[10] = s_fmt_lost(lost, sizeof lost, f, g->subscribers);
    zkit__bench_table_row(stdout, s_columns, S_COLUMNS, cells);
}

static void s_print_table(const s_report_t *r)
{
    printf("bench " ZKIT__PUBSUB_NAME ": %d rounds x %" PRIu64 " messages per path, median round\n",
           r->opts.rounds, r->opts.messages);
    printf("layout: one process; the publisher on the calling thread, each subscriber on its own\n"
           "thread, every hop over tcp://127.0.0.1, HWM 1000 on every socket\n"
           "  publisher   raw XPUB sending what zkit_publisher sends: topic frame '%s' then\n"
           "              an envelope (src, new id, ts, seq; encoded per message), the same on\n"
           "              every path (NODROP for fwd-nodrop, as zkit_publisher's nodrop option)\n"
           "  subscribers raw SUB, each decodes every envelope and counts what it received\n"
           "              (zkit_subscriber's work before its gap bookkeeping), the same on every\n"
           "              path: only the device differs\n"
           "  direct      publisher XPUB (bind) -> SUBs, no device\n"
           "  zmq_proxy   publisher -> zmq_proxy(XSUB, XPUB) on its own thread and libzmq\n"
           "              context -> SUBs (the anchor)\n"
           "  zmq_proxy-nodrop  the same, publisher and proxy XPUB with ZMQ_XPUB_NODROP (the\n"
           "              like-for-like anchor of fwd-nodrop)\n"
           "  fwd-drop    publisher -> zkit_forwarder (DROP) -> SUBs\n"
           "  fwd-nodrop  NODROP publisher -> zkit_forwarder (NODROP) -> SUBs: must lose nothing\n"
           "\n",
           ZKIT__PUBSUB_TOPIC);
    zkit__bench_table_header(stdout, s_columns, S_COLUMNS);
    for (int i = 0; i < r->ngroups; i++) {
        if (i && r->groups[i].payload != r->groups[i - 1].payload)
            printf("\n");
        for (int p = 0; p < S_PATHS; p++)
            s_print_row(&r->groups[i], p);
    }
    printf("\nmsg/s/sub: messages each subscriber received per second (mean over subscribers;\n"
           "min sub: the slowest one); cpu ns: CPU time of the whole process\n"
           "(CLOCK_PROCESS_CPUTIME_ID) per delivered message; vs proxy: msg/s/sub / the raw\n"
           "proxy's of the same policy (fwd-nodrop: zmq_proxy-nodrop's); vs direct: / direct's;\n"
           "lost/sub: messages each subscriber missed, summed over the timed rounds. The\n"
           "publisher outruns the subscribers: drop paths lose by design, and their rates then\n"
           "depend on how the cores are shared with the publisher's wasted work; the NODROP\n"
           "rows are the steadier measure of what a device carries\n");
    printf("targets (docs/performance.md, informational; the exit status ignores them):\n"
           "fwd-drop >= %.2fx zmq_proxy; fwd-nodrop loses nothing at >= %.2fx direct\n"
           "(a NODROP loss is a failure: exit 1)\n",
           S_TARGET_PROXY, S_TARGET_DIRECT);
}

/* ---- JSON ----------------------------------------------------------------- */

static void s_json_row(zkit__bench_json_t *j, const s_group_t *g, int p)
{
    const s_figures_t *f = &g->path[p];
    zkit__bench_json_object(j, NULL);
    zkit__bench_json_str(j, "path", zkit__pubsub_path_name((zkit__pubsub_path_t) p));
    zkit__bench_json_str(j, "label", s_labels[p]);
    zkit__bench_json_num(j, "msg_s_per_sub", f->msg_s);
    zkit__bench_json_num(j, "min_sub_msg_s", f->min_msg_s);
    zkit__bench_json_num(j, "msg_s_per_sub_lo", f->lo_msg_s);
    zkit__bench_json_num(j, "msg_s_per_sub_hi", f->hi_msg_s);
    zkit__bench_json_num(j, "cpu_ns", f->cpu_ns);
    zkit__bench_json_num(j, "wall_ns", f->wall_ns);
    zkit__bench_json_num(j, "vs_proxy", s_vs_proxy(g, p));
    zkit__bench_json_num(j, "vs_direct", s_ratio(g, p, ZKIT__PUBSUB_DIRECT));
    double ratio, target = s_target(p, &ratio, g);
    if (isnan(target))
        zkit__bench_json_null(j, "target");
    else {
        zkit__bench_json_object(j, "target");
        zkit__bench_json_str(j, "anchor", p == ZKIT__PUBSUB_NODROP ? "direct" : "proxy");
        zkit__bench_json_num(j, "ratio", target);
        zkit__bench_json_bool(j, "zero_loss", p == ZKIT__PUBSUB_NODROP);
        zkit__bench_json_bool(j, "met", s_met(p, g));
        zkit__bench_json_end(j, '}');
    }
    zkit__bench_json_array(j, "lost");
    for (int i = 0; i < g->subscribers; i++)
        zkit__bench_json_uint(j, NULL, f->lost[i]);
    zkit__bench_json_end(j, ']');
    zkit__bench_json_uint(j, "lost_total", f->lost_total);
    zkit__bench_json_uint(j, "warmup_lost", f->warm_lost);
    zkit__bench_json_end(j, '}');
}

static void s_print_json(const s_report_t *r)
{
    zkit__bench_json_t j;
    zkit__bench_json_init(&j, stdout);
    zkit__bench_json_object(&j, NULL);
    zkit__bench_json_str(&j, "suite", ZKIT__PUBSUB_NAME);
    zkit__bench_json_str(&j, "zkit_version", zkit_version());
    zkit__bench_json_str(&j, "anchor", "raw zmq_proxy(XSUB, XPUB)");
    zkit__bench_json_str(&j, "publisher",
                         "raw XPUB: topic frame + envelope (src, id, ts, seq) per message");
    zkit__bench_json_str(&j, "subscriber", "raw SUB decoding every envelope");
    zkit__bench_json_str(&j, "layout",
                         "one process; publisher on the calling thread, a thread per "
                         "subscriber, tcp://127.0.0.1, HWM 1000");
    zkit__bench_json_uint(&j, "rounds", (uint64_t) r->opts.rounds);
    zkit__bench_json_uint(&j, "messages", r->opts.messages);
    zkit__bench_json_bool(&j, "quick", r->opts.quick);
    zkit__bench_json_str(&j, "statistic", "median");
    zkit__bench_json_str(&j, "cpu_clock", "CLOCK_PROCESS_CPUTIME_ID");
    zkit__bench_json_str(&j, "cpu_per", "delivered message");
    zkit__bench_json_str(&j, "ratio", "msg/s per subscriber / anchor's");
    zkit__bench_json_str(&j, "vs_proxy", "against the raw proxy of the same policy");
    zkit__bench_json_object(&j, "targets");
    zkit__bench_json_num(&j, "drop_vs_proxy", S_TARGET_PROXY);
    zkit__bench_json_num(&j, "nodrop_vs_direct", S_TARGET_DIRECT);
    zkit__bench_json_end(&j, '}');
    zkit__bench_json_array(&j, "groups");
    for (int i = 0; i < r->ngroups; i++) {
        const s_group_t *g = &r->groups[i];
        zkit__bench_json_object(&j, NULL);
        zkit__bench_json_uint(&j, "payload", g->payload);
        zkit__bench_json_uint(&j, "wire_bytes", zkit__pubsub_wire_bytes(g->payload));
        zkit__bench_json_uint(&j, "subscribers", (uint64_t) g->subscribers);
        zkit__bench_json_array(&j, "rows");
        for (int p = 0; p < S_PATHS; p++)
            s_json_row(&j, g, p);
        zkit__bench_json_end(&j, ']');
        zkit__bench_json_end(&j, '}');
    }
    zkit__bench_json_end(&j, ']');
    zkit__bench_json_end(&j, '}');
}

/* ---- command -------------------------------------------------------------- */

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: zkit bench pubsub [--quick] [--rounds N] [--messages N]\n"
            "                         [--subscribers 1,2,4] [--sizes 64] [--json]\n"
            "\n"
            "Publishes messages to 1, 2 and 4 subscribers (threads of one process, tcp to\n"
            "127.0.0.1) through zkit_forwarder (DROP and NODROP), beside raw\n"
            "zmq_proxy(XSUB, XPUB) (plain and NODROP) and a direct PUB -> SUB path; the\n"
            "publisher (raw XPUB, topic + envelope) and subscribers (raw SUB, decoding envelopes) "
            "are the same on\n"
            "every path. Each round runs every path once, in rotating order; prints msg/s\n"
            "per subscriber and CPU ns per delivered message (median round), the ratios to\n"
            "zmq_proxy and to direct, and what each subscriber lost.\n"
            "\n"
            "options:\n"
            "  --subscribers LIST  subscriber counts, comma-separated, 1 to %d (default 1,2,4)\n"
            "  --sizes LIST        payload sizes in bytes, comma-separated (default "
            "64)\n" ZKIT__BENCH_COMMON_HELP "\n"
            "Defaults: %d rounds x %d messages (--quick: %d x %d).\n"
            "Targets (docs/performance.md), informational: fwd-drop >= %.2fx zmq_proxy;\n"
            "fwd-nodrop loses nothing at >= %.2fx direct.\n"
            "Exit status: 0 done (drop paths may lose messages), 1 a path failed or NODROP\n"
            "lost a message, 2 usage.\n",
            ZKIT__PUBSUB_MAX_SUBS, ZKIT__BENCH_DEFAULT_ROUNDS, S_DEFAULT_MESSAGES,
            ZKIT__BENCH_QUICK_ROUNDS, S_QUICK_MESSAGES, S_TARGET_PROXY, S_TARGET_DIRECT);
}

/*  Parses "a,b,c" of distinct integers in [min, max] into values. Returns
    the count, or -1 after printing why.                                    */
static int s_parse_list(const char *option, const char *text, uint64_t min, uint64_t max,
                        uint64_t *values, int capacity)
{
    char buf[512];
    int n = 0;
    size_t len = strlen(text);
    if (!len || len >= sizeof buf || *text == ',' || text[len - 1] == ',' || strstr(text, ",,"))
        goto bad;
    strcpy(buf, text);
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        uint64_t v;
        if (n == capacity || zkit__bench_parse_u64(ZKIT__PUBSUB_NAME, option, item, min, max, &v))
            goto bad;
        for (int i = 0; i < n; i++)
            if (values[i] == v)
                goto bad;
        values[n++] = v;
    }
    return n;
bad:
    fprintf(stderr,
            "zkit bench " ZKIT__PUBSUB_NAME ": bad %s '%s': expected up to %d distinct "
            "integers from %" PRIu64 " to %" PRIu64 ", comma-separated\n",
            option, text, capacity, min, max);
    return -1;
}

/*  Parses argv. Returns -1 to exit with *exit_code (help or usage error),
    0 to run.                                                               */
static int s_parse(int argc, char **argv, s_report_t *r, int *exit_code)
{
    r->nsizes = 1;
    r->sizes[0] = 64;
    r->ncounts = 3;
    r->counts[0] = 1;
    r->counts[1] = 2;
    r->counts[2] = 4;
    for (int i = 1; i < argc;) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            s_usage(stdout);
            *exit_code = ZKIT_EXIT_OK;
            return -1;
        }
        int used = zkit__bench_parse_common(ZKIT__PUBSUB_NAME, argc, argv, &i, &r->opts);
        if (used > 0)
            continue;
        if (used == 0) {
            const char *value;
            uint64_t v[S_MAX_SIZES > S_MAX_COUNTS ? S_MAX_SIZES : S_MAX_COUNTS];
            int n;
            if ((value = zkit__bench_option_value(argc, argv, &i, "--sizes"))) {
                if ((n = s_parse_list("--sizes", value, 0, S_MAX_PAYLOAD, v, S_MAX_SIZES)) > 0) {
                    r->nsizes = n;
                    for (int k = 0; k < n; k++)
                        r->sizes[k] = (size_t) v[k];
                    continue;
                }
            }
            else if ((value = zkit__bench_option_value(argc, argv, &i, "--subscribers"))) {
                if ((n = s_parse_list("--subscribers", value, 1, ZKIT__PUBSUB_MAX_SUBS, v,
                                      S_MAX_COUNTS)) > 0) {
                    r->ncounts = n;
                    for (int k = 0; k < n; k++)
                        r->counts[k] = (int) v[k];
                    continue;
                }
            }
            else
                fprintf(stderr, "zkit bench " ZKIT__PUBSUB_NAME ": unknown argument '%s'\n", arg);
        }
        fprintf(stderr, "try 'zkit bench " ZKIT__PUBSUB_NAME " --help'\n");
        *exit_code = ZKIT_EXIT_USAGE;
        return -1;
    }
    zkit__bench_opts_finish(&r->opts, S_DEFAULT_MESSAGES, S_QUICK_MESSAGES);
    return 0;
}

int zkit__bench_pubsub(int argc, char **argv)
{
    s_report_t *r = calloc(1, sizeof *r);
    if (!r) {
        fprintf(stderr, "zkit bench " ZKIT__PUBSUB_NAME ": out of memory\n");
        return ZKIT_EXIT_FAILURE;
    }
    int exit_code = ZKIT_EXIT_OK;
    if (s_parse(argc, argv, r, &exit_code))
        goto done;
    for (int s = 0; s < r->nsizes; s++)
        for (int c = 0; c < r->ncounts; c++) {
            s_group_t *g = &r->groups[r->ngroups++];
            g->payload = r->sizes[s];
            g->subscribers = r->counts[c];
            if (s_measure_group(r, g)) {
                exit_code = ZKIT_EXIT_FAILURE;
                goto done;
            }
        }
    if (r->opts.json)
        s_print_json(r);
    else
        s_print_table(r);
    fflush(stdout);
    /* NODROP promises every message to every subscriber: a loss, even in
       the warm-up, fails the suite (after the figures are out). */
    for (int i = 0; i < r->ngroups; i++) {
        const s_figures_t *f = &r->groups[i].path[ZKIT__PUBSUB_NODROP];
        if (f->lost_total || f->warm_lost) {
            fprintf(stderr,
                    "zkit bench " ZKIT__PUBSUB_NAME ": fwd-nodrop, %d subscribers, %zu B: lost "
                    "%" PRIu64 " messages (%" PRIu64 " in the warm-up); NODROP must lose none\n",
                    r->groups[i].subscribers, r->groups[i].payload, f->lost_total, f->warm_lost);
            exit_code = ZKIT_EXIT_FAILURE;
        }
    }
done:
    free(r);
    return exit_code;
}
