/*  cmd_subscriber.c: `zkit subscriber`, a zkit_subscriber that prints what
    it receives and reports every gap, recovery and loss on stderr.

    Messages are printed by the subscriber's own thread as they are
    delivered, one line each, flushed at once (a process killed with -9 has
    printed everything it delivered). With --state the position in each
    source's stream is saved after every message and read back at start, so
    a restarted subscriber catches up on what it missed while it was down,
    and reports exactly what the publisher no longer had.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zkit.h"
#include "cat_format.h"
#include "device_common.h"
#include "zkit_cli.h"

#define S_CMD       "subscriber"
#define S_TICK_MS   20
#define S_STATE_MAX 1024 /* sources a state file holds */
/* Exit status when done but some messages are reported lost: the same code
   as a pipeline batch that completed with dead letters. */
#define S_EXIT_LOST 3

static const char s_usage_text[] =
    "usage: zkit subscriber (--connect EP | --bind EP) [OPTIONS]\n"
    "\n"
    "Receives a zkit PUB/SUB feed, prints each message, and checks every\n"
    "publisher's stream for gaps. Missing messages are fetched from the\n"
    "publisher's replay endpoint (which it announces, or --replay) and printed\n"
    "once, marked recovered; what the publisher no longer holds is reported lost.\n"
    "\n"
    "options:\n"
    "  -c, --connect EP         connect to a publisher or a forwarder's backend\n"
    "  -b, --bind EP            bind (publishers connect)\n"
    "  -s, --subscribe PREFIX   topic prefix, repeatable (default: everything)\n"
    "      --replay EP          replay endpoint(s) for sources that announce none,\n"
    "                           and where --snapshot asks\n"
    "      --snapshot           at start, get each topic's last value (publisher\n"
    "                           run with --lvc)\n"
    "      --no-recover         report gaps as lost, fetch nothing\n"
    "      --no-learn-replay    ignore the replay endpoint sources announce\n"
    "      --state PATH         resume from the positions saved in PATH, and save\n"
    "                           them there after every message\n"
    "      --count N            exit once N messages are delivered or reported lost\n"
    "                           and no recovery is outstanding\n"
    "      --timeout MS         exit with status 1 if not done after MS ms\n"
    "  -f, --format F           json (default), seq ('SRC SEQ KIND' lines), body\n"
    "                           (the body and a newline) or none\n"
    "      --hwm N              messages the SUB socket queues (default 1000)\n"
    "      --fetch-timeout MS   a fetch not answered in MS ms is retried (2000)\n"
    "      --fetch-batch N      most seqs asked for at once (1000)\n"
    "      --probe MS           ask a source silent for MS ms how far it has\n"
    "                           published, so a missed tail shows (1000; 0: never)\n"
    "  -h, --help               this text\n"
    "\n";

/* After zkit__device_ops_usage.                                            */
static const char s_usage_tail[] =
    "A --bind SUB is a CURVE server with --curve-secret and --curve-allow; a\n"
    "--connect SUB and the replay links are CURVE clients with --curve-secret and\n"
    "--curve-server (one server key for all: the forwarder's and the publishers'\n"
    "replay endpoints must share it). SIGHUP rescans the allow directory.\n"
    "\n"
    "Lines on stderr: 'zkit subscriber: control EP' with --control, 'zkit\n"
    "subscriber: gap|lost|recovered|restart src=S ...' for every stream event,\n"
    "and 'zkit subscriber: stats k=v ...' at exit. The control endpoint answers\n"
    "STATS (see 'zkit stats'), PING, PAUSE (stop reading the feed: it queues,\n"
    "then upstream drops; the gaps are fetched after RESUME) and RESUME.\n"
    "\n"
    "Exit status: 0 done (or interrupted); 3 done, but some messages were lost;\n"
    "1 timeout or failure; 2 usage.\n";

typedef enum { S_JSON, S_SEQ, S_BODY, S_NONE } s_format_t;

typedef struct {
    zkit_subscriber_opts_t sub;
    const char *topics[ZKIT_SUBSCRIBE_MAX];
    size_t ntopics;
    s_format_t format;
    const char *state_path;
    uint64_t count;
    uint64_t timeout_ms;
} s_options_t;

/*  What the subscriber's thread writes with; only it touches this.          */
typedef struct {
    s_format_t format;
    zkit__cat_buf_t line;
    int state_fd;
    zkit_stream_position_t *positions;
    size_t npositions;
} s_output_t;

