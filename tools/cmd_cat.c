/*  cmd_cat.c: `zkit cat`, send and receive messages on any socket type.

    A debugging tool in the spirit of nngcat: one socket, bound and connected
    where asked, sending --data or --file lines in envelopes (or as plain
    frames with --raw) and printing what arrives as JSON, raw bodies, hex or
    a MessagePack stream. Option parsing and the help text live in
    cat_options.c; printing in cat_format.c.

    One loop drives every socket type: it sends the next message when one is
    due and the socket can take it, receives whatever is waiting, and stops
    when the sends are done and the receive target is met, on --timeout, or
    on SIGINT/SIGTERM.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "zkit.h"
#include "core/ops.h"
#include "core/socket.h"
#include "cat_format.h"
#include "cat_options.h"
#include "zkit_cli.h"

/* Bad frames reported one line each up to this many, then only counted.      */
#define S_BAD_FRAME_LINES 100
/* Frames of one message kept; more than this make the message bad.          */
#define S_MAX_FRAMES 64
/* Messages handled per wake-up before the loop looks at its timers again.   */
#define S_RECV_BATCH 256

typedef struct {
    zmq_msg_t frames[S_MAX_FRAMES];
    size_t count; /* frames held in frames[] */
    size_t total; /* frames received, those beyond S_MAX_FRAMES included */
    size_t bytes; /* bytes received in all frames */
} s_message_t;

typedef struct {
    const zkit__cat_options_t *opt;
    zsock_t *sock;
    void *handle;
    zkit_envelope_t *in;    /* what arrives                       */
    zkit_envelope_t *out;   /* what this process sends            */
    zkit_envelope_t *reply; /* what rep and router answer with    */
    zkit__cat_buf_t line;   /* one output record                  */
    s_message_t msg;

    /* sending */
    bool sending;
    bool sends_done;
    uint64_t sent;
    uint64_t send_target; /* UINT64_MAX: until killed or end of file */
    int64_t next_send_at; /* zclock_mono ms */
    FILE *file;
    char *file_line;
    size_t file_line_capacity;
    bool have_pending;
    const char *pending;
    size_t pending_size;

    /* receiving */
    bool receiving;
    bool awaiting; /* req: a request is out, its reply is not yet in */
    uint64_t received;
    uint64_t recv_target; /* 0: no target */
    uint64_t reply_seq;
    uint64_t bad_frames;
    uint64_t bad_replies;
} s_cat_t;

/* Longest poll between two looks at the stop flag, in ms. */
#define S_SIGNAL_TICK_MS 100

static volatile sig_atomic_t s_interrupted = 0;

static void s_on_signal(int signum)
{
    (void) signum;
    s_interrupted = 1;
}

/*  Our own handler, installed after czmq's (which zsys_init sets up): no
    SA_RESTART, so a blocking read of stdin returns EINTR and the loop sees
    the flag.                                                                 */
static void s_catch_signals(void)
{
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = s_on_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
}

static bool s_stopping(void)
{
    return s_interrupted || zsys_interrupted;
}

/* ---- messages ------------------------------------------------------------------ */

static void s_message_close(s_message_t *msg)
{
    for (size_t i = 0; i < msg->count; i++)
        zmq_msg_close(&msg->frames[i]);
    msg->count = 0;
    msg->total = 0;
    msg->bytes = 0;
}

/*  Receives one whole message without waiting. Returns 0, or -1 with errno
    (EAGAIN when nothing is waiting).                                         */
static int s_message_recv(s_message_t *msg, void *handle)
{
    int flags = ZMQ_DONTWAIT;
    while (true) {
        zmq_msg_t frame;
        zmq_msg_init(&frame);
        if (zmq_msg_recv(&frame, handle, flags) == -1) {
            int err = errno;
            zmq_msg_close(&frame);
            if (msg->total == 0) {
                errno = err;
                return -1;
            }
            /* The rest of a multipart message is always there at once; only
               an interrupted call lands here. Try again, blocking. */
            if (err == EINTR && !s_stopping()) {
                flags = 0;
                continue;
            }
            errno = err;
            return -1;
        }
        flags = 0;
        msg->total++;
        msg->bytes += zmq_msg_size(&frame);
        bool more = zmq_msg_more(&frame);
        if (msg->count < S_MAX_FRAMES)
            msg->frames[msg->count++] = frame;
        else
            zmq_msg_close(&frame);
        if (!more)
            return 0;
    }
}

