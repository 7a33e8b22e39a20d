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

    Hostile input: the frontend forwards only [topic][envelope] messages
    (two frames; anything else is counted in bad_frames and dropped, so a
    broken producer cannot reach every subscriber), the backend passes only
    single-frame subscribe/unsubscribe messages upstream (anything else is
    counted in bad_upstream and dropped: XPUB would otherwise hand it to us
    and XSUB pass it on to every publisher). Both log at most once a second.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "zkit_forwarder.h"
#include "zkit_subscriber.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/actor.h"
#include "core/ops.h"
#include "core/ratelimit.h"
#include "core/recv.h"
#include "core/socket.h"
#include "core/traffic.h"
#include "pubsub/laggard.h"
#include "pubsub/protocol.h"

/* Messages moved per wake-up before the pipe and the backend get a turn. */
#define S_BATCH 1024
/* NODROP: one blocking send waits at most this long before the pipe (STATS,
   $TERM) is looked at again.                                             */
#define S_NODROP_SLICE_MS 20
/* DISCONNECT: how often congested connections are looked at again, and the
   least time between two looks triggered by drops.                       */
#define S_LAGGARD_TICK_MS    100
#define S_LAGGARD_MIN_GAP_MS 10
/* The backend and frontend only ever read subscriptions (the backend) and
   feed messages (the frontend); subscriptions are small, so the backend
   refuses frames above this, and hostile peers lose the connection. */
#define S_SUBSCRIPTION_MAXMSGSIZE (64 * 1024)

/* Why a message was dropped; the index into the bad-input counters. */
typedef enum {
    S_BAD_FRAMES = 0,       /* frontend: not two frames                    */
    S_BAD_MULTIPART,        /* backend: more than one frame                */
    S_BAD_NOT_SUBSCRIPTION, /* backend: empty, or first byte not 0 or 1    */
    S_BAD_REASONS_
} s_bad_t;

static const char *const s_bad_names[] = {"frames", "multipart", "not_subscription"};

typedef struct s_actor_t s_actor_t;

