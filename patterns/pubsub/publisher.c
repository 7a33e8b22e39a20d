/*  publisher.c: zkit_publisher, topic + envelope on an XPUB, with a replay
    buffer and a last-value cache served over a ROUTER (see zkit_publisher.h
    and docs/pubsub-protocol.md).

    Two threads. The caller's thread numbers and encodes each message and
    hands it to the actor over an inproc PAIR (the data pipe), so encoding
    never waits behind replay work and seq order is the order of the pipe.
    The actor thread owns every ZeroMQ socket that talks to the network: it
    keeps a reference to each message in the replay ring (and the last-value
    cache), sends it on the XPUB, answers FETCH, PROBE and SNAPSHOT
    (publisher_replay.c), and watches subscriptions for
    zkit_publisher_wait_subscriber. Commands arrive on the actor pipe; before
    answering one (or a replay request) the actor drains the data pipe, so it
    sees every message sent before it.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "zkit_publisher.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mpack.h"
#include "core/actor.h"
#include "core/ops.h"
#include "core/recv.h"
#include "core/socket.h"
#include "pubsub/protocol.h"
#include "pubsub/publisher_internal.h"

/* The data pipe: deep enough that the caller rarely waits for the actor. */
#define S_DATA_HWM 10000
/* Data messages handled per wake-up before the actor looks at its other
   sockets again, so replay requests are served while a burst goes out. */
#define S_DATA_BATCH 1024
/* nodrop: how long one blocking send may wait before the actor looks at
   its pipe and replay socket again.                                       */
#define S_NODROP_SLICE_MS 10

struct _zkit_publisher_t {
    zactor_t *actor;
    zkit__ops_t *ops;
    zkit__pub_actor_t *state; /* the actor's, set before it signals; read by
                                 the ops callbacks on the actor's thread  */
    zsock_t *data;            /* caller's end of the data pipe                      */
    zkit_envelope_t *scratch;
    char name[ZKIT_SRC_MAX + 1];
    uint64_t epoch;
    uint64_t seq; /* last seq handed out; caller's thread only       */
    char announce[ZKIT_ENDPOINT_MAX + 1];
    char endpoint[ZKIT_ENDPOINT_MAX + 1];
};

typedef struct {
    uint8_t *bytes;
    size_t size;
} s_prefix_t;

/*  Everything the actor needs to start, and what it reports back.           */
typedef struct {
    zkit_publisher_t *self;
    const zkit_publisher_opts_t *opts;
    const char *data_endpoint;
    const char *name;
    uint64_t epoch;
    uint64_t last_seq;        /* where a spooled stream goes on          */
    zkit__pub_spool_t *spool; /* the actor takes it over                 */
    int rc;                   /* 0 started, -1 failed (err)                               */
    int err;
    char endpoint[ZKIT_ENDPOINT_MAX + 1];
    char replay_endpoint[ZKIT_ENDPOINT_MAX + 1];
} s_init_t;

/* ---- the actor: data ----------------------------------------------------------- */

/*  Sends [topic][envelope] on the XPUB, taking both frames. Returns 0, or -1
    with EAGAIN (nodrop: a subscriber is full; the frames are untouched).   */
static int s_xpub_send(zkit__pub_actor_t *a, zmq_msg_t *topic, zmq_msg_t *envelope, int flags)
{
    size_t bytes = zmq_msg_size(topic) + zmq_msg_size(envelope);
    if (zmq_msg_send(topic, a->xpub_handle, ZMQ_SNDMORE | flags) == -1)
        return -1;
    /* libzmq takes the rest of a message once it took the first frame. */
    if (zmq_msg_send(envelope, a->xpub_handle, flags) == -1)
        zmq_msg_close(envelope);
    zkit__traffic_out(&a->feed_traffic, bytes);
    return 0;
}

