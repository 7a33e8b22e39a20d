/*  forwarder.c: zkit_forwarder, the XSUB/XPUB device with an explicit slow-
    subscriber policy, counters and a capture tap (see zkit_forwarder.h).

    The data path is zmq_proxy's: frames are moved from the XSUB to the XPUB
    as they come, never decoded. What is added is one question per message
    to libzmq, asked for free: the backend always runs with ZMQ_XPUB_NODROP
    and sends without waiting, so a send that fails with EAGAIN says "some
    subscriber this message is for has a full queue". The policy answers it:
    DROP and DISCONNECT count it and send the message again in lossy mode
    (libzmq then skips just the full subscriber); NODROP waits for room.

    The backend reports every subscribe and unsubscribe (ZMQ_XPUB_VERBOSER),
    so the counters see each subscriber, not only the first per topic; the
    frontend passes them all upstream, where XSUB and XPUB sort out the
    duplicates.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "zkit_forwarder.h"
#include "zkit_subscriber.h"

#include <czmq.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/actor.h"
#include "core/socket.h"
#include "pubsub/laggard.h"

/* Messages moved per wake-up before the pipe and the backend get a turn. */
#define S_BATCH 1024
/* NODROP: one blocking send waits at most this long before the pipe (STATS,
   $TERM) is looked at again.                                             */
#define S_NODROP_SLICE_MS 20
/* DISCONNECT: how often congested connections are looked at again, and the
   least time between two looks triggered by drops.                       */
#define S_LAGGARD_TICK_MS    100
#define S_LAGGARD_MIN_GAP_MS 10

struct _zkit_forwarder_t {
    zactor_t *actor;
    char frontend[ZKIT_ENDPOINT_MAX + 1];
    char backend[ZKIT_ENDPOINT_MAX + 1];
    char tap[ZKIT_ENDPOINT_MAX + 1];
};

typedef struct {
    const zkit_forwarder_opts_t *opts;
    zkit_forwarder_t *self;
    int rc;
    int err;
} s_init_t;

typedef struct {
    zsock_t *pipe;
    zsock_t *frontend;
    zsock_t *backend;
    zsock_t *tap;
    void *front;
    void *back;
    zkit__laggard_t *laggard;
    zkit_forwarder_opts_t opts;
    zkit_forwarder_stats_t stats;
    int64_t last_laggard_check;
    bool terminated;
} s_actor_t;

static const char *const s_policy_names[] = {"drop", "disconnect", "nodrop"};

const char *zkit_forwarder_policy_name(zkit_forwarder_policy_t policy)
{
    return (unsigned) policy < 3 ? s_policy_names[policy] : "?";
}

int zkit_forwarder_policy_parse(const char *name, zkit_forwarder_policy_t *policy)
{
    for (int i = 0; name && i < 3; i++)
        if (streq(name, s_policy_names[i])) {
            *policy = (zkit_forwarder_policy_t) i;
            return 0;
        }
    return -1;
}

/* ---- commands ---------------------------------------------------------------- */

static void s_handle_pipe(s_actor_t *a)
{
    zmsg_t *msg = zmsg_recv(a->pipe);
    if (!msg) {
        a->terminated = true;
        return;
    }
    char *command = zmsg_popstr(msg);
    if (command && streq(command, "$TERM"))
        a->terminated = true;
    else if (command && streq(command, "STATS")) {
        zkit_forwarder_stats_t st = a->stats;
        st.connections = a->laggard ? zkit__laggard_connections(a->laggard) : 0;
        zkit__actor_reply(a->pipe, &st, sizeof st);
    }
    else
        zsys_error("ZKIT-FWD-COMMAND: unknown actor command '%s'", command ? command : "");
    free(command);
    zmsg_destroy(&msg);
}

/* ---- the data path -------------------------------------------------------------- */

static void s_set_nodrop(s_actor_t *a, int on)
{
    zmq_setsockopt(a->back, ZMQ_XPUB_NODROP, &on, sizeof on);
}