/*  Sends size bytes as one frame. Returns 0, or -1 with errno.               */
static int s_send_bytes(void *handle, const void *data, size_t size, int flags)
{
    zmq_msg_t frame;
    if (zmq_msg_init_size(&frame, size) == -1)
        return -1;
    if (size)
        memcpy(zmq_msg_data(&frame), data, size);
    if (zmq_msg_send(&frame, handle, flags) == -1) {
        int err = errno;
        zmq_msg_close(&frame);
        errno = err;
        return -1;
    }
    return 0;
}

/*  Sends a copy of a received frame (routing ids, delimiters, echoed data). */
static int s_send_copy(void *handle, zmq_msg_t *source, int flags)
{
    zmq_msg_t frame;
    zmq_msg_init(&frame);
    if (zmq_msg_copy(&frame, source) == -1 || zmq_msg_send(&frame, handle, flags) == -1) {
        int err = errno;
        zmq_msg_close(&frame);
        errno = err;
        return -1;
    }
    return 0;
}

static int s_send_envelope(void *handle, const zkit_envelope_t *env, int flags)
{
    zmq_msg_t frame;
    if (zkit_envelope_encode(env, &frame) == -1)
        return -1;
    if (zmq_msg_send(&frame, handle, flags) == -1) {
        int err = errno;
        zmq_msg_close(&frame);
        errno = err;
        return -1;
    }
    return 0;
}

/* ---- output -------------------------------------------------------------------- */