/*  Tries the nodrop message again, waiting at most one slice.             */
static void s_flush_pending(zkit__pub_actor_t *a)
{
    if (!a->pending)
        return;
    if (s_xpub_send(a, &a->pending_topic, &a->pending_envelope, 0) == 0) {
        zmq_msg_close(&a->pending_topic);
        zmq_msg_close(&a->pending_envelope);
        a->pending = false;
    }
}

/*  Handles one message from the data pipe: [seq (8 bytes)][topic][envelope].
    Returns 0, or -1 when nothing was waiting.                               */
static int s_handle_data(zkit__pub_actor_t *a)
{
    zkit__recv_t msg;
    if (zkit__recv(zsock_resolve(a->data), &msg, 3, ZMQ_DONTWAIT) == -1)
        return -1;
    /* Only zkit_publisher_send writes to this pipe: anything else is a bug. */
    assert(msg.count == 3 && msg.dropped == 0 && zmq_msg_size(&msg.part[0]) == 8);
    zmq_msg_t *part = msg.part;
    uint64_t seq = mpack_get_be64(zmq_msg_data(&part[0]));
    zmq_msg_close(&part[0]);
    a->last_seq = seq;
    if (a->ring && zkit__replay_put(a->ring, seq, &part[1], &part[2]) == -1)
        zsys_error("ZKIT-PUB-REPLAY %s: out of memory keeping seq %llu for replay", a->name,
                   (unsigned long long) seq);
    if (a->spool)
        zkit__pub_spool_put(a->spool, seq, &part[1], &part[2]);
    if (a->lvc)
        zkit__pub_lvc_update(a, seq, &part[1], &part[2]);
    if (s_xpub_send(a, &part[1], &part[2], a->opts.nodrop ? ZMQ_DONTWAIT : 0) == -1) {
        a->pending_topic = part[1];
        a->pending_envelope = part[2];
        a->pending = true;
    }
    return 0;
}

/*  See publisher_internal.h.                                               */
void zkit__pub_drain_data(zkit__pub_actor_t *a, bool block, int64_t until_ms)
{
    /* Paused: what the application hands over waits in the pipe (at stop,
       block is true and everything accepted still goes out). */
    if (a->paused && !block)
        return;
    while (true) {
        while (block && a->pending && (until_ms < 0 || zclock_mono() < until_ms))
            s_flush_pending(a);
        if (a->pending || s_handle_data(a) == -1)
            return;
    }
}

/* ---- the actor: subscriptions ---------------------------------------------- */

static bool s_topic_present(zkit__pub_actor_t *a, const char *topic)
{
    size_t size = strlen(topic);
    for (s_prefix_t *p = zlistx_first(a->prefixes); p; p = zlistx_next(a->prefixes))
        if (zkit__pubsub_prefix_match(p->bytes, p->size, topic, size))
            return true;
    return false;
}

static void s_prefix_free(void **item)
{
    s_prefix_t *p = (s_prefix_t *) *item;
    if (p) {
        free(p->bytes);
        free(p);
        *item = NULL;
    }
}

static void s_wait_reply(zkit__pub_actor_t *a, const char *answer)
{
    a->waiting = false;
    zstr_send(a->pipe, answer);
}

static void s_bad_feed(zkit__pub_actor_t *a, zkit__pubsub_sub_t why)
{
    a->bad_feed[why]++;
    a->stats.bad_subscriptions++;
    uint64_t suppressed = 0;
    if (zkit__ratelimit(&a->bad_feed_log, zclock_mono(), &suppressed))
        zsys_warning("ZKIT-PUB-BADSUB %s: dropped a message on the feed socket: %s (%" PRIu64
                     " more dropped since the last line)",
                     a->name, zkit__pubsub_sub_reason(why), suppressed);
}

