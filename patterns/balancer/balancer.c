/*  balancer.c: the load-balancing device (see zkit_balancer.h).

    The actor turns frames into dispatcher calls and dispatcher decisions
    into frames; every policy (LRU among workers with credit, liveness,
    requeue, attempts, expiry, dead letters) is the dispatcher's
    (patterns/core/dispatcher.h). The request payloads it holds are
    zkit__bal_request_t (request.h), which also speak both dialects.

    Besides the dispatcher's peer table the actor keeps its own list of
    workers: the dispatcher knows credit and liveness, the list knows each
    worker's dialect and lets the actor heartbeat every worker (and list
    them on STATS). The two agree except after the dispatcher presumes a
    worker dead inside next() or tick(); right after those calls, before
    anything else reaches the dispatcher, the actor drains the expired
    workers (next_expired) and drops them from its list.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "zkit_balancer.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "balancer/balancer_internal.h"
#include "balancer/protocol.h"
#include "core/actor.h"
#include "core/socket.h"

/* Messages taken from one socket before the loop looks at the others.      */
#define S_BATCH 256
/* Linger at shutdown: replies already routed get this long to leave.       */
#define S_LINGER_MS 1000
#define S_NAME_MAX  ZKIT__BAL_NAME_MAX

typedef zkit__bal_worker_t s_worker_t;
typedef zkit__bal_state_t s_state_t;

typedef struct {
    const void *data;
    size_t size;
} s_rid_t;

struct _zkit_balancer_t {
    zactor_t *actor;
    s_state_t *state;
    char frontend[256];
    char backend[256];
};

/* ---- workers ---------------------------------------------------------------- */

static bool s_worker_match(const void *entry, const void *key)
{
    const s_worker_t *w = entry;
    const s_rid_t *rid = key;
    return w->size == rid->size && memcmp(w->rid, rid->data, rid->size) == 0;
}

static s_worker_t *s_worker_find(s_state_t *self, const void *rid, size_t size)
{
    s_rid_t key = {rid, size};
    uint64_t hash = zkit__idtable_hash_bytes(rid, size, self->hash_seed);
    return zkit__idtable_find(&self->workers, hash, &key, s_worker_match);
}

/* A short printable name for a routing id, for log lines.                   */
static const char *s_rid_text(const void *rid, size_t size, char out[41])
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = rid;
    size_t n = size > 20 ? 20 : size;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
    out[2 * n] = '\0';
    return out;
}

static void s_worker_remove(s_state_t *self, s_worker_t *w, const char *why)
{
    if (self->verbose) {
        char text[41];
        zsys_info("ZKIT-BALANCER-WORKER %s: worker %s %s", self->name,
                  s_rid_text(w->rid, w->size, text), why);
    }
    zkit__idtable_remove(&self->workers, w->hash, w);
    zkit__dlist_unlink(&w->link);
    free(w);
    self->stats.workers--;
}

/* The worker went away (DISCONNECT, or it cannot be reached): its requests
   go back to the queue at once. rid must not point into w.                  */
static void s_worker_gone(s_state_t *self, const void *rid, size_t size, int64_t now,
                          const char *why)
{
    zkit__dispatcher_peer_gone(self->dispatcher, rid, size, now);
    s_worker_t *w = s_worker_find(self, rid, size);
    if (w)
        s_worker_remove(self, w, why);
    self->stats.workers_gone++;
}

