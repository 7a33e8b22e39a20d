/*  cmd_ventilator.c: `zkit ventilator`, one task per input line.

    Starts a zkit_ventilator_t, opens a batch, submits each line of the input
    (stdin or --file) as a task, closes the batch, and waits until every task
    is retired (its result stored by the sink) or dead-lettered. The tasks
    are held in this process until then: a ventilator that exits early
    abandons them, so it runs until the batch is over or it is interrupted.
    With --spool DIR they are kept in a spool as well: a ventilator killed
    mid-batch and started again with the same --spool resumes that batch
    (without reading its input) and waits for it.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zkit.h"
#include "zkit_ventilator.h"
#include "device_common.h"
#include "zkit_cli.h"

#define S_CMD "ventilator"
/* How often the wait looks at signals.                                       */
#define S_TICK_MS 200

static const char s_usage_text[] =
    "usage: zkit ventilator --bind EP --sink EP [OPTIONS]\n"
    "\n"
    "Hands out one task per input line (the line, without its newline, is the\n"
    "task's body) to the workers that connect, announces the batch to the sink,\n"
    "and waits until every task's result is stored by the sink. A task whose\n"
    "worker dies, hangs or fails goes to another worker; after --max-attempts\n"
    "failed attempts it is a dead letter, reported to the sink, and the batch\n"
    "still ends. A summary goes to stderr at the end.\n"
    "\n"
    "options:\n"
    "  -b, --bind EP          endpoint(s) workers connect to, comma-separated\n"
    "                         (tcp://127.0.0.1:* picks a free port)\n"
    "  -s, --sink EP          the sink's endpoint (optional with --fast)\n"
    "  -f, --file PATH        read the tasks from PATH; '-' (default) is stdin\n"
    "      --batch NAME       the batch's name (1-64 printable characters, no\n"
    "                         spaces; default: generated)\n"
    "      --fast             fast mode (PUSH, at most once: a task given to a\n"
    "                         worker that dies is lost); workers and sink must\n"
    "                         use --fast too\n"
    "      --max-attempts N   attempts before a task is a dead letter (default 5,\n"
    "                         0 = retry for ever)\n"
    "      --heartbeat MS     heartbeat interval (default 1000)\n"
    "      --liveness N       missed heartbeats before a worker is presumed dead\n"
    "                         and its tasks go to others (default 3)\n"
    "      --task-timeout MS  give an attempt that takes longer than MS ms to\n"
    "                         another worker (default: no limit)\n"
    "      --wait             read the whole input before handing out the first\n"
    "                         task: the sink knows the total from the start, and\n"
    "                         an input that cannot be read sends nothing\n"
    "      --spool DIR        keep the batch and its tasks in a spool in DIR\n"
    "                         (fsync'ed: a task is submitted once on disk), so a\n"
    "                         ventilator killed mid-batch can be run again with\n"
    "                         the same DIR: it then resumes that batch, without\n"
    "                         reading the input, and waits for it. Not with --fast\n"
    "  -h, --help             this text\n"
    "\n";

/* After zkit__device_ops_usage.                                            */
static const char s_usage_tail[] =
    "\n"
    "Workers connect to --bind (a bound socket: with --curve-secret it needs\n"
    "--curve-allow); the ventilator connects to --sink (with --curve-secret it\n"
    "needs --curve-server, the sink's public certificate). With --control the\n"
    "line 'zkit ventilator: control ENDPOINT' follows the bound line. The\n"
    "control endpoint answers STATS, PING, PAUSE (hand out no task: tasks stay\n"
    "queued, nothing is lost) and RESUME. SIGHUP rescans --curve-allow.\n"
    "\n"
    "The bound endpoint is printed on stderr as 'zkit ventilator: bound ENDPOINT'.\n"
    "\n"
    "Exit status: 0 every task's result is stored; 3 the batch ended but some\n"
    "tasks are dead letters; 1 the input could not be read or is empty (no batch\n"
    "is started), or interrupted; 2 usage.\n"
    "\n"
    "example:\n"
    "  seq 1000 | zkit ventilator --bind tcp://*:5557 --sink tcp://host:5558\n";

