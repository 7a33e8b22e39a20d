/*  cat_reliable.c: `zkit cat --push --reliable` and `--pull --reliable`,
    the producer and the consumer of the spool device (docs/spool-protocol.md).

    Producer: a DEALER sends each message as [PUT][envelope] and keeps its
    encoded bytes until the device answers CONFIRMED (or REJECTED) for its
    id. At most --window are unconfirmed at once; one unconfirmed for
    --resend ms is sent again with the same bytes, so the same id, which the
    device de-duplicates. It exits 0 only once every message is confirmed.

    Consumer: a DEALER says READY with its credit, prints every DELIVER and
    acknowledges it after the line is written and flushed, so a message is
    never acknowledged before it is out of this process. It heartbeats the
    device; a device that does not know it (it restarted) answers
    DISCONNECT and gets a new READY.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zkit.h"
#include "core/idtable.h"
#include "core/ops.h"
#include "core/socket.h"
#include "cat_format.h"
#include "cat_options.h"
#include "line_reader.h"
#include "zkit_cli.h"

#define S_PUSH_WINDOW 1000
#define S_PULL_CREDIT 100
#define S_RESEND_MS   2000
/* Consumer heartbeats: more often than the device's default 1000 ms, so a
   restarted device (which answers an unknown consumer's heartbeat with
   DISCONNECT) has it back within a quarter of a second.                   */
#define S_HEARTBEAT_MS   250
#define S_SILENCE_MS     3000 /* device silent this long: READY again */
#define S_REJECT_LINES   100
#define S_BAD_LINES      100
#define S_RECV_BATCH     256
#define S_IDS_MAX        1024 /* ids in one ACK frame, as the protocol allows */
#define S_PULL_LINGER_MS 5000

static volatile sig_atomic_t s_interrupted = 0;

static void s_on_signal(int signum)
{
    (void) signum;
    s_interrupted = 1;
}