static void s_worker_ready(s_state_t *self, const void *rid, size_t size,
                           const zkit__bal_backend_msg_t *m, int64_t now)
{
    /* RFC 6: READY starts a new conversation, so whatever the worker held
       from the old one is lost to it: requeue that first.                  */
    zkit__dispatcher_peer_gone(self->dispatcher, rid, size, now);
    s_worker_t *w = s_worker_find(self, rid, size);
    if (w)
        s_worker_remove(self, w, "said READY again");
    w = calloc(1, sizeof *w + size);
    if (!w)
        return;
    w->hash = zkit__idtable_hash_bytes(rid, size, self->hash_seed);
    w->zkit = m->zkit;
    w->size = (uint8_t) size;
    memcpy(w->rid, rid, size);
    if (zkit__dispatcher_peer_ready(self->dispatcher, rid, size, m->credit, now) ||
        zkit__idtable_insert(&self->workers, w->hash, w)) {
        zkit__dispatcher_peer_gone(self->dispatcher, rid, size, now);
        zsys_error("ZKIT-BALANCER-NOMEM %s: cannot register a worker", self->name);
        free(w);
        return;
    }
    zkit__dlist_append(&self->list, &w->link);
    self->stats.workers++;
    self->stats.workers_ready++;
    if (self->verbose) {
        char text[41];
        zsys_info("ZKIT-BALANCER-WORKER %s: worker %s ready (%s, credit %u)", self->name,
                  s_rid_text(rid, size, text), m->zkit ? "zkit" : "rfc6", m->credit);
    }
}

/* Drops the workers the dispatcher presumed dead since the last drain. A
   worker that said READY again before the drain (cannot happen: the drain
   follows every next() and tick()) keeps its new registration.            */
static void s_workers_expired(s_state_t *self)
{
    zkit__dispatcher_expired_t gone;
    while (zkit__dispatcher_next_expired(self->dispatcher, &gone)) {
        self->stats.workers_expired++;
        s_worker_t *w = gone.registered ? NULL : s_worker_find(self, gone.peer, gone.peer_size);
        if (w)
            s_worker_remove(self, w, "presumed dead (no heartbeat)");
    }
}

static void s_heartbeat(s_state_t *self, int64_t now)
{
    /* s_worker_gone may free the worker at hand: step on before.          */
    zkit__dlink_t *link = self->list.next;
    while (link != &self->list) {
        s_worker_t *w = ZKIT__DLIST_CONTAINER(link, s_worker_t, link);
        link = link->next;
        if (zkit__bal_send_command(self->be, w->rid, w->size, ZKIT__BAL_CMD_HEARTBEAT, 0, NULL,
                                   &self->be_traffic) == -1 &&
            errno == EHOSTUNREACH) {
            uint8_t rid[ZKIT__DISPATCHER_PEER_MAX];
            size_t size = w->size;
            memcpy(rid, w->rid, size);
            s_worker_gone(self, rid, size, now, "disconnected");
        }
    }
}

/* ---- input ------------------------------------------------------------------ */

static void s_bad(s_state_t *self, bool backend, zkit_balancer_bad_t why, int64_t now)
{
    (backend ? self->stats.bad_backend : self->stats.bad_frontend)[why]++;
    uint64_t suppressed = 0;
    if (zkit__ratelimit(&self->bad_log, now, &suppressed))
        zsys_warning("ZKIT-BALANCER-BADFRAME %s: dropped a %s message: %s (%" PRIu64
                     " more dropped since the last line)",
                     self->name, backend ? "worker" : "client", zkit_balancer_bad_name(why),
                     suppressed);
}

static void s_reply(s_state_t *self, zkit__bal_msg_t *msg, const zkit__bal_backend_msg_t *m,
                    int64_t now)
{
    const void *rid = zmq_msg_data(&msg->part[0]);
    size_t rid_size = zmq_msg_size(&msg->part[0]);
    zmq_msg_t *parts = &msg->part[1 + m->first_part];
    const void *first = zmq_msg_data(&parts[0]);
    size_t first_size = zmq_msg_size(&parts[0]);
    s_worker_t *w = s_worker_find(self, rid, rid_size);
    const zkit_envelope_t *reply = NULL;
    bool decoded = m->parts == 1 && zkit_envelope_decode_bytes(self->in, first, first_size) == 0;
    /* A worker presumed dead may still answer; its dialect is then guessed
       from the reply itself.                                                */
    if (w ? w->zkit : decoded) {
        if (!decoded) {
            s_bad(self, true, ZKIT_BALANCER_BAD_ENVELOPE, now);
            if (zkit__dispatcher_nack(self->dispatcher, rid, rid_size, m->id, now) == 0)
                self->stats.nacks++;
            return;
        }
        reply = self->in;
    }
    void *payload = NULL;
    if (zkit__dispatcher_ack(self->dispatcher, rid, rid_size, m->id, now, &payload)) {
        self->stats.late_replies++;
        zkit_envelope_reset(self->in);
        return;
    }
    zkit__bal_request_t *req = payload;
    if (zkit__bal_request_reply(req, self->fe, parts, m->parts, reply, &self->codec,
                                &self->fe_traffic) == 0)
        self->stats.replies++;
    else
        self->stats.unroutable++;
    zkit_envelope_reset(self->in);
    zkit__bal_request_destroy(&req);
}