typedef struct {
    zkit_ventilator_opts_t vent;
    const char *file;
    const char *batch;
    bool wait_input;
} s_options_t;

enum {
    S_OPT_BATCH = 256,
    S_OPT_FAST,
    S_OPT_MAX_ATTEMPTS,
    S_OPT_HEARTBEAT,
    S_OPT_LIVENESS,
    S_OPT_TASK_TIMEOUT,
    S_OPT_WAIT,
    S_OPT_SPOOL
};

static const struct option s_long_options[] = {
    {"bind", required_argument, NULL, 'b'},
    {"sink", required_argument, NULL, 's'},
    {"file", required_argument, NULL, 'f'},
    {"batch", required_argument, NULL, S_OPT_BATCH},
    {"fast", no_argument, NULL, S_OPT_FAST},
    {"max-attempts", required_argument, NULL, S_OPT_MAX_ATTEMPTS},
    {"heartbeat", required_argument, NULL, S_OPT_HEARTBEAT},
    {"liveness", required_argument, NULL, S_OPT_LIVENESS},
    {"task-timeout", required_argument, NULL, S_OPT_TASK_TIMEOUT},
    {"wait", no_argument, NULL, S_OPT_WAIT},
    {"spool", required_argument, NULL, S_OPT_SPOOL},
    {"help", no_argument, NULL, 'h'},
    ZKIT__DEVICE_OPS_LONG_OPTIONS,
    {NULL, 0, NULL, 0},
};

static int s_parse(s_options_t *o, int argc, char **argv)
{
    zkit_ventilator_opts_t defaults = ZKIT_VENTILATOR_OPTS_DEFAULT;
    memset(o, 0, sizeof *o);
    o->vent = defaults;
    o->file = "-";
    opterr = 0;
    optind = 1;
    int c;
    uint64_t v;
    while ((c = getopt_long(argc, argv, ":b:s:f:h", s_long_options, NULL)) != -1) {
        switch (c) {
        case 'b':
        case 's':
            if (!*optarg)
                return zkit__device_usage_error(S_CMD, "empty endpoint for %s",
                                                c == 'b' ? "--bind" : "--sink");
            if (c == 'b')
                o->vent.bind = optarg;
            else
                o->vent.sink = optarg;
            break;
        case 'f':
            if (!*optarg)
                return zkit__device_usage_error(S_CMD, "empty path for --file");
            o->file = optarg;
            break;
        case S_OPT_BATCH: {
            size_t len = strlen(optarg);
            bool printable = true;
            for (size_t i = 0; i < len; i++)
                printable = printable && optarg[i] > ' ' && optarg[i] < 0x7f;
            if (len < 1 || len > ZKIT_BATCH_NAME_MAX || !printable)
                return zkit__device_usage_error(
                    S_CMD, "--batch wants 1 to %d printable characters, no spaces, not '%s'",
                    ZKIT_BATCH_NAME_MAX, optarg);
            o->batch = optarg;
            break;
        }
        case S_OPT_FAST: o->vent.fast = true; break;
        case S_OPT_MAX_ATTEMPTS:
            if (zkit__device_parse_uint(optarg, 0, UINT32_MAX, &v) == -1)
                return zkit__device_usage_error(
                    S_CMD, "--max-attempts wants a count (0 = no limit), not '%s'", optarg);
            o->vent.max_attempts = (uint32_t) v;
            break;
        case S_OPT_HEARTBEAT:
            if (zkit__device_parse_uint(optarg, 1, 3600000, &v) == -1)
                return zkit__device_usage_error(
                    S_CMD, "--heartbeat wants milliseconds (1 to 3600000), not '%s'", optarg);
            o->vent.heartbeat_ms = (uint32_t) v;
            break;
        case S_OPT_LIVENESS:
            if (zkit__device_parse_uint(optarg, 1, 1000, &v) == -1)
                return zkit__device_usage_error(S_CMD, "--liveness wants 1 to 1000, not '%s'",
                                                optarg);
            o->vent.liveness = (uint32_t) v;
            break;
        case S_OPT_TASK_TIMEOUT:
            if (zkit__device_parse_uint(optarg, 1, UINT32_MAX, &v) == -1)
                return zkit__device_usage_error(
                    S_CMD, "--task-timeout wants milliseconds (1 or more), not '%s'", optarg);
            o->vent.task_timeout_ms = (uint32_t) v;
            break;
        case S_OPT_WAIT: o->wait_input = true; break;
        case S_OPT_SPOOL:
            if (!*optarg)
                return zkit__device_usage_error(S_CMD, "empty directory for --spool");
            o->vent.spool_dir = optarg;
            break;
        case 'h': return zkit__device_help(s_usage_text, s_usage_tail);
        default: {
            /* an operations option (-1: go on), or a usage error */
            int rc = zkit__device_other_option(S_CMD, c, argv, &o->vent.ops);
            if (rc != -1)
                return rc;
        }
        }
    }
    if (optind < argc)
        return zkit__device_usage_error(S_CMD, "unexpected argument '%s'", argv[optind]);
    if (!o->vent.bind)
        return zkit__device_usage_error(S_CMD, "--bind is required");
    if (!o->vent.sink && !o->vent.fast)
        return zkit__device_usage_error(S_CMD, "--sink is required (except with --fast)");
    if (o->vent.spool_dir && o->vent.fast)
        return zkit__device_usage_error(S_CMD, "--spool is for reliable mode, not with --fast");
    return -1;
}

