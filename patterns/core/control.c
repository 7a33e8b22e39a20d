/*  control.c: the control endpoint (see control.h and
    docs/control-protocol.md).

    Requests arrive on a ROUTER as [routing id, envelope..., command]. The
    envelope is everything up to and including the first empty frame (what a
    REQ socket, or a DEALER imitating one, puts in front); a DEALER that sends
    no delimiter gets its reply without one. The reply goes back with the same
    routing id and envelope, so REQ and DEALER clients both work.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "core/control.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/ratelimit.h"
#include "core/security.h"
#include "core/socket.h"
#include "zkit_library.h"

/* A request larger than this is not a control request: libzmq drops the
   connection of a peer that sends one (ZMQ_MAXMSGSIZE), before we see it. */
#define S_MAX_FRAME_SIZE 4096
/* The longest command frame (word, space, arguments) we interpret.       */
#define S_MAX_COMMAND 255
/* Frames of one request kept: routing id, an envelope of up to 6 frames
   (a REQ's delimiter included), the command.                            */
#define S_MAX_FRAMES 8
/* Frames of an over-long message thrown away per handle() call, so a peer
   sending a million empty frames costs us bounded work per call.       */
#define S_DISCARD_BATCH 256
/* Messages one zloop wake-up handles before the loop looks at its timers. */
#define S_ZLOOP_BATCH 32
/* Room for the callback's reply text.                                   */
#define S_REPLY_MAX 256

/* What the endpoint counts, as the label values of control_requests.    */
typedef enum {
    S_KIND_STATS,
    S_KIND_PING,
    S_KIND_PAUSE,
    S_KIND_RESUME,
    S_KIND_OTHER,
    S_KIND_MALFORMED,
    S_KIND_COUNT_
} s_kind_t;

static const char *const s_kind_names[S_KIND_COUNT_] = {"stats",  "ping",  "pause",
                                                        "resume", "other", "malformed"};

struct zkit__control_t {
    zsock_t *sock;
    void *handle;
    char endpoint[256];
    zkit__control_stats_fn *stats_fn;
    zkit__control_command_fn *command_fn;
    void *arg;
    zkit__stats_t *stats;
    int64_t started_us; /* zclock_usecs(): monotonic */
    uint64_t requests[S_KIND_COUNT_];
    uint64_t replies_dropped;
    bool discarding;           /* inside a message with too many frames */
    zkit__ratelimit_t bad_log; /* ZKIT-CONTROL-BAD-REQUEST: any peer can trigger it */
};

zkit__control_t *zkit__control_new(const zkit__control_opts_t *opts)
{
    if (!opts || !opts->endpoint || !*opts->endpoint) {
        errno = EINVAL;
        return NULL;
    }
    zkit__control_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    int err = 0;
    self->stats = zkit__stats_new(opts->component, opts->name);
    if (!self->stats) {
        err = errno;
        zsys_error("ZKIT-CONTROL-OPTIONS: component '%s' or name is not valid",
                   opts->component ? opts->component : "(null)");
        goto fail;
    }
    /* Linger 0 on purpose: a reply to a monitoring query is worthless once
       the component is gone, and a vanished monitor must not delay exit. */
    zkit__socket_opts_t sock_opts = ZKIT__SOCKET_OPTS_DEFAULT;
    sock_opts.linger_ms = 0;
    sock_opts.sndhwm = 64;
    sock_opts.rcvhwm = 64;
    sock_opts.maxmsgsize = S_MAX_FRAME_SIZE;
    self->sock = zkit__socket_new(ZMQ_ROUTER, &sock_opts);
    if (!self->sock) {
        err = errno;
        goto fail;
    }
    self->handle = zsock_resolve(self->sock);
    /* Mandatory routing: a reply to a peer that left fails at once
       (EHOSTUNREACH) instead of vanishing, so it is counted.               */
    zsock_set_router_mandatory(self->sock, 1);
    if (opts->security && zkit__security_apply_server(opts->security, self->sock) == -1) {
        err = errno;
        goto fail;
    }
    if (zkit__socket_attach(self->sock, opts->endpoint, true) == -1) {
        err = errno;
        goto fail;
    }
    if (zkit__socket_last_endpoint(self->sock, self->endpoint, sizeof self->endpoint) == -1)
        snprintf(self->endpoint, sizeof self->endpoint, "%s", opts->endpoint);
    self->stats_fn = opts->stats_fn;
    self->command_fn = opts->command_fn;
    self->arg = opts->arg;
    self->started_us = zclock_usecs();
    return self;

fail:
    zkit__control_destroy(&self);
    errno = err ? err : EINVAL;
    return NULL;
}

