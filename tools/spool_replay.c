/*  spool_replay.c: `zkit spool replay`, stored envelopes to an endpoint.

    Opens the spool read-only (a live device's directory is fine), reads the
    records from a seq or a time, and sends each one's bytes, the envelope
    frame as it was stored, on a PUSH socket. Acknowledged records still on
    disk are included unless --unacked is given; bad records are skipped (a
    reader never returns one). Nothing on disk changes: replay never acks.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <czmq.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "zkit.h"
#include "core/socket.h"
#include "device_common.h"
#include "spool_cli.h"
#include "zkit_cli.h"

#define S_CMD "spool replay"

static const char s_usage_text[] =
    "usage: zkit spool replay DIR --to EP [OPTIONS]\n"
    "\n"
    "Sends the envelopes stored in the spool in DIR, in seq order, as one-frame\n"
    "messages on a PUSH socket connected to EP (bound with --bind). Read-only:\n"
    "the spool is not changed and nothing is acknowledged, so replay is safe on\n"
    "a running device's directory. Bad records are skipped, never sent.\n"
    "\n"
    "options:\n"
    "      --to EP        where to send (connect; comma-separated list allowed)\n"
    "      --bind         bind EP instead of connecting (prints 'zkit spool: bound EP')\n"
    "      --from SEQ     start at this seq (default: the oldest record on disk)\n"
    "      --since TIME   start at the first record stored at or after TIME:\n"
    "                     RFC 3339 (2025-11-22T10:00:00Z) or Unix seconds\n"
    "      --unacked      only records not yet acknowledged\n"
    "  -n, --count N      send at most N records\n"
    "  -t, --timeout MS   give up when a record cannot be handed to a peer for MS,\n"
    "                     and give queued records MS to leave at the end (default:\n"
    "                     wait forever)\n"
    "  -q, --quiet        no summary line\n"
    "  -h, --help         this text\n"
    "\n"
    "At the end it prints 'zkit spool replay: sent N records (seq A-B)' on stderr.\n"
    "Exit status: 0 done, 1 failed (timeout, I/O), 2 usage.\n";

enum { S_OPT_TO = 256, S_OPT_BIND, S_OPT_FROM, S_OPT_SINCE, S_OPT_UNACKED };

static const struct option s_long_options[] = {
    {"to", required_argument, NULL, S_OPT_TO},
    {"bind", no_argument, NULL, S_OPT_BIND},
    {"from", required_argument, NULL, S_OPT_FROM},
    {"since", required_argument, NULL, S_OPT_SINCE},
    {"unacked", no_argument, NULL, S_OPT_UNACKED},
    {"count", required_argument, NULL, 'n'},
    {"timeout", required_argument, NULL, 't'},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

typedef struct {
    const char *dir, *to;
    bool bind, unacked, quiet, has_since;
    uint64_t from, since, count;
    int timeout_ms;
} s_opts_t;

static int s_parse(s_opts_t *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->from = 1;
    o->count = UINT64_MAX;
    o->timeout_ms = -1;
    uint64_t v;
    opterr = 0;
    optind = 1;
    int c;
    bool from_given = false;
    while ((c = getopt_long(argc, argv, ":n:t:qh", s_long_options, NULL)) != -1) {
        switch (c) {
        case S_OPT_TO: o->to = optarg; break;
        case S_OPT_BIND: o->bind = true; break;
        case S_OPT_FROM:
            if (zkit__device_parse_uint(optarg, 1, UINT64_MAX, &o->from))
                return zkit__device_usage_error(S_CMD, "--from wants a seq (1 or more), not '%s'",
                                                optarg);
            from_given = true;
            break;
        case S_OPT_SINCE:
            if (zkit__spool_parse_time(optarg, &o->since))
                return zkit__device_usage_error(
                    S_CMD, "--since wants RFC 3339 or Unix seconds, not '%s'", optarg);
            o->has_since = true;
            break;
        case S_OPT_UNACKED: o->unacked = true; break;
        case 'n':
            if (zkit__device_parse_uint(optarg, 1, UINT64_MAX, &o->count))
                return zkit__device_usage_error(S_CMD, "--count wants a positive number, not '%s'",
                                                optarg);
            break;
        case 't':
            if (zkit__device_parse_uint(optarg, 0, INT32_MAX, &v))
                return zkit__device_usage_error(S_CMD, "--timeout wants milliseconds, not '%s'",
                                                optarg);
            o->timeout_ms = (int) v;
            break;
        case 'q': o->quiet = true; break;
        case 'h': fputs(s_usage_text, stdout); return ZKIT_EXIT_OK;
        default: return zkit__device_getopt_error(S_CMD, c, argv);
        }
    }
    if (optind < argc)
        o->dir = argv[optind++];
    if (optind < argc)
        return zkit__device_usage_error(S_CMD, "unexpected argument '%s'", argv[optind]);
    if (!o->dir || !*o->dir)
        return zkit__device_usage_error(S_CMD, "which directory?");
    if (!o->to || !*o->to)
        return zkit__device_usage_error(S_CMD, "--to is required");
    if (from_given && o->has_since)
        return zkit__device_usage_error(S_CMD, "--from and --since exclude each other");
    return -1;
}

/* Sends one frame, waiting at most timeout_ms (-1: forever) for a peer to
   take it. Returns 0, or -1 with errno (EAGAIN: timed out).                */
