/*  cmd_publisher.c: `zkit publisher`, a zkit_publisher fed from the command
    line: N generated messages (--count, at --rate), or one message per line
    of stdin (--stdin) with a few '#' commands a test script or an operator
    uses to pace it. Subscriptions coming and going are printed on stderr,
    so a script can wait for a subscriber instead of sleeping.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zkit.h"
#include "device_common.h"
#include "zkit_cli.h"

#define S_CMD "publisher"

static const char s_usage_text[] =
    "usage: zkit publisher (--bind EP | --connect EP) (--count N | --stdin) [OPTIONS]\n"
    "\n"
    "Publishes envelopes on a topic. Every message carries the publisher's name\n"
    "(meta src), a seq (1, 2, 3, ...) and its epoch, so subscribers see any loss;\n"
    "with --replay-bind the last messages are kept and subscribers fetch what\n"
    "they missed.\n"
    "\n"
    "options:\n"
    "  -b, --bind EP              bind the XPUB (subscribers or forwarders connect)\n"
    "  -c, --connect EP           connect the XPUB (to a forwarder's frontend)\n"
    "  -n, --name NAME            the stream's name, stable across restarts\n"
    "                             (default zkit-publisher)\n"
    "  -t, --topic T              topic of the messages (default zkit)\n"
    "      --count N              publish N generated messages\n"
    "      --size B               body size of generated messages (default: the\n"
    "                             text \"TOPIC SEQ\")\n"
    "      --rate N               messages per second (default: as fast as it goes)\n"
    "      --stdin                publish each line of stdin as a body. Lines that\n"
    "                             are commands: '#sync TAG' prints 'sync TAG\n"
    "                             last-seq=N' once all before it are out; '#wait'\n"
    "                             waits for a subscriber to the topic; '#topic T'\n"
    "                             switches the topic\n"
    "      --wait-subscriber      before the first message, wait until a subscriber\n"
    "                             to the topic is present\n"
    "      --wait-timeout MS      give up that wait after MS ms (exit 1)\n"
    "      --hold                 after the last message keep serving replay\n"
    "                             requests until SIGINT or SIGTERM\n"
    "      --replay-bind EP       bind the replay endpoint (FETCH and SNAPSHOT)\n"
    "      --replay-announce EP   the endpoint subscribers are told (default: the\n"
    "                             bound one; set it when binding a wildcard)\n"
    "      --replay-capacity N    messages kept for replay (default 100000)\n"
    "      --replay-bytes N       bytes kept for replay (default 64 MiB)\n"
    "      --replay-batch N       most messages one FETCH answer carries (1000)\n"
    "      --lvc                  keep each topic's last value for snapshots\n"
    "      --nodrop               block on a full subscriber instead of dropping\n"
    "      --hwm N                messages queued per subscriber (default 1000)\n"
    "      --epoch N              the epoch (default: now, in microseconds)\n"
    "      --linger MS            at exit, how long queued messages may take\n"
    "  -h, --help                 this text\n"
    "\n";

/* After zkit__device_ops_usage.                                            */
static const char s_usage_tail[] =
    "Bound sockets (--bind, --replay-bind) are CURVE servers with --curve-secret\n"
    "and --curve-allow; a --connect XPUB is a CURVE client with --curve-secret\n"
    "and --curve-server. SIGHUP rescans the allow directory.\n"
    "\n"
    "Lines on stderr: 'zkit publisher: bound EP', 'zkit publisher: replay EP',\n"
    "'zkit publisher: control EP' with --control, 'zkit publisher: subscription\n"
    "+PREFIX' (or -PREFIX) as subscribers come and go (at most 20 a second, then\n"
    "a count of the ones left out), 'zkit publisher: sent last-seq=N' when the\n"
    "messages are out, and a 'zkit publisher: stats k=v ...' line at exit. The\n"
    "control endpoint answers STATS (see 'zkit stats'), PING, PAUSE (stop taking\n"
    "messages: publishing waits; replay requests are still answered) and RESUME.\n"
    "\n"
    "example:\n"
    "  zkit publisher --connect tcp://fwd:5556 --replay-bind tcp://*:5560 \\\n"
    "      --replay-announce tcp://me:5560 --topic prices.ACME --count 100000\n";

