/*  client.c: requests to a load-balanced service, with retries (see
    zkit_client.h).

    Each outstanding request keeps its encoded envelope, so a resend is a
    frame copy (libzmq shares large frames). Outstanding requests sit in an
    id table (to match replies) and on one timer list ordered by due time:
    either the end of the attempt in progress or the end of the backoff
    before the next one. New attempts all wait the same timeout, so they
    join at the tail; only a backoff, rarely, walks the list a little.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "zkit_client.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "balancer/protocol.h"
#include "core/idtable.h"
#include "core/ops.h"
#include "core/socket.h"

#define S_NEVER    INT64_MAX
#define S_NAME_MAX 255

typedef struct s_pending {
    struct s_pending *prev, *next; /* timer list, by due */
    uint64_t hash;
    uint8_t id[ZKIT_ID_SIZE];
    zmq_msg_t frame; /* the encoded request */
    uint32_t attempts;
    bool waiting; /* an attempt is out (due: its timeout); else backing off */
    int64_t due;
} s_pending_t;

typedef struct s_done {
    struct s_done *next;
    zkit_client_result_t result;
} s_done_t;

struct _zkit_client_t {
    zkit_client_opts_t opts;
    char name[S_NAME_MAX + 1];
    zsock_t *sock;
    void *handle;
    zkit__ops_t *ops; /* security only: a client has no control endpoint */
    zkit__idtable_t table;
    s_pending_t timers; /* sentinel */
    size_t pending;
    s_done_t *done_head, *done_tail; /* outcomes not yet received, FIFO */
    uint64_t hash_seed;
    uint64_t seq;
    char error[sizeof((zkit_client_result_t *) 0)->error];
    zkit_client_stats_t stats;
};

/* ---- outstanding requests ------------------------------------------------------- */

static bool s_match(const void *entry, const void *key)
{
    return memcmp(((const s_pending_t *) entry)->id, key, ZKIT_ID_SIZE) == 0;
}

static s_pending_t *s_find(zkit_client_t *self, const uint8_t *id, uint64_t *hash)
{
    uint64_t h = zkit__idtable_hash_id(id, self->hash_seed);
    if (hash)
        *hash = h;
    return zkit__idtable_find(&self->table, h, id, s_match);
}

static void s_timer_unlink(s_pending_t *p)
{
    p->prev->next = p->next;
    p->next->prev = p->prev;
    p->prev = p->next = p;
}

/* Puts p where its due time belongs, searching from the tail.              */
static void s_timer_set(zkit_client_t *self, s_pending_t *p, int64_t due)
{
    s_timer_unlink(p);
    p->due = due;
    s_pending_t *after = self->timers.prev;
    while (after != &self->timers && after->due > due)
        after = after->prev;
    p->prev = after;
    p->next = after->next;
    after->next->prev = p;
    after->next = p;
}

static void s_attempt(zkit_client_t *self, s_pending_t *p, int64_t now)
{
    zmq_msg_t frames[2];
    zmq_msg_init(&frames[0]);
    zmq_msg_init(&frames[1]);
    p->attempts++;
    if (p->attempts > 1)
        self->stats.resends++;
    /* A send that fails (no room, no connection yet) is an attempt all the
       same: its timeout brings the next one.                                */
    if (zmq_msg_copy(&frames[1], &p->frame) == 0)
        zkit__bal_send(self->handle, frames, 2, NULL); /* no control endpoint */
    else {
        zmq_msg_close(&frames[0]);
        zmq_msg_close(&frames[1]);
    }
    p->waiting = true;
    s_timer_set(self, p, now + self->opts.timeout_ms);
}

static void s_pending_free(zkit_client_t *self, s_pending_t *p)
{
    s_timer_unlink(p);
    zkit__idtable_remove(&self->table, p->hash, p);
    zmq_msg_close(&p->frame);
    free(p);
    self->pending--;
}