static void s_laggard_check(s_actor_t *a, bool forced)
{
    if (!a->laggard)
        return;
    int64_t now = zclock_mono();
    if (!forced && now - a->last_laggard_check < S_LAGGARD_MIN_GAP_MS)
        return;
    a->last_laggard_check = now;
    a->stats.laggards += (uint64_t) zkit__laggard_check(a->laggard);
}

/*  Sends the first frame of a message to the backend under the policy.
    Returns 0 once it is sent (or dropped for good), -1 when the device is
    stopping with it unsent.                                                */
static int s_send_first(s_actor_t *a, zmq_msg_t *frame, int more)
{
    if (zmq_msg_send(frame, a->back, more | ZMQ_DONTWAIT) != -1)
        return 0;
    if (errno != EAGAIN)
        return 0; /* ETERM and the like: the loop ends on its own */
    if (a->opts.policy != ZKIT_FORWARDER_NODROP) {
        a->stats.drops_hwm++;
        s_set_nodrop(a, 0);
        zmq_msg_send(frame, a->back, more | ZMQ_DONTWAIT);
        s_set_nodrop(a, 1);
        if (a->opts.policy == ZKIT_FORWARDER_DISCONNECT)
            s_laggard_check(a, false);
        return 0;
    }
    a->stats.nodrop_waits++;
    while (!a->terminated) {
        /* SNDTIMEO bounds the wait: libzmq wakes us the moment a queue
           drains, and between slices the pipe is served (STATS, $TERM). */
        if (zmq_msg_send(frame, a->back, more) != -1)
            return 0;
        if (errno != EAGAIN && errno != EINTR)
            return 0;
        if (zsock_events(a->pipe) & ZMQ_POLLIN)
            s_handle_pipe(a);
    }
    a->stats.drops_shutdown++;
    return -1;
}

/*  Forwards one whole message from the frontend. Returns 1 when one was
    forwarded, 0 when none was waiting.                                     */
static int s_forward(s_actor_t *a)
{
    zmq_msg_t frame;
    zmq_msg_init(&frame);
    if (zmq_msg_recv(&frame, a->front, ZMQ_DONTWAIT) == -1) {
        zmq_msg_close(&frame);
        return 0;
    }
    bool first = true, tap_ok = a->tap != NULL, dropped = false;
    uint64_t bytes = 0;
    while (true) {
        int more = zmq_msg_more(&frame) ? ZMQ_SNDMORE : 0;
        bytes += zmq_msg_size(&frame);
        if (tap_ok) {
            zmq_msg_t copy;
            zmq_msg_init(&copy);
            zmq_msg_copy(&copy, &frame);
            if (zmq_msg_send(&copy, zsock_resolve(a->tap), more | ZMQ_DONTWAIT) == -1) {
                zmq_msg_close(&copy);
                /* Only a first frame is refused; a tap never blocks the feed. */
                a->stats.tap_drops++;
                tap_ok = false;
            }
            else if (!more)
                a->stats.tap_msgs++;
        }
        if (dropped)
            zmq_msg_close(&frame);
        else if (first) {
            if (s_send_first(a, &frame, more) == -1) {
                zmq_msg_close(&frame);
                dropped = true;
            }
        }
        else if (zmq_msg_send(&frame, a->back, more) == -1)
            zmq_msg_close(&frame);
        first = false;
        if (!more)
            break;
        zmq_msg_init(&frame);
        while (zmq_msg_recv(&frame, a->front, 0) == -1 && errno == EINTR)
            ;
    }
    a->stats.msgs_in++;
    a->stats.bytes_in += bytes;
    if (!dropped) {
        a->stats.msgs_out++;
        a->stats.bytes_out += bytes;
    }
    return 1;
}