enum {
    S_OPT_REPLAY = 256,
    S_OPT_SNAPSHOT,
    S_OPT_NO_RECOVER,
    S_OPT_NO_LEARN,
    S_OPT_STATE,
    S_OPT_COUNT,
    S_OPT_TIMEOUT,
    S_OPT_HWM,
    S_OPT_FETCH_TIMEOUT,
    S_OPT_FETCH_BATCH,
    S_OPT_PROBE,
};

static const struct option s_long_options[] = {
    {"connect", required_argument, NULL, 'c'},
    {"bind", required_argument, NULL, 'b'},
    {"subscribe", required_argument, NULL, 's'},
    {"replay", required_argument, NULL, S_OPT_REPLAY},
    {"snapshot", no_argument, NULL, S_OPT_SNAPSHOT},
    {"no-recover", no_argument, NULL, S_OPT_NO_RECOVER},
    {"no-learn-replay", no_argument, NULL, S_OPT_NO_LEARN},
    {"state", required_argument, NULL, S_OPT_STATE},
    {"count", required_argument, NULL, S_OPT_COUNT},
    {"timeout", required_argument, NULL, S_OPT_TIMEOUT},
    {"format", required_argument, NULL, 'f'},
    {"hwm", required_argument, NULL, S_OPT_HWM},
    {"fetch-timeout", required_argument, NULL, S_OPT_FETCH_TIMEOUT},
    {"fetch-batch", required_argument, NULL, S_OPT_FETCH_BATCH},
    {"probe", required_argument, NULL, S_OPT_PROBE},
    {"help", no_argument, NULL, 'h'},
    ZKIT__DEVICE_OPS_LONG_OPTIONS,
    {NULL, 0, NULL, 0},
};

static int s_parse(s_options_t *o, int argc, char **argv)
{
    opterr = 0;
    optind = 1;
    int c;
    uint64_t v;
    while ((c = getopt_long(argc, argv, ":c:b:s:f:h", s_long_options, NULL)) != -1) {
        switch (c) {
        case 'c': o->sub.connect = optarg; break;
        case 'b': o->sub.bind = optarg; break;
        case 's':
            if (o->ntopics == ZKIT_SUBSCRIBE_MAX || strlen(optarg) > ZKIT_TOPIC_MAX)
                return zkit__device_usage_error(
                    S_CMD, "at most %d --subscribe prefixes of at most %d bytes",
                    ZKIT_SUBSCRIBE_MAX, ZKIT_TOPIC_MAX);
            o->topics[o->ntopics++] = optarg;
            break;
        case S_OPT_REPLAY: o->sub.replay = optarg; break;
        case S_OPT_SNAPSHOT: o->sub.snapshot = true; break;
        case S_OPT_NO_RECOVER: o->sub.recover = false; break;
        case S_OPT_NO_LEARN: o->sub.learn_replay = false; break;
        case S_OPT_STATE: o->state_path = optarg; break;
        case S_OPT_COUNT:
            if (zkit__device_parse_uint(optarg, 1, UINT64_MAX, &o->count) == -1)
                return zkit__device_usage_error(S_CMD, "--count wants a number, not '%s'", optarg);
            break;
        case S_OPT_TIMEOUT:
            if (zkit__device_parse_uint(optarg, 1, UINT32_MAX, &o->timeout_ms) == -1)
                return zkit__device_usage_error(S_CMD, "--timeout wants milliseconds, not '%s'",
                                                optarg);
            break;
        case 'f':
            if (streq(optarg, "json"))
                o->format = S_JSON;
            else if (streq(optarg, "seq"))
                o->format = S_SEQ;
            else if (streq(optarg, "body"))
                o->format = S_BODY;
            else if (streq(optarg, "none"))
                o->format = S_NONE;
            else
                return zkit__device_usage_error(
                    S_CMD, "--format is json, seq, body or none, not '%s'", optarg);
            break;
        case S_OPT_HWM:
            if (zkit__device_parse_uint(optarg, 0, INT32_MAX, &v) == -1)
                return zkit__device_usage_error(S_CMD, "--hwm wants a count, not '%s'", optarg);
            o->sub.rcvhwm = (int) v;
            break;
        case S_OPT_FETCH_TIMEOUT:
            if (zkit__device_parse_uint(optarg, 1, UINT32_MAX, &v) == -1)
                return zkit__device_usage_error(
                    S_CMD, "--fetch-timeout wants milliseconds, not '%s'", optarg);
            o->sub.fetch_timeout_ms = (uint32_t) v;
            break;
        case S_OPT_FETCH_BATCH:
            if (zkit__device_parse_uint(optarg, 1, 10000, &v) == -1)
                return zkit__device_usage_error(S_CMD, "--fetch-batch is 1 to 10000, not '%s'",
                                                optarg);
            o->sub.fetch_batch = (uint32_t) v;
            break;
        case S_OPT_PROBE:
            if (zkit__device_parse_uint(optarg, 0, UINT32_MAX, &v) == -1)
                return zkit__device_usage_error(S_CMD, "--probe wants milliseconds, not '%s'",
                                                optarg);
            o->sub.probe_ms = (uint32_t) v;
            break;
        case 'h': return zkit__device_help(s_usage_text, s_usage_tail);
        default: {
            int rc = zkit__device_other_option(S_CMD, c, argv, &o->sub.ops);
            if (rc != -1)
                return rc;
        }
        }
    }
    if (optind < argc)
        return zkit__device_usage_error(S_CMD, "unexpected argument '%s'", argv[optind]);
    if (!o->sub.connect && !o->sub.bind)
        return zkit__device_usage_error(S_CMD, "--connect or --bind is required");
    return -1;
}