/* ---- input --------------------------------------------------------------------- */

/*  Lines read ahead with --wait: one buffer, the offsets of line ends.      */
typedef struct {
    char *data;
    size_t size, capacity;
    size_t *ends;
    size_t count, ends_capacity;
} s_lines_t;

static int s_lines_add(s_lines_t *lines, const char *line, size_t size)
{
    if (lines->size + size > lines->capacity) {
        size_t capacity = lines->capacity ? lines->capacity : 65536;
        while (capacity < lines->size + size)
            capacity *= 2;
        char *grown = realloc(lines->data, capacity);
        if (!grown)
            return -1;
        lines->data = grown;
        lines->capacity = capacity;
    }
    if (lines->count == lines->ends_capacity) {
        size_t capacity = lines->ends_capacity ? lines->ends_capacity * 2 : 1024;
        size_t *grown = realloc(lines->ends, capacity * sizeof *grown);
        if (!grown)
            return -1;
        lines->ends = grown;
        lines->ends_capacity = capacity;
    }
    if (size)
        memcpy(lines->data + lines->size, line, size);
    lines->size += size;
    lines->ends[lines->count++] = lines->size;
    return 0;
}

static void s_submit_error(uint64_t seq, int err)
{
    if (err == EMSGSIZE)
        fprintf(stderr, "zkit ventilator: line %" PRIu64 " is longer than a task may be (16 MiB)\n",
                seq);
    else if (err == E2BIG)
        fprintf(stderr, "zkit ventilator: more than %u lines: a batch holds at most that many\n",
                ZKIT_BATCH_TASKS_MAX);
    else
        fprintf(stderr, "zkit ventilator: cannot submit task %" PRIu64 ": %s\n", seq,
                zkit_strerror(err));
}

/*  The batch is opened with its first task: an empty input opens none,
    since a batch of 0 tasks cannot be told from one whose total is not
    known yet, and the sink would wait for it for ever.                      */
typedef struct {
    zkit_ventilator_t *vent;
    const char *name; /* --batch, or NULL */
    bool opened;
} s_batch_t;

/*  Submits one task, opening the batch first if needed. Returns 0, or -1
    after a message.                                                          */