static void s_backend_message(s_state_t *self, zkit__bal_msg_t *msg, int64_t now)
{
    zkit__bal_frame_t view[ZKIT__BAL_FRAMES_MAX];
    zkit__bal_backend_msg_t m;
    zkit_balancer_bad_t why = ZKIT_BALANCER_BAD_FRAMES;
    if (msg->count < 1)
        return;
    size_t count = zkit__bal_msg_view(msg, 1, view);
    if (msg->dropped || zkit__bal_parse_worker(view, count, &m, &why)) {
        s_bad(self, true, why, now);
        return;
    }
    const void *rid = zmq_msg_data(&msg->part[0]);
    size_t rid_size = zmq_msg_size(&msg->part[0]);
    switch (m.cmd) {
    case ZKIT__BAL_READY: s_worker_ready(self, rid, rid_size, &m, now); break;
    case ZKIT__BAL_HEARTBEAT:
        if (zkit__dispatcher_peer_seen(self->dispatcher, rid, rid_size, now))
            self->stats.unknown_worker++;
        break;
    case ZKIT__BAL_DISCONNECT:
        if (s_worker_find(self, rid, rid_size))
            s_worker_gone(self, rid, rid_size, now, "said DISCONNECT");
        else
            self->stats.unknown_worker++;
        break;
    case ZKIT__BAL_NACK:
        /* A stale NACK (the attempt already failed otherwise) is counted by
           the dispatcher; one from a stranger is counted here.              */
        if (zkit__dispatcher_nack(self->dispatcher, rid, rid_size, m.id, now) == 0)
            self->stats.nacks++;
        else if (!s_worker_find(self, rid, rid_size))
            self->stats.unknown_worker++;
        break;
    case ZKIT__BAL_REPLY: s_reply(self, msg, &m, now); break;
    default: break;
    }
}

/* The dispatcher time at which a request expires: its envelope's ts + ttl
   (wall clock, converted to the monotonic clock), or the default ttl.       */
static int64_t s_expiry(s_state_t *self, bool enveloped, int64_t now)
{
    if (enveloped && zkit_envelope_has(self->in, ZKIT_META_TTL)) {
        uint64_t ts = zkit_envelope_ts(self->in);
        uint64_t ttl = zkit_envelope_ttl(self->in);
        uint64_t now_us = zkit_clock_usec();
        uint64_t end_us = ttl > (UINT64_MAX - ts) / 1000 ? UINT64_MAX : ts + ttl * 1000;
        if (end_us <= now_us)
            return now;
        uint64_t left_ms = (end_us - now_us) / 1000;
        return left_ms >= (uint64_t) (ZKIT__DISPATCHER_NEVER - now) ? ZKIT__DISPATCHER_NEVER
                                                                    : now + (int64_t) left_ms;
    }
    return self->ttl_ms ? now + self->ttl_ms : ZKIT__DISPATCHER_NEVER;
}