typedef struct {
    zkit_publisher_opts_t pub;
    const char *topic;
    uint64_t count;
    bool count_set;
    uint64_t size;
    bool size_set;
    uint64_t rate;
    bool from_stdin;
    bool wait_subscriber;
    int wait_timeout_ms;
    bool hold;
} s_options_t;

enum {
    S_OPT_COUNT = 256,
    S_OPT_SIZE,
    S_OPT_RATE,
    S_OPT_STDIN,
    S_OPT_WAIT,
    S_OPT_WAIT_TIMEOUT,
    S_OPT_HOLD,
    S_OPT_REPLAY_BIND,
    S_OPT_REPLAY_ANNOUNCE,
    S_OPT_REPLAY_CAPACITY,
    S_OPT_REPLAY_BYTES,
    S_OPT_REPLAY_BATCH,
    S_OPT_LVC,
    S_OPT_NODROP,
    S_OPT_HWM,
    S_OPT_EPOCH,
    S_OPT_LINGER,
};

static const struct option s_long_options[] = {
    {"bind", required_argument, NULL, 'b'},
    {"connect", required_argument, NULL, 'c'},
    {"name", required_argument, NULL, 'n'},
    {"topic", required_argument, NULL, 't'},
    {"count", required_argument, NULL, S_OPT_COUNT},
    {"size", required_argument, NULL, S_OPT_SIZE},
    {"rate", required_argument, NULL, S_OPT_RATE},
    {"stdin", no_argument, NULL, S_OPT_STDIN},
    {"wait-subscriber", no_argument, NULL, S_OPT_WAIT},
    {"wait-timeout", required_argument, NULL, S_OPT_WAIT_TIMEOUT},
    {"hold", no_argument, NULL, S_OPT_HOLD},
    {"replay-bind", required_argument, NULL, S_OPT_REPLAY_BIND},
    {"replay-announce", required_argument, NULL, S_OPT_REPLAY_ANNOUNCE},
    {"replay-capacity", required_argument, NULL, S_OPT_REPLAY_CAPACITY},
    {"replay-bytes", required_argument, NULL, S_OPT_REPLAY_BYTES},
    {"replay-batch", required_argument, NULL, S_OPT_REPLAY_BATCH},
    {"lvc", no_argument, NULL, S_OPT_LVC},
    {"nodrop", no_argument, NULL, S_OPT_NODROP},
    {"hwm", required_argument, NULL, S_OPT_HWM},
    {"epoch", required_argument, NULL, S_OPT_EPOCH},
    {"linger", required_argument, NULL, S_OPT_LINGER},
    {"help", no_argument, NULL, 'h'},
    ZKIT__DEVICE_OPS_LONG_OPTIONS,
    {NULL, 0, NULL, 0},
};

/*  Parses a number option in [min, max] or returns the usage error code.   */
#define S_UINT(name, min, max, dst)                                                                \
    do {                                                                                           \
        uint64_t v_;                                                                               \
        if (zkit__device_parse_uint(optarg, (min), (max), &v_) == -1)                              \
            return zkit__device_usage_error(                                                       \
                S_CMD, "%s wants a number from %llu to %llu, not '%s'", (name),                    \
                (unsigned long long) (min), (unsigned long long) (max), optarg);                   \
        (dst) = v_;                                                                                \
    } while (0)