static int s_send(void *handle, const void *data, size_t size, int timeout_ms)
{
    int64_t deadline = timeout_ms >= 0 ? zclock_mono() + timeout_ms : 0;
    for (;;) {
        if (zmq_send(handle, data, size, ZMQ_DONTWAIT) >= 0)
            return 0;
        if (errno != EAGAIN && errno != EINTR)
            return -1;
        if (zkit__device_stopping()) {
            errno = EINTR;
            return -1;
        }
        long wait = 200;
        if (timeout_ms >= 0) {
            int64_t left = deadline - zclock_mono();
            if (left <= 0) {
                errno = EAGAIN;
                return -1;
            }
            if (left < wait)
                wait = (long) left;
        }
        zmq_pollitem_t item = {handle, 0, ZMQ_POLLOUT, 0};
        zmq_poll(&item, 1, wait);
    }
}

int zkit__spool_replay(int argc, char **argv)
{
    s_opts_t o;
    int rc = s_parse(&o, argc, argv);
    if (rc != -1)
        return rc;
    zkit__device_catch_signals();
    zsys_set_logstream(stderr);
    zkit_spool_opts_t sopts = ZKIT_SPOOL_OPTS_DEFAULT;
    sopts.read_only = true;
    zkit_spool_t *spool = zkit_spool_new(o.dir, &sopts);
    if (!spool) {
        fprintf(stderr, "zkit spool replay: cannot open the spool in %s: %s\n", o.dir,
                zkit_strerror(errno));
        return ZKIT_EXIT_FAILURE;
    }
    zkit_spool_reader_t *reader =
        zkit_spool_reader_new(spool, o.from, o.unacked ? ZKIT_SPOOL_READ_UNACKED : 0);
    zkit__socket_opts_t skopts = ZKIT__SOCKET_OPTS_DEFAULT;
    skopts.linger_ms = o.timeout_ms;
    zsock_t *sock = zkit__socket_new(ZMQ_PUSH, &skopts);
    rc = ZKIT_EXIT_FAILURE;
    uint64_t sent = 0, first = 0, last = 0;
    if (!reader || !sock) {
        fprintf(stderr, "zkit spool replay: %s\n", zkit_strerror(errno));
        goto done;
    }
    if (o.has_since && zkit_spool_reader_seek_time(reader, o.since)) {
        fprintf(stderr, "zkit spool replay: cannot read %s: %s\n", o.dir, zkit_strerror(errno));
        goto done;
    }
    if (zkit__socket_attach(sock, o.to, o.bind)) {
        fprintf(stderr, "zkit spool replay: cannot %s %s: %s\n", o.bind ? "bind" : "connect", o.to,
                zmq_strerror(errno));
        goto done;
    }
    if (o.bind) {
        char ep[256];
        if (zkit__socket_last_endpoint(sock, ep, sizeof ep) == 0)
            fprintf(stderr, "zkit spool: bound %s\n", ep);
        fflush(stderr);
    }
    void *handle = zsock_resolve(sock);
    zkit_spool_record_t rec;
    int r = 0;
    while (sent < o.count && !zkit__device_stopping() &&
           (r = zkit_spool_reader_next(reader, &rec)) == 1) {
        if (s_send(handle, rec.data, rec.size, o.timeout_ms)) {
            if (errno == EAGAIN)
                fprintf(stderr, "zkit spool replay: timeout: no peer took seq %" PRIu64 "\n",
                        rec.seq);
            else if (errno != EINTR)
                fprintf(stderr, "zkit spool replay: send: %s\n", zmq_strerror(errno));
            goto done;
        }
        if (!sent)
            first = rec.seq;
        last = rec.seq;
        sent++;
    }
    if (r < 0) {
        fprintf(stderr, "zkit spool replay: cannot read %s: %s\n", o.dir, zkit_strerror(errno));
        goto done;
    }
    rc = zkit__device_stopping() ? ZKIT_EXIT_FAILURE : ZKIT_EXIT_OK;
done:
    if (!o.quiet) {
        if (sent)
            fprintf(stderr,
                    "zkit spool replay: sent %" PRIu64 " records (seq %" PRIu64 "-%" PRIu64 ")\n",
                    sent, first, last);
        else
            fprintf(stderr, "zkit spool replay: sent 0 records\n");
    }
    /* What was handed to the socket gets the linger to leave (forever
       without --timeout); a failed run drops it.                           */
    zkit__socket_close(&sock, rc == ZKIT_EXIT_OK ? ZKIT__LINGER_KEEP : 0);
    zkit_spool_reader_destroy(&reader);
    zkit_spool_destroy(&spool);
    return rc;
}
