/*  cat_options.c: the options of `zkit cat` (see cat_options.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "cat_options.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "core/ops.h"
#include "zkit_cli.h"

#define S_PUB_LINGER_MS 2000

static const char s_usage_text[] =
    "usage: zkit cat SOCKET (--bind EP | --connect EP)... [OPTIONS]\n"
    "\n"
    "Sends and receives zkit messages on one ZeroMQ socket, for debugging. Every\n"
    "message travels in a zkit envelope (a MessagePack array [version, id, seq,\n"
    "ts, body, meta]) unless --raw is given.\n"
    "\n"
    "SOCKET, exactly one:\n"
    "  --push            send; exits once every message is handed to a peer\n"
    "  --pull            receive and print\n"
    "  --pub             send [topic][envelope] (see --topic)\n"
    "  --sub             receive [topic][envelope]; see --subscribe\n"
    "  --req             send each message, wait for its reply, print the reply\n"
    "  --rep             receive, print, reply with --data, or echo the body in a\n"
    "                    new envelope whose meta corr is the request id (a bad\n"
    "                    request gets an empty body and a header 'error')\n"
    "  --dealer          send like --push (if given --data/--file) and print what\n"
    "                    arrives\n"
    "  --router          receive and print (with the peer's routing id); reply\n"
    "                    with --data if given\n"
    "\n"
    "endpoints (repeatable, each may be a comma-separated list):\n"
    "  -b, --bind EP     bind, e.g. tcp://127.0.0.1:* for an ephemeral port; each\n"
    "                    bind prints 'zkit cat: bound ENDPOINT' on stderr with the\n"
    "                    port resolved, before anything is sent or received\n"
    "  -c, --connect EP  connect\n"
    "\n"
    "what to send:\n"
    "  -d, --data STR    the body. Sent once; --count N times; with --interval\n"
    "                    and no --count, until interrupted\n"
    "  -f, --file PATH   one message per line, newline stripped ('-' = stdin),\n"
    "                    up to --count lines\n"
    "  -n, --count N     messages to send, or valid messages to receive before\n"
    "                    exiting 0 (req: round trips; rep/router: requests\n"
    "                    served; dealer: N sent and N received)\n"
    "  -i, --interval MS wait between sends\n"
    "      --delay MS    wait before the first send\n"
    "      --topic T     meta topic; pub also sends it as the topic frame (an\n"
    "                    empty topic frame without --topic)\n"
    "      --src NAME    meta src (default cat-PID)\n"
    "      --hdr KEY=VAL a user header (repeatable)\n"
    "      --ct TYPE     meta ct, the body's content type\n"
    "      --ttl MS      meta ttl\n"
    "\n"
    "what to receive:\n"
    "      --subscribe PREFIX  sub: topic prefix (repeatable; none = everything)\n"
    "  -t, --timeout MS  give up after MS without progress: a receiver with no\n"
    "                    --count exits 0, one short of --count exits 1 with\n"
    "                    'timeout: received K of N'; a sender that cannot hand a\n"
    "                    message to a peer exits 1; req waits MS for each reply.\n"
    "                    Also the linger at exit (see below)\n"
    "      --format F    how received messages are printed:\n"
    "                    json     one object per line (default): v, id (hex), seq,\n"
    "                             ts, the meta keys present (src, ttl, att, topic,\n"
    "                             batch, reply, corr, ct, hdr), \"unknown\" (meta\n"
    "                             keys this version does not define), \"extra\"\n"
    "                             (array elements past the meta), frame_topic (sub),\n"
    "                             peer (router, hex), then body, or body_base64\n"
    "                             when the body is not UTF-8. Binary values print\n"
    "                             as {\"base64\": \"...\"}\n"
    "                    raw      the body, then a newline\n"
    "                    hex      the whole envelope frame in hex, one line\n"
    "                    msgpack  the envelope frames back to back: a MessagePack\n"
    "                             stream\n"
    "      --max-size BYTES  largest frame accepted (default 16 MiB)\n"
    "\n"
    "other:\n"
    "      --raw         plain frames, for peers that do not speak zkit: --data\n"
    "                    goes out as is (pub: [topic][data] with --topic, else\n"
    "                    [data]); received frames are printed undecoded (json:\n"
    "                    {\"frames\": [...]}; raw: each frame then a newline; hex:\n"
    "                    frames separated by spaces; msgpack: frames back to back)\n"
    "  -q, --quiet       no 'bound' lines and no per-frame 'bad frame' lines (a\n"
    "                    count at exit instead)\n"
    "  -h, --help        this text\n"
    "\n"
    "reliable mode, with the spool device (docs/spool-protocol.md):\n"
    "      --reliable    --push: a DEALER that sends each message as PUT to the\n"
    "                    device's --in and waits for its CONFIRMED; unconfirmed\n"
    "                    ones are sent again, same id, after --resend. Exits 0\n"
    "                    once every message is confirmed; 1 with 'timeout:\n"
    "                    confirmed K of N' after --timeout without progress, or\n"
    "                    'R of N messages rejected' when the device refused some\n"
    "                    (each REJECTED reason is printed).\n"
    "                    --pull: a DEALER that says READY with a credit of\n"
    "                    --window to the device's --out, prints each DELIVER and\n"
    "                    ACKs it once printed and flushed; --count N exits after N\n"
    "                    messages, --timeout MS after MS without one (0 when no\n"
    "                    --count was given). Delivery is at-least-once: after a\n"
    "                    crash a message may be printed twice (same id)\n"
    "      --window N    push: PUTs unconfirmed at once (default 1000); pull: the\n"
    "                    credit, messages held at once (default 100, max 10000)\n"
    "      --resend MS   push: resend a PUT unconfirmed for MS (default 2000)\n"
    "\n"
    "security (docs/security.md): the socket is a CURVE client when it connects,\n"
    "a CURVE server when it binds (then not both --bind and --connect):\n"
    "      --curve-secret FILE  this side's certificate (zkit keygen)\n"
    "      --curve-server FILE  connect: the server's public certificate\n"
    "      --curve-allow DIR    bind: allowed public certificates ('*': any key)\n"
    "      --ip-allow LIST      bind: only these addresses may connect\n"
    "      --ip-deny LIST       bind: refuse these addresses\n"
    "\n"
    "A frame that is not a valid envelope is reported on stderr as\n"
    "'zkit cat: bad frame (N bytes): REASON: DETAIL' and skipped; after 100 such\n"
    "lines only a count is printed at exit. --count counts valid messages only.\n"
    "\n"
    "Delivery: czmq drops unsent messages when a socket closes; zkit cat does not.\n"
    "A sender exits only after its queued messages have left, waiting up to\n"
    "--timeout (forever without it; pub: 2 s), so a push started before its peer\n"
    "binds still delivers everything. SIGINT or SIGTERM stops at once and drops\n"
    "what is still queued.\n"
    "\n"
    "Slow joiners: a pub sends to the subscribers connected and subscribed at\n"
    "that moment; subscriptions take a few milliseconds to propagate after a\n"
    "connect, and messages sent before that are lost. Use --delay MS, or repeat\n"
    "with --interval, when the first messages matter.\n"
    "\n"
    "Exit status: 0 done, 1 the work failed (timeout, endpoint, I/O), 2 usage.\n"
    "\n"
    "examples:\n"
    "  zkit cat --pull --bind tcp://127.0.0.1:5555 --count 1\n"
    "  zkit cat --push --connect tcp://127.0.0.1:5555 --data hello\n"
    "  zkit cat --sub --connect tcp://127.0.0.1:5556 --subscribe news --format raw\n"
    "  seq 10 | zkit cat --push --connect tcp://127.0.0.1:5555 --file -\n"
    "  seq 10 | zkit cat --push --reliable --connect tcp://127.0.0.1:5570 --file -\n";

enum {
    S_OPT_PUSH = 256,
    S_OPT_PULL,
    S_OPT_PUB,
    S_OPT_SUB,
    S_OPT_REQ,
    S_OPT_REP,
    S_OPT_DEALER,
    S_OPT_ROUTER,
    S_OPT_TOPIC,
    S_OPT_SUBSCRIBE,
    S_OPT_RAW,
    S_OPT_FORMAT,
    S_OPT_SRC,
    S_OPT_DELAY,
    S_OPT_HDR,
    S_OPT_CT,
    S_OPT_TTL,
    S_OPT_MAX_SIZE,
    S_OPT_RELIABLE,
    S_OPT_WINDOW,
    S_OPT_RESEND,
    S_OPT_CURVE_SECRET,
    S_OPT_CURVE_SERVER,
    S_OPT_CURVE_ALLOW,
    S_OPT_IP_ALLOW,
    S_OPT_IP_DENY
};

static const struct option s_long_options[] = {
    {"curve-secret", required_argument, NULL, S_OPT_CURVE_SECRET},
    {"curve-server", required_argument, NULL, S_OPT_CURVE_SERVER},
    {"curve-allow", required_argument, NULL, S_OPT_CURVE_ALLOW},
    {"ip-allow", required_argument, NULL, S_OPT_IP_ALLOW},
    {"ip-deny", required_argument, NULL, S_OPT_IP_DENY},
    {"push", no_argument, NULL, S_OPT_PUSH},
    {"pull", no_argument, NULL, S_OPT_PULL},
    {"pub", no_argument, NULL, S_OPT_PUB},
    {"sub", no_argument, NULL, S_OPT_SUB},
    {"req", no_argument, NULL, S_OPT_REQ},
    {"rep", no_argument, NULL, S_OPT_REP},
    {"dealer", no_argument, NULL, S_OPT_DEALER},
    {"router", no_argument, NULL, S_OPT_ROUTER},
    {"bind", required_argument, NULL, 'b'},
    {"connect", required_argument, NULL, 'c'},
    {"data", required_argument, NULL, 'd'},
    {"file", required_argument, NULL, 'f'},
    {"count", required_argument, NULL, 'n'},
    {"interval", required_argument, NULL, 'i'},
    {"timeout", required_argument, NULL, 't'},
    {"topic", required_argument, NULL, S_OPT_TOPIC},
    {"subscribe", required_argument, NULL, S_OPT_SUBSCRIBE},
    {"raw", no_argument, NULL, S_OPT_RAW},
    {"format", required_argument, NULL, S_OPT_FORMAT},
    {"src", required_argument, NULL, S_OPT_SRC},
    {"delay", required_argument, NULL, S_OPT_DELAY},
    {"hdr", required_argument, NULL, S_OPT_HDR},
    {"ct", required_argument, NULL, S_OPT_CT},
    {"ttl", required_argument, NULL, S_OPT_TTL},
    {"max-size", required_argument, NULL, S_OPT_MAX_SIZE},
    {"reliable", no_argument, NULL, S_OPT_RELIABLE},
    {"window", required_argument, NULL, S_OPT_WINDOW},
    {"resend", required_argument, NULL, S_OPT_RESEND},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static const struct {
    int option;
    int type;
    const char *name;
} s_types[] = {
    {S_OPT_PUSH, ZMQ_PUSH, "--push"},       {S_OPT_PULL, ZMQ_PULL, "--pull"},
    {S_OPT_PUB, ZMQ_PUB, "--pub"},          {S_OPT_SUB, ZMQ_SUB, "--sub"},
    {S_OPT_REQ, ZMQ_REQ, "--req"},          {S_OPT_REP, ZMQ_REP, "--rep"},
    {S_OPT_DEALER, ZMQ_DEALER, "--dealer"}, {S_OPT_ROUTER, ZMQ_ROUTER, "--router"},
};

static const char *s_type_option(int type)
{
    for (size_t i = 0; i < sizeof s_types / sizeof s_types[0]; i++)
        if (s_types[i].type == type)
            return s_types[i].name;
    return "?";
}

static int s_usage_error(const char *format, const char *arg)
{
    fprintf(stderr, "zkit cat: ");
    fprintf(stderr, format, arg);
    fprintf(stderr, " (see 'zkit cat --help')\n");
    return ZKIT_EXIT_USAGE;
}

/*  Parses a decimal unsigned integer in [min, max]: digits only, no sign,
    no spaces, nothing after. Returns 0 or -1.                               */