/* ---- the state file -------------------------------------------------------------- */

/*  Reads "src TAB epoch TAB next TAB replay" lines. Returns the count, or -1
    when the file exists but cannot be read.                               */
static ssize_t s_state_load(const char *path, zkit_stream_position_t *out, size_t max)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? 0 : -1;
    char line[1024];
    size_t n = 0;
    while (n < max && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *save = NULL;
        char *src = strtok_r(line, "\t", &save);
        char *epoch = strtok_r(NULL, "\t", &save);
        char *next = strtok_r(NULL, "\t", &save);
        char *replay = strtok_r(NULL, "\t", &save);
        uint64_t e, q;
        if (!src || !next || strlen(src) > ZKIT_SRC_MAX ||
            zkit__device_parse_uint(epoch, 0, UINT64_MAX, &e) == -1 ||
            zkit__device_parse_uint(next, 1, UINT64_MAX, &q) == -1)
            continue;
        memset(&out[n], 0, sizeof out[n]);
        snprintf(out[n].src, sizeof out[n].src, "%s", src);
        out[n].epoch = e;
        out[n].next = q;
        if (replay && strlen(replay) <= ZKIT_ENDPOINT_MAX)
            snprintf(out[n].replay, sizeof out[n].replay, "%s", replay);
        n++;
    }
    fclose(f);
    return (ssize_t) n;
}

/*  Rewrites the whole file in place: one pwrite, then cut what is left.   */
static void s_state_save(s_output_t *out)
{
    if (out->state_fd < 0)
        return;
    zkit__cat_buf_t text = {0};
    for (size_t i = 0; i < out->npositions; i++) {
        const zkit_stream_position_t *p = &out->positions[i];
        if (strpbrk(p->src, "\t\n") || strpbrk(p->replay, "\t\n"))
            continue;
        zkit__cat_buf_printf(&text, "%s\t%" PRIu64 "\t%" PRIu64 "\t%s\n", p->src, p->epoch, p->next,
                             p->replay);
    }
    if (!text.failed && pwrite(out->state_fd, text.data, text.size, 0) == (ssize_t) text.size)
        (void) !ftruncate(out->state_fd, (off_t) text.size);
    zkit__cat_buf_free(&text);
}

static void s_state_update(s_output_t *out, const zkit_delivery_t *d)
{
    if (out->state_fd < 0 || !d->src || d->resume_from == 0)
        return;
    zkit_stream_position_t *p = NULL;
    for (size_t i = 0; i < out->npositions && !p; i++)
        if (streq(out->positions[i].src, d->src))
            p = &out->positions[i];
    if (!p) {
        if (out->npositions == S_STATE_MAX)
            return;
        p = &out->positions[out->npositions++];
        memset(p, 0, sizeof *p);
        snprintf(p->src, sizeof p->src, "%s", d->src);
    }
    p->epoch = d->epoch;
    p->next = d->resume_from;
    snprintf(p->replay, sizeof p->replay, "%s", d->replay ? d->replay : "");
    s_state_save(out);
}