static int s_submit(s_batch_t *batch, const char *body, size_t size, uint64_t seq)
{
    if (!batch->opened) {
        if (zkit_ventilator_open(batch->vent, batch->name) == -1) {
            fprintf(stderr, "zkit ventilator: cannot open the batch: %s\n", zkit_strerror(errno));
            return -1;
        }
        batch->opened = true;
    }
    if (zkit_ventilator_submit(batch->vent, body, size) == -1) {
        s_submit_error(seq, errno);
        return -1;
    }
    return 0;
}

/*  Reads the input line by line: submits each at once, or keeps it in
    *ahead when ahead is not NULL. Returns 0 at the end of the input, or -1
    after a message.                                                          */
static int s_read_tasks(s_batch_t *batch, FILE *in, const char *name, s_lines_t *ahead,
                        uint64_t *count)
{
    char *line = NULL;
    size_t capacity = 0;
    int rc = 0;
    while (true) {
        if (zkit__device_stopping()) {
            fprintf(stderr, "zkit ventilator: interrupted while reading the input\n");
            rc = -1;
            break;
        }
        zkit__device_reload_pending(); /* a SIGHUP also cuts a read short */
        errno = 0;
        ssize_t n = getline(&line, &capacity, in);
        if (n < 0) {
            if (ferror(in)) {
                if (errno == EINTR && !zkit__device_stopping()) {
                    clearerr(in);
                    continue;
                }
                if (!zkit__device_stopping()) {
                    fprintf(stderr, "zkit ventilator: cannot read %s: %s\n", name,
                            strerror(errno ? errno : EIO));
                    rc = -1;
                    break;
                }
                continue; /* reported as interrupted above */
            }
            break; /* end of input */
        }
        if (n > 0 && line[n - 1] == '\n')
            n--;
        if (ahead && s_lines_add(ahead, line, (size_t) n) == -1) {
            fprintf(stderr, "zkit ventilator: out of memory reading line %" PRIu64 "\n",
                    *count + 1);
            rc = -1;
            break;
        }
        if (!ahead && s_submit(batch, line, (size_t) n, *count + 1) == -1) {
            rc = -1;
            break;
        }
        (*count)++;
    }
    free(line);
    return rc;
}

/*  Submits the lines read ahead. Returns 0 or -1 after a message.           */
static int s_submit_ahead(s_batch_t *batch, const s_lines_t *lines)
{
    size_t start = 0;
    for (size_t i = 0; i < lines->count; i++) {
        if (zkit__device_stopping())
            return -1;
        if (s_submit(batch, lines->data + start, lines->ends[i] - start, i + 1) == -1)
            return -1;
        start = lines->ends[i];
    }
    return 0;
}

/* ---- the command --------------------------------------------------------------- */

static void s_print_summary(const char *what, const zkit_batch_report_t *r)
{
    char name[ZKIT_BATCH_NAME_MAX + 1];
    size_t i = 0;
    for (; r->name[i] && i < ZKIT_BATCH_NAME_MAX; i++)
        name[i] = (unsigned char) r->name[i] < 0x20 ? '?' : r->name[i];
    name[i] = '\0';
    fprintf(stderr,
            "zkit ventilator: batch %s %s: %" PRIu64 " tasks, %" PRIu64 " done, %" PRIu64
            " dead, %" PRIu64 " retried, in %.2f s\n",
            name, what, r->total, r->done, r->dead, r->retried, (double) r->elapsed_us / 1e6);
}

/*  Waits for the last batch; read_rc -1 when its input was cut short.
    Returns the exit code.                                                    */
