/*  device.c: the store-and-forward device's life cycle, its actor loop and
    its API (zkit_spool_device.h). The producer side is device_in.c, the
    consumer side device_out.c, the control endpoint's callbacks
    device_ops.c.

    One thread owns everything: each turn of the loop reads consumers first
    (their acks free room in the spool), then drains producers into one
    group commit, then hands records to consumers as their credit allows.
    Timers write the cursor and apply retention while the device is idle.
    The control endpoint (when configured) is served in the same loop, so
    STATS reads the counters in the thread that writes them.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "spool/device_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/actor.h"
#include "core/socket.h"

/* Consumer messages handled per turn before producers get their turn.      */
#define S_OUT_BATCH 1024
/* Linger at shutdown: confirmations already routed get this long to leave. */
#define S_LINGER_MS 1000
/* How often retention runs while idle, and held messages are retried.     */
#define S_RETAIN_MS 1000
#define S_RETRY_MS  50

struct _zkit_spool_device_t {
    zactor_t *actor;
    zkit__sdev_t *state;
    char in[256];
    char in_push[256];
    char out[256];
};

static const char *const s_reject_names[] = {"FULL", "NOSPACE", "FAILED", "TOOBIG", "ERROR"};
static const char *const s_bad_names[] = {"wrong frame count", "unknown command", "malformed field",
                                          "bad envelope"};

/* ---- helpers shared by the two sides ------------------------------------------ */

void zkit__sdev_msg_close(zkit__sdev_msg_t *msg)
{
    zkit__recv_close(msg);
}

int zkit__sdev_recv(void *socket, zkit__sdev_msg_t *msg, zkit__traffic_t *traffic)
{
    if (zkit__recv(socket, msg, ZKIT__SDEV_PARTS, ZMQ_DONTWAIT) == -1)
        return -1;
    if (traffic)
        zkit__traffic_in(traffic, msg->bytes);
    return 0;
}

void zkit__sdev_bad(zkit__sdev_t *self, zkit__sdev_socket_t socket, zkit_spool_device_bad_t why,
                    int64_t now)
{
    if (socket == ZKIT__SDEV_OUT)
        self->stats.bad_out[why]++;
    else
        self->stats.bad_in[why]++;
    if (socket == ZKIT__SDEV_PUSH)
        self->bad_push[why]++;
    uint64_t suppressed = 0;
    if (zkit__ratelimit(&self->bad_log, now, &suppressed))
        zsys_warning("ZKIT-SPOOL-DEVICE-BADFRAME %s: dropped a %s message: %s (%" PRIu64
                     " more dropped since the last line)",
                     self->name, socket == ZKIT__SDEV_OUT ? "consumer" : "producer",
                     zkit_spool_device_bad_name(why), suppressed);
}