/*  Passes subscriptions (and anything else) from the backend upstream.    */
static void s_upstream(s_actor_t *a)
{
    zmq_msg_t frame;
    zmq_msg_init(&frame);
    while (zmq_msg_recv(&frame, a->back, ZMQ_DONTWAIT) != -1) {
        const uint8_t *data = zmq_msg_data(&frame);
        size_t size = zmq_msg_size(&frame);
        int more = zmq_msg_more(&frame) ? ZMQ_SNDMORE : 0;
        if (size > 0 && data[0] == 1)
            a->stats.subscribe++;
        else if (size > 0 && data[0] == 0)
            a->stats.unsubscribe++;
        if (!more)
            a->stats.upstream++;
        if (zmq_msg_send(&frame, a->front, more) == -1)
            zmq_msg_close(&frame);
        zmq_msg_init(&frame);
    }
    zmq_msg_close(&frame);
}

/* ---- the actor -------------------------------------------------------------------- */

static int s_attach(zsock_t *sock, const char *bind, const char *connect, char *endpoint,
                    size_t size)
{
    if (bind && zkit__socket_bind(sock, bind, endpoint, size) == -1)
        return -1;
    if (connect && zkit__socket_attach(sock, connect, false) == -1)
        return -1;
    return 0;
}

static int s_setup(s_actor_t *a, zkit_forwarder_t *self)
{
    const zkit_forwarder_opts_t *o = &a->opts;
    zkit__socket_opts_t so = ZKIT__SOCKET_OPTS_DEFAULT;
    so.linger_ms = 0; /* the frontend sends only subscriptions */
    so.rcvhwm = o->hwm;
    if (!(a->frontend = zkit__socket_new(ZMQ_XSUB, &so)))
        return -1;
    so = (zkit__socket_opts_t) ZKIT__SOCKET_OPTS_DEFAULT;
    so.linger_ms = o->linger_ms;
    so.sndhwm = o->hwm;
    if (!(a->backend = zkit__socket_new(ZMQ_XPUB, &so)))
        return -1;
    a->front = zsock_resolve(a->frontend);
    a->back = zsock_resolve(a->backend);
    int on = 1, slice = S_NODROP_SLICE_MS;
    if (zmq_setsockopt(a->back, ZMQ_XPUB_VERBOSER, &on, sizeof on) ||
        zmq_setsockopt(a->back, ZMQ_XPUB_NODROP, &on, sizeof on) ||
        zmq_setsockopt(a->back, ZMQ_SNDTIMEO, &slice, sizeof slice))
        return -1;
    /* Monitor before any connection exists, so none goes unseen. */
    if (o->policy == ZKIT_FORWARDER_DISCONNECT &&
        !(a->laggard = zkit__laggard_new(a->backend, o->laggard_ms, o->laggard_bytes)))
        return -1;
    if (o->tap) {
        so = (zkit__socket_opts_t) ZKIT__SOCKET_OPTS_DEFAULT;
        so.linger_ms = 0; /* a tap is a copy: never worth waiting for */
        so.sndhwm = o->tap_hwm;
        if (!(a->tap = zkit__socket_new(o->tap_type, &so)) ||
            s_attach(a->tap, o->tap_connect ? NULL : o->tap, o->tap_connect ? o->tap : NULL,
                     self->tap, sizeof self->tap) == -1)
            return -1;
    }
    if (s_attach(a->frontend, o->frontend, o->frontend_connect, self->frontend,
                 sizeof self->frontend) == -1 ||
        s_attach(a->backend, o->backend, o->backend_connect, self->backend, sizeof self->backend) ==
            -1)
        return -1;
    return 0;
}

static void s_teardown(s_actor_t *a)
{
    zkit__laggard_destroy(&a->laggard);
    zkit__socket_close(&a->tap, 0);
    zkit__socket_close(&a->frontend, 0);
    zkit__socket_close(&a->backend, ZKIT__LINGER_KEEP);
}