static void s_prefix_add(zkit__pub_actor_t *a, const uint8_t *bytes, size_t size)
{
    /* A longer prefix matches no topic; past the cap a hostile peer would
       only cost memory and time. libzmq still filters by it either way. */
    if (size > ZKIT_TOPIC_MAX || zlistx_size(a->prefixes) >= ZKIT_PUBLISHER_PREFIXES_MAX)
        return;
    s_prefix_t *p = calloc(1, sizeof *p);
    if (p && (size == 0 || (p->bytes = malloc(size)))) {
        if (size)
            memcpy(p->bytes, bytes, size);
        p->size = size;
        zlistx_add_end(a->prefixes, p);
    }
    else
        free(p);
}

static void s_prefix_remove(zkit__pub_actor_t *a, const uint8_t *bytes, size_t size)
{
    if (size > ZKIT_TOPIC_MAX)
        return;
    for (s_prefix_t *p = zlistx_first(a->prefixes); p; p = zlistx_next(a->prefixes))
        if (p->size == size && (size == 0 || !memcmp(p->bytes, bytes, size))) {
            zlistx_delete(a->prefixes, zlistx_cursor(a->prefixes));
            return;
        }
}

/*  Reads what the XPUB reports: subscriptions, and whatever else a peer
    sent (XPUB hands non-subscription messages up; they are dropped).      */
static void s_handle_subscription(zkit__pub_actor_t *a)
{
    for (int n = 0; n < S_DATA_BATCH; n++) {
        zmq_msg_t frame;
        zkit__pubsub_sub_t got =
            zkit__pubsub_recv_subscription(a->xpub_handle, &frame, &a->feed_traffic);
        if (got == ZKIT__PUBSUB_SUB_NONE)
            return;
        if (got != ZKIT__PUBSUB_SUB_OK) {
            s_bad_feed(a, got);
            continue;
        }
        const uint8_t *data = zmq_msg_data(&frame);
        size_t size = zmq_msg_size(&frame);
        bool subscribe = data[0] == 1;
        if (subscribe) {
            a->stats.subscribe++;
            s_prefix_add(a, data + 1, size - 1);
        }
        else {
            a->stats.unsubscribe++;
            s_prefix_remove(a, data + 1, size - 1);
        }
        if (a->opts.on_subscription)
            a->opts.on_subscription(subscribe, data + 1, size - 1, a->opts.subscription_arg);
        if (a->waiting && s_topic_present(a, a->wait_topic))
            s_wait_reply(a, "OK");
        zmq_msg_close(&frame);
    }
}

/* ---- the actor: commands --------------------------------------------------- */

static void s_handle_pipe(zkit__pub_actor_t *a)
{
    zmsg_t *msg = zmsg_recv(a->pipe);
    if (!msg) {
        a->terminated = true;
        return;
    }
    char *command = zmsg_popstr(msg);
    zkit__pub_drain_data(a, false, 0);
    if (!command)
        ;
    else if (streq(command, "$TERM"))
        a->terminated = true;
    else if (streq(command, "STATS")) {
        zkit_publisher_stats_t st;
        zkit__pub_stats_get(a, &st);
        zkit__actor_reply(a->pipe, &st, sizeof st);
    }
    else if (streq(command, "WAIT")) {
        char *topic = zmsg_popstr(msg);
        char *timeout = zmsg_popstr(msg);
        long ms = timeout ? strtol(timeout, NULL, 10) : -1;
        snprintf(a->wait_topic, sizeof a->wait_topic, "%s", topic ? topic : "");
        a->waiting = true;
        a->wait_deadline = ms < 0 ? -1 : zclock_mono() + ms;
        if (s_topic_present(a, a->wait_topic))
            s_wait_reply(a, "OK");
        free(topic);
        free(timeout);
    }
    else if (streq(command, "CANCEL")) {
        if (a->waiting)
            s_wait_reply(a, "CANCELLED");
    }
    else
        zsys_error("ZKIT-PUB-COMMAND: unknown actor command '%s'", command);
    free(command);
    zmsg_destroy(&msg);
}

/* ---- the actor: life ------------------------------------------------------------ */

