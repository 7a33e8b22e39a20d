/*  bench.h (internal to the zkit program): the machinery every `zkit bench`
    suite shares, so each suite only describes its workloads.

    The method is the one in docs/performance.md: the kit and its anchor (the
    raw baseline a user would otherwise pick) run in the same process, one
    after the other, alternating, for at least ZKIT__BENCH_MIN_ROUNDS rounds;
    the median of the rounds is quoted, with the ratio kit / anchor. Wall-clock
    and CPU nanoseconds per message are reported side by side. Allocations per
    message are counted in a separate pass, so counting never perturbs timing.

    A suite is a function `int suite(int argc, char **argv)` (argv[0] is the
    suite's name) listed in cmd_bench.c. It returns a ZKIT_EXIT_* code.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_BENCH_H_INCLUDED
#define ZKIT_BENCH_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* ---- suites (one line each here and in cmd_bench.c's table) --------------- */

int zkit__bench_envelope(int argc, char **argv);
int zkit__bench_pipeline(int argc, char **argv);
int zkit__bench_balancer(int argc, char **argv);
int zkit__bench_spool(int argc, char **argv);
int zkit__bench_pubsub(int argc, char **argv);

/* ---- allocation counting (alloc_count.c) ---------------------------------- */

/*  The zkit program interposes malloc, calloc and realloc (not free, nor the
    aligned allocators) and counts the calls a thread makes while counting is
    on for that thread. Other threads (libzmq's, czmq's) are never counted.
    In a sanitizer build the interposer is compiled out.                      */

/*  True when the interposer is compiled in (false in a sanitizer build).     */
bool zkit__alloc_count_available(void);

/*  Zeroes the calling thread's counter and switches counting on for it.     */
void zkit__alloc_count_start(void);

/*  Switches counting off for the calling thread and returns the number of
    allocations it made since zkit__alloc_count_start.                       */
uint64_t zkit__alloc_count_stop(void);

/*  Counts one known malloc(16). Returns 0 when exactly one allocation was
    counted, or -1 (and prints an error on stderr) when the counter is broken.
    Returns 0 without checking when counting is not available.               */
int zkit__alloc_count_selftest(void);

/* ---- options every suite accepts ----------------------------------------- */

#define ZKIT__BENCH_MIN_ROUNDS     5
#define ZKIT__BENCH_MAX_ROUNDS     1001
#define ZKIT__BENCH_DEFAULT_ROUNDS 7
#define ZKIT__BENCH_QUICK_ROUNDS   5

typedef struct {
    int rounds;        /* rounds of (kit, anchor), >= ZKIT__BENCH_MIN_ROUNDS   */
    uint64_t messages; /* messages per side per round                         */
    bool quick;        /* CI mode: whole suite well under 3 s                  */
    bool json;         /* one JSON object on stdout instead of tables          */
    bool rounds_set;   /* given on the command line (not from a default)      */
    bool messages_set;
} zkit__bench_opts_t;

/*  The help text for the options above, for a suite's --help.               */
#define ZKIT__BENCH_COMMON_HELP                                                                    \
    "  --quick        short run (CI: proves the suite works, well under 3 s)\n"                    \
    "  --rounds N     rounds of kit then anchor, alternating, median quoted\n"                     \
    "                 (at least 5, default 7; 5 with --quick)\n"                                   \
    "  --messages N   messages per side per round\n"                                               \
    "  --json         print one JSON object with every figure instead of tables\n"                 \
    "  -h, --help     this text\n"

/*  Parses a decimal unsigned integer in [min, max] into *value. Returns 0, or
    -1 after printing "zkit bench SUITE: bad OPTION ..." on stderr.          */
int zkit__bench_parse_u64(const char *suite, const char *option, const char *text, uint64_t min,
                          uint64_t max, uint64_t *value);

/*  Reads the value of an option at argv[*i], given as "--name VALUE" or
    "--name=VALUE". Returns NULL when argv[*i] is not this option; otherwise
    advances *i past it and returns the value ("" when the value is missing,
    which zkit__bench_parse_u64 then rejects).                               */
const char *zkit__bench_option_value(int argc, char **argv, int *i, const char *name);

/*  Handles argv[*i] if it is one of the common options. Returns 1 when it
    consumed it (advancing *i past any value), 0 when it is not a common
    option, -1 on a usage error (already printed).                          */
int zkit__bench_parse_common(const char *suite, int argc, char **argv, int *i,
                             zkit__bench_opts_t *opts);

/*  Fills defaults after parsing: rounds and messages not given on the
    command line take the quick or the normal default.                      */
void zkit__bench_opts_finish(zkit__bench_opts_t *opts, uint64_t default_messages,
                             uint64_t quick_messages);