static void s_catch_signals(void)
{
    zsys_init();
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

/* Receives one message of at most 3 frames (more: *extra is set). Returns
   the frame count, 0 when nothing is waiting, -1 on error.                  */
static int s_recv(void *sock, zmq_msg_t part[3], bool *extra)
{
    int n = 0;
    *extra = false;
    for (;;) {
        zmq_msg_t frame;
        zmq_msg_init(&frame);
        if (zmq_msg_recv(&frame, sock, n || *extra ? 0 : ZMQ_DONTWAIT) == -1) {
            zmq_msg_close(&frame);
            if (errno == EINTR && (n || *extra))
                continue;
            for (int i = 0; i < n; i++)
                zmq_msg_close(&part[i]);
            return n || *extra || errno != EAGAIN ? -1 : 0;
        }
        bool more = zmq_msg_more(&frame);
        if (n < 3)
            part[n++] = frame;
        else {
            *extra = true;
            zmq_msg_close(&frame);
        }
        if (!more)
            return n;
    }
}

static void s_close_parts(zmq_msg_t *part, int n)
{
    for (int i = 0; i < n; i++)
        zmq_msg_close(&part[i]);
}

static bool s_is(zmq_msg_t *frame, const char *cmd)
{
    size_t n = strlen(cmd);
    return zmq_msg_size(frame) == n && memcmp(zmq_msg_data(frame), cmd, n) == 0;
}

static zsock_t *s_socket(const zkit__cat_options_t *opt, int sndhwm, int linger)
{
    zkit__socket_opts_t sopts = ZKIT__SOCKET_OPTS_DEFAULT;
    sopts.linger_ms = linger;
    sopts.sndhwm = sndhwm;
    if (opt->max_size > 0)
        sopts.maxmsgsize = opt->max_size + 64;
    zsock_t *sock = zkit__socket_new(ZMQ_DEALER, &sopts);
    if (!sock) {
        fprintf(stderr, "zkit cat: cannot create a DEALER socket: %s\n", zmq_strerror(errno));
        return NULL;
    }
    for (size_t i = 0; i < opt->endpoint_count; i++) {
        if (zkit__ops_attach(opt->ops, sock, opt->endpoints[i].endpoint, opt->endpoints[i].bind)) {
            fprintf(stderr, "zkit cat: cannot %s %s: %s\n",
                    opt->endpoints[i].bind ? "bind" : "connect", opt->endpoints[i].endpoint,
                    zmq_strerror(errno));
            zkit__socket_close(&sock, 0);
            return NULL;
        }
        if (opt->endpoints[i].bind && !opt->quiet) {
            char ep[256];
            if (zkit__socket_last_endpoint(sock, ep, sizeof ep) == 0)
                fprintf(stderr, "zkit cat: bound %s\n", ep);
        }
    }
    return sock;
}

/* ---- producer ------------------------------------------------------------------ */

typedef struct s_put {
    struct s_put *prev, *next; /* in the order they are due for a resend */
    uint8_t id[ZKIT_ID_SIZE];
    uint64_t hash;
    uint64_t seq;
    int64_t due_ms; /* when to send it (again) */
    size_t size;
    uint8_t *frame;
} s_put_t;

typedef struct {
    const zkit__cat_options_t *opt;
    void *sock;
    zkit_envelope_t *env;
    zkit__idtable_t table;
    s_put_t list; /* sentinel; head = the first due */
    uint64_t hash_seed;
    uint64_t window, inflight;
    uint64_t sent, target, confirmed, rejected;
    int resend_ms;
    bool done_loading;
    bool awaiting_input; /* --file has no complete line yet: poll it    */
    bool has_file;
    zkit__line_reader_t input;
    char first_reason[256];
} s_producer_t;

static bool s_put_match(const void *entry, const void *key)
{
    return memcmp(((const s_put_t *) entry)->id, key, ZKIT_ID_SIZE) == 0;
}

static void s_list_remove(s_put_t *p)
{
    p->prev->next = p->next;
    p->next->prev = p->prev;
}

static void s_list_append(s_producer_t *self, s_put_t *p)
{
    p->prev = self->list.prev;
    p->next = &self->list;
    self->list.prev->next = p;
    self->list.prev = p;
}

static void s_put_free(s_producer_t *self, s_put_t *p)
{
    s_list_remove(p);
    zkit__idtable_remove(&self->table, p->hash, p);
    free(p->frame);
    free(p);
    self->inflight--;
}

/* The next body: --data, or the next line of --file. The file is read
   without blocking, so confirmations and resends go on while a pipe is
   momentarily empty (getline would freeze the whole loop).                 */
static zkit__line_status_t s_next_body(s_producer_t *self, const char **body, size_t *size)
{
    if (!self->has_file) {
        *body = self->opt->data;
        *size = strlen(self->opt->data);
        return ZKIT__LINE_OK;
    }
    zkit__line_status_t rc = zkit__line_reader_next(&self->input, body, size);
    if (rc == ZKIT__LINE_ERROR)
        fprintf(stderr, "zkit cat: cannot read %s: %s\n", self->opt->file,
                errno == EMSGSIZE ? "a line longer than 16 MiB" : strerror(errno));
    return rc;
}

/* Makes the next message and queues it for sending. Returns what reading
   the body returned: ZKIT__LINE_OK (queued), _END, _AGAIN or _ERROR.      */
static zkit__line_status_t s_make_put(s_producer_t *self, int64_t now)
{
    const char *body;
    size_t size;
    zkit__line_status_t rc = s_next_body(self, &body, &size);
    if (rc != ZKIT__LINE_OK)
        return rc;
    uint8_t id[ZKIT_ID_SIZE];
    zkit_id_generate(id);
    zkit_envelope_set_id(self->env, id);
    zkit_envelope_set_seq(self->env, self->sent + 1);
    zkit_envelope_set_ts(self->env, zkit_clock_usec());
    zkit_envelope_set_body_ref(self->env, body, size);
    s_put_t *p = calloc(1, sizeof *p);
    size_t frame_size = zkit_envelope_encoded_size(self->env);
    if (p)
        p->frame = malloc(frame_size);
    if (!p || !p->frame || zkit_envelope_encode_to(self->env, p->frame, frame_size) < 0) {
        fprintf(stderr, "zkit cat: out of memory\n");
        if (p)
            free(p->frame);
        free(p);
        return ZKIT__LINE_ERROR;
    }
    memcpy(p->id, id, ZKIT_ID_SIZE);
    p->hash = zkit__idtable_hash_id(id, self->hash_seed);
    p->seq = self->sent + 1;
    p->size = frame_size;
    p->due_ms = now;
    if (zkit__idtable_insert(&self->table, p->hash, p)) {
        fprintf(stderr, "zkit cat: out of memory\n");
        free(p->frame);
        free(p);
        return ZKIT__LINE_ERROR;
    }
    s_list_append(self, p);
    self->inflight++;
    self->sent++;
    return ZKIT__LINE_OK;
}

/* Sends every PUT that is due, oldest first, until the socket is full.
   Returns 0, or -1 on a socket error.                                       */
static int s_send_due(s_producer_t *self, int64_t now)
{
    while (self->list.next != &self->list && self->list.next->due_ms <= now) {
        s_put_t *p = self->list.next;
        if (zmq_send(self->sock, "PUT", 3, ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1) {
            if (errno == EAGAIN || errno == EINTR)
                return 0;
            fprintf(stderr, "zkit cat: send: %s\n", zmq_strerror(errno));
            return -1;
        }
        if (zmq_send(self->sock, p->frame, p->size, 0) == -1) {
            fprintf(stderr, "zkit cat: send: %s\n", zmq_strerror(errno));
            return -1;
        }
        p->due_ms = now + self->resend_ms;
        s_list_remove(p);
        s_list_append(self, p);
    }
    return 0;
}

static s_put_t *s_find(s_producer_t *self, const uint8_t *id)
{
    uint64_t hash = zkit__idtable_hash_id(id, self->hash_seed);
    return zkit__idtable_find(&self->table, hash, id, s_put_match);
}

/* Handles one reply. Returns true when it resolved a PUT (progress).      */
static bool s_reply(s_producer_t *self, zmq_msg_t *part, int n, bool extra)
{
    bool progress = false;
    if (!extra && n == 2 && s_is(&part[0], "CONFIRMED") &&
        zmq_msg_size(&part[1]) % ZKIT_ID_SIZE == 0) {
        const uint8_t *id = zmq_msg_data(&part[1]);
        for (size_t k = 0; k < zmq_msg_size(&part[1]) / ZKIT_ID_SIZE; k++, id += ZKIT_ID_SIZE) {
            s_put_t *p = s_find(self, id);
            if (!p)
                continue; /* a confirmation of a resend, already counted */
            s_put_free(self, p);
            self->confirmed++;
            progress = true;
        }
        return progress;
    }
    if (!extra && n == 3 && s_is(&part[0], "REJECTED") && zmq_msg_size(&part[1]) == ZKIT_ID_SIZE) {
        s_put_t *p = s_find(self, zmq_msg_data(&part[1]));
        if (!p)
            return false;
        char reason[256];
        size_t len =
            zmq_msg_size(&part[2]) < sizeof reason - 1 ? zmq_msg_size(&part[2]) : sizeof reason - 1;
        memcpy(reason, zmq_msg_data(&part[2]), len);
        reason[len] = '\0';
        for (size_t i = 0; i < len; i++)
            if ((unsigned char) reason[i] < 0x20)
                reason[i] = '?';
        if (!self->rejected)
            snprintf(self->first_reason, sizeof self->first_reason, "%s", reason);
        self->rejected++;
        if (self->rejected <= S_REJECT_LINES) {
            char hex[33];
            fprintf(stderr, "zkit cat: rejected seq %" PRIu64 " (id %s): %s\n", p->seq,
                    zkit_id_to_hex(p->id, hex), reason);
        }
        s_put_free(self, p);
        return true;
    }
    if (!self->opt->quiet)
        fprintf(stderr, "zkit cat: unexpected reply from the device (%d frames)\n", n);
    return false;
}

static int s_produce(s_producer_t *self)
{
    const zkit__cat_options_t *opt = self->opt;
    int64_t now = zclock_mono();
    int64_t next_make = now + opt->delay_ms;
    int64_t last_progress = now;
    while (!s_stopping()) {
        now = zclock_mono();
        self->awaiting_input = false;
        while (!self->done_loading && self->inflight < self->window && now >= next_make) {
            zkit__line_status_t rc =
                self->sent < self->target ? s_make_put(self, now) : ZKIT__LINE_END;
            if (rc == ZKIT__LINE_ERROR)
                return ZKIT_EXIT_FAILURE;
            if (rc == ZKIT__LINE_AGAIN) {
                self->awaiting_input = true;
                break;
            }
            if (rc == ZKIT__LINE_END) {
                self->done_loading = true;
                break;
            }
            if (self->sent >= self->target)
                self->done_loading = true;
            if (opt->interval_ms > 0) {
                next_make = now + opt->interval_ms;
                last_progress = now; /* waiting between sends is not a stall */
            }
        }
        if (self->done_loading && self->inflight == 0)
            break;
        /* An idle input with everything confirmed is not a stalled device:
           --timeout measures the device, not the writer of our input.     */
        if (self->awaiting_input && self->inflight == 0)
            last_progress = now;
        if (s_send_due(self, now))
            return ZKIT_EXIT_FAILURE;
        /* A PUT still due now could not be sent: the socket is full (the
           device is away). POLLOUT says when it can take it; its due time
           must not make the poll return at once, over and over.           */
        bool waiting_out = self->list.next != &self->list && self->list.next->due_ms <= now;
        int64_t due = now + 1000;
        if (!waiting_out && self->list.next != &self->list && self->list.next->due_ms < due)
            due = self->list.next->due_ms;
        if (!self->done_loading && self->inflight < self->window && next_make < due)
            due = next_make;
        if (opt->timeout_ms >= 0) {
            int64_t give_up = last_progress + opt->timeout_ms;
            if (now >= give_up) {
                fprintf(stderr,
                        "zkit cat: timeout: confirmed %" PRIu64 " of %" PRIu64 " (%" PRIu64
                        " unconfirmed, %" PRIu64 " rejected)\n",
                        self->confirmed, self->sent, self->inflight, self->rejected);
                return ZKIT_EXIT_FAILURE;
            }
            if (give_up < due)
                due = give_up;
        }
        zmq_pollitem_t items[2] = {
            {self->sock, 0, (short) (ZMQ_POLLIN | (waiting_out ? ZMQ_POLLOUT : 0)), 0},
            {NULL, zkit__line_reader_fd(&self->input), ZMQ_POLLIN, 0},
        };
        zmq_pollitem_t *item = &items[0];
        long timeout = due > now ? (long) (due - now) : 0;
        if (zmq_poll(items, self->awaiting_input ? 2 : 1, timeout) == -1) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "zkit cat: poll: %s\n", zmq_strerror(errno));
            return ZKIT_EXIT_FAILURE;
        }
        for (int i = 0; i < S_RECV_BATCH && (item->revents & ZMQ_POLLIN); i++) {
            zmq_msg_t part[3];
            bool extra;
            int n = s_recv(self->sock, part, &extra);
            if (n <= 0)
                break;
            if (s_reply(self, part, n, extra))
                last_progress = zclock_mono();
            s_close_parts(part, n);
        }
    }
    if (self->inflight || !self->done_loading) {
        fprintf(stderr,
                "zkit cat: interrupted: confirmed %" PRIu64 " of %" PRIu64 " (%" PRIu64
                " unconfirmed, %" PRIu64 " rejected)\n",
                self->confirmed, self->sent, self->inflight, self->rejected);
        return ZKIT_EXIT_FAILURE;
    }
    if (self->rejected) {
        fprintf(stderr,
                "zkit cat: %" PRIu64 " of %" PRIu64 " messages rejected, %" PRIu64
                " confirmed; first reason: %s\n",
                self->rejected, self->sent, self->confirmed, self->first_reason);
        return ZKIT_EXIT_FAILURE;
    }
    return ZKIT_EXIT_OK;
}