static int s_setup(zkit__pub_actor_t *a, s_init_t *init)
{
    const zkit_publisher_opts_t *o = &a->opts;
    zkit__socket_opts_t so = ZKIT__SOCKET_OPTS_DEFAULT;
    so.linger_ms = 0;
    so.sndhwm = so.rcvhwm = S_DATA_HWM;
    if (!(a->data = zkit__socket_new(ZMQ_PAIR, &so)) ||
        zkit__socket_attach(a->data, init->data_endpoint, false) == -1)
        return -1;

    so = (zkit__socket_opts_t) ZKIT__SOCKET_OPTS_DEFAULT;
    so.linger_ms = o->linger_ms;
    so.sndhwm = o->sndhwm;
    /* The XPUB only ever reads subscriptions: small. */
    so.maxmsgsize = 64 * 1024;
    if (!(a->xpub = zkit__socket_new(ZMQ_XPUB, &so)))
        return -1;
    a->xpub_handle = zsock_resolve(a->xpub);
    int on = 1, slice = S_NODROP_SLICE_MS;
    if (o->nodrop && (zmq_setsockopt(a->xpub_handle, ZMQ_XPUB_NODROP, &on, sizeof on) ||
                      zmq_setsockopt(a->xpub_handle, ZMQ_SNDTIMEO, &slice, sizeof slice)))
        return -1;
    if (o->bind && zkit__ops_bind(a->ops, a->xpub, o->bind, init->endpoint, sizeof init->endpoint))
        return -1;
    if (o->connect && zkit__ops_attach(a->ops, a->xpub, o->connect, false) == -1)
        return -1;

    if (o->replay_bind) {
        if (!(a->ring = zkit__replay_new(o->replay_capacity, o->replay_bytes)))
            return -1;
        so = (zkit__socket_opts_t) ZKIT__SOCKET_OPTS_DEFAULT;
        /* Replies are a courtesy to a live asker: nothing to flush at exit. */
        so.linger_ms = 0;
        /* Room for a whole answer and the next one; an asker never has more
           than one request out, so a full queue means a misbehaving one. */
        size_t room = 2 * (size_t) o->replay_batch;
        if (o->lvc && o->lvc_max_topics > room)
            room = o->lvc_max_topics;
        so.sndhwm = (int) (room + 64);
        so.maxmsgsize = 64 * 1024; /* requests are small */
        so.router_mandatory = true;
        if (!(a->replay =
                  zkit__ops_socket_new_bound(a->ops, ZMQ_ROUTER, &so, o->replay_bind,
                                             init->replay_endpoint, sizeof init->replay_endpoint)))
            return -1;
    }
    if (o->lvc && !(a->lvc = zkit__pub_lvc_new()))
        return -1;
    if (!(a->prefixes = zlistx_new()))
        return -1;
    zlistx_set_destructor(a->prefixes, s_prefix_free);
    return 0;
}

static void s_teardown(zkit__pub_actor_t *a)
{
    if (a->pending) {
        zmq_msg_close(&a->pending_topic);
        zmq_msg_close(&a->pending_envelope);
    }
    zkit__socket_close(&a->data, 0);
    zkit__socket_close(&a->replay, 0);
    zkit__socket_close(&a->xpub, ZKIT__LINGER_KEEP);
    zkit__replay_destroy(&a->ring);
    zkit__pub_spool_destroy(&a->spool); /* syncs what is left */
    zhashx_destroy(&a->lvc);
    zlistx_destroy(&a->prefixes);
}

