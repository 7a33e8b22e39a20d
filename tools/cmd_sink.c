/*  cmd_sink.c: `zkit sink`, collects a batch's results into a file.

    Starts a zkit_sink_t whose handler writes each new result as one line of
    the output and returns only once the line is written out of the process
    (write(2), no stdio buffer): the sink acknowledges a result only after
    that, so a result is never acknowledged and then lost with this process.
    When a write fails (disk full), the partial line is cut off again and
    the handler refuses the result; the worker resends it later.

    The main thread shows progress and waits for the batch to complete or
    time out, then prints a summary: dead letters with their reasons, or the
    task seqs still missing. After a complete batch it stays up until the
    ventilator confirms it heard so (COMPLETE, answered OK), at most --grace.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "zkit.h"
#include "zkit_sink.h"
#include "pipeline/pipeline.h"
#include "device_common.h"
#include "progress.h"
#include "zkit_cli.h"

#define S_CMD "sink"
/* How often the main thread wakes to redraw progress and look at signals.  */
#define S_TICK_MS 100
/* How often it looks for the ventilator's confirmation after the batch. */
#define S_GRACE_TICK_MS 10
/* Dead letters and missing seqs listed in the summary; the rest counted.    */
#define S_LIST_MAX 50
/* Default --grace: an upper bound, normally cut short within milliseconds
   by the ventilator's OK. It still matters for a ventilator that never
   answers COMPLETE (an earlier draft of the protocol): the ventilator's
   default heartbeat x liveness (3 s) plus room for the repeated task to run. */
#define S_GRACE_MS 5000

static const char s_usage_text[] =
    "usage: zkit sink --bind EP --output PATH [OPTIONS]\n"
    "\n"
    "Collects the results of one batch of a pipeline: workers send results here,\n"
    "the ventilator announces the batch and reports tasks that failed for good.\n"
    "Each result is written as one line of PATH (its body, then a newline), in\n"
    "the order results arrive, and is acknowledged only once written: a worker\n"
    "resends a result the sink could not store (disk full), and a result sent\n"
    "twice (its task was retried) is written once.\n"
    "\n"
    "options:\n"
    "  -b, --bind EP          endpoint(s) workers and the ventilator connect to,\n"
    "                         comma-separated (tcp://127.0.0.1:* picks a free port)\n"
    "  -o, --output PATH      file the results go to, created or truncated;\n"
    "                         '-' is stdout\n"
    "      --fast             fast mode (PULL, no acknowledgements): the ventilator\n"
    "                         and workers must use --fast too\n"
    "      --batch-timeout MS give up when the batch is not complete after MS ms,\n"
    "                         and list the task seqs still missing (default: never)\n"
    "      --progress MODE    auto (default), bar, lines or none: a bar redrawn in\n"
    "                         place on a terminal, else a line every second\n"
    "      --grace MS         after the batch completes, wait at most MS ms for the\n"
    "                         ventilator to confirm it (default 5000; see below)\n"
    "  -h, --help             this text\n"
    "\n";

/* After zkit__device_ops_usage.                                            */
static const char s_usage_tail[] =
    "\n"
    "Workers and the ventilator connect to --bind (a bound socket: with\n"
    "--curve-secret it needs --curve-allow). With --control the line 'zkit\n"
    "sink: control ENDPOINT' follows the bound line. The control endpoint\n"
    "answers STATS and PING; PAUSE and RESUME are not supported (results are\n"
    "acknowledged only once stored). SIGHUP rescans --curve-allow.\n"
    "\n"
    "The bound endpoint is printed on stderr as 'zkit sink: bound ENDPOINT'.\n"
    "When the batch ends a summary goes to stderr at once, with each dead letter\n"
    "and its reason, and the sink tells the ventilator that the batch is\n"
    "complete, so that the ventilator also retires a task whose worker died\n"
    "after its result was stored but before it told the ventilator. The sink\n"
    "exits as soon as the ventilator confirms this (normally at once), or after\n"
    "--grace ms, acknowledging repeated results meanwhile. With --grace 0 it\n"
    "exits at once and tells the ventilator only once, which is enough unless\n"
    "the connection between them is being made again at that moment. SIGTERM\n"
    "ends the wait; the exit status is the batch's.\n"
    "\n"
    "Exit status: 0 the batch completed with every result stored; 3 it completed,\n"
    "but some tasks are dead letters (they failed max-attempts times); 1 timeout,\n"
    "output error or interrupted; 2 usage.\n"
    "\n"
    "example:\n"
    "  zkit sink --bind tcp://*:5558 --output results.txt\n";

