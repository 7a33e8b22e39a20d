/*  service_worker.c: serves requests from a zkit balancer (see
    zkit_service_worker.h).

    Two kinds of threads. The I/O actor owns the DEALER to the balancer:
    READY, heartbeats, liveness, reconnects, and a FIFO of requests not yet
    started. Each handler thread is a small actor of its own that runs the
    handler for one request at a time; the I/O actor hands a request to an
    idle one over its pipe and gets back the encoded reply (or a failure),
    which it sends to the balancer. So the heartbeat never waits for a
    handler, and at most `threads` handlers run at once.

    Pipe messages between the two: to a handler [handle][request envelope];
    back [handle]["R"][reply envelope] or [handle]["F"].

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "zkit_service_worker.h"

#include <czmq.h>
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "balancer/protocol.h"
#include "core/actor.h"
#include "core/ops.h"
#include "core/socket.h"
#include "core/traffic.h"

#define S_NAME_MAX  255
#define S_THREADS   64 /* handler threads at most */
#define S_LINGER_MS 1000
#define S_BATCH     256

/* What handler threads share with the I/O actor: read-only once started.   */
typedef struct {
    zkit_service_handler_fn *handler;
    void *arg;
    char name[S_NAME_MAX + 1];
} s_shared_t;

typedef struct s_job {
    struct s_job *next;
    zmq_msg_t handle;
    zmq_msg_t request;
} s_job_t;

typedef struct {
    s_shared_t shared;
    char *connect;
    uint32_t credit;
    uint32_t heartbeat_ms;
    uint32_t liveness;
    uint32_t reconnect_ms;
    uint32_t reconnect_max_ms;
    zsock_t *pipe;
    zsock_t *sock; /* NULL while waiting to reconnect */
    zactor_t *handlers[S_THREADS];
    bool busy[S_THREADS];
    size_t threads;
    size_t running;
    s_job_t *queue_head, *queue_tail; /* received, not started */
    size_t queued;                    /* jobs on that queue, at most credit */
    zkit__ops_t *ops;                 /* security, control endpoint         */
    zkit__traffic_t traffic;          /* of the link to the balancer, every
                                         connection it had                  */
    uint64_t balancer_seen_us;        /* wall clock of its last message     */
    int64_t next_heartbeat;
    int64_t balancer_expires; /* presumed dead from then on */
    int64_t reconnect_at;
    uint32_t backoff;
    bool stopping;
    zkit_service_worker_stats_t stats;
} s_state_t;

struct _zkit_service_worker_t {
    zactor_t *actor;
    s_state_t *state;
};

static atomic_uint s_worker_count;

/* ---- handler threads ------------------------------------------------------------ */

static void s_handler_actor(zsock_t *pipe, void *args)
{
    const s_shared_t *shared = args;
    void *handle = zsock_resolve(pipe);
    zkit_envelope_t *request = zkit_envelope_new();
    zkit_envelope_t *reply = zkit_envelope_new();
    zsock_signal(pipe, 0);
    while (request && reply) {
        zkit__bal_msg_t msg;
        if (zkit__bal_recv(handle, &msg, 0)) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (msg.count != 2) { /* $TERM */
            zkit__bal_msg_close(&msg);
            break;
        }
        zmq_msg_t out[3];
        size_t n = 1;
        zmq_msg_init(&out[0]);
        zmq_msg_move(&out[0], &msg.part[0]);
        bool ok = false;
        if (zkit_envelope_decode(request, &msg.part[1]) == 0) {
            zkit_envelope_reset(reply);
            if (zkit_envelope_set_corr(reply, zkit_envelope_id(request), ZKIT_ID_SIZE) == 0 &&
                zkit_envelope_set_src(reply, shared->name) == 0 &&
                shared->handler(request, reply, shared->arg) == 0 &&
                zkit__bal_frame_set(&out[n], "R", 1) == 0) {
                ok = zkit_envelope_encode(reply, &out[n + 1]) == 0;
                if (ok)
                    n += 2;
                else
                    zmq_msg_close(&out[n]);
            }
        }
        if (!ok && zkit__bal_frame_set(&out[n], "F", 1) == 0)
            n++;
        zkit__bal_send(handle, out, n, NULL);
        zkit_envelope_reset(request);
        zkit__bal_msg_close(&msg);
    }
    zkit_envelope_destroy(&request);
    zkit_envelope_destroy(&reply);
}