/* ---- output (the subscriber's thread) ---------------------------------------------- */

static void s_on_message(const zkit_envelope_t *env, const zkit_delivery_t *d, void *arg)
{
    s_output_t *out = arg;
    zkit__cat_buf_t *b = &out->line;
    zkit__cat_buf_clear(b);
    size_t size;
    const void *body = zkit_envelope_body(env, &size);
    const char *kind = zkit_delivery_kind_name(d->kind);
    switch (out->format) {
    case S_JSON: {
        char id[33];
        zkit__cat_buf_puts(b, "{\"topic\":");
        zkit__cat_json_bytes(b, d->topic, d->topic_size);
        zkit__cat_buf_puts(b, ",\"src\":");
        if (d->src)
            zkit__cat_json_bytes(b, d->src, strlen(d->src));
        else
            zkit__cat_buf_puts(b, "null");
        zkit__cat_buf_printf(b,
                             ",\"epoch\":%" PRIu64 ",\"seq\":%" PRIu64
                             ",\"kind\":\"%s\",\"id\":\"%s\",\"ts\":%" PRIu64 ",\"body\":",
                             d->epoch, d->seq, kind, zkit_id_to_hex(zkit_envelope_id(env), id),
                             zkit_envelope_ts(env));
        zkit__cat_json_bytes(b, body, size);
        zkit__cat_buf_puts(b, "}\n");
        break;
    }
    case S_SEQ:
        zkit__cat_buf_printf(b, "%s %" PRIu64 " %s\n", d->src ? d->src : "-", d->seq, kind);
        break;
    case S_BODY:
        zkit__cat_buf_append(b, body, size);
        zkit__cat_buf_putc(b, '\n');
        break;
    case S_NONE: break;
    }
    if (b->size && !b->failed) {
        fwrite(b->data, 1, b->size, stdout);
        fflush(stdout);
    }
    /* The position is saved after the line is out: a kill between the two
       gives this message again after a restart, never loses it. */
    s_state_update(out, d);
}

static void s_on_event(const zkit_stream_event_t *ev, void *arg)
{
    (void) arg;
    flockfile(stderr);
    fprintf(stderr, "zkit subscriber: %s src=%s epoch=%" PRIu64, zkit_stream_event_name(ev->kind),
            ev->src, ev->epoch);
    if (ev->kind == ZKIT_STREAM_RESTART)
        fprintf(stderr, " new-epoch=%" PRIu64 "\n", ev->new_epoch);
    else {
        fprintf(stderr, " from=%" PRIu64, ev->from);
        if (ev->to == UINT64_MAX)
            fprintf(stderr, " to=end");
        else
            fprintf(stderr, " to=%" PRIu64, ev->to);
        if (ev->kind == ZKIT_STREAM_LOST)
            fprintf(stderr, " reason=%s", zkit_lost_reason_name(ev->reason));
        if (ev->kind == ZKIT_STREAM_RECOVERED)
            fprintf(stderr, " count=%" PRIu64, ev->count);
        fputc('\n', stderr);
    }
    fflush(stderr);
    funlockfile(stderr);
}

static void s_print_stats(const zkit_subscriber_stats_t *s)
{
    fprintf(stderr,
            "zkit subscriber: stats received=%" PRIu64 " delivered=%" PRIu64 " late=%" PRIu64
            " recovered=%" PRIu64 " snapshot=%" PRIu64 " untracked=%" PRIu64 " duplicates=%" PRIu64
            " stale=%" PRIu64 " filtered=%" PRIu64 " gaps=%" PRIu64 " missing=%" PRIu64
            " lost=%" PRIu64 " pending=%" PRIu64 " restarts=%" PRIu64 " fetches=%" PRIu64
            " fetch_timeouts=%" PRIu64 " bad=%" PRIu64 " sources=%" PRIu64 "\n",
            s->received, s->delivered, s->late, s->recovered, s->snapshot, s->untracked,
            s->duplicates, s->stale, s->filtered, s->gaps, s->missing, s->lost, s->pending,
            s->restarts, s->fetches, s->fetch_timeouts, s->bad, s->sources);
    fflush(stderr);
}