struct _zkit_forwarder_t {
    zactor_t *actor;
    zkit__ops_t *ops;
    s_actor_t *state; /* the actor's, set before it signals; read by the ops
                         callbacks, which run on the actor's thread        */
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

struct s_actor_t {
    zsock_t *pipe;
    zkit__ops_t *ops;
    zsock_t *frontend;
    zsock_t *backend;
    zsock_t *tap;
    void *front;
    void *back;
    zkit__laggard_t *laggard;
    zkit_forwarder_opts_t opts;
    zkit_forwarder_stats_t stats; /* what the traffic below does not hold */
    /* Every whole message, malformed ones included: frontend in (the feed)
       and out (subscriptions upstream), backend out (the feed, once per
       message whatever the subscribers) and in (subscriptions), tap out. */
    zkit__traffic_t front_traffic;
    zkit__traffic_t back_traffic;
    zkit__traffic_t tap_traffic;
    int64_t last_laggard_check;
    uint64_t bad[S_BAD_REASONS_];
    zkit__ratelimit_t bad_log;
    bool paused;
    bool terminated;
};

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

static void s_stats_get(s_actor_t *a, zkit_forwarder_stats_t *st)
{
    *st = a->stats;
    st->msgs_in = a->front_traffic.msgs_in;
    st->bytes_in = a->front_traffic.bytes_in;
    st->msgs_out = a->back_traffic.msgs_out;
    st->bytes_out = a->back_traffic.bytes_out;
    st->upstream = a->front_traffic.msgs_out;
    st->tap_msgs = a->tap_traffic.msgs_out;
    st->connections = a->laggard ? zkit__laggard_connections(a->laggard) : 0;
    st->bad_frames = a->bad[S_BAD_FRAMES];
    st->bad_upstream = a->bad[S_BAD_MULTIPART] + a->bad[S_BAD_NOT_SUBSCRIPTION];
    st->paused = a->paused;
}

static void s_bad(s_actor_t *a, s_bad_t why)
{
    a->bad[why]++;
    uint64_t suppressed = 0;
    if (zkit__ratelimit(&a->bad_log, zclock_mono(), &suppressed))
        zsys_warning("ZKIT-FWD-BADINPUT: dropped a %s message: %s (%" PRIu64
                     " more dropped since the last line)",
                     why == S_BAD_FRAMES ? "frontend" : "backend", s_bad_names[why], suppressed);
}

/*  The control endpoint's STATS: every field of zkit_forwarder_stats_t.    */
static void s_ops_stats(zkit__stats_t *stats, void *arg)
{
    s_actor_t *a = ((zkit_forwarder_t *) arg)->state;
    zkit_forwarder_stats_t st;
    s_stats_get(a, &st);
    /* msgs_in, bytes_in, msgs_out, bytes_out, upstream and tap_msgs are
       these counters (frontend in, backend out, frontend out, tap out). */
    zkit__traffic_report(stats, "frontend", &a->front_traffic);
    zkit__traffic_report(stats, "backend", &a->back_traffic);
    if (a->tap)
        zkit__traffic_report(stats, "tap", &a->tap_traffic);
    zkit__stats_counter1(stats, "dropped", "reason", "hwm", st.drops_hwm);
    zkit__stats_counter1(stats, "dropped", "reason", "shutdown", st.drops_shutdown);
    zkit__stats_counter1(stats, "dropped", "reason", "tap", st.tap_drops);
    zkit__stats_help(stats, "dropped",
                     "Drops: a subscriber queue found full (hwm), a message held at stop "
                     "(shutdown, nodrop), a copy the tap could not take (tap)");
    const zkit__pubsub_metric_t plain[] = {
        {"nodrop_waits", false, st.nodrop_waits, "nodrop policy: sends that had to wait for room"},
        {"laggards", false, st.laggards, "disconnect policy: subscribers disconnected"},
        {"connections", true, st.connections, "disconnect policy: backend connections watched"},
        {"paused", true, st.paused, "1 while PAUSEd: the frontend is not read"},
    };
    zkit__pubsub_metrics(stats, plain, sizeof plain / sizeof plain[0]);
    zkit__stats_label_t labels[2];
    for (int i = 0; i < S_BAD_REASONS_; i++) {
        labels[0] = (zkit__stats_label_t){"socket", i == S_BAD_FRAMES ? "frontend" : "backend"};
        labels[1] = (zkit__stats_label_t){"reason", s_bad_names[i]};
        zkit__stats_counter_labels(stats, "bad_input", labels, 2, a->bad[i]);
    }
    zkit__stats_help(stats, "bad_input",
                     "Malformed messages dropped: frontend not [topic][envelope], backend not "
                     "a single-frame subscription");
    zkit__stats_counter1(stats, "subscriptions", "op", "subscribe", st.subscribe);
    zkit__stats_counter1(stats, "subscriptions", "op", "unsubscribe", st.unsubscribe);
    zkit__stats_help(stats, "subscriptions", "Subscription messages read from the backend");
}

/*  PAUSE stops reading the frontend; RESUME reads it again (the poll loop
    looks at the flag on its next turn).                                    */
static zkit__control_result_t s_ops_command(const char *command, const char *args, char *reply,
                                            size_t reply_size, void *arg)
{
    s_actor_t *a = ((zkit_forwarder_t *) arg)->state;
    return zkit__control_pause_resume(command, args, reply, reply_size, &a->paused, "forwarder",
                                      "reading the frontend");
}

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
        zkit_forwarder_stats_t st;
        s_stats_get(a, &st);
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

static void s_upstream(s_actor_t *a);

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
        /* Subscriptions still go upstream while waiting: a subscriber that
           joins (or leaves) while another one is full must not wait for it
           to drain before the publishers hear of it. (No partial message is
           out: this frame is the first of its message.) */
        if (zsock_events(a->backend) & ZMQ_POLLIN)
            s_upstream(a);
        /* STATS and RESUME still answered while waiting. */
        zsock_t *control = zkit__ops_control_socket(a->ops);
        if (control && (zsock_events(control) & ZMQ_POLLIN))
            zkit__ops_serve(a->ops);
    }
    a->stats.drops_shutdown++;
    return -1;
}

/*  Forwards one whole message from the frontend: [topic][envelope]; any
    other frame count is dropped and counted. Returns 1 when a message was
    read, 0 when none was waiting.                                          */