static int s_parse(s_options_t *o, int argc, char **argv)
{
    opterr = 0;
    optind = 1;
    int c;
    uint64_t v;
    while ((c = getopt_long(argc, argv, ":b:c:n:t:h", s_long_options, NULL)) != -1) {
        switch (c) {
        case 'b': o->pub.bind = optarg; break;
        case 'c': o->pub.connect = optarg; break;
        case 'n': o->pub.name = optarg; break;
        case 't':
            if (strlen(optarg) > ZKIT_TOPIC_MAX)
                return zkit__device_usage_error(S_CMD, "--topic is longer than %d bytes",
                                                ZKIT_TOPIC_MAX);
            o->topic = optarg;
            break;
        case S_OPT_COUNT:
            S_UINT("--count", 0, UINT64_MAX, o->count);
            o->count_set = true;
            break;
        case S_OPT_SIZE:
            S_UINT("--size", 0, 16u * 1024 * 1024, o->size);
            o->size_set = true;
            break;
        case S_OPT_RATE: S_UINT("--rate", 1, 100000000, o->rate); break;
        case S_OPT_STDIN: o->from_stdin = true; break;
        case S_OPT_WAIT: o->wait_subscriber = true; break;
        case S_OPT_WAIT_TIMEOUT:
            S_UINT("--wait-timeout", 0, INT32_MAX, v);
            o->wait_timeout_ms = (int) v;
            break;
        case S_OPT_HOLD: o->hold = true; break;
        case S_OPT_REPLAY_BIND: o->pub.replay_bind = optarg; break;
        case S_OPT_REPLAY_ANNOUNCE: o->pub.replay_announce = optarg; break;
        case S_OPT_REPLAY_CAPACITY:
            S_UINT("--replay-capacity", 1, SIZE_MAX, o->pub.replay_capacity);
            break;
        case S_OPT_REPLAY_BYTES: S_UINT("--replay-bytes", 1, SIZE_MAX, o->pub.replay_bytes); break;
        case S_OPT_REPLAY_BATCH: S_UINT("--replay-batch", 1, 100000, o->pub.replay_batch); break;
        case S_OPT_LVC: o->pub.lvc = true; break;
        case S_OPT_NODROP: o->pub.nodrop = true; break;
        case S_OPT_HWM: S_UINT("--hwm", 0, INT32_MAX, o->pub.sndhwm); break;
        case S_OPT_EPOCH: S_UINT("--epoch", 1, INT64_MAX, o->pub.epoch); break;
        case S_OPT_LINGER: S_UINT("--linger", 0, INT32_MAX, o->pub.linger_ms); break;
        case 'h': return zkit__device_help(s_usage_text, s_usage_tail);
        default: {
            int rc = zkit__device_other_option(S_CMD, c, argv, &o->pub.ops);
            if (rc != -1)
                return rc;
        }
        }
    }
    if (optind < argc)
        return zkit__device_usage_error(S_CMD, "unexpected argument '%s'", argv[optind]);
    if (!o->pub.bind && !o->pub.connect)
        return zkit__device_usage_error(S_CMD, "--bind or --connect is required");
    if (o->count_set == o->from_stdin)
        return zkit__device_usage_error(S_CMD, "give one of --count or --stdin");
    if (o->pub.lvc && !o->pub.replay_bind)
        return zkit__device_usage_error(S_CMD, "--lvc needs --replay-bind");
    return -1;
}

/*  Prints a prefix readably: as text when it is printable ASCII, else hex. */
/* Subscription lines a second: a peer can subscribe to any number of
   prefixes, and each would be a line. */
#define S_SUBSCRIPTION_LINES 20
#define S_PREFIX_PRINT_MAX   255