/* ---- the connection to the balancer -------------------------------------------- */

static void s_queue_clear(s_state_t *self)
{
    while (self->queue_head) {
        s_job_t *job = self->queue_head;
        self->queue_head = job->next;
        zmq_msg_close(&job->handle);
        zmq_msg_close(&job->request);
        free(job);
    }
    self->queue_tail = NULL;
    self->queued = 0;
}

static int s_connect(s_state_t *self, int64_t now)
{
    zkit__socket_opts_t sopts = ZKIT__SOCKET_OPTS_DEFAULT;
    sopts.linger_ms = S_LINGER_MS;
    self->sock = zkit__socket_new(ZMQ_DEALER, &sopts);
    if (!self->sock || zkit__ops_attach(self->ops, self->sock, self->connect, false)) {
        int err = errno;
        zkit__socket_close(&self->sock, 0);
        errno = err;
        return -1;
    }
    /* Queued until the connection is up: a DEALER holds it meanwhile.      */
    zkit__bal_send_command(zsock_resolve(self->sock), NULL, 0, ZKIT__BAL_CMD_READY, self->credit,
                           NULL, &self->traffic);
    self->next_heartbeat = now + self->heartbeat_ms;
    self->balancer_expires = now + (int64_t) self->heartbeat_ms * self->liveness;
    return 0;
}

/* The balancer is presumed dead: drop the socket, forget the requests not
   started (it retries them), and come back after the backoff.              */
static void s_disconnect(s_state_t *self, int64_t now)
{
    zkit__socket_close(&self->sock, 0);
    s_queue_clear(self);
    self->reconnect_at = now + self->backoff;
    self->backoff =
        self->backoff > self->reconnect_max_ms / 2 ? self->reconnect_max_ms : self->backoff * 2;
    self->stats.reconnects++;
}

static void s_on_balancer(s_state_t *self, zkit__bal_msg_t *msg, int64_t now)
{
    zkit__bal_frame_t view[ZKIT__BAL_FRAMES_MAX];
    zkit__bal_backend_msg_t m;
    size_t count = zkit__bal_msg_view(msg, 0, view);
    if (msg->dropped || zkit__bal_parse_balancer(view, count, &m, NULL)) {
        self->stats.bad++;
        return;
    }
    self->balancer_expires = now + (int64_t) self->heartbeat_ms * self->liveness;
    self->balancer_seen_us = zkit_clock_usec();
    self->backoff = self->reconnect_ms;
    if (m.cmd != ZKIT__BAL_REQUEST)
        return;
    self->stats.requests++;
    /* A balancer never sends more than the credit; whatever does is not
       one, and must not make the queue grow without bound.                  */
    s_job_t *job = self->queued < self->credit ? calloc(1, sizeof *job) : NULL;
    if (m.parts != 1 || !job) {
        /* A zkit worker takes one envelope; give anything else back.        */
        free(job);
        self->stats.bad++;
        zkit__bal_send_command(zsock_resolve(self->sock), NULL, 0, ZKIT__BAL_CMD_NACK, 0, m.id,
                               &self->traffic);
        return;
    }
    zmq_msg_init(&job->handle);
    zmq_msg_init(&job->request);
    zmq_msg_move(&job->handle, &msg->part[0]);
    zmq_msg_move(&job->request, &msg->part[m.first_part]);
    if (self->queue_tail)
        self->queue_tail->next = job;
    else
        self->queue_head = job;
    self->queue_tail = job;
    self->queued++;
}

/* A handler finished: [handle]["R"][reply] or [handle]["F"].               */
static void s_on_handler(s_state_t *self, size_t index, zkit__bal_msg_t *msg)
{
    self->busy[index] = false;
    self->running--;
    bool ok = msg->count == 3;
    if (ok)
        self->stats.replies++;
    else
        self->stats.failures++;
    if (!self->sock || msg->count < 2 || zmq_msg_size(&msg->part[0]) != ZKIT_ID_SIZE)
        return; /* the connection it came over is gone; the balancer retries */
    void *handle = zsock_resolve(self->sock);
    if (!ok) {
        zkit__bal_send_command(handle, NULL, 0, ZKIT__BAL_CMD_NACK, 0, zmq_msg_data(&msg->part[0]),
                               &self->traffic);
        return;
    }
    zmq_msg_t out[3];
    for (size_t i = 0; i < 3; i++)
        zmq_msg_init(&out[i]);
    zmq_msg_move(&out[0], &msg->part[0]);
    zmq_msg_move(&out[2], &msg->part[2]);
    zkit__bal_send(handle, out, 3, &self->traffic);
}

