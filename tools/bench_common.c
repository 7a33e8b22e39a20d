/*  bench_common.c: rounds, medians, clocks, options, tables and JSON for
    every `zkit bench` suite (see bench.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

/* Messages in the allocation counting pass: enough to average out any
   amortised growth, few enough to cost little. */
#define S_ALLOC_PASS_MAX 100000

/* ---- options -------------------------------------------------------------- */

int zkit__bench_parse_u64(const char *suite, const char *option, const char *text, uint64_t min,
                          uint64_t max, uint64_t *value)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (!*text || *text == '-' || *text == '+' || errno || !end || *end || v < min || v > max) {
        fprintf(stderr,
                "zkit bench %s: bad %s '%s': expected an integer from %" PRIu64 " to %" PRIu64 "\n",
                suite, option, text, min, max);
        return -1;
    }
    *value = v;
    return 0;
}

const char *zkit__bench_option_value(int argc, char **argv, int *i, const char *name)
{
    const char *arg = argv[*i];
    size_t len = strlen(name);
    if (strncmp(arg, name, len))
        return NULL;
    if (arg[len] == '=') {
        (*i)++;
        return arg + len + 1;
    }
    if (arg[len])
        return NULL;
    if (*i + 1 >= argc) {
        (*i)++;
        return "";
    }
    *i += 2;
    return argv[*i - 1];
}

int zkit__bench_parse_common(const char *suite, int argc, char **argv, int *i,
                             zkit__bench_opts_t *opts)
{
    const char *arg = argv[*i];
    if (!strcmp(arg, "--quick")) {
        opts->quick = true;
        (*i)++;
        return 1;
    }
    if (!strcmp(arg, "--json")) {
        opts->json = true;
        (*i)++;
        return 1;
    }
    const char *value;
    uint64_t v;
    if ((value = zkit__bench_option_value(argc, argv, i, "--rounds"))) {
        if (zkit__bench_parse_u64(suite, "--rounds", value, ZKIT__BENCH_MIN_ROUNDS,
                                  ZKIT__BENCH_MAX_ROUNDS, &v))
            return -1;
        opts->rounds = (int) v;
        opts->rounds_set = true;
        return 1;
    }
    if ((value = zkit__bench_option_value(argc, argv, i, "--messages"))) {
        if (zkit__bench_parse_u64(suite, "--messages", value, 100, 1000000000, &v))
            return -1;
        opts->messages = v;
        opts->messages_set = true;
        return 1;
    }
    return 0;
}

void zkit__bench_opts_finish(zkit__bench_opts_t *opts, uint64_t default_messages,
                             uint64_t quick_messages)
{
    if (!opts->rounds_set)
        opts->rounds = opts->quick ? ZKIT__BENCH_QUICK_ROUNDS : ZKIT__BENCH_DEFAULT_ROUNDS;
    if (!opts->messages_set)
        opts->messages = opts->quick ? quick_messages : default_messages;
}

/* ---- timing --------------------------------------------------------------- */

static uint64_t s_clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

uint64_t zkit__bench_wall_ns(void)
{
    return s_clock_ns(CLOCK_MONOTONIC);
}

uint64_t zkit__bench_cpu_ns(zkit__bench_cpu_t which)
{
    return s_clock_ns(which == ZKIT__BENCH_CPU_THREAD ? CLOCK_THREAD_CPUTIME_ID
                                                      : CLOCK_PROCESS_CPUTIME_ID);
}

static int s_compare_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