static int s_wait_batch(zkit_ventilator_t *vent, int read_rc)
{
    zkit_batch_report_t r;
    memset(&r, 0, sizeof r);
    while (true) {
        if (zkit__device_stopping()) {
            zkit_ventilator_report(vent, &r);
            s_print_summary("interrupted", &r);
            return ZKIT_EXIT_FAILURE;
        }
        zkit__device_reload_pending();
        if (zkit_ventilator_wait(vent, S_TICK_MS, &r) == 0)
            break;
        if (errno != ETIMEDOUT && errno != EINTR) {
            fprintf(stderr, "zkit ventilator: wait: %s\n", zkit_strerror(errno));
            return ZKIT_EXIT_FAILURE;
        }
    }
    s_print_summary("complete", &r);
    if (read_rc == -1)
        return ZKIT_EXIT_FAILURE;
    return r.dead ? ZKIT_EXIT_DEAD_LETTERS : ZKIT_EXIT_OK;
}

/*  Runs the batch once the ventilator is up. Returns the exit code.         */
static int s_run(zkit_ventilator_t *vent, const s_options_t *o, FILE *in)
{
    const char *input = strcmp(o->file, "-") ? o->file : "stdin";
    uint64_t count = 0;
    s_lines_t ahead;
    memset(&ahead, 0, sizeof ahead);
    int rc = ZKIT_EXIT_FAILURE;
    s_batch_t batch = {vent, o->batch, false};
    zkit_batch_report_t r;
    memset(&r, 0, sizeof r);

    /* A batch resumed from the spool is the one to finish: the input is
       left for the next run, which would otherwise mix it into it.      */
    if (zkit_ventilator_report(vent, &r) == 0 && r.name[0]) {
        fprintf(stderr, "zkit ventilator: resuming batch %s from %s (%" PRIu64 " tasks)\n", r.name,
                o->vent.spool_dir, r.total);
        return s_wait_batch(vent, 0);
    }
    if (o->wait_input && s_read_tasks(&batch, in, input, &ahead, &count) == -1)
        goto done;
    int read_rc = o->wait_input ? s_submit_ahead(&batch, &ahead)
                                : s_read_tasks(&batch, in, input, NULL, &count);
    if (!batch.opened) {
        if (read_rc == 0)
            fprintf(stderr, "zkit ventilator: %s has no lines: no tasks, no batch\n", input);
        goto done;
    }
    if (zkit_ventilator_close(vent) == -1) {
        fprintf(stderr, "zkit ventilator: cannot close the batch: %s\n", zkit_strerror(errno));
        goto done;
    }
    /* A batch cut short by a read error is closed with the tasks it has, and
       they are seen through, so the sink ends too; interrupted, we stop. */
    if (read_rc == -1 && zkit__device_stopping())
        goto done;
    rc = s_wait_batch(vent, read_rc);

done:
    free(ahead.data);
    free(ahead.ends);
    return rc;
}

int zkit_cmd_ventilator(int argc, char **argv)
{
    s_options_t o;
    int rc = s_parse(&o, argc, argv);
    if (rc >= 0)
        return rc;

    FILE *in = strcmp(o.file, "-") ? fopen(o.file, "rb") : stdin;
    if (!in) {
        fprintf(stderr, "zkit ventilator: cannot open %s: %s\n", o.file, strerror(errno));
        return ZKIT_EXIT_FAILURE;
    }
    zkit__device_catch_signals();
    zkit_ventilator_t *vent = zkit_ventilator_new(&o.vent);
    if (!vent) {
        fprintf(stderr, "zkit ventilator: cannot start on %s: %s\n", o.vent.bind,
                zkit_strerror(errno));
        if (in != stdin)
            fclose(in);
        return ZKIT_EXIT_FAILURE;
    }
    const char *endpoint = zkit_ventilator_endpoint(vent);
    fprintf(stderr, "zkit ventilator: bound %s\n", endpoint ? endpoint : o.vent.bind);
    if (zkit_ventilator_control(vent))
        fprintf(stderr, "zkit ventilator: control %s\n", zkit_ventilator_control(vent));

    rc = s_run(vent, &o, in);
    zkit_ventilator_destroy(&vent);
    if (in != stdin)
        fclose(in);
    return rc;
}