static int s_parse_uint(const char *text, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!text || *text < '0' || *text > '9')
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int s_parse_ms(const char *text, int *out)
{
    uint64_t v;
    if (s_parse_uint(text, 0, INT_MAX, &v) == -1)
        return -1;
    *out = (int) v;
    return 0;
}

/*  Appends to an array of elements of size `size`. Returns 0 or -1.         */
static int s_push(void *array_p, size_t *count, size_t size, const void *element)
{
    void **array = array_p;
    void *grown = realloc(*array, (*count + 1) * size);
    if (!grown)
        return -1;
    memcpy((char *) grown + *count * size, element, size);
    *array = grown;
    (*count)++;
    return 0;
}

/*  Checks the combination of options. Returns 0 or a usage exit code.       */
static int s_check(const zkit__cat_options_t *o, bool src_given)
{
    const char *name = s_type_option(o->type);
    bool sender =
        o->type == ZMQ_PUSH || o->type == ZMQ_PUB || o->type == ZMQ_REQ || o->type == ZMQ_DEALER;
    if (!o->type)
        return s_usage_error("choose a socket type: --push, --pull, --pub, --sub, --req, "
                             "--rep, --dealer or --router%s",
                             "");
    if (o->endpoint_count == 0)
        return s_usage_error("give at least one --bind or --connect endpoint%s", "");
    if (o->data && o->file)
        return s_usage_error("--data and --file exclude each other%s", "");
    if (!sender && o->file)
        return s_usage_error("%s does not send: --file needs --push, --pub, --req or --dealer",
                             name);
    if ((o->type == ZMQ_PULL || o->type == ZMQ_SUB) && o->data)
        return s_usage_error("%s does not send: --data needs a sending socket", name);
    if ((o->type == ZMQ_PUSH || o->type == ZMQ_PUB || o->type == ZMQ_REQ) && !o->data && !o->file)
        return s_usage_error("%s needs --data or --file", name);
    if (o->subscribe_count && o->type != ZMQ_SUB)
        return s_usage_error("--subscribe needs --sub, not %s", name);
    if (o->raw && (o->header_count || o->ct || o->has_ttl || src_given))
        return s_usage_error("--hdr, --ct, --ttl and --src need envelopes, not --raw%s", "");
    bool binds = false, connects = false;
    for (size_t i = 0; i < o->endpoint_count; i++)
        *(o->endpoints[i].bind ? &binds : &connects) = true;
    bool secured = o->security.curve_secret || o->security.curve_server ||
                   o->security.curve_allow || o->security.ip_allow || o->security.ip_deny;
    if (secured && binds && connects)
        return s_usage_error("a secured socket either binds or connects: one socket cannot be "
                             "a CURVE server and a client%s",
                             "");
    if (o->reliable && o->type != ZMQ_PUSH && o->type != ZMQ_PULL)
        return s_usage_error("--reliable needs --push or --pull, not %s", name);
    if (o->reliable && o->raw)
        return s_usage_error("--reliable speaks envelopes: not with --raw%s", "");
    if (!o->reliable && (o->window || o->resend_ms))
        return s_usage_error("--window and --resend need --reliable%s", "");
    if (o->type == ZMQ_PULL && o->window > 10000)
        return s_usage_error("--pull --reliable: --window is at most 10000%s", "");
    return 0;
}