typedef struct {
    const char *bind;
    const char *output;
    bool fast;
    uint32_t batch_timeout_ms;
    uint32_t grace_ms;
    zkit__progress_mode_t progress;
    zkit_ops_opts_t ops;
} s_options_t;

/*  The output, owned by the sink's thread while the sink runs; the main
    thread reads only the atomic flag.                                        */
typedef struct {
    const char *path;
    int fd;
    bool regular; /* a regular file: a torn line can be cut off again */
    off_t offset; /* end of the last complete line */
    char *line;
    size_t capacity;
    int64_t last_error_ms; /* errors are reported at most once a second */
    atomic_int broken;     /* the output is gone for good (EPIPE): stop */
} s_output_t;

enum { S_OPT_FAST = 256, S_OPT_BATCH_TIMEOUT, S_OPT_PROGRESS, S_OPT_GRACE };

static const struct option s_long_options[] = {
    {"bind", required_argument, NULL, 'b'},
    {"output", required_argument, NULL, 'o'},
    {"fast", no_argument, NULL, S_OPT_FAST},
    {"batch-timeout", required_argument, NULL, S_OPT_BATCH_TIMEOUT},
    {"progress", required_argument, NULL, S_OPT_PROGRESS},
    {"grace", required_argument, NULL, S_OPT_GRACE},
    {"help", no_argument, NULL, 'h'},
    ZKIT__DEVICE_OPS_LONG_OPTIONS,
    {NULL, 0, NULL, 0},
};

/*  Returns -1 when the command should run, else the exit code.              */
static int s_parse(s_options_t *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->progress = ZKIT__PROGRESS_AUTO;
    o->grace_ms = S_GRACE_MS;
    opterr = 0;
    optind = 1;
    int c;
    uint64_t v;
    while ((c = getopt_long(argc, argv, ":b:o:h", s_long_options, NULL)) != -1) {
        switch (c) {
        case 'b':
            if (!*optarg)
                return zkit__device_usage_error(S_CMD, "empty endpoint for --bind");
            o->bind = optarg;
            break;
        case 'o':
            if (!*optarg)
                return zkit__device_usage_error(S_CMD, "empty path for --output");
            o->output = optarg;
            break;
        case S_OPT_FAST: o->fast = true; break;
        case S_OPT_BATCH_TIMEOUT:
            if (zkit__device_parse_uint(optarg, 1, UINT32_MAX, &v) == -1)
                return zkit__device_usage_error(
                    S_CMD, "--batch-timeout wants milliseconds (1 or more), not '%s'", optarg);
            o->batch_timeout_ms = (uint32_t) v;
            break;
        case S_OPT_GRACE:
            if (zkit__device_parse_uint(optarg, 0, 3600000, &v) == -1)
                return zkit__device_usage_error(
                    S_CMD, "--grace wants milliseconds (0 to 3600000), not '%s'", optarg);
            o->grace_ms = (uint32_t) v;
            break;
        case S_OPT_PROGRESS:
            if (zkit__progress_parse(optarg, &o->progress) == -1)
                return zkit__device_usage_error(
                    S_CMD, "--progress is auto, bar, lines or none, not '%s'", optarg);
            break;
        case 'h': return zkit__device_help(s_usage_text, s_usage_tail);
        default: {
            /* an operations option (-1: go on), or a usage error */
            int rc = zkit__device_other_option(S_CMD, c, argv, &o->ops);
            if (rc != -1)
                return rc;
        }
        }
    }
    if (optind < argc)
        return zkit__device_usage_error(S_CMD, "unexpected argument '%s'", argv[optind]);
    if (!o->bind)
        return zkit__device_usage_error(S_CMD, "--bind is required");
    if (!o->output)
        return zkit__device_usage_error(S_CMD, "--output is required");
    return -1;
}