int zkit_cmd_subscriber(int argc, char **argv)
{
    s_options_t o;
    memset(&o, 0, sizeof o);
    o.sub = (zkit_subscriber_opts_t) ZKIT_SUBSCRIBER_OPTS_DEFAULT;
    int rc = s_parse(&o, argc, argv);
    if (rc >= 0)
        return rc;
    if (o.ntopics == 0)
        o.topics[o.ntopics++] = "";
    o.sub.topics = o.topics;
    o.sub.topic_count = o.ntopics;

    s_output_t out = {.format = o.format, .state_fd = -1};
    zkit_stream_position_t *resume = NULL;
    if (o.state_path) {
        out.positions = calloc(S_STATE_MAX, sizeof *out.positions);
        resume = calloc(S_STATE_MAX, sizeof *resume);
        ssize_t n = out.positions && resume ? s_state_load(o.state_path, resume, S_STATE_MAX) : -1;
        out.state_fd = n < 0 ? -1 : open(o.state_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (out.state_fd < 0) {
            fprintf(stderr, "zkit subscriber: cannot use state file %s: %s\n", o.state_path,
                    strerror(errno ? errno : ENOMEM));
            free(out.positions);
            free(resume);
            return ZKIT_EXIT_FAILURE;
        }
        memcpy(out.positions, resume, (size_t) n * sizeof *resume);
        out.npositions = (size_t) n;
        o.sub.resume = resume;
        o.sub.resume_count = (size_t) n;
        for (ssize_t i = 0; i < n; i++)
            fprintf(stderr, "zkit subscriber: resume src=%s epoch=%" PRIu64 " next=%" PRIu64 "\n",
                    resume[i].src, resume[i].epoch, resume[i].next);
    }
    o.sub.handler = s_on_message;
    o.sub.handler_arg = &out;
    o.sub.on_event = s_on_event;

    zkit__device_catch_signals();
    zkit_subscriber_t *sub = zkit_subscriber_new(&o.sub);
    free(resume);
    if (!sub) {
        fprintf(stderr, "zkit subscriber: cannot start: %s\n", zkit_strerror(errno));
        if (out.state_fd >= 0)
            close(out.state_fd);
        free(out.positions);
        return ZKIT_EXIT_FAILURE;
    }
    if (zkit_subscriber_control(sub))
        fprintf(stderr, "zkit subscriber: control %s\n", zkit_subscriber_control(sub));
    fprintf(stderr, "zkit subscriber: running\n");
    fflush(stderr);

    int64_t deadline = o.timeout_ms ? zkit__device_now_ms() + (int64_t) o.timeout_ms : INT64_MAX;
    zkit_subscriber_stats_t st;
    memset(&st, 0, sizeof st);
    rc = ZKIT_EXIT_OK;
    while (!zkit__device_stopping()) {
        zclock_sleep(S_TICK_MS);
        zkit__device_reload_pending();
        if (o.count && zkit_subscriber_stats(sub, &st) == 0 &&
            st.delivered - st.snapshot + st.lost >= o.count && zkit_subscriber_settled(sub))
            break;
        if (zkit__device_now_ms() >= deadline) {
            fprintf(stderr, "zkit subscriber: timeout after %" PRIu64 " ms\n", o.timeout_ms);
            rc = ZKIT_EXIT_FAILURE;
            break;
        }
    }
    zkit_subscriber_stats(sub, &st);
    if (out.state_fd >= 0) {
        /* The authoritative positions, losses reported since the last
           message included; saved before the subscriber stops. */
        zkit_stream_position_t *final = calloc(S_STATE_MAX, sizeof *final);
        ssize_t n = final ? zkit_subscriber_positions(sub, final, S_STATE_MAX) : -1;
        /* Stopped first: until then its thread writes out.positions. */
        zkit_subscriber_destroy(&sub);
        if (n >= 0) {
            out.npositions = (size_t) n < S_STATE_MAX ? (size_t) n : S_STATE_MAX;
            memcpy(out.positions, final, out.npositions * sizeof *final);
            s_state_save(&out);
        }
        free(final);
        close(out.state_fd);
    }
    zkit_subscriber_destroy(&sub);
    s_print_stats(&st);
    free(out.positions);
    zkit__cat_buf_free(&out.line);
    if (rc == ZKIT_EXIT_OK && st.lost > 0)
        rc = S_EXIT_LOST;
    return rc;
}