static void s_on_subscription(bool subscribed, const void *prefix, size_t size, void *arg)
{
    (void) arg;
    /* Runs on the publisher's thread only. */
    static int64_t window_ms;
    static int lines;
    static uint64_t left_out;
    int64_t now = zkit__device_now_ms();
    if (now - window_ms >= 1000) {
        if (left_out)
            fprintf(stderr, "zkit publisher: %" PRIu64 " subscription lines left out\n", left_out);
        window_ms = now;
        lines = 0;
        left_out = 0;
    }
    if (lines >= S_SUBSCRIPTION_LINES) {
        left_out++;
        return;
    }
    lines++;
    if (size > S_PREFIX_PRINT_MAX)
        size = S_PREFIX_PRINT_MAX;
    const uint8_t *p = prefix;
    bool text = true;
    for (size_t i = 0; i < size; i++)
        text = text && p[i] >= 0x20 && p[i] < 0x7f;
    flockfile(stderr);
    fprintf(stderr, "zkit publisher: subscription %c", subscribed ? '+' : '-');
    if (text)
        fprintf(stderr, "'%.*s'\n", (int) size, (const char *) prefix);
    else {
        fputs("0x", stderr);
        for (size_t i = 0; i < size; i++)
            fprintf(stderr, "%02x", p[i]);
        fputc('\n', stderr);
    }
    fflush(stderr);
    funlockfile(stderr);
}

static uint64_t s_last_seq(zkit_publisher_t *pub)
{
    zkit_publisher_stats_t st;
    return zkit_publisher_stats(pub, &st) == 0 ? st.last_seq : 0;
}

static int s_publish(zkit_publisher_t *pub, const char *topic, const void *body, size_t size)
{
    while (zkit_publisher_publish(pub, topic, body, size, 0) == -1) {
        if (errno == EINTR && !zkit__device_stopping())
            continue;
        if (errno != EINTR)
            fprintf(stderr, "zkit publisher: cannot publish: %s\n", zkit_strerror(errno));
        return -1;
    }
    return 0;
}

/*  Sleeps until message index i is due at rate per second from start.     */
static void s_pace(uint64_t rate, int64_t start_us, uint64_t i)
{
    int64_t due = start_us + (int64_t) (i * 1000000 / rate);
    int64_t now = zclock_usecs();
    if (due - now > 500) {
        struct timespec ts = {.tv_sec = (due - now) / 1000000,
                              .tv_nsec = ((due - now) % 1000000) * 1000};
        nanosleep(&ts, NULL);
    }
}

static int s_run_count(zkit_publisher_t *pub, const s_options_t *o)
{
    size_t capacity = o->size_set ? o->size : 64;
    char *body = malloc(capacity + 64);
    if (!body)
        return ZKIT_EXIT_FAILURE;
    int64_t start = zclock_usecs();
    uint64_t seq0 = s_last_seq(pub);
    for (uint64_t i = 0; i < o->count && !zkit__device_stopping(); i++) {
        int n = snprintf(body, capacity + 64, "%s %" PRIu64, o->topic, seq0 + i + 1);
        size_t size = (size_t) n;
        if (o->size_set) {
            if (size < o->size)
                memset(body + size, '.', o->size - size);
            size = o->size;
        }
        if (o->rate)
            s_pace(o->rate, start, i);
        if ((i & 1023) == 0)
            zkit__device_reload_pending();
        if (s_publish(pub, o->topic, body, size) == -1)
            break;
    }
    free(body);
    return ZKIT_EXIT_OK;
}

static int s_run_stdin(zkit_publisher_t *pub, const s_options_t *o)
{
    char topic[ZKIT_TOPIC_MAX + 1];
    snprintf(topic, sizeof topic, "%s", o->topic);
    char *line = NULL;
    size_t capacity = 0;
    int rc = ZKIT_EXIT_OK;
    while (!zkit__device_stopping()) {
        errno = 0;
        ssize_t n = getline(&line, &capacity, stdin);
        if (n == -1) {
            if (errno == EINTR) {
                clearerr(stdin);
                zkit__device_reload_pending();
                continue;
            }
            break;
        }
        if (n > 0 && line[n - 1] == '\n')
            line[--n] = '\0';
        if (!strncmp(line, "#sync", 5) && (line[5] == ' ' || line[5] == '\0')) {
            fprintf(stderr, "zkit publisher: sync %s last-seq=%" PRIu64 "\n",
                    line[5] ? line + 6 : "", s_last_seq(pub));
            fflush(stderr);
        }
        else if (!strcmp(line, "#wait")) {
            if (zkit_publisher_wait_subscriber(pub, topic, -1) == -1)
                break;
        }
        else if (!strncmp(line, "#topic ", 7) && strlen(line + 7) <= ZKIT_TOPIC_MAX)
            snprintf(topic, sizeof topic, "%s", line + 7);
        else if (s_publish(pub, topic, line, (size_t) n) == -1) {
            rc = ZKIT_EXIT_FAILURE;
            break;
        }
    }
    free(line);
    return rc;
}