int zkit__sdev_send(void *router, const void *rid, size_t rid_size, const void *const *data,
                    const size_t *size, size_t count, zkit__traffic_t *traffic)
{
    /* ROUTER_MANDATORY: the first frame fails at once with EHOSTUNREACH when
       the peer is gone, and with EAGAIN when its pipe is full; once it is
       queued the rest of the message always goes. */
    if (zmq_send(router, rid, rid_size, ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1)
        return -1;
    size_t bytes = rid_size;
    for (size_t i = 0; i < count; i++) {
        if (zmq_send(router, data[i], size[i], i + 1 < count ? ZMQ_SNDMORE : 0) == -1)
            return -1;
        bytes += size[i];
    }
    zkit__traffic_out(traffic, bytes);
    return 0;
}

bool zkit__sdev_is(const zmq_msg_t *frame, const char *cmd)
{
    size_t n = strlen(cmd);
    return zmq_msg_size((zmq_msg_t *) frame) == n &&
           memcmp(zmq_msg_data((zmq_msg_t *) frame), cmd, n) == 0;
}

/* ---- the actor ------------------------------------------------------------------- */

void zkit__sdev_fill_stats(zkit__sdev_t *self)
{
    const zkit__dispatcher_counters_t *c = zkit__dispatcher_counters(self->dispatcher);
    self->stats.requeued = c->requeued;
    self->stats.queued = c->queued;
    self->stats.in_flight = c->in_flight;
    uint64_t held = 0;
    for (zkit__sdev_held_t *h = self->held; h; h = h->next)
        held++;
    self->stats.held = held;
    self->stats.paused = self->paused;
    zkit_spool_stats(self->spool, &self->stats.spool);
}

static void s_pipe_message(zkit__sdev_t *self)
{
    zkit__sdev_msg_t msg;
    if (zkit__sdev_recv(zsock_resolve(self->pipe), &msg, NULL))
        return;
    if (msg.count >= 1 && zkit__sdev_is(&msg.part[0], "$TERM"))
        self->terminated = true;
    else if (msg.count >= 1 && zkit__sdev_is(&msg.part[0], "STATS")) {
        zkit__sdev_fill_stats(self);
        zkit__actor_reply(self->pipe, &self->stats, sizeof self->stats);
    }
    zkit__sdev_msg_close(&msg);
}

static void s_timers(zkit__sdev_t *self, int64_t now)
{
    if (now >= self->next_checkpoint) {
        /* Acks write the cursor at most every cursor_interval_ms; this makes
           sure the last ones of a burst are written once traffic stops.    */
        zkit_spool_checkpoint(self->spool);
        uint32_t every = self->opts.spool.cursor_interval_ms;
        self->next_checkpoint = now + (every ? every : S_RETAIN_MS);
    }
    if (now >= self->next_retain) {
        zkit_spool_retain(self->spool);
        self->next_retain = now + S_RETAIN_MS;
    }
}

static void s_actor(zsock_t *pipe, void *args)
{
    zkit__sdev_t *self = args;
    self->pipe = pipe;
    int64_t start = zclock_mono();
    self->next_heartbeat = start + self->opts.heartbeat_ms;
    self->next_checkpoint = start;
    self->next_retain = start + S_RETAIN_MS;
    zsock_signal(pipe, 0);
    while (!self->terminated) {
        int64_t now = zclock_mono();
        int64_t due = zkit__sdev_out_work(self, now);
        s_timers(self, now);
        if (self->next_checkpoint < due)
            due = self->next_checkpoint;
        if (self->next_retain < due)
            due = self->next_retain;
        if (self->held && now + S_RETRY_MS < due)
            due = now + S_RETRY_MS;
        bool read_producers = !self->held;
        zmq_pollitem_t items[5] = {
            {zsock_resolve(pipe), 0, ZMQ_POLLIN, 0},
            {self->out, 0, ZMQ_POLLIN, 0},
            {self->in, 0, (short) (read_producers ? ZMQ_POLLIN : 0), 0},
            {self->push, 0, (short) (read_producers ? ZMQ_POLLIN : 0), 0},
        };
        int nitems = self->push ? 4 : 3;
        int control = zkit__ops_pollitem(self->ops, &items[nitems]) ? nitems++ : -1;
        long timeout = due <= now ? 0 : (long) (due - now);
        if (zmq_poll(items, nitems, timeout) == -1 && errno != EINTR)
            break;
        if (items[0].revents & ZMQ_POLLIN)
            s_pipe_message(self);
        if (self->terminated)
            break;
        /* Before the data sockets: a STATS or PAUSE is answered even while
           a flood keeps them busy (serve() takes a bounded batch).         */
        if (control >= 0 && (items[control].revents & ZMQ_POLLIN) && zkit__ops_serve(self->ops))
            break;
        now = zclock_mono();
        if (items[1].revents & ZMQ_POLLIN) {
            for (int i = 0; i < S_OUT_BATCH; i++) {
                zkit__sdev_msg_t msg;
                if (zkit__sdev_recv(self->out, &msg, &self->traffic_out))
                    break;
                zkit__sdev_out_message(self, &msg, now);
                zkit__sdev_msg_close(&msg);
            }
        }
        if (self->held)
            zkit__sdev_in_retry(self, now);
        bool producers =
            (items[2].revents & ZMQ_POLLIN) || (self->push && (items[3].revents & ZMQ_POLLIN));
        if (producers && !self->held)
            zkit__sdev_in_burst(self, now);
    }
    /* Acks that already arrived are applied (and written to the cursor by
       the spool's close): fewer redeliveries after a clean stop. PUTs still
       queued are left: unconfirmed, their producers send them again.     */
    for (int i = 0; i < S_OUT_BATCH; i++) {
        zkit__sdev_msg_t msg;
        if (zkit__sdev_recv(self->out, &msg, &self->traffic_out))
            break;
        if (msg.count == 3 && zkit__sdev_is(&msg.part[1], "ACK"))
            zkit__sdev_out_message(self, &msg, zclock_mono());
        zkit__sdev_msg_close(&msg);
    }
    zkit__socket_close(&self->in_sock, S_LINGER_MS);
    zkit__socket_close(&self->push_sock, 0);
    zkit__socket_close(&self->out_sock, S_LINGER_MS);
}

/* ---- state ------------------------------------------------------------------------- */

static void s_state_destroy(zkit__sdev_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zkit__sdev_t *self = *self_p;
    zkit__socket_close(&self->in_sock, 0);
    zkit__socket_close(&self->push_sock, 0);
    zkit__socket_close(&self->out_sock, 0);
    /* After the sockets it secured (ops.h).                                */
    zkit__ops_destroy(&self->ops);
    zkit__sdev_out_stop(self);
    zkit__sdev_in_stop(self);
    zkit_spool_destroy(&self->dead_spool);
    zkit_spool_destroy(&self->spool);
    zkit_envelope_destroy(&self->env);
    free(self);
    *self_p = NULL;
}

static int s_check_opts(const zkit_spool_device_opts_t *o)
{
    if (!o || !o->dir || !*o->dir || !o->in || !*o->in || !o->out || !*o->out ||
        (o->in_push && !*o->in_push) || o->heartbeat_ms < 1 || o->heartbeat_ms > 3600000 ||
        o->liveness < 1 || o->liveness > 100 || o->prefetch < 1 || o->prefetch > 1000000 ||
        o->burst < 1 || o->burst > 65536 || o->dedup_window > 100000000 ||
        (o->name && (!*o->name || strlen(o->name) > ZKIT__SDEV_NAME_MAX)) ||
        (o->dead_letter_dir && !*o->dead_letter_dir) || o->spool.read_only) {
        zsys_error("ZKIT-SPOOL-DEVICE-OPTS: dir, in and out are required; heartbeat_ms "
                   "1-3600000, liveness 1-100, prefetch 1-1000000, burst 1-65536, "
                   "dedup_window up to 100000000, name 1-%d bytes, not read-only",
                   ZKIT__SDEV_NAME_MAX);
        errno = EINVAL;
        return -1;
    }
    return 0;
}

static zkit__sdev_t *s_state_new(const zkit_spool_device_opts_t *opts)
{
    zkit__sdev_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    snprintf(self->name, sizeof self->name, "%s", opts->name ? opts->name : "spool");
    self->opts = *opts;
    self->on_full = opts->spool.on_full;
    uint8_t seed[ZKIT_ID_SIZE];
    zkit_id_generate(seed);
    memcpy(&self->hash_seed, seed + 8, sizeof self->hash_seed);
    self->env = zkit_envelope_new();
    if (!self->env) {
        errno = ENOMEM;
        goto err;
    }
    /* BLOCK is the device's to do: a spool that blocked inside append would
       block the one thread that reads the acks which free the room.       */
    zkit_spool_opts_t sopts = opts->spool;
    if (sopts.on_full == ZKIT_SPOOL_FULL_BLOCK)
        sopts.on_full = ZKIT_SPOOL_FULL_REJECT;
    self->spool = zkit_spool_new(opts->dir, &sopts);
    if (!self->spool)
        goto err;
    if (opts->dead_letter_dir) {
        zkit_spool_opts_t dopts = sopts;
        dopts.max_bytes = 0;
        dopts.max_age_ms = 0;
        dopts.retain_bytes = 0;
        self->dead_spool = zkit_spool_new(opts->dead_letter_dir, &dopts);
        if (!self->dead_spool)
            goto err;
    }
    if (zkit__sdev_in_start(self) || zkit__sdev_out_start(self))
        goto err;
    return self;
err:;
    int err = errno;
    s_state_destroy(&self);
    errno = err;
    return NULL;
}

/* Makes, secures and binds one socket in the caller's thread; the actor
   takes it over (zactor_new is a full memory barrier). maxmsgsize bounds
   what one peer frame may cost in memory: libzmq drops the connection of
   a peer that sends more.                                                   */
static zsock_t *s_socket(zkit__sdev_t *st, int type, const char *endpoints, int sndhwm,
                         int64_t maxmsgsize, char *resolved, size_t size)
{
    zkit__socket_opts_t sopts = ZKIT__SOCKET_OPTS_DEFAULT;
    sopts.linger_ms = S_LINGER_MS;
    sopts.sndhwm = sndhwm;
    sopts.maxmsgsize = maxmsgsize;
    /* MANDATORY: a dead consumer is noticed at the first send to it.
       HANDOVER: a peer reconnecting with a fixed identity takes it.       */
    sopts.router_mandatory = sopts.router_handover = type == ZMQ_ROUTER;
    return zkit__ops_socket_new_bound(st->ops, type, &sopts, endpoints, resolved, size);
}

/* Producers' frames: up to the record limit plus room for a PUT, and at
   least the default, so a PUT a little above the limit is answered
   REJECTED TOOBIG rather than cut off.                                      */
static int64_t s_in_maxmsgsize(const zkit_spool_device_opts_t *opts)
{
    zkit__socket_opts_t dflt = ZKIT__SOCKET_OPTS_DEFAULT;
    int64_t want = (int64_t) opts->spool.max_record + 64 * 1024;
    return want > dflt.maxmsgsize ? want : dflt.maxmsgsize;
}

/* ---- API ------------------------------------------------------------------------------ */

ZKIT_EXPORT zkit_spool_device_t *zkit_spool_device_new(const zkit_spool_device_opts_t *opts)
{
    if (s_check_opts(opts))
        return NULL;
    zkit_spool_device_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    self->state = s_state_new(opts);
    if (!self->state) {
        int err = errno;
        zsys_error("ZKIT-SPOOL-DEVICE-OPEN %s: cannot open the spool in %s: %s",
                   opts->name ? opts->name : "spool", opts->dir, zkit_strerror(err));
        errno = err;
        goto err;
    }
    zkit__sdev_t *st = self->state;
    st->ops = zkit__ops_new(&(zkit__ops_config_t){.opts = &opts->ops,
                                                  .component = "spool",
                                                  .name = opts->name,
                                                  .stats_fn = zkit__sdev_ops_stats,
                                                  .command_fn = zkit__sdev_ops_command,
                                                  .arg = st});
    if (!st->ops)
        goto err;
    /* Producers get batched confirmations; consumers their credit of
       deliveries plus heartbeats.                                          */
    int64_t in_max = s_in_maxmsgsize(opts);
    st->in_sock = s_socket(st, ZMQ_ROUTER, opts->in, 10000, in_max, self->in, sizeof self->in);
    if (!st->in_sock)
        goto err;
    if (opts->in_push) {
        st->push_sock = s_socket(st, ZMQ_PULL, opts->in_push, 1000, in_max, self->in_push,
                                 sizeof self->in_push);
        if (!st->push_sock)
            goto err;
        st->push = zsock_resolve(st->push_sock);
    }
    st->out_sock = s_socket(st, ZMQ_ROUTER, opts->out, 2 * ZKIT__SDEV_CREDIT_MAX + 1000,
                            ZKIT__SDEV_OUT_MAXMSG, self->out, sizeof self->out);
    if (!st->out_sock)
        goto err;
    st->in = zsock_resolve(st->in_sock);
    st->out = zsock_resolve(st->out_sock);
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

ZKIT_EXPORT void zkit_spool_device_destroy(zkit_spool_device_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zkit_spool_device_t *self = *self_p;
    /* The actor closes its sockets, with their linger, before it returns. */
    zactor_destroy(&self->actor);
    s_state_destroy(&self->state);
    free(self);
    *self_p = NULL;
}

ZKIT_EXPORT const char *zkit_spool_device_in(zkit_spool_device_t *self)
{
    return self->in;
}

ZKIT_EXPORT const char *zkit_spool_device_in_push(zkit_spool_device_t *self)
{
    return self->in_push;
}

ZKIT_EXPORT const char *zkit_spool_device_out(zkit_spool_device_t *self)
{
    return self->out;
}

ZKIT_EXPORT const char *zkit_spool_device_control(zkit_spool_device_t *self)
{
    /* Set by the constructor and never changed: no need to ask the actor. */
    return self && self->state ? zkit__ops_control_endpoint(self->state->ops) : NULL;
}

ZKIT_EXPORT int zkit_spool_device_stats(zkit_spool_device_t *self, zkit_spool_device_stats_t *stats)
{
    return zkit__actor_query(self->actor, "STATS", stats, sizeof *stats);
}

ZKIT_EXPORT const char *zkit_spool_device_reject_name(zkit_spool_device_reject_t why)
{
    return (unsigned) why < ZKIT_SPOOL_DEVICE_REJECT_REASONS_ ? s_reject_names[why] : "?";
}

ZKIT_EXPORT const char *zkit_spool_device_bad_name(zkit_spool_device_bad_t why)
{
    return (unsigned) why < ZKIT_SPOOL_DEVICE_BAD_REASONS_ ? s_bad_names[why] : "?";
}