/*  Writes the record in cat->line to stdout and flushes it. Returns 0 or -1. */
static int s_flush_line(s_cat_t *cat)
{
    if (cat->line.failed) {
        fprintf(stderr, "zkit cat: out of memory formatting a message\n");
        return -1;
    }
    if ((cat->line.size && fwrite(cat->line.data, 1, cat->line.size, stdout) != cat->line.size) ||
        fflush(stdout) == EOF) {
        fprintf(stderr, "zkit cat: cannot write output: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

static void s_report_bad(s_cat_t *cat, size_t bytes, int err, const char *detail)
{
    cat->bad_frames++;
    if (cat->opt->quiet || cat->bad_frames > S_BAD_FRAME_LINES)
        return;
    fprintf(stderr, "zkit cat: bad frame (%zu bytes): %s: %s\n", bytes, zkit_strerror(err), detail);
}

/*  Prints a decoded envelope (in cat->in); frame is the frame it came from. */
static int s_print_envelope(s_cat_t *cat, zmq_msg_t *frame, const zkit__cat_context_t *ctx)
{
    zkit__cat_buf_clear(&cat->line);
    zkit__cat_format_envelope(&cat->line, cat->opt->format, cat->in, zmq_msg_data(frame),
                              zmq_msg_size(frame), ctx);
    return s_flush_line(cat);
}

/*  Prints the frames of a message received with --raw.                      */
static int s_print_frames(s_cat_t *cat, zmq_msg_t *frames, size_t count,
                          const zkit__cat_context_t *ctx)
{
    zkit__cat_buf_clear(&cat->line);
    zkit__cat_frame_t views[S_MAX_FRAMES];
    for (size_t i = 0; i < count && i < S_MAX_FRAMES; i++) {
        views[i].data = zmq_msg_data(&frames[i]);
        views[i].size = zmq_msg_size(&frames[i]);
    }
    zkit__cat_format_frames(&cat->line, cat->opt->format, views, count, ctx);
    return s_flush_line(cat);
}

/* ---- sending ------------------------------------------------------------------- */

/*  Sets the meta this process puts on everything it sends.                  */
static int s_apply_meta(const zkit__cat_options_t *opt, zkit_envelope_t *env)
{
    if (zkit_envelope_set_src(env, opt->src) == -1)
        return -1;
    if (opt->topic && zkit_envelope_set_topic(env, opt->topic) == -1)
        return -1;
    if (opt->ct && zkit_envelope_set_ct(env, opt->ct) == -1)
        return -1;
    if (opt->has_ttl)
        zkit_envelope_set_ttl(env, opt->ttl_ms);
    for (size_t i = 0; i < opt->header_count; i++)
        if (zkit_envelope_set_header_str(env, opt->headers[i].key, opt->headers[i].value) == -1)
            return -1;
    return 0;
}

/*  Loads the next message body into cat->pending. Returns 1 when one is
    there, 0 at the end of the file (sends are then done), -1 on error.     */
static int s_load_pending(s_cat_t *cat)
{
    if (cat->have_pending)
        return 1;
    if (!cat->file) {
        cat->pending = cat->opt->data;
        cat->pending_size = strlen(cat->opt->data);
        cat->have_pending = true;
        return 1;
    }
    errno = 0;
    ssize_t n = getline(&cat->file_line, &cat->file_line_capacity, cat->file);
    if (n < 0) {
        if (ferror(cat->file)) {
            if (errno == EINTR && s_stopping())
                return 0;
            fprintf(stderr, "zkit cat: cannot read %s: %s\n", cat->opt->file,
                    strerror(errno ? errno : EIO));
            return -1;
        }
        cat->sends_done = true;
        return 0;
    }
    if (n > 0 && cat->file_line[n - 1] == '\n')
        n--;
    cat->pending = cat->file_line;
    cat->pending_size = (size_t) n;
    cat->have_pending = true;
    return 1;
}

/*  Sends the pending body. Returns 0 when sent, 1 when the socket could not
    take it now (try again later), -1 on error.                               */
static int s_send_pending(s_cat_t *cat)
{
    const zkit__cat_options_t *opt = cat->opt;
    bool topic_frame = opt->type == ZMQ_PUB && (!opt->raw || opt->topic);
    int flags = ZMQ_DONTWAIT;
    if (topic_frame) {
        const char *topic = opt->topic ? opt->topic : "";
        if (s_send_bytes(cat->handle, topic, strlen(topic), ZMQ_SNDMORE | flags) == -1)
            return errno == EAGAIN ? 1 : -1;
        flags = 0; /* the rest of a multipart message always goes */
    }
    int rc;
    if (opt->raw)
        rc = s_send_bytes(cat->handle, cat->pending, cat->pending_size, flags);
    else {
        uint8_t id[ZKIT_ID_SIZE];
        zkit_id_generate(id);
        zkit_envelope_set_id(cat->out, id);
        zkit_envelope_set_seq(cat->out, cat->sent + 1);
        zkit_envelope_set_ts(cat->out, zkit_clock_usec());
        zkit_envelope_set_body_ref(cat->out, cat->pending, cat->pending_size);
        rc = s_send_envelope(cat->handle, cat->out, flags);
    }
    if (rc == -1)
        return errno == EAGAIN && !topic_frame ? 1 : -1;
    cat->sent++;
    if (cat->file)
        cat->have_pending = false;
    if (cat->sent >= cat->send_target)
        cat->sends_done = true;
    return 0;
}

/* ---- receiving ----------------------------------------------------------------- */

/*  Answers a request on rep or router: the prefix frames (routing id,
    delimiter) go first, then --data, or an echo of the payload. The reply
    envelope's corr is the request's id. Returns 0 or -1 with errno.         */
static int s_send_reply(s_cat_t *cat, zmq_msg_t *prefix, size_t prefix_count, zmq_msg_t *payload,
                        size_t payload_count)
{
    const zkit__cat_options_t *opt = cat->opt;
    for (size_t i = 0; i < prefix_count; i++)
        if (s_send_copy(cat->handle, &prefix[i], ZMQ_SNDMORE) == -1)
            return -1;
    if (opt->raw) {
        if (opt->data)
            return s_send_bytes(cat->handle, opt->data, strlen(opt->data), 0);
        for (size_t i = 0; i < payload_count; i++) {
            int more = i + 1 < payload_count ? ZMQ_SNDMORE : 0;
            if (s_send_copy(cat->handle, &payload[i], more) == -1)
                return -1;
        }
        return payload_count ? 0 : s_send_bytes(cat->handle, "", 0, 0);
    }
    uint8_t id[ZKIT_ID_SIZE];
    zkit_id_generate(id);
    zkit_envelope_set_id(cat->reply, id);
    zkit_envelope_set_seq(cat->reply, ++cat->reply_seq);
    zkit_envelope_set_ts(cat->reply, zkit_clock_usec());
    if (zkit_envelope_set_corr(cat->reply, zkit_envelope_id(cat->in), ZKIT_ID_SIZE) == -1)
        return -1;
    if (opt->data)
        zkit_envelope_set_body_ref(cat->reply, opt->data, strlen(opt->data));
    else {
        size_t size;
        const void *body = zkit_envelope_body(cat->in, &size);
        zkit_envelope_set_body_ref(cat->reply, body, size);
    }
    return s_send_envelope(cat->handle, cat->reply, 0);
}

/*  REP must answer before it can receive again: a bad request gets an
    envelope with an empty body and a header "error" saying what was wrong.
    Returns 0 or -1 with errno.                                              */
static int s_send_error_reply(s_cat_t *cat, int err)
{
    zkit_envelope_t *env = zkit_envelope_new();
    if (!env) {
        errno = ENOMEM;
        return -1;
    }
    char text[160];
    snprintf(text, sizeof text, "bad request: %s", zkit_strerror(err));
    int rc = -1;
    if (s_apply_meta(cat->opt, env) == 0 && zkit_envelope_set_header_str(env, "error", text) == 0) {
        zkit_envelope_set_seq(env, ++cat->reply_seq);
        rc = s_send_envelope(cat->handle, env, 0);
    }
    int saved = errno;
    zkit_envelope_destroy(&env);
    errno = saved;
    return rc;
}

/*  Handles one received message. Returns 0, or -1 on a failure that ends the
    run (output or reply could not be written).                              */
static int s_handle_message(s_cat_t *cat)
{
    const zkit__cat_options_t *opt = cat->opt;
    s_message_t *msg = &cat->msg;
    zmq_msg_t *frames = msg->frames;
    size_t count = msg->count;
    zkit__cat_context_t ctx = {0};
    size_t prefix = 0; /* routing frames before the payload */

    if (opt->type == ZMQ_ROUTER && count > 0) {
        ctx.peer = zmq_msg_data(&frames[0]);
        ctx.peer_size = zmq_msg_size(&frames[0]);
        prefix = 1;
    }
    /* A REQ peer (of router) or a REP peer (of dealer) adds an empty delimiter. */
    if ((opt->type == ZMQ_ROUTER || opt->type == ZMQ_DEALER) && count >= prefix + 2 &&
        zmq_msg_size(&frames[prefix]) == 0)
        prefix++;

    bool overflow = msg->total > count;
    bool valid = false;
    int err = 0;
    int rc = 0;
    if (opt->raw) {
        if (overflow) {
            err = ZKIT_EFRAMES;
            s_report_bad(cat, msg->bytes, err, "more frames than zkit cat keeps");
        }
        else {
            valid = true;
            rc = s_print_frames(cat, frames + prefix, count - prefix, &ctx);
        }
    }
    else {
        size_t want = opt->type == ZMQ_SUB ? 2 : 1;
        if (overflow || count - prefix != want) {
            err = ZKIT_EFRAMES;
            char detail[96];
            snprintf(detail, sizeof detail, "expected %s, got %zu frame%s",
                     want == 2 ? "[topic][envelope]" : "[envelope]", msg->total - prefix,
                     msg->total - prefix == 1 ? "" : "s");
            s_report_bad(cat, msg->bytes, err, detail);
        }
        else {
            zmq_msg_t *frame = &frames[count - 1];
            if (want == 2) {
                ctx.frame_topic = zmq_msg_data(&frames[prefix]);
                ctx.frame_topic_size = zmq_msg_size(&frames[prefix]);
            }
            size_t size = zmq_msg_size(frame);
            if (zkit_envelope_decode_bytes(cat->in, zmq_msg_data(frame), size) == -1) {
                err = errno;
                s_report_bad(cat, size, err, zkit_envelope_error_detail(cat->in));
            }
            else {
                valid = true;
                rc = s_print_envelope(cat, frame, &ctx);
            }
        }
    }
    if (rc == -1)
        return -1;

    if (valid)
        cat->received++;
    if (opt->type == ZMQ_REQ) {
        cat->awaiting = false;
        if (!valid)
            cat->bad_replies++;
    }
    if (opt->type == ZMQ_REP || (opt->type == ZMQ_ROUTER && opt->data && valid)) {
        rc = valid ? s_send_reply(cat, frames, prefix, frames + prefix, count - prefix)
                   : s_send_error_reply(cat, err);
        if (rc == -1) {
            fprintf(stderr, "zkit cat: cannot send reply: %s\n", zkit_strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* ---- the loop ------------------------------------------------------------------ */

static bool s_finished(const s_cat_t *cat)
{
    if (cat->sending && !cat->sends_done)
        return false;
    if (!cat->receiving)
        return true;
    if (cat->opt->type == ZMQ_REQ)
        return !cat->awaiting;
    return cat->recv_target && cat->received >= cat->recv_target;
}

static void s_print_target(const char *what, uint64_t done, uint64_t target)
{
    if (target && target != UINT64_MAX)
        fprintf(stderr, "zkit cat: timeout: %s %" PRIu64 " of %" PRIu64 "\n", what, done, target);
    else
        fprintf(stderr, "zkit cat: timeout: %s %" PRIu64 "\n", what, done);
}

/*  Runs until done. Returns an exit code.                                    */
static int s_run(s_cat_t *cat)
{
    const zkit__cat_options_t *opt = cat->opt;
    int64_t last_activity = zclock_mono();
    while (!s_stopping()) {
        if (s_finished(cat))
            return ZKIT_EXIT_OK;
        int64_t now = zclock_mono();
        bool may_send = cat->sending && !cat->sends_done && !cat->awaiting;
        bool due = may_send && now >= cat->next_send_at;
        if (due) {
            int loaded = s_load_pending(cat);
            if (loaded == -1)
                return ZKIT_EXIT_FAILURE;
            if (loaded == 0)
                continue; /* end of input, or interrupted */
        }
        /* What the timeout watches: a send the socket does not take, a reply
           a request waits for, or messages once all sends are out. */
        bool waiting =
            due || (cat->receiving && (opt->type == ZMQ_REQ ? cat->awaiting : !may_send));
        if (!waiting)
            last_activity = now;
        long timeout = -1;
        if (may_send && !due)
            timeout = (long) (cat->next_send_at - now);
        if (waiting && opt->timeout_ms >= 0) {
            int64_t left = last_activity + opt->timeout_ms - now;
            if (left <= 0) {
                if (due) {
                    s_print_target("sent", cat->sent, cat->send_target);
                    return ZKIT_EXIT_FAILURE;
                }
                if (opt->type == ZMQ_REQ) {
                    uint64_t expected =
                        cat->send_target != UINT64_MAX ? cat->send_target : cat->sent;
                    s_print_target("received", cat->received, expected);
                    return ZKIT_EXIT_FAILURE;
                }
                if (cat->recv_target) {
                    s_print_target("received", cat->received, cat->recv_target);
                    return ZKIT_EXIT_FAILURE;
                }
                return ZKIT_EXIT_OK;
            }
            if (timeout < 0 || left < timeout)
                timeout = (long) left;
        }
        /* A signal that lands between the s_stopping() check above and the
           poll below would not interrupt it: never block longer than a tick,
           so the flag is seen again. */
        if (timeout < 0 || timeout > S_SIGNAL_TICK_MS)
            timeout = S_SIGNAL_TICK_MS;
        bool want_in = cat->receiving && (opt->type != ZMQ_REQ || cat->awaiting);
        zmq_pollitem_t item = {cat->handle, 0,
                               (short) ((want_in ? ZMQ_POLLIN : 0) | (due ? ZMQ_POLLOUT : 0)), 0};
        int rc = zmq_poll(&item, 1, timeout);
        if (rc == -1) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "zkit cat: poll: %s\n", zmq_strerror(errno));
            return ZKIT_EXIT_FAILURE;
        }
        if (item.revents & ZMQ_POLLIN) {
            for (int i = 0; i < S_RECV_BATCH && !s_finished(cat) && !s_stopping(); i++) {
                if (opt->type == ZMQ_REQ && !cat->awaiting)
                    break;
                if (s_message_recv(&cat->msg, cat->handle) == -1) {
                    if (errno == EAGAIN || errno == EINTR)
                        break;
                    fprintf(stderr, "zkit cat: receive: %s\n", zmq_strerror(errno));
                    s_message_close(&cat->msg);
                    return ZKIT_EXIT_FAILURE;
                }
                last_activity = zclock_mono();
                rc = s_handle_message(cat);
                s_message_close(&cat->msg);
                if (rc == -1)
                    return ZKIT_EXIT_FAILURE;
            }
        }
        if (due && (item.revents & ZMQ_POLLOUT)) {
            rc = s_send_pending(cat);
            if (rc == -1) {
                if (errno == EINTR)
                    continue;
                fprintf(stderr, "zkit cat: send: %s\n", zkit_strerror(errno));
                return ZKIT_EXIT_FAILURE;
            }
            if (rc == 0) {
                last_activity = now = zclock_mono();
                cat->next_send_at = now + (opt->interval_ms > 0 ? opt->interval_ms : 0);
                if (opt->type == ZMQ_REQ)
                    cat->awaiting = true;
            }
        }
    }
    return ZKIT_EXIT_OK;
}

/* ---- setup --------------------------------------------------------------------- */

/*  Binds or connects every endpoint of a comma-separated list. A bind prints
    the resolved endpoint (ephemeral port filled in) on stderr.             */
static int s_attach(s_cat_t *cat, const char *list, bool bind)
{
    char *copy = strdup(list);
    if (!copy) {
        fprintf(stderr, "zkit cat: out of memory\n");
        return -1;
    }
    int rc = 0;
    char *save = NULL;
    for (char *ep = strtok_r(copy, ",", &save); ep; ep = strtok_r(NULL, ",", &save)) {
        /* libzmq itself, not zsock_bind: "tcp://host:*" then gets a port from
           the kernel's ephemeral range instead of czmq's sequential scan
           from 49152, so concurrent runs do not crowd onto the same ports. */
        int r = zkit__ops_secure(cat->opt->ops, cat->sock, bind);
        if (r == 0)
            r = bind ? zmq_bind(cat->handle, ep) : zmq_connect(cat->handle, ep);
        if (r == -1) {
            fprintf(stderr, "zkit cat: cannot %s %s: %s\n", bind ? "bind" : "connect", ep,
                    zmq_strerror(errno));
            rc = -1;
            break;
        }
        if (bind && !cat->opt->quiet) {
            char *resolved = zsock_last_endpoint(cat->sock);
            fprintf(stderr, "zkit cat: bound %s\n", resolved ? resolved : ep);
            free(resolved);
        }
    }
    free(copy);
    return rc;
}

static int s_setup(s_cat_t *cat)
{
    const zkit__cat_options_t *opt = cat->opt;
    int type = opt->type;
    cat->sending = opt->data && type != ZMQ_REP && type != ZMQ_ROUTER;
    cat->sending = cat->sending || opt->file;
    cat->receiving = type != ZMQ_PUSH && type != ZMQ_PUB;
    if (opt->file)
        cat->send_target = opt->has_count ? opt->count : UINT64_MAX;
    else if (cat->sending)
        cat->send_target = opt->has_count ? opt->count : opt->interval_ms >= 0 ? UINT64_MAX : 1;
    if (type != ZMQ_REQ && opt->has_count)
        cat->recv_target = opt->count;
    cat->next_send_at = zclock_mono() + opt->delay_ms;

    if (opt->file) {
        cat->file = strcmp(opt->file, "-") ? fopen(opt->file, "rb") : stdin;
        if (!cat->file) {
            fprintf(stderr, "zkit cat: cannot open %s: %s\n", opt->file, strerror(errno));
            return -1;
        }
    }

    zkit_envelope_limits_t limits = ZKIT_ENVELOPE_LIMITS_DEFAULT;
    if (opt->max_size > 0)
        limits.max_frame = (size_t) opt->max_size;
    cat->in = zkit_envelope_new();
    cat->out = zkit_envelope_new();
    cat->reply = zkit_envelope_new();
    if (!cat->in || !cat->out || !cat->reply || s_apply_meta(opt, cat->out) == -1 ||
        s_apply_meta(opt, cat->reply) == -1) {
        fprintf(stderr, "zkit cat: out of memory\n");
        return -1;
    }
    zkit_envelope_set_limits(cat->in, &limits);

    /* czmq installs its own SIGINT/SIGTERM handler in zsys_init; ours goes
       on top of it so blocking reads are interrupted too. */
    zsys_init();
    s_catch_signals();

    zkit__socket_opts_t sopts = ZKIT__SOCKET_OPTS_DEFAULT;
    sopts.linger_ms = zkit__cat_linger(opt);
    if (opt->max_size > 0)
        sopts.maxmsgsize = opt->max_size + (type == ZMQ_SUB ? 64 * 1024 : 0);
    cat->sock = zkit__socket_new(type, &sopts);
    if (!cat->sock) {
        fprintf(stderr, "zkit cat: cannot create %s socket: %s\n", zkit__socket_type_name(type),
                zmq_strerror(errno));
        return -1;
    }
    cat->handle = zsock_resolve(cat->sock);
    if (type == ZMQ_SUB) {
        if (opt->subscribe_count == 0)
            zsock_set_subscribe(cat->sock, "");
        for (size_t i = 0; i < opt->subscribe_count; i++)
            zsock_set_subscribe(cat->sock, opt->subscribe[i]);
    }
    for (size_t i = 0; i < opt->endpoint_count; i++)
        if (opt->endpoints[i].bind && s_attach(cat, opt->endpoints[i].endpoint, true) == -1)
            return -1;
    for (size_t i = 0; i < opt->endpoint_count; i++)
        if (!opt->endpoints[i].bind && s_attach(cat, opt->endpoints[i].endpoint, false) == -1)
            return -1;
    return 0;
}

int zkit_cmd_cat(int argc, char **argv)
{
    zkit__cat_options_t opt;
    int rc = zkit__cat_options_parse(&opt, argc, argv);
    if (rc >= 0) { /* --help, or a usage error already reported */
        zkit__cat_options_free(&opt);
        return rc;
    }
    zkit__ops_config_t ops_config = {.opts = &opt.security, .component = "cat"};
    opt.ops = zkit__ops_new(&ops_config);
    if (!opt.ops) { /* the log line named the problem */
        zkit__cat_options_free(&opt);
        return ZKIT_EXIT_FAILURE;
    }

    if (opt.reliable) { /* its own loop: cat_reliable.c */
        rc = zkit__cat_reliable(&opt);
        zkit__cat_options_free(&opt);
        return rc;
    }
    s_cat_t cat = {.opt = &opt};
    rc = s_setup(&cat) == 0 ? s_run(&cat) : ZKIT_EXIT_FAILURE;

    if (cat.bad_frames > S_BAD_FRAME_LINES || (opt.quiet && cat.bad_frames))
        fprintf(stderr, "zkit cat: %" PRIu64 " bad frames in total, %" PRIu64 " not shown\n",
                cat.bad_frames, opt.quiet ? cat.bad_frames : cat.bad_frames - S_BAD_FRAME_LINES);
    if (rc == ZKIT_EXIT_OK && cat.bad_replies) {
        fprintf(stderr, "zkit cat: %" PRIu64 " of %" PRIu64 " replies were not envelopes\n",
                cat.bad_replies, cat.sent);
        rc = ZKIT_EXIT_FAILURE;
    }
    /* Queued messages get the linger to leave, unless the run failed or was
       interrupted: then nobody is waiting for them. The wait itself happens
       in zmq_ctx_term, called by czmq's zsys_shutdown at exit; SIGINT or
       SIGTERM arriving then interrupts it and the process exits. */
    bool drop = rc != ZKIT_EXIT_OK || s_stopping();
    zkit__socket_close(&cat.sock, drop ? 0 : zkit__cat_linger(&opt));
    zkit_envelope_destroy(&cat.in);
    zkit_envelope_destroy(&cat.out);
    zkit_envelope_destroy(&cat.reply);
    zkit__cat_buf_free(&cat.line);
    free(cat.file_line);
    if (cat.file && cat.file != stdin)
        fclose(cat.file);
    zkit__cat_options_free(&opt);
    return rc;
}