static void s_actor(zsock_t *pipe, void *args)
{
    s_init_t *init = args;
    zkit__pub_actor_t a;
    memset(&a, 0, sizeof a);
    a.pipe = pipe;
    a.opts = *init->opts;
    a.ops = init->self->ops;
    init->self->state = &a;
    snprintf(a.name, sizeof a.name, "%s", init->name);
    a.epoch = init->epoch;
    a.last_seq = init->last_seq;
    a.spool = init->spool;
    a.wait_deadline = -1;
    init->rc = s_setup(&a, init);
    init->err = init->rc ? (errno ? errno : EINVAL) : 0;
    int failed = init->rc;
    /* The endpoints in opts are the caller's: only setup may read them. */
    a.opts.bind = a.opts.connect = a.opts.replay_bind = a.opts.replay_announce = NULL;
    /* init lives on the constructor's stack: gone once the signal is out. */
    init = NULL;
    zsock_signal(pipe, 0);
    if (failed) {
        /* Wait for zactor_destroy's $TERM, as every actor must. */
        s_teardown(&a);
        zkit__actor_wait_term(pipe);
        return;
    }

    zmq_pollitem_t items[5];
    while (!a.terminated) {
        int n = 0;
        items[n++] = (zmq_pollitem_t){zsock_resolve(a.pipe), 0, ZMQ_POLLIN, 0};
        items[n++] = (zmq_pollitem_t){a.xpub_handle, 0, ZMQ_POLLIN, 0};
        if (a.replay)
            items[n++] = (zmq_pollitem_t){zsock_resolve(a.replay), 0, ZMQ_POLLIN, 0};
        int control_index = -1;
        if (zkit__ops_pollitem(a.ops, &items[n]) == 1)
            control_index = n++;
        int data_index = -1;
        if (!a.pending && !a.paused) {
            data_index = n;
            items[n++] = (zmq_pollitem_t){zsock_resolve(a.data), 0, ZMQ_POLLIN, 0};
        }
        long timeout = -1;
        if (a.pending)
            timeout = 0;
        else if (a.waiting && a.wait_deadline >= 0) {
            timeout = (long) (a.wait_deadline - zclock_mono());
            if (timeout < 0)
                timeout = 0;
        }
        if (zmq_poll(items, n, timeout) == -1) {
            if (errno == ETERM)
                break;
            continue;
        }
        if (items[0].revents & ZMQ_POLLIN)
            s_handle_pipe(&a);
        if (items[1].revents & ZMQ_POLLIN)
            s_handle_subscription(&a);
        if (a.replay && (items[2].revents & ZMQ_POLLIN))
            zkit__pub_handle_replay(&a);
        if (control_index >= 0 && (items[control_index].revents & ZMQ_POLLIN) &&
            zkit__ops_serve(a.ops) == -1)
            break;
        if (data_index >= 0 && (items[data_index].revents & ZMQ_POLLIN))
            for (int i = 0; i < S_DATA_BATCH && !a.pending && s_handle_data(&a) == 0; i++)
                ;
        /* Group commit: one fdatasync for the burst just handled.          */
        zkit__pub_spool_sync(a.spool);
        if (a.pending)
            s_flush_pending(&a);
        if (a.waiting && a.wait_deadline >= 0 && zclock_mono() >= a.wait_deadline)
            s_wait_reply(&a, "TIMEOUT");
    }
    /* Every message a send accepted goes to the XPUB before it closes, as
       long as linger allows when a subscriber blocks it (nodrop). */
    zkit__pub_drain_data(&a, true, a.opts.linger_ms < 0 ? -1 : zclock_mono() + a.opts.linger_ms);
    s_teardown(&a);
}

/* ---- the caller's side ----------------------------------------------------- */