static int s_push(const zkit__cat_options_t *opt)
{
    s_producer_t self;
    memset(&self, 0, sizeof self);
    self.opt = opt;
    self.window = opt->window ? opt->window : S_PUSH_WINDOW;
    self.resend_ms = opt->resend_ms ? opt->resend_ms : S_RESEND_MS;
    self.target = opt->has_count ? opt->count : opt->file || opt->interval_ms >= 0 ? UINT64_MAX : 1;
    self.list.prev = self.list.next = &self.list;
    zkit__idtable_init(&self.table);
    uint8_t seed[ZKIT_ID_SIZE];
    zkit_id_generate(seed);
    memcpy(&self.hash_seed, seed, sizeof self.hash_seed);
    int rc = ZKIT_EXIT_FAILURE;
    zsock_t *sock = NULL;
    self.env = zkit_envelope_new();
    if (!self.env || zkit_envelope_set_src(self.env, opt->src) ||
        (opt->topic && zkit_envelope_set_topic(self.env, opt->topic)) ||
        (opt->ct && zkit_envelope_set_ct(self.env, opt->ct))) {
        fprintf(stderr, "zkit cat: out of memory\n");
        goto done;
    }
    if (opt->has_ttl)
        zkit_envelope_set_ttl(self.env, opt->ttl_ms);
    for (size_t i = 0; i < opt->header_count; i++)
        if (zkit_envelope_set_header_str(self.env, opt->headers[i].key, opt->headers[i].value)) {
            fprintf(stderr, "zkit cat: out of memory\n");
            goto done;
        }
    self.input.fd = -1;
    if (opt->file) {
        if (zkit__line_reader_open(&self.input, opt->file) == -1) {
            fprintf(stderr, "zkit cat: cannot open %s: %s\n", opt->file, strerror(errno));
            goto done;
        }
        self.has_file = true;
    }
    s_catch_signals();
    /* Confirmed is all that matters: nothing queued is worth a linger.    */
    sock = s_socket(opt, (int) self.window + 16, 0);
    if (!sock)
        goto done;
    self.sock = zsock_resolve(sock);
    rc = s_produce(&self);
done:
    zkit__socket_close(&sock, 0);
    while (self.list.next && self.list.next != &self.list)
        s_put_free(&self, self.list.next);
    zkit__idtable_fini(&self.table);
    zkit_envelope_destroy(&self.env);
    zkit__line_reader_close(&self.input);
    return rc;
}