static void s_print_stats(zkit_publisher_t *pub)
{
    zkit_publisher_stats_t s;
    if (zkit_publisher_stats(pub, &s) == -1)
        return;
    fprintf(stderr,
            "zkit publisher: stats published=%" PRIu64 " bytes=%" PRIu64 " last_seq=%" PRIu64
            " replay_first=%" PRIu64 " replay_count=%" PRIu64 " replay_evicted=%" PRIu64
            " fetches=%" PRIu64 " replayed=%" PRIu64 " replay_failed=%" PRIu64 " snapshots=%" PRIu64
            " lvc_topics=%" PRIu64 " subscribe=%" PRIu64 " unsubscribe=%" PRIu64 " bad=%" PRIu64
            " bad_subscriptions=%" PRIu64 "\n",
            s.published, s.bytes, s.last_seq, s.replay_first, s.replay_count, s.replay_evicted,
            s.fetches, s.replayed, s.replay_failed, s.snapshots, s.lvc_topics, s.subscribe,
            s.unsubscribe, s.bad, s.bad_subscriptions);
    fflush(stderr);
}

int zkit_cmd_publisher(int argc, char **argv)
{
    s_options_t o;
    memset(&o, 0, sizeof o);
    o.pub = (zkit_publisher_opts_t) ZKIT_PUBLISHER_OPTS_DEFAULT;
    o.pub.name = "zkit-publisher";
    o.pub.on_subscription = s_on_subscription;
    o.topic = "zkit";
    o.wait_timeout_ms = -1;
    int rc = s_parse(&o, argc, argv);
    if (rc >= 0)
        return rc;
    zkit__device_catch_signals();
    zkit_publisher_t *pub = zkit_publisher_new(&o.pub);
    if (!pub) {
        fprintf(stderr, "zkit publisher: cannot start: %s\n", zkit_strerror(errno));
        return ZKIT_EXIT_FAILURE;
    }
    if (zkit_publisher_endpoint(pub))
        fprintf(stderr, "zkit publisher: bound %s\n", zkit_publisher_endpoint(pub));
    if (zkit_publisher_replay_endpoint(pub))
        fprintf(stderr, "zkit publisher: replay %s\n", zkit_publisher_replay_endpoint(pub));
    if (zkit_publisher_control(pub))
        fprintf(stderr, "zkit publisher: control %s\n", zkit_publisher_control(pub));
    fprintf(stderr, "zkit publisher: name %s epoch %" PRIu64 "\n", zkit_publisher_name(pub),
            zkit_publisher_epoch(pub));
    fflush(stderr);

    rc = ZKIT_EXIT_OK;
    if (o.wait_subscriber && zkit_publisher_wait_subscriber(pub, o.topic, o.wait_timeout_ms)) {
        fprintf(stderr, "zkit publisher: no subscriber to '%s': %s\n", o.topic,
                zkit_strerror(errno));
        rc = ZKIT_EXIT_FAILURE;
    }
    if (rc == ZKIT_EXIT_OK)
        rc = o.from_stdin ? s_run_stdin(pub, &o) : s_run_count(pub, &o);
    fprintf(stderr, "zkit publisher: sent last-seq=%" PRIu64 "\n", s_last_seq(pub));
    fflush(stderr);
    while (o.hold && rc == ZKIT_EXIT_OK && !zkit__device_stopping()) {
        zclock_sleep(50);
        zkit__device_reload_pending();
    }
    s_print_stats(pub);
    zkit_publisher_destroy(&pub);
    return rc;
}