static void s_start_jobs(s_state_t *self)
{
    for (size_t i = 0; i < self->threads && self->queue_head && !self->stopping; i++) {
        if (self->busy[i])
            continue;
        s_job_t *job = self->queue_head;
        self->queue_head = job->next;
        if (!self->queue_head)
            self->queue_tail = NULL;
        self->queued--;
        zmq_msg_t out[2];
        zmq_msg_init(&out[0]);
        zmq_msg_init(&out[1]);
        zmq_msg_move(&out[0], &job->handle);
        zmq_msg_move(&out[1], &job->request);
        zmq_msg_close(&job->handle);
        zmq_msg_close(&job->request);
        free(job);
        if (zkit__bal_send(zsock_resolve(self->handlers[i]), out, 2, NULL) == 0) {
            self->busy[i] = true;
            self->running++;
        }
    }
}

/* ---- the I/O actor ---------------------------------------------------------------- */

static void s_pipe_command(s_state_t *self, zkit__bal_msg_t *msg)
{
    if (msg->count < 1)
        return;
    size_t size = zmq_msg_size(&msg->part[0]);
    const char *cmd = zmq_msg_data(&msg->part[0]);
    if (size == 5 && memcmp(cmd, "$TERM", 5) == 0)
        self->stopping = true;
    else if (size == 5 && memcmp(cmd, "STATS", 5) == 0)
        zkit__actor_reply(self->pipe, &self->stats, sizeof self->stats);
}

static long s_timeout(s_state_t *self, int64_t now)
{
    int64_t due = self->sock
                      ? (self->next_heartbeat < self->balancer_expires ? self->next_heartbeat
                                                                       : self->balancer_expires)
                      : self->reconnect_at;
    return due <= now ? 0 : (long) (due - now);
}

static void s_timers(s_state_t *self, int64_t now)
{
    if (self->sock && now >= self->balancer_expires)
        s_disconnect(self, now);
    /* A connect that fails here (no memory for a socket) is tried again
       after the backoff: the endpoint itself was accepted at start.         */
    if (!self->sock && now >= self->reconnect_at && s_connect(self, now))
        self->reconnect_at = now + self->backoff;
    if (self->sock && now >= self->next_heartbeat) {
        zkit__bal_send_command(zsock_resolve(self->sock), NULL, 0, ZKIT__BAL_CMD_HEARTBEAT, 0, NULL,
                               &self->traffic);
        self->next_heartbeat = now + self->heartbeat_ms;
    }
}