/* Ends p with an outcome for zkit_client_recv. reply is taken over.        */
static void s_complete(zkit_client_t *self, s_pending_t *p, int status, const char *error,
                       zkit_envelope_t *reply)
{
    s_done_t *done = calloc(1, sizeof *done);
    if (!done) {
        /* No memory for the outcome: keep the request outstanding; a later
           reply or timeout tries again.                                     */
        zkit_envelope_destroy(&reply);
        return;
    }
    memcpy(done->result.id, p->id, ZKIT_ID_SIZE);
    done->result.status = status;
    done->result.attempts = p->attempts;
    snprintf(done->result.error, sizeof done->result.error, "%s", error ? error : "");
    done->result.reply = reply;
    if (self->done_tail)
        self->done_tail->next = done;
    else
        self->done_head = done;
    self->done_tail = done;
    if (status == 0)
        self->stats.replies++;
    else
        self->stats.failures++;
    s_pending_free(self, p);
}

static void s_timers(zkit_client_t *self, int64_t now)
{
    while (self->timers.next != &self->timers && self->timers.next->due <= now) {
        s_pending_t *p = self->timers.next;
        if (!p->waiting)
            s_attempt(self, p, now);
        else if (p->attempts > self->opts.retries)
            s_complete(self, p, ETIMEDOUT, NULL, NULL);
        else {
            uint32_t doublings = p->attempts - 1 < 20 ? p->attempts - 1 : 20;
            uint64_t backoff = (uint64_t) self->opts.backoff_ms << doublings;
            if (backoff > self->opts.backoff_max_ms)
                backoff = self->opts.backoff_max_ms;
            p->waiting = false;
            s_timer_set(self, p, now + (int64_t) backoff);
        }
    }
}

/* ---- replies -------------------------------------------------------------------- */

/* Takes one reply: [empty][envelope]. Anything else, and replies to no
   outstanding request, are discarded.                                       */
static void s_on_reply(zkit_client_t *self, zkit__bal_msg_t *msg)
{
    if (msg->dropped || msg->count != 2 || zmq_msg_size(&msg->part[0]) != 0) {
        self->stats.discarded++;
        return;
    }
    zkit_envelope_t *env = zkit_envelope_new();
    zkit_value_t corr;
    s_pending_t *p = NULL;
    if (env && zkit_envelope_decode(env, &msg->part[1]) == 0 &&
        zkit_envelope_corr(env, &corr) == 0 && corr.size == ZKIT_ID_SIZE)
        p = s_find(self, corr.data, NULL);
    if (!p) {
        self->stats.discarded++;
        zkit_envelope_destroy(&env);
        return;
    }
    zkit_value_t error;
    if (zkit_envelope_header(env, ZKIT__BAL_HDR_ERROR, &error) == 0 &&
        error.type == ZKIT_VALUE_STR) {
        zkit_value_t attempts = {.type = ZKIT_VALUE_INT, .i = 0};
        zkit_envelope_header(env, ZKIT__BAL_HDR_ATTEMPTS, &attempts);
        char text[sizeof self->error];
        snprintf(text, sizeof text, "%.*s after %" PRId64 " attempts",
                 (int) (error.size < 40 ? error.size : 40), (const char *) error.data,
                 attempts.type == ZKIT_VALUE_INT ? attempts.i : 0);
        zkit_envelope_destroy(&env);
        s_complete(self, p, EREMOTEIO, text, NULL);
        return;
    }
    s_complete(self, p, 0, NULL, env);
}

/* Drives timers and reads replies until an outcome is there (for want, or
   any when want is NULL) or deadline passes. Returns the outcome's node, or
   NULL with errno EAGAIN (deadline), ENOENT (nothing outstanding) or EINTR.  */