/* ---- output -------------------------------------------------------------------- */

static int s_output_open(s_output_t *out, const char *path)
{
    memset(out, 0, sizeof *out);
    out->path = strcmp(path, "-") ? path : "stdout";
    out->fd = strcmp(path, "-") ? open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666)
                                : STDOUT_FILENO;
    if (out->fd < 0) {
        fprintf(stderr, "zkit sink: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct stat st;
    out->regular = fstat(out->fd, &st) == 0 && S_ISREG(st.st_mode);
    if (out->regular) {
        off_t at = lseek(out->fd, 0, SEEK_CUR);
        out->offset = at > 0 ? at : 0;
    }
    return 0;
}

static void s_output_close(s_output_t *out)
{
    if (out->fd > STDOUT_FILENO && close(out->fd) == -1)
        fprintf(stderr, "zkit sink: closing %s: %s\n", out->path, strerror(errno));
    out->fd = -1;
    free(out->line);
    out->line = NULL;
}

static void s_output_error(s_output_t *out, int err)
{
    int64_t now = zkit__device_now_ms();
    if (out->last_error_ms && now - out->last_error_ms < 1000)
        return;
    out->last_error_ms = now;
    if (err == EPIPE)
        fprintf(stderr, "zkit sink: cannot write %s: %s; stopping\n", out->path, strerror(err));
    else
        fprintf(stderr,
                "zkit sink: cannot write %s: %s; results are refused until it works again "
                "(workers resend them)\n",
                out->path, strerror(err));
}

/*  The sink's result handler: one line per result, written before the
    sink may acknowledge it.                                                  */
static int s_store(const zkit_envelope_t *result, void *arg)
{
    s_output_t *out = arg;
    if (atomic_load(&out->broken))
        return -1;
    size_t size;
    const char *body = zkit_envelope_body(result, &size);
    if (size + 1 > out->capacity) {
        size_t capacity = out->capacity ? out->capacity : 4096;
        while (capacity < size + 1)
            capacity *= 2;
        char *grown = realloc(out->line, capacity);
        if (!grown) {
            s_output_error(out, ENOMEM);
            return -1;
        }
        out->line = grown;
        out->capacity = capacity;
    }
    memcpy(out->line, body, size);
    out->line[size] = '\n';

    size_t done = 0;
    while (done < size + 1) {
        ssize_t n = write(out->fd, out->line + done, size + 1 - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int err = n < 0 ? errno : EIO;
            /* A torn line would be followed by the whole line when the
               result comes again: cut it off (a pipe cannot, a file can). */
            if (done && out->regular && ftruncate(out->fd, out->offset) == 0)
                lseek(out->fd, out->offset, SEEK_SET);
            if (err == EPIPE)
                atomic_store(&out->broken, 1);
            s_output_error(out, err);
            return -1;
        }
        done += (size_t) n;
    }
    out->offset += (off_t) (size + 1);
    return 0;
}

/* ---- the summary --------------------------------------------------------------- */

/*  A batch name fit for a one-line report (it may be binary on the wire).   */
static void s_printable(const char *in, char *out, size_t size)
{
    size_t i = 0;
    for (; in[i] && i + 1 < size; i++)
        out[i] = (unsigned char) in[i] < 0x20 || in[i] == 0x7f ? '?' : in[i];
    out[i] = '\0';
}

static void s_print_totals(const char *what, const zkit_batch_report_t *r)
{
    char name[ZKIT_BATCH_NAME_MAX + 1];
    s_printable(r->name, name, sizeof name);
    double seconds = (double) r->elapsed_us / 1e6;
    fprintf(stderr,
            "zkit sink: batch %s %s: %" PRIu64 "/%" PRIu64 " results, %" PRIu64 " dead, %" PRIu64
            " retried, %" PRIu64 " duplicates, in %.2f s",
            name[0] ? name : "(none)", what, r->done, r->total, r->dead, r->retried, r->duplicates,
            seconds);
    if (seconds > 0.0)
        fprintf(stderr, " (%.0f/s)", (double) r->done / seconds);
    if (r->gaps)
        fprintf(stderr, ", %" PRIu64 " envelopes missing in result streams", r->gaps);
    fputc('\n', stderr);
}

static void s_print_dead_letters(zkit_sink_t *sink)
{
    zkit_dead_letter_t *letters = calloc(S_LIST_MAX, sizeof *letters);
    if (!letters)
        return;
    ssize_t count = zkit_sink_dead_letters(sink, letters, S_LIST_MAX);
    for (ssize_t i = 0; i < count && i < S_LIST_MAX; i++) {
        char hex[33];
        fprintf(stderr, "zkit sink: dead letter: task %" PRIu64 " (id %s) after %u attempts: %s\n",
                letters[i].task_seq, zkit_id_to_hex(letters[i].task_id, hex), letters[i].attempts,
                letters[i].reason);
    }
    if (count > S_LIST_MAX)
        fprintf(stderr, "zkit sink: ... and %zd more dead letters\n", count - S_LIST_MAX);
    free(letters);
}

static void s_print_missing(zkit_sink_t *sink)
{
    uint64_t seqs[S_LIST_MAX];
    ssize_t count = zkit_sink_missing(sink, seqs, S_LIST_MAX);
    if (count < 0) {
        fprintf(stderr, "zkit sink: the batch's total is not known (no word from the "
                        "ventilator), so what is missing cannot be listed\n");
        return;
    }
    if (count == 0)
        return;
    fprintf(stderr, "zkit sink: %zd missing, task seqs:", count);
    for (ssize_t i = 0; i < count && i < S_LIST_MAX; i++)
        fprintf(stderr, " %" PRIu64, seqs[i]);
    if (count > S_LIST_MAX)
        fprintf(stderr, " ... and %zd more", count - S_LIST_MAX);
    fputc('\n', stderr);
}

/* ---- the command --------------------------------------------------------------- */

typedef enum { S_COMPLETE, S_TIMED_OUT, S_STOPPED, S_FAILED } s_outcome_t;

static s_outcome_t s_wait(zkit_sink_t *sink, const s_options_t *o, s_output_t *out,
                          zkit__progress_t *progress, zkit_batch_report_t *r)
{
    while (true) {
        if (zkit__device_stopping())
            return S_STOPPED;
        if (atomic_load(&out->broken))
            return S_FAILED;
        zkit__device_reload_pending();
        int rc = zkit_sink_wait(sink, S_TICK_MS, r);
        if (rc == 0)
            return S_COMPLETE;
        if (errno == ECANCELED) {
            fprintf(stderr, "zkit sink: the sink stopped unexpectedly\n");
            return S_FAILED;
        }
        if (errno != ETIMEDOUT && errno != EINTR) {
            fprintf(stderr, "zkit sink: wait: %s\n", zkit_strerror(errno));
            return S_FAILED;
        }
        if (zkit_sink_report(sink, r) == -1)
            return S_FAILED;
        /* Our tick and the batch timeout both end a wait with ETIMEDOUT;
           the batch's own clock says which one it was. */
        if (o->batch_timeout_ms && r->started_us &&
            r->elapsed_us >= (uint64_t) o->batch_timeout_ms * 1000)
            return S_TIMED_OUT;
        zkit__progress_update(progress, r, zkit__device_now_ms());
    }
}

/*  After completion: the sink resends COMPLETE to the ventilator until it
    answers OK, and acknowledges repeated results (it stores none), until
    the ventilator has answered, the grace period ends or a signal comes.
    Exiting earlier risks only a COMPLETE lost on a connection being made
    again; a ventilator that never answers (an earlier draft) gets the whole
    grace period to have a task re-run and its repeat acknowledged.          */
static void s_grace(zkit_sink_t *sink, const s_options_t *o, s_output_t *out)
{
    if (!o->grace_ms)
        return;
    int64_t end = zkit__device_now_ms() + o->grace_ms;
    bool told = false;
    while (!zkit__device_stopping() && !atomic_load(&out->broken)) {
        zkit__sink_stats_t stats;
        if (zkit__sink_stats(sink, &stats) == -1 || stats.completing == 0)
            break;
        int64_t left = end - zkit__device_now_ms();
        if (left <= 0)
            break;
        zkit__device_reload_pending();
        /* Said only when it takes a while: normally the OK is there at once. */
        if (!told && o->grace_ms - left >= S_TICK_MS) {
            fprintf(stderr,
                    "zkit sink: waiting up to %.1f s for the ventilator to confirm the end "
                    "(SIGTERM ends it)\n",
                    left / 1000.0);
            told = true;
        }
        struct timespec tick = {0, (left < S_GRACE_TICK_MS ? left : S_GRACE_TICK_MS) * 1000000L};
        nanosleep(&tick, NULL);
    }
}

int zkit_cmd_sink(int argc, char **argv)
{
    s_options_t o;
    int rc = s_parse(&o, argc, argv);
    if (rc >= 0)
        return rc;

    s_output_t out;
    if (s_output_open(&out, o.output) == -1)
        return ZKIT_EXIT_FAILURE;
    zkit__device_catch_signals();

    zkit_sink_opts_t opts = ZKIT_SINK_OPTS_DEFAULT;
    opts.bind = o.bind;
    opts.fast = o.fast;
    opts.batch_timeout_ms = o.batch_timeout_ms;
    opts.handler = s_store;
    opts.handler_arg = &out;
    opts.ops = o.ops;
    zkit_sink_t *sink = zkit_sink_new(&opts);
    if (!sink) {
        fprintf(stderr, "zkit sink: cannot start on %s: %s\n", o.bind, zkit_strerror(errno));
        s_output_close(&out);
        return ZKIT_EXIT_FAILURE;
    }
    const char *endpoint = zkit_sink_endpoint(sink);
    fprintf(stderr, "zkit sink: bound %s\n", endpoint ? endpoint : o.bind);
    if (zkit_sink_control(sink))
        fprintf(stderr, "zkit sink: control %s\n", zkit_sink_control(sink));

    /* Results printed on the same terminal would tear a bar apart. */
    if (o.progress == ZKIT__PROGRESS_AUTO && !strcmp(o.output, "-") && isatty(STDOUT_FILENO))
        o.progress = ZKIT__PROGRESS_LINES;
    zkit__progress_t progress;
    zkit__progress_init(&progress, o.progress, stderr, "zkit sink");
    zkit_batch_report_t r;
    memset(&r, 0, sizeof r);
    s_outcome_t outcome = s_wait(sink, &o, &out, &progress, &r);
    zkit_sink_report(sink, &r);
    zkit__progress_finish(&progress, &r, zkit__device_now_ms());

    switch (outcome) {
    case S_COMPLETE:
        s_print_totals("complete", &r);
        if (r.dead) {
            s_print_dead_letters(sink);
            rc = ZKIT_EXIT_DEAD_LETTERS;
        }
        else
            rc = ZKIT_EXIT_OK;
        break;
    case S_TIMED_OUT:
        s_print_totals("timed out", &r);
        s_print_dead_letters(sink);
        s_print_missing(sink);
        rc = ZKIT_EXIT_FAILURE;
        break;
    case S_STOPPED:
        s_print_totals("interrupted", &r);
        rc = ZKIT_EXIT_FAILURE;
        break;
    case S_FAILED: rc = ZKIT_EXIT_FAILURE; break;
    }
    if (outcome == S_COMPLETE)
        s_grace(sink, &o, &out);
    /* Destroying the sink lets the last acknowledgements leave first. */
    zkit_sink_destroy(&sink);
    s_output_close(&out);
    return rc;
}