static void s_actor(zsock_t *pipe, void *args)
{
    s_state_t *self = args;
    self->pipe = pipe;
    zsock_signal(pipe, 0);
    while (!self->stopping || self->running > 0) {
        int64_t now = zclock_mono();
        zmq_pollitem_t items[3 + S_THREADS];
        size_t n = 0;
        items[n++] = (zmq_pollitem_t){zsock_resolve(pipe), 0, ZMQ_POLLIN, 0};
        /* Without a socket the item is inert: fd -1 is ignored by poll().  */
        items[n++] =
            (zmq_pollitem_t){self->sock ? zsock_resolve(self->sock) : NULL, self->sock ? 0 : -1,
                             (short) (self->sock ? ZMQ_POLLIN : 0), 0};
        for (size_t i = 0; i < self->threads; i++)
            items[n++] = (zmq_pollitem_t){zsock_resolve(self->handlers[i]), 0, ZMQ_POLLIN, 0};
        size_t control = n;
        n += (size_t) zkit__ops_pollitem(self->ops, &items[n]);
        if (zmq_poll(items, (int) n, s_timeout(self, now)) == -1 && errno != EINTR)
            break;
        if (control < n && (items[control].revents & ZMQ_POLLIN) &&
            zkit__ops_serve(self->ops) == -1)
            break;
        zkit__bal_msg_t msg;
        if ((items[0].revents & ZMQ_POLLIN) && zkit__bal_recv(zsock_resolve(pipe), &msg, 0) == 0) {
            s_pipe_command(self, &msg);
            zkit__bal_msg_close(&msg);
        }
        now = zclock_mono();
        for (int i = 0; i < S_BATCH && self->sock && (items[1].revents & ZMQ_POLLIN); i++) {
            if (zkit__bal_recv(zsock_resolve(self->sock), &msg, ZMQ_DONTWAIT))
                break;
            zkit__traffic_in(&self->traffic, msg.bytes);
            s_on_balancer(self, &msg, now);
            zkit__bal_msg_close(&msg);
        }
        for (size_t i = 0; i < self->threads; i++)
            if ((items[2 + i].revents & ZMQ_POLLIN) &&
                zkit__bal_recv(zsock_resolve(self->handlers[i]), &msg, ZMQ_DONTWAIT) == 0) {
                s_on_handler(self, i, &msg);
                zkit__bal_msg_close(&msg);
            }
        s_start_jobs(self);
        s_timers(self, zclock_mono());
    }
    /* Stopping, and no handler runs: give back what was never started, and
       tell the balancer to retry what it still thinks we hold elsewhere.   */
    if (self->sock) {
        void *handle = zsock_resolve(self->sock);
        for (s_job_t *job = self->queue_head; job; job = job->next)
            if (zmq_msg_size(&job->handle) == ZKIT_ID_SIZE)
                zkit__bal_send_command(handle, NULL, 0, ZKIT__BAL_CMD_NACK, 0,
                                       zmq_msg_data(&job->handle), &self->traffic);
        zkit__bal_send_command(handle, NULL, 0, ZKIT__BAL_CMD_DISCONNECT, 0, NULL, &self->traffic);
    }
    s_queue_clear(self);
    zkit__socket_close(&self->sock, S_LINGER_MS);
}

/* ---- the control endpoint ---------------------------------------------------------- */

/* Runs in the I/O actor (ops.h). Every field of zkit_service_worker_stats_t,
   messages and bytes on the link to the balancer (socket "balancer"), the
   state of the connection, and the balancer as the one peer.               */
static void s_stats_fn(zkit__stats_t *stats, void *arg)
{
    s_state_t *self = arg;
    static const struct {
        const char *name;
        size_t offset;
        const char *help;
    } counters[] = {
        {"requests", offsetof(zkit_service_worker_stats_t, requests),
         "Requests received from the balancer"},
        {"replies", offsetof(zkit_service_worker_stats_t, replies),
         "Requests the handler answered: reply sent"},
        {"failures", offsetof(zkit_service_worker_stats_t, failures),
         "Requests the handler failed: given back to the balancer (NACK)"},
        {"reconnects", offsetof(zkit_service_worker_stats_t, reconnects),
         "Times the balancer was presumed dead and the worker reconnected"},
        {"bad_messages", offsetof(zkit_service_worker_stats_t, bad),
         "Messages from the balancer dropped as malformed, or beyond the credit"},
    };
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        uint64_t value;
        memcpy(&value, (const char *) &self->stats + counters[i].offset, sizeof value);
        zkit__stats_counter(stats, counters[i].name, value);
        zkit__stats_help(stats, counters[i].name, counters[i].help);
    }
    zkit__traffic_report(stats, "balancer", &self->traffic);
    zkit__stats_gauge(stats, "connected", self->sock ? 1 : 0);
    zkit__stats_help(stats, "connected", "1 while connected, 0 while waiting to reconnect");
    zkit__stats_gauge(stats, "credit", (int64_t) self->credit);
    zkit__stats_help(stats, "credit", "Requests this worker may hold at once");
    zkit__stats_gauge(stats, "running", (int64_t) self->running);
    zkit__stats_help(stats, "running", "Handlers running now");
    zkit__stats_gauge(stats, "queued", (int64_t) self->queued);
    zkit__stats_help(stats, "queued", "Requests received and not started yet");
    if (self->balancer_seen_us)
        zkit__stats_peer(stats, self->connect, strlen(self->connect), self->balancer_seen_us);
}

/* ---- API ------------------------------------------------------------------------------ */