static s_done_t *s_wait(zkit_client_t *self, const uint8_t *want, int64_t deadline)
{
    while (true) {
        int64_t now = zclock_mono();
        s_timers(self, now);
        for (s_done_t *d = self->done_head; d; d = d->next)
            if (!want || memcmp(d->result.id, want, ZKIT_ID_SIZE) == 0)
                return d;
        if (want ? !s_find(self, want, NULL) : self->pending == 0) {
            errno = ENOENT;
            return NULL;
        }
        if (now >= deadline) {
            errno = EAGAIN;
            return NULL;
        }
        int64_t until = self->timers.next->due < deadline ? self->timers.next->due : deadline;
        long timeout = until - now > 3600000 ? 3600000 : (long) (until - now);
        zmq_pollitem_t item = {self->handle, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&item, 1, timeout);
        if (rc == -1) {
            if (errno == EINTR)
                return NULL;
            errno = EAGAIN;
            return NULL;
        }
        zkit__bal_msg_t msg;
        while (zkit__bal_recv(self->handle, &msg, ZMQ_DONTWAIT) == 0) {
            s_on_reply(self, &msg);
            zkit__bal_msg_close(&msg);
        }
    }
}

static void s_take(zkit_client_t *self, s_done_t *done, zkit_client_result_t *result)
{
    s_done_t **link = &self->done_head;
    s_done_t *prev = NULL;
    while (*link != done) {
        prev = *link;
        link = &(*link)->next;
    }
    *link = done->next;
    if (self->done_tail == done)
        self->done_tail = prev;
    *result = done->result;
    free(done);
}

/* ---- API ------------------------------------------------------------------------- */

ZKIT_EXPORT zkit_client_t *zkit_client_new(const zkit_client_opts_t *opts)
{
    if (!opts || !opts->connect || !*opts->connect || opts->timeout_ms < 1 ||
        opts->timeout_ms > 3600000 || opts->retries > 1000 || opts->max_pending < 1 ||
        (opts->name && (!*opts->name || strlen(opts->name) > S_NAME_MAX)) ||
        (opts->ops.control && *opts->ops.control)) {
        zsys_error("ZKIT-CLIENT-OPTS: connect is required; timeout_ms 1-3600000, retries "
                   "0-1000, max_pending >= 1, name 1-%d bytes; no ops.control (a client "
                   "has no thread to answer it: read zkit_client_stats)",
                   S_NAME_MAX);
        errno = EINVAL;
        return NULL;
    }
    zkit_client_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    self->opts = *opts;
    self->opts.connect = NULL;
    self->opts.name = NULL;
    self->opts.ops = (zkit_ops_opts_t){0}; /* the caller's strings */
    if (opts->name)
        snprintf(self->name, sizeof self->name, "%s", opts->name);
    else
        snprintf(self->name, sizeof self->name, "client-%d", (int) getpid());
    zkit__idtable_init(&self->table);
    self->timers.prev = self->timers.next = &self->timers;
    self->timers.due = S_NEVER;
    uint8_t seed[ZKIT_ID_SIZE];
    zkit_id_generate(seed);
    memcpy(&self->hash_seed, seed + 8, sizeof self->hash_seed);

    /* Linger 0 at destroy: what is still outstanding then was abandoned by
       the caller. ZMTP heartbeats make libzmq notice a dead connection (a
       vanished host sends no FIN) and reconnect.                            */
    self->ops = zkit__ops_new(&(zkit__ops_config_t){.opts = &opts->ops, .component = "client"});
    if (!self->ops)
        goto err;
    zkit__socket_opts_t sopts = ZKIT__SOCKET_OPTS_DEFAULT;
    self->sock = zkit__socket_new(ZMQ_DEALER, &sopts);
    if (!self->sock)
        goto err;
    zsock_set_heartbeat_ivl(self->sock, 1000);
    zsock_set_heartbeat_timeout(self->sock, 3000);
    if (zkit__ops_attach(self->ops, self->sock, opts->connect, false))
        goto err;
    self->handle = zsock_resolve(self->sock);
    return self;

err:;
    int err = errno;
    zkit__socket_close(&self->sock, 0);
    zkit__ops_destroy(&self->ops);
    zkit__idtable_fini(&self->table);
    free(self);
    errno = err;
    return NULL;
}