double zkit__bench_median(double *values, int n)
{
    if (n <= 0)
        return NAN;
    qsort(values, (size_t) n, sizeof *values, s_compare_double);
    return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

static volatile uint64_t s_sink;

void zkit__bench_consume(uint64_t value)
{
    s_sink += value;
}

/* Times one run of messages iterations: wall and CPU ns per message. */
static int s_time_run(zkit__bench_fn_t fn, void *ctx, uint64_t messages, zkit__bench_cpu_t cpu,
                      double *wall_ns, double *cpu_ns)
{
    uint64_t cpu0 = zkit__bench_cpu_ns(cpu);
    uint64_t wall0 = zkit__bench_wall_ns();
    int rc = fn(ctx, messages);
    uint64_t wall1 = zkit__bench_wall_ns();
    uint64_t cpu1 = zkit__bench_cpu_ns(cpu);
    *wall_ns = (double) (wall1 - wall0) / (double) messages;
    *cpu_ns = (double) (cpu1 - cpu0) / (double) messages;
    return rc;
}

static double s_count_allocs(zkit__bench_fn_t fn, void *ctx, uint64_t messages, int *rc)
{
    uint64_t n = messages < S_ALLOC_PASS_MAX ? messages : S_ALLOC_PASS_MAX;
    zkit__alloc_count_start();
    *rc = fn(ctx, n);
    uint64_t count = zkit__alloc_count_stop();
    return (double) count / (double) n;
}

static void s_summarise(zkit__bench_side_t *side, double *wall, double *cpu, int n)
{
    side->wall_ns = zkit__bench_median(wall, n); /* sorts wall */
    side->wall_min_ns = wall[0];
    side->wall_max_ns = wall[n - 1];
    side->cpu_ns = zkit__bench_median(cpu, n);
}

int zkit__bench_run_pair(const zkit__bench_pair_t *pair, const zkit__bench_opts_t *opts,
                         zkit__bench_result_t *result)
{
    int rounds = opts->rounds;
    double *samples = calloc((size_t) rounds * 4, sizeof *samples);
    if (!samples) {
        fprintf(stderr, "zkit bench: out of memory\n");
        return -1;
    }
    double *wall[2] = {samples, samples + rounds};
    double *cpu[2] = {samples + 2 * rounds, samples + 3 * rounds};
    zkit__bench_fn_t fn[2] = {pair->kit, pair->anchor};
    void *ctx[2] = {pair->kit_ctx, pair->anchor_ctx};
    int rc = 0;

    /* Warm-up: caches, branch predictors, buffers grown to steady state. */
    uint64_t warm = opts->messages / 10 ? opts->messages / 10 : 1;
    for (int s = 0; s < 2 && !rc; s++)
        rc = fn[s](ctx[s], warm);

    /* Rounds: kit first in even rounds, anchor first in odd ones. */
    for (int r = 0; r < rounds && !rc; r++) {
        for (int k = 0; k < 2 && !rc; k++) {
            int s = r % 2 ? 1 - k : k;
            rc = s_time_run(fn[s], ctx[s], opts->messages, pair->cpu, &wall[s][r], &cpu[s][r]);
        }
    }
    if (!rc) {
        s_summarise(&result->kit, wall[0], cpu[0], rounds);
        s_summarise(&result->anchor, wall[1], cpu[1], rounds);
        result->ratio = result->kit.wall_ns / result->anchor.wall_ns;
        result->faster = result->anchor.wall_ns / result->kit.wall_ns;
        result->kit.allocs = NAN;
        result->anchor.allocs = NAN;
        if (pair->count_allocs && zkit__alloc_count_available()) {
            result->kit.allocs = s_count_allocs(fn[0], ctx[0], opts->messages, &rc);
            if (!rc)
                result->anchor.allocs = s_count_allocs(fn[1], ctx[1], opts->messages, &rc);
        }
    }
    free(samples);
    return rc ? -1 : 0;
}

/* ---- output --------------------------------------------------------------- */

const char *zkit__bench_fmt(char *buf, double value, int decimals)
{
    if (isnan(value))
        snprintf(buf, 32, "n/a");
    else
        snprintf(buf, 32, "%.*f", decimals, value);
    return buf;
}

const char *zkit__bench_fmt_bytes(char *buf, size_t size, uint64_t bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB"};
    double v = (double) bytes;
    int u = 0;
    while (v >= 1024 && u < 3) {
        v /= 1024;
        u++;
    }
    if (u == 0 || v == floor(v))
        snprintf(buf, size, "%.0f %s", v, units[u]);
    else
        snprintf(buf, size, "%.1f %s", v, units[u]);
    return buf;
}

/* Prints one cell of a table row: the first left-aligned, the rest right. */
static void s_table_cell(FILE *out, const zkit__bench_col_t *col, int c, const char *text)
{
    int len = (int) strlen(col->title);
    int w = len > col->width ? len : col->width;
    if (c == 0)
        fprintf(out, "%-*s", w, text);
    else
        fprintf(out, "  %*s", w, text);
}

void zkit__bench_table_row(FILE *out, const zkit__bench_col_t *cols, int ncols,
                           const char *const *cells)
{
    for (int c = 0; c < ncols; c++)
        s_table_cell(out, &cols[c], c, cells[c]);
    fputc('\n', out);
}

void zkit__bench_table_header(FILE *out, const zkit__bench_col_t *cols, int ncols)
{
    for (int c = 0; c < ncols; c++)
        s_table_cell(out, &cols[c], c, cols[c].title);
    fputc('\n', out);
}

/* ---- JSON ----------------------------------------------------------------- */

void zkit__bench_json_init(zkit__bench_json_t *self, FILE *out)
{
    memset(self, 0, sizeof *self);
    self->out = out;
    self->first[0] = true;
}

static void s_json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

/* Comma, newline and indentation before a value, then its key if any. */
static void s_json_key(zkit__bench_json_t *self, const char *key)
{
    if (self->depth > 0) {
        fputs(self->first[self->depth] ? "\n" : ",\n", self->out);
        fprintf(self->out, "%*s", self->depth * 2, "");
    }
    self->first[self->depth] = false;
    if (key) {
        s_json_string(self->out, key);
        fputs(": ", self->out);
    }
}

static void s_json_open(zkit__bench_json_t *self, const char *key, char open)
{
    s_json_key(self, key);
    fputc(open, self->out);
    if (self->depth + 1 < ZKIT__BENCH_JSON_DEPTH)
        self->depth++;
    self->first[self->depth] = true;
}

void zkit__bench_json_object(zkit__bench_json_t *self, const char *key)
{
    s_json_open(self, key, '{');
}

void zkit__bench_json_array(zkit__bench_json_t *self, const char *key)
{
    s_json_open(self, key, '[');
}

void zkit__bench_json_end(zkit__bench_json_t *self, char close)
{
    bool empty = self->first[self->depth];
    if (self->depth > 0)
        self->depth--;
    if (!empty)
        fprintf(self->out, "\n%*s", self->depth * 2, "");
    fputc(close, self->out);
    if (self->depth == 0)
        fputc('\n', self->out);
}

void zkit__bench_json_str(zkit__bench_json_t *self, const char *key, const char *value)
{
    s_json_key(self, key);
    s_json_string(self->out, value);
}

void zkit__bench_json_num(zkit__bench_json_t *self, const char *key, double value)
{
    s_json_key(self, key);
    if (isfinite(value))
        fprintf(self->out, "%.3f", value);
    else
        fputs("null", self->out);
}

void zkit__bench_json_uint(zkit__bench_json_t *self, const char *key, uint64_t value)
{
    s_json_key(self, key);
    fprintf(self->out, "%" PRIu64, value);
}

void zkit__bench_json_bool(zkit__bench_json_t *self, const char *key, bool value)
{
    s_json_key(self, key);
    fputs(value ? "true" : "false", self->out);
}

void zkit__bench_json_null(zkit__bench_json_t *self, const char *key)
{
    s_json_key(self, key);
    fputs("null", self->out);
}

void zkit__bench_json_side(zkit__bench_json_t *self, const char *key,
                           const zkit__bench_side_t *side)
{
    zkit__bench_json_object(self, key);
    zkit__bench_json_num(self, "wall_ns", side->wall_ns);
    zkit__bench_json_num(self, "cpu_ns", side->cpu_ns);
    zkit__bench_json_num(self, "wall_min_ns", side->wall_min_ns);
    zkit__bench_json_num(self, "wall_max_ns", side->wall_max_ns);
    zkit__bench_json_num(self, "allocs", side->allocs);
    zkit__bench_json_end(self, '}');
}