void zkit__control_destroy(zkit__control_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zkit__control_t *self = *self_p;
    zkit__socket_close(&self->sock, 0);
    zkit__stats_destroy(&self->stats);
    free(self);
    *self_p = NULL;
}

zkit__control_result_t zkit__control_pause_resume(const char *command, const char *args,
                                                  char *reply, size_t reply_size, bool *paused,
                                                  const char *who, const char *what)
{
    bool pause = strcmp(command, "PAUSE") == 0;
    if (!pause && strcmp(command, "RESUME") != 0)
        return ZKIT__CONTROL_UNKNOWN;
    if (args && *args) {
        snprintf(reply, reply_size, "%s takes no argument", command);
        return ZKIT__CONTROL_ERROR;
    }
    if (*paused != pause) {
        if (pause)
            zsys_notice("ZKIT-CONTROL-PAUSED %s: %s paused until RESUME", who, what);
        else
            zsys_notice("ZKIT-CONTROL-RESUMED %s: %s resumed", who, what);
    }
    *paused = pause;
    snprintf(reply, reply_size, "OK %s", pause ? "paused" : "resumed");
    return ZKIT__CONTROL_OK;
}

zsock_t *zkit__control_socket(zkit__control_t *self)
{
    return self->sock;
}

const char *zkit__control_endpoint(zkit__control_t *self)
{
    return self->endpoint;
}

uint64_t zkit__control_requests(const zkit__control_t *self)
{
    uint64_t total = 0;
    for (int k = 0; k < S_KIND_COUNT_; k++)
        total += self->requests[k];
    return total;
}

uint64_t zkit__control_bad_requests(const zkit__control_t *self)
{
    return self->requests[S_KIND_MALFORMED];
}

/*  Counts a malformed request and logs it, at most once a second.        */
static void s_bad_request(zkit__control_t *self, const char *why)
{
    self->requests[S_KIND_MALFORMED]++;
    uint64_t suppressed;
    if (zkit__ratelimit(&self->bad_log, zclock_mono(), &suppressed))
        zsys_warning("ZKIT-CONTROL-BAD-REQUEST: %s on %s (%" PRIu64
                     " since the last report, %" PRIu64 " in all)",
                     why, self->endpoint, suppressed + 1, self->requests[S_KIND_MALFORMED]);
}

/*  Throws away up to S_DISCARD_BATCH frames of the message being discarded.
    Returns 0, or -1 when the socket failed.                                 */