static void s_frontend_message(s_state_t *self, zkit__bal_msg_t *msg, int64_t now)
{
    zkit__bal_frame_t view[ZKIT__BAL_FRAMES_MAX];
    zkit__bal_client_msg_t cm;
    zkit_balancer_bad_t why = ZKIT_BALANCER_BAD_FRAMES;
    size_t count = zkit__bal_msg_view(msg, 0, view);
    if (msg->dropped || zkit__bal_parse_client(view, count, &cm, &why)) {
        s_bad(self, false, why, now);
        return;
    }
    uint8_t id[ZKIT_ID_SIZE];
    const zkit__bal_frame_t *first = &view[cm.first_part];
    bool enveloped =
        cm.parts == 1 && zkit_envelope_decode_bytes(self->in, first->data, first->size) == 0;
    if (enveloped)
        memcpy(id, zkit_envelope_id(self->in), ZKIT_ID_SIZE);
    else
        zkit_id_generate(id);
    int64_t expires = s_expiry(self, enveloped, now);
    zkit_envelope_reset(self->in);

    zkit__bal_request_t *req = zkit__bal_request_new(msg, &cm, id, enveloped);
    if (!req) {
        zsys_error("ZKIT-BALANCER-NOMEM %s: cannot hold a request", self->name);
        return;
    }
    if (zkit__dispatcher_submit(self->dispatcher, id, req, expires, now) == 0) {
        self->stats.requests++;
        return;
    }
    zkit__dispatcher_item_info_t info;
    if (errno == EEXIST && zkit__dispatcher_find(self->dispatcher, id, &info) == 0) {
        /* A resend of a request still held: answer on its newest route.    */
        zkit__bal_request_swap_route(info.payload, req);
        self->stats.duplicates++;
    }
    else {
        self->stats.overloaded++;
        if (zkit__bal_request_error(req, self->fe, "OVERLOAD", 0, &self->codec, &self->fe_traffic))
            self->stats.unroutable++;
    }
    zkit__bal_request_destroy(&req);
}

static void s_pipe_message(s_state_t *self, zkit__bal_msg_t *msg)
{
    if (msg->count < 1)
        return;
    const char *cmd = zmq_msg_data(&msg->part[0]);
    size_t size = zmq_msg_size(&msg->part[0]);
    if (size == 5 && memcmp(cmd, "$TERM", 5) == 0)
        self->terminated = true;
    else if (size == 5 && memcmp(cmd, "STATS", 5) == 0) {
        zkit_balancer_stats_t stats;
        zkit__bal_snapshot(self, &stats);
        zkit__actor_reply(self->pipe, &stats, sizeof stats);
    }
}

/* ---- work ------------------------------------------------------------------- */

static void s_dead_letters(s_state_t *self, int64_t now)
{
    zkit__dispatcher_dead_t dead;
    while (zkit__dispatcher_next_dead(self->dispatcher, &dead)) {
        zkit__bal_request_t *req = dead.payload;
        const char *reason = zkit__dispatcher_reason_name(dead.reason);
        self->stats.dead_letters++;
        bool stored = false;
        if (self->store) {
            zmq_msg_t record;
            if (zkit__bal_request_record(req, reason, dead.attempts, &self->codec, &record) == 0) {
                stored = zkit__deadletter_put(self->store, zmq_msg_data(&record),
                                              zmq_msg_size(&record)) == 0;
                zmq_msg_close(&record);
            }
            if (!stored) {
                self->stats.dead_letter_errors++;
                zsys_error("ZKIT-DEADLETTER %s: cannot record a dead letter in %s: %s", self->name,
                           self->store->where, zkit_strerror(errno));
            }
        }
        uint64_t suppressed = 0;
        if (zkit__ratelimit(&self->dead_log, now, &suppressed)) {
            char hex[33];
            zsys_warning("ZKIT-BALANCER-DEADLETTER %s: request %s given up: %s after %u "
                         "attempts%s (%" PRIu64 " more since the last line)",
                         self->name, zkit_id_to_hex(req->id, hex), reason, dead.attempts,
                         stored ? ", recorded" : (self->store ? ", NOT recorded" : ""), suppressed);
        }
        if (zkit__bal_request_error(req, self->fe, reason, dead.attempts, &self->codec,
                                    &self->fe_traffic))
            self->stats.unroutable++;
        zkit__bal_request_destroy(&req);
    }
}