ZKIT_EXPORT void zkit_client_destroy(zkit_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zkit_client_t *self = *self_p;
    zkit__socket_close(&self->sock, 0);
    /* After the socket it secured is closed (ops.h).                       */
    zkit__ops_destroy(&self->ops);
    while (self->timers.next != &self->timers)
        s_pending_free(self, self->timers.next);
    zkit__idtable_fini(&self->table);
    while (self->done_head) {
        s_done_t *d = self->done_head;
        self->done_head = d->next;
        zkit_envelope_destroy(&d->result.reply);
        free(d);
    }
    free(self);
    *self_p = NULL;
}

ZKIT_EXPORT int zkit_client_send(zkit_client_t *self, zkit_envelope_t **request_p,
                                 uint8_t id_out[ZKIT_ID_SIZE])
{
    zkit_envelope_t *env = *request_p;
    if (self->pending >= self->opts.max_pending) {
        errno = EAGAIN;
        return -1;
    }
    const uint8_t *id = zkit_envelope_id(env);
    uint64_t hash;
    if (s_find(self, id, &hash)) {
        errno = EEXIST;
        return -1;
    }
    if (!zkit_envelope_src(env) && zkit_envelope_set_src(env, self->name))
        return -1;
    if (self->opts.ttl_ms && !zkit_envelope_has(env, ZKIT_META_TTL))
        zkit_envelope_set_ttl(env, self->opts.ttl_ms);
    if (zkit_envelope_seq(env) == 0)
        zkit_envelope_set_seq(env, ++self->seq);
    s_pending_t *p = calloc(1, sizeof *p);
    if (!p) {
        errno = ENOMEM;
        return -1;
    }
    memcpy(p->id, id, ZKIT_ID_SIZE);
    p->hash = hash;
    p->prev = p->next = p;
    if (zkit_envelope_encode(env, &p->frame)) {
        free(p);
        return -1;
    }
    if (zkit__idtable_insert(&self->table, hash, p)) {
        zmq_msg_close(&p->frame);
        free(p);
        return -1;
    }
    self->pending++;
    self->stats.sent++;
    if (id_out)
        memcpy(id_out, id, ZKIT_ID_SIZE);
    s_attempt(self, p, zclock_mono());
    zkit_envelope_destroy(request_p);
    return 0;
}

ZKIT_EXPORT int zkit_client_recv(zkit_client_t *self, zkit_client_result_t *result, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? S_NEVER : zclock_mono() + timeout_ms;
    s_done_t *done = s_wait(self, NULL, deadline);
    if (!done)
        return -1;
    s_take(self, done, result);
    return 0;
}

ZKIT_EXPORT zkit_envelope_t *zkit_client_request(zkit_client_t *self, const void *body, size_t size)
{
    self->error[0] = '\0';
    zkit_envelope_t *env = zkit_envelope_new();
    uint8_t id[ZKIT_ID_SIZE];
    if (!env || zkit_envelope_set_body(env, body, size) || zkit_client_send(self, &env, id)) {
        int err = env ? errno : ENOMEM;
        zkit_envelope_destroy(&env);
        errno = err;
        return NULL;
    }
    /* Every request ends, at the latest after its last attempt times out.  */
    s_done_t *done = s_wait(self, id, S_NEVER);
    if (!done)
        return NULL;
    zkit_client_result_t result;
    s_take(self, done, &result);
    if (result.status) {
        snprintf(self->error, sizeof self->error, "%s", result.error);
        errno = result.status;
        return NULL;
    }
    return result.reply;
}

ZKIT_EXPORT const char *zkit_client_error(zkit_client_t *self)
{
    return self->error;
}

ZKIT_EXPORT size_t zkit_client_pending(zkit_client_t *self)
{
    return self->pending;
}

ZKIT_EXPORT void zkit_client_stats(zkit_client_t *self, zkit_client_stats_t *stats)
{
    *stats = self->stats;
}
