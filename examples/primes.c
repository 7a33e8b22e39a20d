/*  primes.c: counts the primes below N with a reliable zkit pipeline.

    The ventilator splits [2, N) into K ranges, one task each ("lo hi"); each
    worker counts the primes in a range with a segmented sieve and answers
    with the count; the sink adds the counts up and checks the total against
    the known values of pi(N). Run the three roles as separate processes, on
    one host or on many; kill a worker in the middle and the answer is still
    exact: its tasks go to the other workers, and a result that arrives twice
    is counted once.

        primes sink --bind tcp://0.0.0.0:5558
        primes worker --connect tcp://HOST:5557 --sink tcp://HOST:5558   (x N)
        primes ventilator --bind tcp://0.0.0.0:5557 --sink tcp://HOST:5558 \
                          --limit 1000000000 --ranges 2000

    Uses only the public API (#include <zkit.h>).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zkit.h>

/* Ranges above this are refused: the base primes would not fit in memory
   comfortably, and a uint64 sum is far from overflowing.                    */
#define LIMIT_MAX (1ull << 40)
/* Odd numbers per sieve segment: 32 KiB, the size of a typical L1 cache.    */
#define SEGMENT 32768
/* The batch's name carries N, so the sink knows what to check against.      */
#define BATCH_PREFIX "primes-below-"

static const char usage_text[] =
    "usage: primes sink --bind EP [--timeout MS] [--grace MS]\n"
    "       primes worker --connect EP --sink EP [--window N]\n"
    "       primes ventilator --bind EP --sink EP --limit N --ranges K\n"
    "\n"
    "Counts the primes below N on a reliable zkit pipeline: the ventilator\n"
    "splits [2, N) into K ranges, workers sieve them, the sink adds the counts\n"
    "and checks the total against pi(N) when N is a power of ten it knows.\n"
    "Each role prints 'primes ROLE: bound EP' on stderr once it listens. The\n"
    "sink prints the answer at once and tells the ventilator the batch is\n"
    "complete, so no range waits on a repeat; --grace MS (default 0) keeps it up\n"
    "longer to acknowledge repeated results anyway; SIGTERM ends that early.\n"
    "Exit status: 0 done (sink: the total is right or not known), 1 failed\n"
    "(sink: the total is wrong or tasks were lost), 2 usage.\n";

static atomic_int stop_flag;

static void on_signal(int signum)
{
    (void) signum;
    atomic_store(&stop_flag, 1);
}

/*  Called once the component runs: czmq installs its own handlers when it
    starts, and ours must come after them to be the ones that run.          */
static void catch_signals(void)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
}

static int usage_error(const char *message, const char *arg)
{
    fprintf(stderr, "primes: %s%s%s (see 'primes --help')\n", message, arg ? ": " : "",
            arg ? arg : "");
    return 2;
}