int zkit__cat_options_parse(zkit__cat_options_t *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->interval_ms = -1;
    o->timeout_ms = -1;
    o->format = ZKIT__CAT_FORMAT_JSON;
    snprintf(o->src_default, sizeof o->src_default, "cat-%ld", (long) getpid());
    o->src = o->src_default;
    bool src_given = false;

    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":b:c:d:f:n:i:t:qh", s_long_options, NULL)) != -1) {
        const char *arg = optarg;
        switch (c) {
        case S_OPT_PUSH:
        case S_OPT_PULL:
        case S_OPT_PUB:
        case S_OPT_SUB:
        case S_OPT_REQ:
        case S_OPT_REP:
        case S_OPT_DEALER:
        case S_OPT_ROUTER:
            for (size_t i = 0; i < sizeof s_types / sizeof s_types[0]; i++) {
                if (s_types[i].option != c)
                    continue;
                if (o->type && o->type != s_types[i].type) {
                    fprintf(stderr,
                            "zkit cat: choose one socket type, not both %s and %s "
                            "(see 'zkit cat --help')\n",
                            s_type_option(o->type), s_types[i].name);
                    return ZKIT_EXIT_USAGE;
                }
                o->type = s_types[i].type;
            }
            break;
        case 'b':
        case 'c': {
            if (!*arg)
                return s_usage_error("empty endpoint for %s", c == 'b' ? "--bind" : "--connect");
            zkit__cat_endpoint_t ep = {arg, c == 'b'};
            if (s_push(&o->endpoints, &o->endpoint_count, sizeof ep, &ep) == -1)
                goto oom;
            break;
        }
        case 'd': o->data = arg; break;
        case 'f': o->file = arg; break;
        case 'n':
            if (s_parse_uint(arg, 1, UINT64_MAX, &o->count) == -1)
                return s_usage_error("--count wants a positive integer, not '%s'", arg);
            o->has_count = true;
            break;
        case 'i':
            if (s_parse_ms(arg, &o->interval_ms) == -1)
                return s_usage_error("--interval wants milliseconds, not '%s'", arg);
            break;
        case 't':
            if (s_parse_ms(arg, &o->timeout_ms) == -1)
                return s_usage_error("--timeout wants milliseconds, not '%s'", arg);
            break;
        case S_OPT_DELAY:
            if (s_parse_ms(arg, &o->delay_ms) == -1)
                return s_usage_error("--delay wants milliseconds, not '%s'", arg);
            break;
        case S_OPT_TTL:
            if (s_parse_uint(arg, 0, UINT64_MAX, &o->ttl_ms) == -1)
                return s_usage_error("--ttl wants milliseconds, not '%s'", arg);
            o->has_ttl = true;
            break;
        case S_OPT_MAX_SIZE: {
            uint64_t v;
            if (s_parse_uint(arg, 1, (uint64_t) 1 << 31, &v) == -1)
                return s_usage_error("--max-size wants a byte count up to 2^31, not '%s'", arg);
            o->max_size = (int64_t) v;
            break;
        }
        case S_OPT_RELIABLE: o->reliable = true; break;
        case S_OPT_WINDOW: {
            uint64_t v;
            if (s_parse_uint(arg, 1, 1000000, &v) == -1)
                return s_usage_error("--window wants a number from 1 to 1000000, not '%s'", arg);
            o->window = (uint32_t) v;
            break;
        }
        case S_OPT_RESEND:
            if (s_parse_ms(arg, &o->resend_ms) == -1 || o->resend_ms == 0)
                return s_usage_error("--resend wants milliseconds (1 or more), not '%s'", arg);
            break;
        case S_OPT_TOPIC: o->topic = arg; break;
        case S_OPT_SUBSCRIBE:
            if (s_push(&o->subscribe, &o->subscribe_count, sizeof arg, &arg) == -1)
                goto oom;
            break;
        case S_OPT_RAW: o->raw = true; break;
        case S_OPT_FORMAT:
            if (!strcmp(arg, "json"))
                o->format = ZKIT__CAT_FORMAT_JSON;
            else if (!strcmp(arg, "raw"))
                o->format = ZKIT__CAT_FORMAT_RAW;
            else if (!strcmp(arg, "hex"))
                o->format = ZKIT__CAT_FORMAT_HEX;
            else if (!strcmp(arg, "msgpack"))
                o->format = ZKIT__CAT_FORMAT_MSGPACK;
            else
                return s_usage_error("--format is json, raw, hex or msgpack, not '%s'", arg);
            break;
        case S_OPT_SRC:
            o->src = arg;
            src_given = true;
            break;
        case S_OPT_HDR: {
            const char *eq = strchr(arg, '=');
            if (!eq || eq == arg)
                return s_usage_error("--hdr wants KEY=VALUE, not '%s'", arg);
            zkit__cat_header_t h = {strdup(arg), NULL};
            if (!h.key)
                goto oom;
            h.key[eq - arg] = '\0';
            h.value = h.key + (eq - arg) + 1;
            if (s_push(&o->headers, &o->header_count, sizeof h, &h) == -1) {
                free(h.key);
                goto oom;
            }
            break;
        }
        case S_OPT_CT: o->ct = arg; break;
        case S_OPT_CURVE_SECRET: o->security.curve_secret = arg; break;
        case S_OPT_CURVE_SERVER: o->security.curve_server = arg; break;
        case S_OPT_CURVE_ALLOW: o->security.curve_allow = arg; break;
        case S_OPT_IP_ALLOW: o->security.ip_allow = arg; break;
        case S_OPT_IP_DENY: o->security.ip_deny = arg; break;
        case 'q': o->quiet = true; break;
        case 'h': fputs(s_usage_text, stdout); return ZKIT_EXIT_OK;
        case ':': return s_usage_error("%s needs a value", argv[optind - 1]);
        default:
            if (optopt && optopt < 256) {
                char shortopt[3] = {'-', (char) optopt, '\0'};
                return s_usage_error("unknown option '%s'", shortopt);
            }
            return s_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return s_usage_error("unexpected argument '%s'", argv[optind]);
    int rc = s_check(o, src_given);
    return rc ? rc : -1;

oom:
    fprintf(stderr, "zkit cat: out of memory\n");
    return ZKIT_EXIT_FAILURE;
}

void zkit__cat_options_free(zkit__cat_options_t *o)
{
    for (size_t i = 0; i < o->header_count; i++)
        free(o->headers[i].key);
    free(o->headers);
    free(o->endpoints);
    free(o->subscribe);
    zkit__ops_destroy(&o->ops);
    o->headers = NULL;
    o->endpoints = NULL;
    o->subscribe = NULL;
    o->header_count = o->endpoint_count = o->subscribe_count = 0;
}

int zkit__cat_linger(const zkit__cat_options_t *o)
{
    if (o->timeout_ms >= 0)
        return o->timeout_ms;
    return o->type == ZMQ_PUB ? S_PUB_LINGER_MS : -1;
}