zkit_publisher_t *zkit_publisher_new(const zkit_publisher_opts_t *opts)
{
    if (!opts || !opts->name || !*opts->name || strlen(opts->name) > ZKIT_SRC_MAX ||
        (!opts->bind && !opts->connect) || opts->replay_capacity == 0 || opts->replay_bytes == 0 ||
        opts->replay_batch == 0 || opts->replay_batch > 100000 ||
        (opts->lvc && !opts->replay_bind) ||
        (opts->replay_spool_dir &&
         (!*opts->replay_spool_dir || !opts->replay_bind || opts->replay_spool_bytes == 0))) {
        zsys_error("ZKIT-PUB-OPTS: a publisher needs a name, an endpoint, nonzero replay "
                   "bounds, and a replay endpoint for its last-value cache or replay spool");
        errno = EINVAL;
        return NULL;
    }
    zkit_publisher_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    snprintf(self->name, sizeof self->name, "%s", opts->name);
    self->epoch = opts->epoch ? opts->epoch : zkit_clock_usec();
    /* Before the actor: the spool decides the epoch and the next seq, which
       the caller's side stamps on every message.                          */
    zkit__pub_spool_t *spool = NULL;
    if (opts->replay_spool_dir && !(spool = zkit__pub_spool_new(opts, &self->epoch, &self->seq)))
        goto err;
    char data_endpoint[64];
    zkit__socket_inproc_endpoint(data_endpoint, sizeof data_endpoint, "publisher");
    zkit__socket_opts_t so = ZKIT__SOCKET_OPTS_DEFAULT;
    so.linger_ms = 0;
    so.sndhwm = so.rcvhwm = S_DATA_HWM;
    if (!(self->data = zkit__socket_new(ZMQ_PAIR, &so)) ||
        zkit__socket_attach(self->data, data_endpoint, true) == -1 ||
        !(self->scratch = zkit_envelope_new()))
        goto err;

    if (!(self->ops = zkit__ops_new(&(zkit__ops_config_t){.opts = &opts->ops,
                                                          .component = "publisher",
                                                          .name = self->name,
                                                          .stats_fn = zkit__pub_ops_stats,
                                                          .command_fn = zkit__pub_ops_command,
                                                          .arg = &self->state})))
        goto err;
    s_init_t init;
    memset(&init, 0, sizeof init);
    init.self = self;
    init.opts = opts;
    init.data_endpoint = data_endpoint;
    init.name = self->name;
    init.epoch = self->epoch;
    init.last_seq = self->seq;
    init.spool = spool;
    self->actor = zactor_new(s_actor, &init);
    if (!self->actor)
        goto err;
    spool = NULL; /* the actor's now, also when it failed to start */
    if (init.rc) {
        zactor_destroy(&self->actor);
        errno = init.err;
        goto err;
    }
    snprintf(self->endpoint, sizeof self->endpoint, "%s", init.endpoint);
    if (opts->replay_announce)
        snprintf(self->announce, sizeof self->announce, "%s", opts->replay_announce);
    else
        snprintf(self->announce, sizeof self->announce, "%s", init.replay_endpoint);
    return self;

err : {
    int err = errno ? errno : ENOMEM;
    zkit__pub_spool_destroy(&spool);
    zkit__socket_close(&self->data, 0);
    zkit_envelope_destroy(&self->scratch);
    zkit__ops_destroy(&self->ops);
    free(self);
    errno = err;
    return NULL;
}
}

void zkit_publisher_destroy(zkit_publisher_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zkit_publisher_t *self = *self_p;
    /* The actor closes the sockets the ops secured before it ends. */
    zactor_destroy(&self->actor);
    zkit__ops_destroy(&self->ops);
    zkit__socket_close(&self->data, 0);
    zkit_envelope_destroy(&self->scratch);
    free(self);
    *self_p = NULL;
}

const char *zkit_publisher_name(zkit_publisher_t *self)
{
    return self->name;
}

uint64_t zkit_publisher_epoch(zkit_publisher_t *self)
{
    return self->epoch;
}

const char *zkit_publisher_endpoint(zkit_publisher_t *self)
{
    return *self->endpoint ? self->endpoint : NULL;
}

const char *zkit_publisher_control(zkit_publisher_t *self)
{
    return self ? zkit__ops_control_endpoint(self->ops) : NULL;
}

const char *zkit_publisher_replay_endpoint(zkit_publisher_t *self)
{
    return *self->announce ? self->announce : NULL;
}