static int s_forward(s_actor_t *a)
{
    zkit__recv_t msg;
    if (zkit__recv(a->front, &msg, 2, ZMQ_DONTWAIT) == -1)
        return 0;
    size_t bytes = msg.bytes;
    zkit__traffic_in(&a->front_traffic, bytes);
    if (msg.count != 2 || msg.dropped) {
        zkit__recv_close(&msg);
        s_bad(a, S_BAD_FRAMES);
        return 1;
    }
    zmq_msg_t *part = msg.part;
    if (a->tap) {
        void *tap = zsock_resolve(a->tap);
        zmq_msg_t copy[2];
        zmq_msg_init(&copy[0]);
        zmq_msg_init(&copy[1]);
        zmq_msg_copy(&copy[0], &part[0]);
        zmq_msg_copy(&copy[1], &part[1]);
        /* Only a first frame is refused; a tap never blocks the feed. */
        if (zmq_msg_send(&copy[0], tap, ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1) {
            zmq_msg_close(&copy[0]);
            zmq_msg_close(&copy[1]);
            a->stats.tap_drops++;
        }
        else {
            if (zmq_msg_send(&copy[1], tap, ZMQ_DONTWAIT) == -1)
                zmq_msg_close(&copy[1]);
            zkit__traffic_out(&a->tap_traffic, bytes);
        }
    }
    if (s_send_first(a, &part[0], ZMQ_SNDMORE) == -1) {
        zmq_msg_close(&part[0]);
        zmq_msg_close(&part[1]);
        return 1;
    }
    if (zmq_msg_send(&part[1], a->back, 0) == -1)
        zmq_msg_close(&part[1]);
    zkit__traffic_out(&a->back_traffic, bytes);
    return 1;
}

/*  Passes subscriptions from the backend upstream; drops anything else.   */
static void s_upstream(s_actor_t *a)
{
    for (int n = 0; n < S_BATCH; n++) {
        zmq_msg_t frame;
        zkit__pubsub_sub_t got = zkit__pubsub_recv_subscription(a->back, &frame, &a->back_traffic);
        if (got == ZKIT__PUBSUB_SUB_NONE)
            return;
        if (got != ZKIT__PUBSUB_SUB_OK) {
            s_bad(a, got == ZKIT__PUBSUB_SUB_MULTIPART ? S_BAD_MULTIPART : S_BAD_NOT_SUBSCRIPTION);
            continue;
        }
        size_t size = zmq_msg_size(&frame);
        if (*(uint8_t *) zmq_msg_data(&frame) == 1)
            a->stats.subscribe++;
        else
            a->stats.unsubscribe++;
        /* XSUB never blocks a send: subscriptions always go out. */
        if (zmq_msg_send(&frame, a->front, ZMQ_DONTWAIT) == -1)
            zmq_msg_close(&frame);
        else
            zkit__traffic_out(&a->front_traffic, size);
    }
}

/* ---- the actor -------------------------------------------------------------------- */

static int s_attach(s_actor_t *a, zsock_t *sock, const char *bind, const char *connect,
                    char *endpoint, size_t size)
{
    if (bind && zkit__ops_bind(a->ops, sock, bind, endpoint, size) == -1)
        return -1;
    if (connect && zkit__ops_attach(a->ops, sock, connect, false) == -1)
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
    so.maxmsgsize = S_SUBSCRIPTION_MAXMSGSIZE;
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
            s_attach(a, a->tap, o->tap_connect ? NULL : o->tap, o->tap_connect ? o->tap : NULL,
                     self->tap, sizeof self->tap) == -1)
            return -1;
    }
    if (s_attach(a, a->frontend, o->frontend, o->frontend_connect, self->frontend,
                 sizeof self->frontend) == -1 ||
        s_attach(a, a->backend, o->backend, o->backend_connect, self->backend,
                 sizeof self->backend) == -1)
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
    a.ops = init->self->ops;
    init->self->state = &a;
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
    zmq_pollitem_t items[5] = {
        {zsock_resolve(a.pipe), 0, ZMQ_POLLIN, 0},
        {a.front, 0, ZMQ_POLLIN, 0},
        {a.back, 0, ZMQ_POLLIN, 0},
    };
    int nitems = 3, lag_index = -1, control_index = -1;
    if (a.laggard) {
        lag_index = nitems;
        items[nitems++] =
            (zmq_pollitem_t){zsock_resolve(zkit__laggard_monitor(a.laggard)), 0, ZMQ_POLLIN, 0};
    }
    if (zkit__ops_pollitem(a.ops, &items[nitems]) == 1)
        control_index = nitems++;
    while (!a.terminated) {
        /* Paused: the frontend is not read; its queues fill instead. */
        items[1].events = a.paused ? 0 : ZMQ_POLLIN;
        long timeout = a.laggard && zkit__laggard_watching(a.laggard) ? S_LAGGARD_TICK_MS : -1;
        if (zmq_poll(items, nitems, timeout) == -1) {
            if (errno == ETERM)
                break;
            continue;
        }
        if (items[0].revents & ZMQ_POLLIN)
            s_handle_pipe(&a);
        if (lag_index >= 0 && (items[lag_index].revents & ZMQ_POLLIN))
            zkit__laggard_handle_events(a.laggard);
        if (control_index >= 0 && (items[control_index].revents & ZMQ_POLLIN) &&
            zkit__ops_serve(a.ops) == -1)
            break;
        if (items[2].revents & ZMQ_POLLIN)
            s_upstream(&a);
        if (!a.paused && (items[1].revents & ZMQ_POLLIN))
            for (int i = 0; i < S_BATCH && !a.terminated && !a.paused && s_forward(&a); i++)
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
    zkit__ops_config_t config = {.opts = &opts->ops,
                                 .component = "forwarder",
                                 .stats_fn = s_ops_stats,
                                 .command_fn = s_ops_command,
                                 .arg = self};
    if (zkit__pubsub_start(&config, &self->ops, &self->actor, s_actor, &init, &init.rc,
                           &init.err) == 0)
        return self;
    int err = errno;
    free(self);
    errno = err;
    return NULL;
}

void zkit_forwarder_destroy(zkit_forwarder_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    /* The actor closes the sockets the ops secured before it ends. */
    zactor_destroy(&(*self_p)->actor);
    zkit__ops_destroy(&(*self_p)->ops);
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

const char *zkit_forwarder_control(zkit_forwarder_t *self)
{
    return self ? zkit__ops_control_endpoint(self->ops) : NULL;
}

const char *zkit_forwarder_tap(zkit_forwarder_t *self)
{
    return *self->tap ? self->tap : NULL;
}