static void s_state_destroy(s_state_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    s_state_t *self = *self_p;
    for (size_t i = 0; i < self->threads; i++)
        zactor_destroy(&self->handlers[i]);
    zkit__socket_close(&self->sock, 0);
    s_queue_clear(self);
    /* After the sockets it secured are closed (ops.h).                     */
    zkit__ops_destroy(&self->ops);
    free(self->connect);
    free(self);
    *self_p = NULL;
}

ZKIT_EXPORT zkit_service_worker_t *zkit_service_worker_new(const zkit_service_worker_opts_t *opts)
{
    uint32_t threads = opts && opts->threads ? opts->threads : (opts ? opts->credit : 0);
    if (!opts || !opts->connect || !*opts->connect || !opts->handler || opts->credit < 1 ||
        opts->credit > ZKIT__BAL_CREDIT_MAX || threads < 1 || threads > opts->credit ||
        threads > S_THREADS || opts->heartbeat_ms < 1 || opts->heartbeat_ms > 3600000 ||
        opts->liveness < 1 || opts->liveness > 100 ||
        (opts->name && (!*opts->name || strlen(opts->name) > S_NAME_MAX))) {
        zsys_error("ZKIT-SERVICE-WORKER-OPTS: connect and handler are required; credit 1-%d, "
                   "threads 1-credit (at most %d), heartbeat_ms 1-3600000, liveness 1-100, "
                   "name 1-%d bytes",
                   ZKIT__BAL_CREDIT_MAX, S_THREADS, S_NAME_MAX);
        errno = EINVAL;
        return NULL;
    }
    zkit_service_worker_t *self = calloc(1, sizeof *self);
    s_state_t *st = calloc(1, sizeof *st);
    if (!self || !st || !(st->connect = strdup(opts->connect))) {
        free(self);
        free(st);
        errno = ENOMEM;
        return NULL;
    }
    self->state = st;
    st->shared.handler = opts->handler;
    st->shared.arg = opts->handler_arg;
    if (opts->name)
        snprintf(st->shared.name, sizeof st->shared.name, "%s", opts->name);
    else
        snprintf(st->shared.name, sizeof st->shared.name, "worker-%d-%u", (int) getpid(),
                 atomic_fetch_add(&s_worker_count, 1) + 1);
    st->credit = opts->credit;
    st->heartbeat_ms = opts->heartbeat_ms;
    st->liveness = opts->liveness;
    st->reconnect_ms = opts->reconnect_ms ? opts->reconnect_ms : 1;
    st->reconnect_max_ms =
        opts->reconnect_max_ms > st->reconnect_ms ? opts->reconnect_max_ms : st->reconnect_ms;
    st->backoff = st->reconnect_ms;
    st->ops = zkit__ops_new(&(zkit__ops_config_t){.opts = &opts->ops,
                                                  .component = "service_worker",
                                                  .name = st->shared.name,
                                                  .stats_fn = s_stats_fn,
                                                  .command_fn = NULL,
                                                  .arg = st});
    if (!st->ops)
        goto err;
    /* The first connect happens here, so a bad endpoint fails the call.    */
    if (s_connect(st, zclock_mono()))
        goto err;
    for (; st->threads < threads; st->threads++) {
        st->handlers[st->threads] = zactor_new(s_handler_actor, &st->shared);
        if (!st->handlers[st->threads]) {
            errno = ENOMEM;
            goto err;
        }
    }
    self->actor = zactor_new(s_actor, st);
    if (!self->actor) {
        errno = ENOMEM;
        goto err;
    }
    return self;

err:;
    int err = errno;
    s_state_destroy(&self->state);
    free(self);
    errno = err;
    return NULL;
}

ZKIT_EXPORT void zkit_service_worker_destroy(zkit_service_worker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zkit_service_worker_t *self = *self_p;
    zactor_destroy(&self->actor);
    s_state_destroy(&self->state);
    free(self);
    *self_p = NULL;
}

ZKIT_EXPORT const char *zkit_service_worker_control(zkit_service_worker_t *self)
{
    return self ? zkit__ops_control_endpoint(self->state->ops) : NULL;
}

ZKIT_EXPORT int zkit_service_worker_stats(zkit_service_worker_t *self,
                                          zkit_service_worker_stats_t *stats)
{
    return zkit__actor_query(self->actor, "STATS", stats, sizeof *stats);
}