/*  Numbers, stamps, encodes and hands one envelope to the actor.          */
static int s_send(zkit_publisher_t *self, const char *topic, zkit_envelope_t *env, int flags)
{
    size_t topic_size = strlen(topic);
    if (topic_size > ZKIT_TOPIC_MAX) {
        errno = EINVAL;
        return -1;
    }
    uint64_t seq = self->seq + 1;
    zkit_envelope_set_seq(env, seq);
    if (zkit_envelope_set_src(env, self->name) == -1 ||
        zkit_envelope_set_header_int(env, ZKIT__PUBSUB_HDR_EPOCH, (int64_t) self->epoch) == -1 ||
        (*self->announce &&
         zkit_envelope_set_header_str(env, ZKIT__PUBSUB_HDR_REPLAY, self->announce) == -1))
        return -1;
    zmq_msg_t frame;
    if (zkit_envelope_encode(env, &frame) == -1)
        return -1;
    uint8_t seq_bytes[8];
    mpack_put_be64(seq_bytes, seq);
    void *handle = zsock_resolve(self->data);
    flags &= ZMQ_DONTWAIT;
    if (zmq_send(handle, seq_bytes, 8, ZMQ_SNDMORE | flags) == -1) {
        /* EAGAIN, or EINTR: a signal while waiting for the actor (nodrop
           publishers wait as long as their slowest subscriber). */
        int err = errno;
        zmq_msg_close(&frame);
        errno = err;
        return -1;
    }
    /* The pipe took the first frame: it takes the rest of the message. */
    zmq_send(handle, topic, topic_size, ZMQ_SNDMORE);
    if (zmq_msg_send(&frame, handle, 0) == -1)
        zmq_msg_close(&frame);
    self->seq = seq;
    return 0;
}

int zkit_publisher_send(zkit_publisher_t *self, const char *topic, zkit_envelope_t **env_p,
                        int flags)
{
    if (!self || !topic || !env_p || !*env_p) {
        errno = EINVAL;
        return -1;
    }
    if (s_send(self, topic, *env_p, flags) == -1)
        return -1;
    zkit_envelope_destroy(env_p);
    return 0;
}

int zkit_publisher_publish(zkit_publisher_t *self, const char *topic, const void *body, size_t size,
                           int flags)
{
    if (!self || !topic || (!body && size)) {
        errno = EINVAL;
        return -1;
    }
    zkit_envelope_reset(self->scratch);
    zkit_envelope_set_body_ref(self->scratch, body ? body : "", size);
    int rc = s_send(self, topic, self->scratch, flags);
    /* The body is the caller's: drop the reference before returning. */
    zkit_envelope_set_body_ref(self->scratch, "", 0);
    return rc;
}

int zkit_publisher_wait_subscriber(zkit_publisher_t *self, const char *topic, int timeout_ms)
{
    if (!self || !topic || strlen(topic) > ZKIT_TOPIC_MAX) {
        errno = EINVAL;
        return -1;
    }
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", timeout_ms < 0 ? -1 : timeout_ms);
    if (zstr_sendx(self->actor, "WAIT", topic, timeout, NULL) == -1) {
        errno = ECANCELED;
        return -1;
    }
    /* Wait in slices so a signal can cut the wait short; the actor then
       still answers (CANCELLED), keeping the pipe in step. */
    bool cancelled = false;
    while (true) {
        zsock_set_rcvtimeo(self->actor, 100);
        char *answer = zstr_recv(self->actor);
        zsock_set_rcvtimeo(self->actor, -1);
        if (answer) {
            int rc = streq(answer, "OK") ? 0 : -1;
            errno = streq(answer, "TIMEOUT") ? ETIMEDOUT : EINTR;
            free(answer);
            return rc;
        }
        if (!cancelled && zsys_interrupted) {
            zstr_send(self->actor, "CANCEL");
            cancelled = true;
        }
    }
}

int zkit_publisher_stats(zkit_publisher_t *self, zkit_publisher_stats_t *stats)
{
    if (!self || !stats) {
        errno = EINVAL;
        return -1;
    }
    return zkit__actor_query(self->actor, "STATS", stats, sizeof *stats);
}