/* ---- consumer ------------------------------------------------------------------ */

typedef struct {
    const zkit__cat_options_t *opt;
    void *sock;
    zkit_envelope_t *in;
    zkit__cat_buf_t line;
    uint8_t ids[S_IDS_MAX * ZKIT_ID_SIZE];
    size_t nids;
    uint64_t received, target, bad;
    char credit[16];
} s_consumer_t;

static void s_command(s_consumer_t *self, const char *cmd, const char *arg)
{
    /* Best effort: a lost READY is repeated on silence, a lost ACK means the
       message is delivered again (at-least-once).                         */
    if (zmq_send(self->sock, cmd, strlen(cmd), ZMQ_DONTWAIT | (arg ? ZMQ_SNDMORE : 0)) >= 0 && arg)
        zmq_send(self->sock, arg, strlen(arg), 0);
}

static void s_flush_acks(s_consumer_t *self)
{
    if (!self->nids)
        return;
    if (zmq_send(self->sock, "ACK", 3, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
        zmq_send(self->sock, self->ids, self->nids * ZKIT_ID_SIZE, 0);
    self->nids = 0;
}

/* Prints one DELIVER and queues its ack. Returns 0, or -1 when the output
   cannot be written (the message is then not acknowledged).               */
static int s_delivered(s_consumer_t *self, zmq_msg_t *frame)
{
    size_t size = zmq_msg_size(frame);
    if (zkit_envelope_decode_bytes(self->in, zmq_msg_data(frame), size)) {
        /* Not acknowledged: the device gives it to someone else.          */
        if (++self->bad <= S_BAD_LINES && !self->opt->quiet)
            fprintf(stderr, "zkit cat: bad frame (%zu bytes): %s: %s\n", size, zkit_strerror(errno),
                    zkit_envelope_error_detail(self->in));
        return 0;
    }
    zkit__cat_buf_clear(&self->line);
    zkit__cat_context_t ctx = {0};
    zkit__cat_format_envelope(&self->line, self->opt->format, self->in, zmq_msg_data(frame), size,
                              &ctx);
    if (self->line.failed ||
        (self->line.size &&
         fwrite(self->line.data, 1, self->line.size, stdout) != self->line.size) ||
        fflush(stdout) == EOF) {
        fprintf(stderr, "zkit cat: cannot write output: %s\n", strerror(errno));
        return -1;
    }
    memcpy(self->ids + self->nids * ZKIT_ID_SIZE, zkit_envelope_id(self->in), ZKIT_ID_SIZE);
    if (++self->nids == S_IDS_MAX)
        s_flush_acks(self);
    self->received++;
    return 0;
}

static int s_consume(s_consumer_t *self)
{
    const zkit__cat_options_t *opt = self->opt;
    int64_t now = zclock_mono();
    int64_t last_message = now, last_heard = now, next_hb = now + S_HEARTBEAT_MS;
    s_command(self, "READY", self->credit);
    while (!s_stopping() && !(self->target && self->received >= self->target)) {
        now = zclock_mono();
        if (now >= next_hb) {
            s_command(self, "HEARTBEAT", NULL);
            next_hb = now + S_HEARTBEAT_MS;
        }
        if (now - last_heard > S_SILENCE_MS) {
            /* The device went quiet: it may be a new one that never heard
               of us. READY again (a known consumer's READY takes nothing
               back).                                                        */
            s_command(self, "READY", self->credit);
            last_heard = now;
        }
        int64_t due = next_hb;
        if (opt->timeout_ms >= 0) {
            int64_t give_up = last_message + opt->timeout_ms;
            if (now >= give_up) {
                if (self->target) {
                    fprintf(stderr, "zkit cat: timeout: received %" PRIu64 " of %" PRIu64 "\n",
                            self->received, self->target);
                    return ZKIT_EXIT_FAILURE;
                }
                return ZKIT_EXIT_OK;
            }
            if (give_up < due)
                due = give_up;
        }
        zmq_pollitem_t item = {self->sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, due > now ? (long) (due - now) : 0) == -1) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "zkit cat: poll: %s\n", zmq_strerror(errno));
            return ZKIT_EXIT_FAILURE;
        }
        for (int i = 0; i < S_RECV_BATCH && (item.revents & ZMQ_POLLIN); i++) {
            if (self->target && self->received >= self->target)
                break;
            zmq_msg_t part[3];
            bool extra;
            int n = s_recv(self->sock, part, &extra);
            if (n <= 0)
                break;
            last_heard = zclock_mono();
            int rc = 0;
            if (!extra && n == 2 && s_is(&part[0], "DELIVER")) {
                rc = s_delivered(self, &part[1]);
                last_message = last_heard;
            }
            else if (!extra && n == 1 && s_is(&part[0], "DISCONNECT"))
                s_command(self, "READY", self->credit);
            else if (!extra && n == 1 && s_is(&part[0], "HEARTBEAT"))
                /* Answering each one keeps us alive whatever the device's
                   heartbeat interval is.                                 */
                s_command(self, "HEARTBEAT", NULL);
            else if (!opt->quiet)
                fprintf(stderr, "zkit cat: unexpected message from the device (%d frames)\n", n);
            s_close_parts(part, n);
            if (rc)
                return ZKIT_EXIT_FAILURE;
        }
        s_flush_acks(self);
    }
    s_flush_acks(self);
    /* What was delivered beyond --count goes back to the device at once.  */
    s_command(self, "DISCONNECT", NULL);
    return ZKIT_EXIT_OK;
}