static int s_discard(zkit__control_t *self)
{
    for (int n = 0; n < S_DISCARD_BATCH && self->discarding; n++) {
        zmq_msg_t frame;
        zmq_msg_init(&frame);
        if (zmq_msg_recv(&frame, self->handle, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close(&frame);
            if (errno == EAGAIN)
                return 0; /* not expected: the rest of a message arrives at once */
            return -1;
        }
        self->discarding = zmq_msg_more(&frame);
        zmq_msg_close(&frame);
    }
    return 0;
}

/*  Sends one frame (a copy of a received one when copy is set).           */
static int s_send_frame(void *handle, zmq_msg_t *copy, const void *data, size_t size, int flags)
{
    zmq_msg_t frame;
    int rc;
    if (copy) {
        zmq_msg_init(&frame);
        rc = zmq_msg_copy(&frame, copy);
    }
    else {
        rc = zmq_msg_init_size(&frame, size);
        if (rc == 0 && size)
            memcpy(zmq_msg_data(&frame), data, size);
    }
    if (rc == 0)
        rc = zmq_msg_send(&frame, handle, flags | ZMQ_DONTWAIT);
    if (rc == -1) {
        int err = errno;
        zmq_msg_close(&frame);
        errno = err;
        return -1;
    }
    return 0;
}

/*  Sends [routing id, envelope frames, body] without blocking. A peer that
    is gone or not reading loses the reply, which is counted.             */
static void s_reply(zkit__control_t *self, zmq_msg_t *frames, size_t envelope_end, const void *body,
                    size_t size)
{
    for (size_t i = 0; i < envelope_end; i++)
        if (s_send_frame(self->handle, &frames[i], NULL, 0, ZMQ_SNDMORE) == -1) {
            /* Only the first frame can fail for want of room or a peer; a
               later failure would need a broken context. Either way the
               message is incomplete and libzmq discards it. */
            self->replies_dropped++;
            return;
        }
    if (s_send_frame(self->handle, NULL, body, size, 0) == -1)
        self->replies_dropped++;
}

static void s_reply_text(zkit__control_t *self, zmq_msg_t *frames, size_t envelope_end,
                         const char *text)
{
    s_reply(self, frames, envelope_end, text, strlen(text));
}

/*  The endpoint's own counters, after the component's.                   */
static void s_own_stats(zkit__control_t *self)
{
    for (int k = 0; k < S_KIND_COUNT_; k++)
        zkit__stats_counter1(self->stats, "control_requests", "command", s_kind_names[k],
                             self->requests[k]);
    zkit__stats_help(self->stats, "control_requests",
                     "Requests received on the control endpoint, by command");
    zkit__stats_counter(self->stats, "control_replies_dropped", self->replies_dropped);
    zkit__stats_help(self->stats, "control_replies_dropped",
                     "Control replies dropped because the peer was gone or not reading");
}

static void s_stats(zkit__control_t *self, zmq_msg_t *frames, size_t envelope_end)
{
    zkit__stats_reset(self->stats);
    int64_t uptime = zclock_usecs() - self->started_us;
    zkit__stats_set_times(self->stats, uptime > 0 ? (uint64_t) uptime : 0, zkit_clock_usec());
    if (self->stats_fn)
        self->stats_fn(self->stats, self->arg);
    s_own_stats(self);
    uint8_t *data = NULL;
    size_t size = 0;
    if (zkit__stats_encode(self->stats, &data, &size) == -1) {
        s_reply_text(self, frames, envelope_end, "ERROR out of memory");
        return;
    }
    s_reply(self, frames, envelope_end, data, size);
    free(data);
}

/*  The command word is upper-case letters, digits and '_', starting with a
    letter; what follows one space is the argument text.                   */
static bool s_command_word(const char *text, size_t size)
{
    if (size == 0 || !(text[0] >= 'A' && text[0] <= 'Z'))
        return false;
    for (size_t i = 1; i < size; i++) {
        char c = text[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

static void s_command(zkit__control_t *self, zmq_msg_t *frames, size_t envelope_end,
                      zmq_msg_t *command)
{
    size_t size = zmq_msg_size(command);
    const char *data = zmq_msg_data(command);
    if (size == 0 || size > S_MAX_COMMAND) {
        s_bad_request(self, size ? "command too long" : "empty command");
        s_reply_text(self, frames, envelope_end, "ERROR malformed request");
        return;
    }
    for (size_t i = 0; i < size; i++)
        if ((unsigned char) data[i] < 0x20 || (unsigned char) data[i] > 0x7e) {
            s_bad_request(self, "command is not printable ASCII");
            s_reply_text(self, frames, envelope_end, "ERROR malformed request");
            return;
        }
    char text[S_MAX_COMMAND + 1];
    memcpy(text, data, size);
    text[size] = '\0';
    /* "STATS" and "PING" take no arguments: "PING x" and even "PING " are
       other commands, for the component to know or refuse. */
    char *args = strchr(text, ' ');
    bool bare = args == NULL;
    size_t word = args ? (size_t) (args - text) : size;
    if (args)
        *args++ = '\0';
    else
        args = text + size;

    if (!s_command_word(text, word)) {
        self->requests[S_KIND_OTHER]++;
        s_reply_text(self, frames, envelope_end, "ERROR unknown command");
        return;
    }
    if (bare && !strcmp(text, "STATS")) {
        self->requests[S_KIND_STATS]++;
        s_stats(self, frames, envelope_end);
        return;
    }
    if (bare && !strcmp(text, "PING")) {
        self->requests[S_KIND_PING]++;
        s_reply_text(self, frames, envelope_end, "PONG");
        return;
    }
    bool pause = !strcmp(text, "PAUSE"), resume = !strcmp(text, "RESUME");
    self->requests[pause ? S_KIND_PAUSE : resume ? S_KIND_RESUME : S_KIND_OTHER]++;
    zkit__control_result_t result =
        pause || resume ? ZKIT__CONTROL_UNSUPPORTED : ZKIT__CONTROL_UNKNOWN;
    char reply[S_REPLY_MAX] = "";
    if (self->command_fn)
        result = self->command_fn(text, args, reply, sizeof reply, self->arg);
    reply[sizeof reply - 1] = '\0';
    /* The callback's text goes on the wire: keep it printable. */
    for (char *p = reply; *p; p++)
        if ((unsigned char) *p < 0x20 || (unsigned char) *p > 0x7e)
            *p = '?';
    char line[S_REPLY_MAX + 16];
    switch (result) {
    case ZKIT__CONTROL_OK: s_reply_text(self, frames, envelope_end, *reply ? reply : "OK"); break;
    case ZKIT__CONTROL_ERROR:
        snprintf(line, sizeof line, "ERROR %s", *reply ? reply : "failed");
        s_reply_text(self, frames, envelope_end, line);
        break;
    case ZKIT__CONTROL_UNSUPPORTED:
        s_reply_text(self, frames, envelope_end, "ERROR not supported");
        break;
    default: s_reply_text(self, frames, envelope_end, "ERROR unknown command"); break;
    }
}

int zkit__control_handle(zkit__control_t *self)
{
    if (self->discarding)
        return s_discard(self) == -1 ? -1 : 1;

    zmq_msg_t frames[S_MAX_FRAMES];
    size_t count = 0;
    bool more = true;
    while (more) {
        zmq_msg_t *frame = &frames[count];
        zmq_msg_init(frame);
        if (zmq_msg_recv(frame, self->handle, ZMQ_DONTWAIT) == -1) {
            int err = errno;
            zmq_msg_close(frame);
            for (size_t i = 0; i < count; i++)
                zmq_msg_close(&frames[i]);
            if (err == EAGAIN && count == 0)
                return 0;
            errno = err;
            return err == EAGAIN ? 1 : -1;
        }
        more = zmq_msg_more(frame);
        count++;
        if (more && count == S_MAX_FRAMES) {
            /* Too many frames to be a request: drop it, without a reply
               (its envelope cannot be trusted), a batch at a time.       */
            for (size_t i = 0; i < count; i++)
                zmq_msg_close(&frames[i]);
            s_bad_request(self, "too many frames");
            self->discarding = true;
            return s_discard(self) == -1 ? -1 : 1;
        }
    }

    /* frames[0] is the routing id. The envelope ends after the first empty
       frame; without one, there is no envelope.                           */
    size_t envelope_end = 1;
    for (size_t i = 1; i < count; i++)
        if (zmq_msg_size(&frames[i]) == 0) {
            envelope_end = i + 1;
            break;
        }
    if (count - envelope_end != 1) {
        s_bad_request(self, count == envelope_end ? "no command frame" : "too many frames");
        s_reply_text(self, frames, envelope_end, "ERROR malformed request");
    }
    else
        s_command(self, frames, envelope_end, &frames[envelope_end]);
    for (size_t i = 0; i < count; i++)
        zmq_msg_close(&frames[i]);
    return 1;
}

int zkit__control_zloop_reader(zloop_t *loop, zsock_t *sock, void *arg)
{
    (void) loop;
    (void) sock;
    zkit__control_t *self = arg;
    for (int n = 0; n < S_ZLOOP_BATCH; n++) {
        int rc = zkit__control_handle(self);
        if (rc == 0)
            break;
        if (rc == -1)
            return errno == ETERM ? -1 : 0;
    }
    return 0;
}