static int parse_u64(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!text || *text < '0' || *text > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

/* ---- the sieve ------------------------------------------------------------------ */

/*  Base primes (odd ones, 3 and up) up to a limit. Built once, grown when a
    larger range arrives; a table is never changed once published, and old
    ones are kept until exit, so a thread still sieving with one is safe.    */
typedef struct base_table {
    uint64_t limit; /* every prime <= limit is in primes[] */
    uint32_t *primes;
    size_t count;
    struct base_table *older;
} base_table_t;

static pthread_mutex_t base_lock = PTHREAD_MUTEX_INITIALIZER;
static base_table_t *base_current;

static uint64_t isqrt(uint64_t n)
{
    uint64_t r = 0;
    for (uint64_t bit = 1ull << 62; bit; bit >>= 2) {
        if (n >= r + bit) {
            n -= r + bit;
            r = (r >> 1) + bit;
        }
        else
            r >>= 1;
    }
    return r;
}

static base_table_t *base_build(uint64_t limit)
{
    base_table_t *t = calloc(1, sizeof *t);
    unsigned char *composite = calloc(limit + 1, 1);
    if (!t || !composite)
        goto fail;
    size_t count = 0;
    for (uint64_t i = 3; i <= limit; i += 2)
        if (!composite[i]) {
            count++;
            for (uint64_t j = i * i; j <= limit; j += 2 * i)
                composite[j] = 1;
        }
    t->primes = malloc((count ? count : 1) * sizeof *t->primes);
    if (!t->primes)
        goto fail;
    for (uint64_t i = 3; i <= limit; i += 2)
        if (!composite[i])
            t->primes[t->count++] = (uint32_t) i;
    t->limit = limit;
    free(composite);
    return t;
fail:
    if (t)
        free(t->primes);
    free(t);
    free(composite);
    return NULL;
}

/*  A table holding every prime up to at least limit, or NULL (no memory).   */
static const base_table_t *base_primes(uint64_t limit)
{
    pthread_mutex_lock(&base_lock);
    base_table_t *t = base_current;
    if (!t || t->limit < limit) {
        /* Grow generously: ranges usually rise towards N. */
        uint64_t want = t && t->limit * 2 > limit ? t->limit * 2 : limit;
        base_table_t *grown = base_build(want < 16 ? 16 : want);
        if (grown) {
            grown->older = base_current;
            base_current = grown;
        }
        t = grown;
    }
    pthread_mutex_unlock(&base_lock);
    return t;
}

static void base_free_all(void)
{
    while (base_current) {
        base_table_t *older = base_current->older;
        free(base_current->primes);
        free(base_current);
        base_current = older;
    }
}

/*  The number of primes in [lo, hi), 2 <= lo < hi, by a segmented sieve of
    the odd numbers. Returns 0 and sets *count, or -1 when out of memory.    */
static int count_primes(uint64_t lo, uint64_t hi, uint64_t *count)
{
    const base_table_t *base = base_primes(isqrt(hi - 1));
    if (!base)
        return -1;
    uint64_t total = lo <= 2 && 2 < hi ? 1 : 0;
    unsigned char segment[SEGMENT];
    uint64_t start = lo < 3 ? 3 : lo | 1; /* the first odd number >= lo */
    for (uint64_t seg_lo = start; seg_lo < hi; seg_lo += 2 * SEGMENT) {
        uint64_t n = (hi - seg_lo + 1) / 2; /* odd numbers in [seg_lo, hi) */
        if (n > SEGMENT)
            n = SEGMENT;
        uint64_t seg_end = seg_lo + 2 * n; /* exclusive */
        memset(segment, 1, n);
        for (size_t i = 0; i < base->count; i++) {
            uint64_t p = base->primes[i];
            if (p * p >= seg_end)
                break;
            uint64_t m = (seg_lo + p - 1) / p * p;
            if (m < p * p)
                m = p * p;
            if (!(m & 1))
                m += p;
            for (uint64_t j = (m - seg_lo) / 2; j < n; j += p)
                segment[j] = 0;
        }
        for (uint64_t j = 0; j < n; j++)
            total += segment[j];
    }
    *count = total;
    return 0;
}

/* ---- worker --------------------------------------------------------------------- */

static int worker_handle(const zkit_envelope_t *task, zkit_envelope_t *result, char *reason,
                         size_t reason_size, void *arg)
{
    (void) arg;
    size_t size;
    const char *body = zkit_envelope_body(task, &size);
    char text[64];
    uint64_t lo, hi, count;
    if (size >= sizeof text) {
        snprintf(reason, reason_size, "task body too long");
        return -1;
    }
    memcpy(text, body, size);
    text[size] = '\0';
    char *space = strchr(text, ' ');
    if (space)
        *space = '\0';
    if (!space || parse_u64(text, 2, LIMIT_MAX, &lo) || parse_u64(space + 1, 3, LIMIT_MAX, &hi) ||
        lo >= hi) {
        snprintf(reason, reason_size, "bad range: want \"lo hi\" with 2 <= lo < hi <= 2^40");
        return -1;
    }
    if (count_primes(lo, hi, &count) == -1) {
        snprintf(reason, reason_size, "out of memory");
        return -1;
    }
    int len = snprintf(text, sizeof text, "%" PRIu64, count);
    return zkit_envelope_set_body(result, text, (size_t) len);
}

static int run_worker(const char *connect, const char *sink, uint32_t window)
{
    zkit_worker_opts_t opts = ZKIT_WORKER_OPTS_DEFAULT;
    opts.connect = connect;
    opts.sink = sink;
    opts.window = window;
    opts.handler = worker_handle;
    zkit_worker_t *worker = zkit_worker_new(&opts);
    if (!worker) {
        fprintf(stderr, "primes worker: cannot start: %s\n", zkit_strerror(errno));
        return 1;
    }
    catch_signals();
    fprintf(stderr, "primes worker: started, tasks from %s\n", connect);
    while (!atomic_load(&stop_flag)) {
        struct timespec tick = {0, 100 * 1000 * 1000};
        nanosleep(&tick, NULL);
    }
    zkit_worker_stats_t stats = {0};
    zkit_worker_stats(worker, &stats);
    zkit_worker_destroy(&worker);
    fprintf(stderr, "primes worker: %" PRIu64 " ranges sieved\n", stats.succeeded);
    base_free_all();
    return 0;
}

/* ---- ventilator ----------------------------------------------------------------- */

static int run_ventilator(const char *bind, const char *sink, uint64_t limit, uint64_t ranges)
{
    zkit_ventilator_opts_t opts = ZKIT_VENTILATOR_OPTS_DEFAULT;
    opts.bind = bind;
    opts.sink = sink;
    zkit_ventilator_t *vent = zkit_ventilator_new(&opts);
    if (!vent) {
        fprintf(stderr, "primes ventilator: cannot start: %s\n", zkit_strerror(errno));
        return 1;
    }
    catch_signals();
    const char *endpoint = zkit_ventilator_endpoint(vent);
    fprintf(stderr, "primes ventilator: bound %s\n", endpoint ? endpoint : bind);

    char batch[64];
    snprintf(batch, sizeof batch, BATCH_PREFIX "%" PRIu64, limit);
    int rc = 1;
    if (zkit_ventilator_open(vent, batch) == -1)
        goto fail;
    /* [2, limit) in ranges parts, the first ones one larger when it does
       not divide evenly. */
    uint64_t span = limit - 2, lo = 2;
    for (uint64_t i = 0; i < ranges; i++) {
        uint64_t hi = lo + span / ranges + (i < span % ranges ? 1 : 0);
        char task[64];
        int len = snprintf(task, sizeof task, "%" PRIu64 " %" PRIu64, lo, hi);
        if (zkit_ventilator_submit(vent, task, (size_t) len) == -1)
            goto fail;
        lo = hi;
    }
    if (zkit_ventilator_close(vent) == -1)
        goto fail;
    zkit_batch_report_t report;
    while (zkit_ventilator_wait(vent, 200, &report) == -1) {
        if (atomic_load(&stop_flag) || (errno != ETIMEDOUT && errno != EINTR)) {
            fprintf(stderr, "primes ventilator: stopped before the batch ended\n");
            goto done;
        }
    }
    fprintf(stderr,
            "primes ventilator: %" PRIu64 " ranges done, %" PRIu64 " dead, %" PRIu64
            " retried (given to another worker)\n",
            report.done, report.dead, report.retried);
    rc = report.dead ? 1 : 0;
done:
    zkit_ventilator_destroy(&vent);
    return rc;
fail:
    fprintf(stderr, "primes ventilator: cannot hand out the batch: %s\n", zkit_strerror(errno));
    goto done;
}

/* ---- sink ----------------------------------------------------------------------- */

typedef struct {
    atomic_uint_fast64_t sum;
    atomic_uint_fast64_t bad; /* results that are not a count */
} sink_state_t;

static int sink_store(const zkit_envelope_t *result, void *arg)
{
    sink_state_t *state = arg;
    size_t size;
    const char *body = zkit_envelope_body(result, &size);
    char text[32];
    uint64_t count;
    if (size < sizeof text) {
        memcpy(text, body, size);
        text[size] = '\0';
    }
    if (size >= sizeof text || parse_u64(text, 0, UINT64_MAX, &count) == -1)
        atomic_fetch_add(&state->bad, 1);
    else
        atomic_fetch_add(&state->sum, count);
    return 0;
}

/*  pi(N) for the N it knows, or 0.                                           */
static uint64_t known_pi(uint64_t n)
{
    static const uint64_t known[][2] = {
        {10, 4},
        {100, 25},
        {1000, 168},
        {10000, 1229},
        {100000, 9592},
        {1000000, 78498},
        {10000000, 664579},
        {100000000, 5761455},
        {1000000000, 50847534},
        {10000000000ull, 455052511},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (known[i][0] == n)
            return known[i][1];
    return 0;
}

static int run_sink(const char *bind, uint32_t timeout_ms, uint32_t grace_ms)
{
    sink_state_t state;
    atomic_init(&state.sum, 0);
    atomic_init(&state.bad, 0);
    zkit_sink_opts_t opts = ZKIT_SINK_OPTS_DEFAULT;
    opts.bind = bind;
    opts.batch_timeout_ms = timeout_ms;
    opts.handler = sink_store;
    opts.handler_arg = &state;
    zkit_sink_t *sink = zkit_sink_new(&opts);
    if (!sink) {
        fprintf(stderr, "primes sink: cannot start: %s\n", zkit_strerror(errno));
        return 1;
    }
    catch_signals();
    const char *endpoint = zkit_sink_endpoint(sink);
    fprintf(stderr, "primes sink: bound %s\n", endpoint ? endpoint : bind);

    /* Progress with the first results, then up to four times a second, for
       people and for scripts that act when the batch is half done. */
    zkit_batch_report_t report;
    uint64_t shown = 0;
    unsigned ticks = 0;
    int rc;
    while ((rc = zkit_sink_wait(sink, 100, &report)) == -1) {
        if (atomic_load(&stop_flag) || (errno != ETIMEDOUT && errno != EINTR) ||
            zkit_sink_report(sink, &report) == -1)
            break;
        if (timeout_ms && report.started_us && report.elapsed_us >= timeout_ms * 1000ull)
            break;
        bool due = shown == 0 || ++ticks % 3 == 0;
        if (due && report.done != shown && report.total) {
            fprintf(stderr, "primes sink: %" PRIu64 "/%" PRIu64 " ranges done\n", report.done,
                    report.total);
            shown = report.done;
        }
    }
    zkit_sink_report(sink, &report);
    int status = 1;
    uint64_t limit = 0;
    if (strncmp(report.name, BATCH_PREFIX, strlen(BATCH_PREFIX)) ||
        parse_u64(report.name + strlen(BATCH_PREFIX), 3, LIMIT_MAX, &limit))
        limit = 0;
    uint64_t sum = atomic_load(&state.sum), expected = known_pi(limit);
    if (rc == -1)
        fprintf(stderr, "primes sink: incomplete: %" PRIu64 " of %" PRIu64 " ranges\n", report.done,
                report.total);
    else if (report.dead || atomic_load(&state.bad))
        fprintf(stderr, "primes sink: %" PRIu64 " ranges failed, %" PRIu64 " bad results\n",
                report.dead, (uint64_t) atomic_load(&state.bad));
    else {
        printf("primes below %" PRIu64 ": %" PRIu64, limit, sum);
        if (expected == sum)
            printf(" (verified: pi(%" PRIu64 ") = %" PRIu64 ")\n", limit, expected);
        else if (expected)
            printf(" (WRONG: pi(%" PRIu64 ") = %" PRIu64 ")\n", limit, expected);
        else
            printf(" (no known value to check against)\n");
        printf("time: %.2f s, ranges: %" PRIu64 ", tasks retried: %" PRIu64
               ", duplicate results dropped: %" PRIu64 "\n",
               (double) report.elapsed_us / 1e6, report.total, report.retried, report.duplicates);
        fflush(stdout);
        status = expected && expected != sum ? 1 : 0;
        /* The sink component tells the ventilator the batch is complete
           (COMPLETE), which retires a range whose worker died before saying
           DONE; --grace only keeps acknowledging repeats for longer. */
        for (uint32_t waited = 0; waited < grace_ms && !atomic_load(&stop_flag); waited += 100) {
            struct timespec tick = {0, 100 * 1000 * 1000};
            nanosleep(&tick, NULL);
        }
    }
    zkit_sink_destroy(&sink);
    return status;
}

/* ---- main ----------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *role = argv[1];
    const char *bind = NULL, *connect = NULL, *sink = NULL;
    uint64_t limit = 0, ranges = 0, window = 1, timeout = 0, grace = 0;
    for (int i = 2; i < argc; i++) {
        const char *opt = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(opt, "--help") || !strcmp(opt, "-h")) {
            fputs(usage_text, stdout);
            return 0;
        }
        if (!value)
            return usage_error("option needs a value", opt);
        i++;
        if (!strcmp(opt, "--bind"))
            bind = value;
        else if (!strcmp(opt, "--connect"))
            connect = value;
        else if (!strcmp(opt, "--sink"))
            sink = value;
        else if (!strcmp(opt, "--limit")) {
            if (parse_u64(value, 3, LIMIT_MAX, &limit))
                return usage_error("--limit wants 3 to 2^40", value);
        }
        else if (!strcmp(opt, "--ranges")) {
            if (parse_u64(value, 1, 10000000, &ranges))
                return usage_error("--ranges wants 1 to 10000000", value);
        }
        else if (!strcmp(opt, "--window")) {
            if (parse_u64(value, 1, 64, &window))
                return usage_error("--window wants 1 to 64", value);
        }
        else if (!strcmp(opt, "--grace")) {
            if (parse_u64(value, 0, 3600000, &grace))
                return usage_error("--grace wants milliseconds", value);
        }
        else if (!strcmp(opt, "--timeout")) {
            if (parse_u64(value, 1, UINT32_MAX, &timeout))
                return usage_error("--timeout wants milliseconds", value);
        }
        else
            return usage_error("unknown option", opt);
    }
    if (!strcmp(role, "sink")) {
        if (!bind)
            return usage_error("sink needs --bind", NULL);
        return run_sink(bind, (uint32_t) timeout, (uint32_t) grace);
    }
    if (!strcmp(role, "worker")) {
        if (!connect || !sink)
            return usage_error("worker needs --connect and --sink", NULL);
        return run_worker(connect, sink, (uint32_t) window);
    }
    if (!strcmp(role, "ventilator")) {
        if (!bind || !sink || !limit || !ranges)
            return usage_error("ventilator needs --bind, --sink, --limit and --ranges", NULL);
        if (ranges > limit - 2)
            return usage_error("--ranges must be less than --limit - 1", NULL);
        return run_ventilator(bind, sink, limit, ranges);
    }
    return usage_error("unknown role (sink, worker or ventilator)", role);
}