/* ---- timing --------------------------------------------------------------- */

/*  Runs messages iterations of one workload. Returns 0, or -1 when the work
    itself failed (a decode error, a socket error); the suite then fails.    */
typedef int (*zkit__bench_fn_t)(void *ctx, uint64_t messages);

typedef enum {
    ZKIT__BENCH_CPU_THREAD,  /* single-threaded work: CLOCK_THREAD_CPUTIME_ID   */
    ZKIT__BENCH_CPU_PROCESS, /* work on several threads: CLOCK_PROCESS_CPUTIME_ID */
} zkit__bench_cpu_t;

/*  One comparison: the kit's workload and the anchor's, on the same work.   */
typedef struct {
    zkit__bench_fn_t kit;
    void *kit_ctx;
    zkit__bench_fn_t anchor;
    void *anchor_ctx;
    zkit__bench_cpu_t cpu; /* which CPU clock to read                        */
    bool count_allocs;     /* run the counting pass (when available)         */
} zkit__bench_pair_t;

/*  Figures for one side, per message. NAN where not measured.              */
typedef struct {
    double wall_ns;     /* median over the rounds                            */
    double cpu_ns;      /* median over the rounds                            */
    double wall_min_ns; /* fastest and slowest round, to show the spread     */
    double wall_max_ns;
    double allocs; /* per message, from the counting pass; NAN if none  */
} zkit__bench_side_t;

typedef struct {
    zkit__bench_side_t kit;
    zkit__bench_side_t anchor;
    double ratio;  /* kit wall / anchor wall: below 1 the kit is faster      */
    double faster; /* anchor wall / kit wall: "x faster"                    */
} zkit__bench_result_t;

/*  Monotonic wall clock, and the chosen CPU clock, in nanoseconds.          */
uint64_t zkit__bench_wall_ns(void);
uint64_t zkit__bench_cpu_ns(zkit__bench_cpu_t which);

/*  Median of n values (sorts values in place). NAN when n is 0.             */
double zkit__bench_median(double *values, int n);

/*  Measures a pair: a warm-up of each side, then opts->rounds rounds, each
    running both sides for opts->messages messages (which side goes first
    alternates from round to round), then the allocation counting pass.
    Returns 0, or -1 when a workload failed (result is then undefined).     */
int zkit__bench_run_pair(const zkit__bench_pair_t *pair, const zkit__bench_opts_t *opts,
                         zkit__bench_result_t *result);

/*  Keeps a value alive so the compiler cannot drop the work that made it.  */
void zkit__bench_consume(uint64_t value);

/* ---- output --------------------------------------------------------------- */

/*  Formats a figure into buf (size >= 32): "%.*f", or "n/a" when NAN.       */
const char *zkit__bench_fmt(char *buf, double value, int decimals);

/*  Formats a byte count: "64 B", "1 KiB", "64 KiB", "1.5 MiB".             */
const char *zkit__bench_fmt_bytes(char *buf, size_t size, uint64_t bytes);

/*  A plain text table: the first column left-aligned, the others right-
    aligned, each as wide as its title or width, whichever is larger.        */
typedef struct {
    const char *title;
    int width;
} zkit__bench_col_t;

void zkit__bench_table_header(FILE *out, const zkit__bench_col_t *cols, int ncols);
void zkit__bench_table_row(FILE *out, const zkit__bench_col_t *cols, int ncols,
                           const char *const *cells);

/*  A minimal streaming JSON writer: enough for the bench's one object.
    key is NULL for array elements and the top-level value. Non-finite
    numbers are written as null.                                             */
#define ZKIT__BENCH_JSON_DEPTH 16

typedef struct {
    FILE *out;
    int depth;
    bool first[ZKIT__BENCH_JSON_DEPTH];
} zkit__bench_json_t;

void zkit__bench_json_init(zkit__bench_json_t *self, FILE *out);
void zkit__bench_json_object(zkit__bench_json_t *self, const char *key);
void zkit__bench_json_array(zkit__bench_json_t *self, const char *key);
void zkit__bench_json_end(zkit__bench_json_t *self, char close); /* '}' or ']' */
void zkit__bench_json_str(zkit__bench_json_t *self, const char *key, const char *value);
void zkit__bench_json_num(zkit__bench_json_t *self, const char *key, double value);
void zkit__bench_json_uint(zkit__bench_json_t *self, const char *key, uint64_t value);
void zkit__bench_json_bool(zkit__bench_json_t *self, const char *key, bool value);
void zkit__bench_json_null(zkit__bench_json_t *self, const char *key);

/*  Writes one side's figures as an object under key.                        */
void zkit__bench_json_side(zkit__bench_json_t *self, const char *key,
                           const zkit__bench_side_t *side);

#endif