static void s_actor(zsock_t *pipe, void *args)
{
    s_init_t *init = args;
    s_actor_t a;
    memset(&a, 0, sizeof a);
    a.pipe = pipe;
    a.opts = *init->opts;
    /* Endpoints are only read during setup; they are the caller's. */
    init->rc = s_setup(&a, init->self);
    init->err = init->rc ? (errno ? errno : EINVAL) : 0;
    int failed = init->rc;
    a.opts.frontend = a.opts.frontend_connect = a.opts.backend = a.opts.backend_connect = NULL;
    a.opts.tap = NULL;
    init = NULL;
    zsock_signal(pipe, 0);
    if (failed) {
        s_teardown(&a);
        zkit__actor_wait_term(pipe);
        return;
    }
    zmq_pollitem_t items[4] = {
        {zsock_resolve(a.pipe), 0, ZMQ_POLLIN, 0},
        {a.front, 0, ZMQ_POLLIN, 0},
        {a.back, 0, ZMQ_POLLIN, 0},
        {a.laggard ? zsock_resolve(zkit__laggard_monitor(a.laggard)) : NULL, 0, ZMQ_POLLIN, 0},
    };
    int nitems = a.laggard ? 4 : 3;
    while (!a.terminated) {
        long timeout = a.laggard && zkit__laggard_watching(a.laggard) ? S_LAGGARD_TICK_MS : -1;
        if (zmq_poll(items, nitems, timeout) == -1) {
            if (errno == ETERM)
                break;
            continue;
        }
        if (items[0].revents & ZMQ_POLLIN)
            s_handle_pipe(&a);
        if (nitems == 4 && (items[3].revents & ZMQ_POLLIN))
            zkit__laggard_handle_events(a.laggard);
        if (items[2].revents & ZMQ_POLLIN)
            s_upstream(&a);
        if (items[1].revents & ZMQ_POLLIN)
            for (int i = 0; i < S_BATCH && !a.terminated && s_forward(&a); i++)
                ;
        if (a.laggard && zkit__laggard_watching(a.laggard))
            s_laggard_check(&a, false);
    }
    s_teardown(&a);
}

/* ---- the caller's side -------------------------------------------------------------- */

zkit_forwarder_t *zkit_forwarder_new(const zkit_forwarder_opts_t *opts)
{
    if (!opts || (!opts->frontend && !opts->frontend_connect) ||
        (!opts->backend && !opts->backend_connect) || opts->hwm < 0 ||
        (unsigned) opts->policy > ZKIT_FORWARDER_NODROP || opts->tap_hwm < 0 ||
        (opts->tap && opts->tap_type != ZMQ_PUB && opts->tap_type != ZMQ_PUSH)) {
        zsys_error("ZKIT-FWD-OPTS: a forwarder needs a frontend and a backend endpoint, a "
                   "known policy, and a PUB or PUSH tap");
        errno = EINVAL;
        return NULL;
    }
    if (opts->policy == ZKIT_FORWARDER_DISCONNECT && !zkit__laggard_supported()) {
        zsys_error("ZKIT-FWD-OPTS: the disconnect policy needs Linux (SIOCOUTQ)");
        errno = ENOTSUP;
        return NULL;
    }
    zkit_forwarder_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    s_init_t init = {.opts = opts, .self = self};
    self->actor = zactor_new(s_actor, &init);
    if (!self->actor || init.rc) {
        int err = self->actor ? init.err : ENOMEM;
        zactor_destroy(&self->actor);
        free(self);
        errno = err;
        return NULL;
    }
    return self;
}

void zkit_forwarder_destroy(zkit_forwarder_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zactor_destroy(&(*self_p)->actor);
    free(*self_p);
    *self_p = NULL;
}

int zkit_forwarder_stats(zkit_forwarder_t *self, zkit_forwarder_stats_t *stats)
{
    if (!self || !stats) {
        errno = EINVAL;
        return -1;
    }
    return zkit__actor_query(self->actor, "STATS", stats, sizeof *stats);
}

const char *zkit_forwarder_frontend(zkit_forwarder_t *self)
{
    return *self->frontend ? self->frontend : NULL;
}

const char *zkit_forwarder_backend(zkit_forwarder_t *self)
{
    return *self->backend ? self->backend : NULL;
}

const char *zkit_forwarder_tap(zkit_forwarder_t *self)
{
    return *self->tap ? self->tap : NULL;
}