static void s_dispatch(s_state_t *self, int64_t now)
{
    zkit__dispatcher_job_t job;
    if (self->paused) {
        /* Nothing new goes out, but liveness, attempt timeouts and expiry
           still apply: what next() would do besides handing out work.     */
        zkit__dispatcher_tick(self->dispatcher, now);
        s_workers_expired(self);
        return;
    }
    while (zkit__dispatcher_next(self->dispatcher, now, &job)) {
        s_worker_t *w = s_worker_find(self, job.peer, job.peer_size);
        if (w && zkit__bal_request_dispatch(job.payload, self->be, job.peer, job.peer_size, w->zkit,
                                            job.attempts, &self->codec, &self->be_traffic) == 0)
            continue;
        uint8_t rid[ZKIT__DISPATCHER_PEER_MAX];
        size_t size = job.peer_size;
        memcpy(rid, job.peer, size);
        if (w && errno == ENOMEM) {
            /* Try again on the next turn of the loop, maybe elsewhere.     */
            zkit__dispatcher_nack(self->dispatcher, rid, size, job.id, now);
            break;
        }
        s_worker_gone(self, rid, size, now, "could not be reached");
    }
    s_workers_expired(self);
}

static void s_work(s_state_t *self, int64_t now)
{
    if (now >= self->next_heartbeat) {
        s_heartbeat(self, now);
        self->next_heartbeat = now + self->heartbeat_ms;
    }
    s_dispatch(self, now);
    s_dead_letters(self, now);
}

static long s_timeout(s_state_t *self, int64_t now)
{
    int64_t due = zkit__dispatcher_next_due(self->dispatcher);
    if (self->next_heartbeat < due)
        due = self->next_heartbeat;
    return due <= now ? 0 : (long) (due - now);
}

static uint64_t s_held(s_state_t *self)
{
    const zkit__dispatcher_counters_t *c = zkit__dispatcher_counters(self->dispatcher);
    return c->queued + c->in_flight + c->dead_pending;
}

/* ---- the actor ------------------------------------------------------------------- */

static void s_drain(s_state_t *self, zsock_t *sock, int which)
{
    void *handle = zsock_resolve(sock);
    for (int i = 0; i < S_BATCH && !self->terminated; i++) {
        /* Stop reading clients while full: they queue in libzmq (and then
           block at their high-water mark) instead of being refused.        */
        if (which == 2 && s_held(self) >= self->max_requests)
            return;
        zkit__bal_msg_t msg;
        if (zkit__bal_recv(handle, &msg, ZMQ_DONTWAIT))
            return;
        int64_t now = zclock_mono();
        if (which == 0)
            s_pipe_message(self, &msg);
        else if (which == 1) {
            zkit__traffic_in(&self->be_traffic, msg.bytes);
            s_backend_message(self, &msg, now);
        }
        else {
            zkit__traffic_in(&self->fe_traffic, msg.bytes);
            s_frontend_message(self, &msg, now);
        }
        zkit__bal_msg_close(&msg);
    }
}

static void s_actor(zsock_t *pipe, void *args)
{
    s_state_t *self = args;
    self->pipe = pipe;
    self->next_heartbeat = zclock_mono() + self->heartbeat_ms;
    zsock_signal(pipe, 0);
    while (!self->terminated) {
        int64_t now = zclock_mono();
        bool read_clients = s_held(self) < self->max_requests;
        zmq_pollitem_t items[4] = {
            {zsock_resolve(pipe), 0, ZMQ_POLLIN, 0},
            {self->be, 0, ZMQ_POLLIN, 0},
            {self->fe, 0, (short) (read_clients ? ZMQ_POLLIN : 0), 0},
        };
        int count = 3 + zkit__ops_pollitem(self->ops, &items[3]);
        if (zmq_poll(items, count, s_timeout(self, now)) == -1 && errno != EINTR)
            break;
        /* The control endpoint first: STATS reads the counters as they were
           when the request came, and PAUSE takes effect before this turn's
           dispatch.                                                          */
        if (count > 3 && (items[3].revents & ZMQ_POLLIN) && zkit__ops_serve(self->ops) == -1)
            break;
        if (items[0].revents & ZMQ_POLLIN)
            s_drain(self, pipe, 0);
        if (items[1].revents & ZMQ_POLLIN)
            s_drain(self, self->backend, 1);
        if (items[2].revents & ZMQ_POLLIN)
            s_drain(self, self->frontend, 2);
        if (!self->terminated)
            s_work(self, zclock_mono());
    }
    s_dead_letters(self, zclock_mono());
    const zkit__dispatcher_counters_t *c = zkit__dispatcher_counters(self->dispatcher);
    if (c->queued + c->in_flight > 0)
        zsys_warning("ZKIT-BALANCER-ABANDONED %s: %" PRIu64 " requests held at shutdown were "
                     "abandoned; their clients retry",
                     self->name, c->queued + c->in_flight);
    zkit__socket_close(&self->frontend, S_LINGER_MS);
    zkit__socket_close(&self->backend, S_LINGER_MS);
}