static int s_pull(const zkit__cat_options_t *opt)
{
    s_consumer_t *self = calloc(1, sizeof *self);
    if (!self) {
        fprintf(stderr, "zkit cat: out of memory\n");
        return ZKIT_EXIT_FAILURE;
    }
    self->opt = opt;
    self->target = opt->has_count ? opt->count : 0;
    snprintf(self->credit, sizeof self->credit, "%u", opt->window ? opt->window : S_PULL_CREDIT);
    int rc = ZKIT_EXIT_FAILURE;
    self->in = zkit_envelope_new();
    zsock_t *sock = NULL;
    if (!self->in) {
        fprintf(stderr, "zkit cat: out of memory\n");
        goto done;
    }
    zkit_envelope_limits_t limits = ZKIT_ENVELOPE_LIMITS_DEFAULT;
    if (opt->max_size > 0)
        limits.max_frame = (size_t) opt->max_size;
    zkit_envelope_set_limits(self->in, &limits);
    s_catch_signals();
    sock = s_socket(opt, 1000, opt->timeout_ms >= 0 ? opt->timeout_ms : S_PULL_LINGER_MS);
    if (!sock)
        goto done;
    self->sock = zsock_resolve(sock);
    rc = s_consume(self);
done:
    /* The last ACKs and the DISCONNECT get the linger to leave.           */
    zkit__socket_close(&sock, rc == ZKIT_EXIT_OK ? ZKIT__LINGER_KEEP : 0);
    if (self->bad)
        fprintf(stderr, "zkit cat: %" PRIu64 " bad frames in total\n", self->bad);
    zkit_envelope_destroy(&self->in);
    zkit__cat_buf_free(&self->line);
    free(self);
    return rc;
}

int zkit__cat_reliable(const zkit__cat_options_t *opt)
{
    return opt->type == ZMQ_PUSH ? s_push(opt) : s_pull(opt);
}