/* ---- state ------------------------------------------------------------------------- */

static void s_state_destroy(s_state_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    s_state_t *self = *self_p;
    zkit__socket_close(&self->frontend, 0);
    zkit__socket_close(&self->backend, 0);
    /* After the sockets it secured are closed (ops.h).                     */
    zkit__ops_destroy(&self->ops);
    zkit__dispatcher_destroy(&self->dispatcher);
    zkit__deadletter_close(&self->store);
    while (!zkit__dlist_empty(&self->list)) {
        s_worker_t *w = ZKIT__DLIST_CONTAINER(self->list.next, s_worker_t, link);
        zkit__dlist_unlink(&w->link);
        free(w);
    }
    zkit__idtable_fini(&self->workers);
    zkit_envelope_destroy(&self->in);
    zkit_envelope_destroy(&self->codec.env);
    free(self);
    *self_p = NULL;
}

static int s_check_opts(const zkit_balancer_opts_t *opts)
{
    if (!opts || !opts->frontend || !*opts->frontend || !opts->backend || !*opts->backend ||
        opts->heartbeat_ms < 1 || opts->heartbeat_ms > 3600000 || opts->liveness < 1 ||
        opts->liveness > 100 || opts->max_requests < 1 ||
        (opts->name && (!*opts->name || strlen(opts->name) > S_NAME_MAX))) {
        zsys_error("ZKIT-BALANCER-OPTS: frontend and backend are required; heartbeat_ms "
                   "1-3600000, liveness 1-100, max_requests >= 1, name 1-%d bytes",
                   S_NAME_MAX);
        errno = EINVAL;
        return -1;
    }
    return 0;
}

static s_state_t *s_state_new(const zkit_balancer_opts_t *opts)
{
    s_state_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    snprintf(self->name, sizeof self->name, "%s", opts->name ? opts->name : "balancer");
    self->heartbeat_ms = opts->heartbeat_ms;
    self->max_requests = opts->max_requests;
    self->ttl_ms = opts->ttl_ms;
    self->verbose = opts->verbose;
    zkit__dlist_init(&self->list);
    zkit__idtable_init(&self->workers);
    self->bad_log = (zkit__ratelimit_t){0};
    self->dead_log = (zkit__ratelimit_t){0};
    uint8_t seed[ZKIT_ID_SIZE];
    zkit_id_generate(seed);
    memcpy(&self->hash_seed, seed + 8, sizeof self->hash_seed);

    zkit__dispatcher_opts_t dopts = ZKIT__DISPATCHER_OPTS_DEFAULT;
    dopts.max_attempts = opts->max_attempts;
    dopts.heartbeat_ms = opts->heartbeat_ms;
    dopts.liveness = opts->liveness;
    dopts.attempt_timeout_ms = opts->attempt_timeout_ms;
    /* A little room above the frontend's limit: a burst read before the
       limit is checked again still fits.                                    */
    dopts.max_items = (size_t) opts->max_requests + S_BATCH;
    dopts.payload_free = zkit__bal_request_free;
    dopts.hash_seed = self->hash_seed;
    self->dispatcher = zkit__dispatcher_new(&dopts);
    self->in = zkit_envelope_new();
    self->codec.env = zkit_envelope_new();
    self->codec.name = self->name;
    if (!self->dispatcher || !self->in || !self->codec.env) {
        s_state_destroy(&self);
        errno = ENOMEM;
        return NULL;
    }
    if (opts->dead_letter_dir) {
        self->store = zkit__deadletter_open_spool(opts->dead_letter_dir);
        if (!self->store) {
            int err = errno;
            s_state_destroy(&self);
            errno = err;
            return NULL;
        }
    }
    return self;
}

/* Makes and binds one ROUTER in the caller's thread; the actor takes it
   over (zactor_new is a full memory barrier).                               */
static zsock_t *s_router(zkit__ops_t *ops, const char *endpoints, int sndhwm, char *resolved,
                         size_t size)
{
    zkit__socket_opts_t sopts = ZKIT__SOCKET_OPTS_DEFAULT;
    sopts.linger_ms = S_LINGER_MS;
    sopts.sndhwm = sndhwm;
    /* MANDATORY: a dead worker is noticed at the first send to it.
       HANDOVER: a worker that reconnects with a fixed identity takes it. */
    sopts.router_mandatory = true;
    sopts.router_handover = true;
    /* sopts keeps the default ZMQ_MAXMSGSIZE: a peer sending a larger frame
       loses its connection before the actor sees anything.                  */
    return zkit__ops_socket_new_bound(ops, ZMQ_ROUTER, &sopts, endpoints, resolved, size);
}

/* ---- API ----------------------------------------------------------------------------- */

ZKIT_EXPORT zkit_balancer_t *zkit_balancer_new(const zkit_balancer_opts_t *opts)
{
    if (s_check_opts(opts))
        return NULL;
    zkit_balancer_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    self->state = s_state_new(opts);
    if (!self->state)
        goto err;
    s_state_t *st = self->state;
    /* Security first: every socket is secured before it binds, and the
       control endpoint is bound here so its errors reach the caller.       */
    st->ops = zkit__ops_new(&(zkit__ops_config_t){.opts = &opts->ops,
                                                  .component = "balancer",
                                                  .name = opts->name,
                                                  .stats_fn = zkit__bal_stats_fn,
                                                  .command_fn = zkit__bal_command_fn,
                                                  .arg = st});
    if (!st->ops)
        goto err;
    /* Per client, a handful of replies; per worker, its credit of requests
       plus the heartbeats of one liveness period.                           */
    st->frontend = s_router(st->ops, opts->frontend, 1000, self->frontend, sizeof self->frontend);
    if (!st->frontend)
        goto err;
    st->backend = s_router(st->ops, opts->backend, 2 * ZKIT__BAL_CREDIT_MAX + 1000, self->backend,
                           sizeof self->backend);
    if (!st->backend)
        goto err;
    st->fe = zsock_resolve(st->frontend);
    st->be = zsock_resolve(st->backend);
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

ZKIT_EXPORT void zkit_balancer_destroy(zkit_balancer_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zkit_balancer_t *self = *self_p;
    /* The actor closes its sockets, with their linger, before it returns.   */
    zactor_destroy(&self->actor);
    s_state_destroy(&self->state);
    free(self);
    *self_p = NULL;
}

ZKIT_EXPORT const char *zkit_balancer_frontend(zkit_balancer_t *self)
{
    return self->frontend;
}

ZKIT_EXPORT const char *zkit_balancer_backend(zkit_balancer_t *self)
{
    return self->backend;
}

ZKIT_EXPORT const char *zkit_balancer_control(zkit_balancer_t *self)
{
    return self ? zkit__ops_control_endpoint(self->state->ops) : NULL;
}

ZKIT_EXPORT int zkit_balancer_stats(zkit_balancer_t *self, zkit_balancer_stats_t *stats)
{
    return zkit__actor_query(self->actor, "STATS", stats, sizeof *stats);
}
