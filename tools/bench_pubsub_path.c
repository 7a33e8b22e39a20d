/*  bench_pubsub_path.c: the paths of `zkit bench pubsub`, built once and run
    for a number of messages in every round.

    To measure the device and nothing else, the two ends are the same raw
    sockets on every path: the publisher is an XPUB on the calling thread
    that sends what zkit_publisher sends (a topic frame, then an envelope
    with src, a new id, the time and the next seq, encoded per message), and
    every subscriber is a SUB on its own thread that decodes each envelope
    and counts what it received, as zkit_subscriber does before its gap
    bookkeeping. Only the device in between differs: none, zmq_proxy on its
    own thread and its own libzmq context (one I/O thread, as czmq gives the
    forwarder), or zkit_forwarder. Every socket has the kit's high-water mark
    (1000), so queues are as deep on every path.

    In NODROP the publisher's XPUB is NODROP too (as zkit_publisher's nodrop
    option makes it), or the first hop would drop what the forwarder then
    carefully keeps; so is it for zmq_proxy with a NODROP XPUB, the raw
    equivalent (zmq_proxy's blocking send then waits for room).

    Subscription propagation is waited for on events, never a sleep: each
    subscriber subscribes to its own prefix of the topic, so each one reaches
    the publisher's XPUB as a distinct subscribe message (a device
    deduplicates equal prefixes), and the path is ready when all have.

    The end of a run: a subscriber in a drop path may lose the last data
    message, so it cannot wait for a count. After the data, the publisher
    sends an end marker (another topic, matching every prefix, carrying the
    run's number) and resends it every millisecond until every subscriber has
    seen one; a subscriber's figures stop at its last data message, so the
    markers cost no delivered rate.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "bench.h"
#include "bench_pubsub.h"
#include "zkit.h"
#include "zkit_forwarder.h"

#define S_HWM         1000 /* the kit's default, on every socket of every path */
#define S_END_TOPIC   ZKIT__PUBSUB_TOPIC ".end"
#define S_RESEND_MS   1          /* how often the end marker is sent again             */
#define S_PREFIX_FROM "bench.pu" /* subscriber i subscribes to its first i+1 bytes */

typedef struct {
    zkit__pubsub_side_t *side;
    int index;
    void *socket;
    zkit_envelope_t *env; /* reused: decoding allocates nothing          */
    uint64_t delivered;
    uint64_t last_ns; /* wall clock at the last data message             */
    int rc;
    char error[160];
} s_sub_t;

struct zkit__pubsub_side {
    zkit__pubsub_path_t path;
    int nsubs;
    size_t payload_size;
    uint8_t *payload;
    void *ctx;       /* publisher and subscribers                        */
    void *xpub;      /* the publisher                                    */
    void *proxy_ctx; /* the raw proxy's own                              */
    void *proxy_front, *proxy_back;
    pthread_t proxy_thread;
    bool proxy_running;
    zkit_forwarder_t *forwarder;
    zkit_envelope_t *out; /* the publisher's, reused                  */
    uint64_t seq;
    uint64_t run_id; /* the end marker's payload: this run's number   */
    s_sub_t subs[ZKIT__PUBSUB_MAX_SUBS];
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done; /* subscribers finished in this run (under lock)    */
};

static const char *const s_path_names[] = {"direct", "proxy", "proxy_nodrop", "drop", "nodrop"};

const char *zkit__pubsub_path_name(zkit__pubsub_path_t path)
{
    return s_path_names[path];
}

static int s_fail(const zkit__pubsub_side_t *side, const char *what, const char *detail)
{
    fprintf(stderr, "zkit bench " ZKIT__PUBSUB_NAME ": %s, %d subscriber%s, %zu B: %s: %s\n",
            s_path_names[side->path], side->nsubs, side->nsubs == 1 ? "" : "s", side->payload_size,
            what, detail);
    return -1;
}

/*  A socket's failure as text: a timeout means nothing moved for the stall
    time.                                                                    */
static const char *s_zmq_error(int err)
{
    return err == EAGAIN ? "stalled (nothing moved for 10 s)" : zmq_strerror(err);
}

/* ---- subscribers ---------------------------------------------------------- */

static void s_sub_done(s_sub_t *sub)
{
    zkit__pubsub_side_t *side = sub->side;
    pthread_mutex_lock(&side->lock);
    side->done++;
    pthread_cond_signal(&side->cond);
    pthread_mutex_unlock(&side->lock);
}

static void *s_subscribe(void *arg)
{
    s_sub_t *sub = arg;
    uint64_t run_id = sub->side->run_id, acc = 0;
    zmq_msg_t topic;
    zmq_msg_init(&topic);
    while (true) {
        if (zmq_msg_recv(&topic, sub->socket, 0) == -1) {
            snprintf(sub->error, sizeof sub->error, "receive: %s", s_zmq_error(errno));
            break;
        }
        if (!zmq_msg_more(&topic)) {
            snprintf(sub->error, sizeof sub->error, "a message of one frame");
            break;
        }
        if (zmq_msg_size(&topic) == sizeof S_END_TOPIC - 1) {
            /* An end marker: this run's ends the run; an older run's (the
               publisher resends them until all have one) is skipped. */
            uint64_t id = 0;
            if (zmq_msg_recv(&topic, sub->socket, 0) == -1) {
                snprintf(sub->error, sizeof sub->error, "receive: %s", s_zmq_error(errno));
                break;
            }
            if (zmq_msg_size(&topic) == sizeof id)
                memcpy(&id, zmq_msg_data(&topic), sizeof id);
            if (id == run_id) {
                sub->rc = 0;
                break;
            }
            continue;
        }
        if (zkit_envelope_recv(sub->env, sub->socket, 0)) {
            snprintf(sub->error, sizeof sub->error, "receive: %s",
                     errno == EAGAIN ? s_zmq_error(errno) : zkit_envelope_error_detail(sub->env));
            break;
        }
        size_t size;
        const uint8_t *body = zkit_envelope_body(sub->env, &size);
        acc += zkit_envelope_seq(sub->env) + (size ? body[size - 1] : 0);
        sub->delivered++;
        sub->last_ns = zkit__bench_wall_ns();
    }
    zmq_msg_close(&topic);
    zkit__bench_consume(acc);
    s_sub_done(sub);
    return NULL;
}

/* ---- publisher ------------------------------------------------------------ */

static int s_publish(zkit__pubsub_side_t *side)
{
    uint8_t id[ZKIT_ID_SIZE];
    zkit_id_generate(id);
    zkit_envelope_set_id(side->out, id);
    zkit_envelope_set_ts(side->out, zkit_clock_usec());
    zkit_envelope_set_seq(side->out, ++side->seq);
    zmq_msg_t msg;
    if (zmq_send(side->xpub, ZKIT__PUBSUB_TOPIC, sizeof ZKIT__PUBSUB_TOPIC - 1, ZMQ_SNDMORE) ==
            -1 ||
        zkit_envelope_encode(side->out, &msg))
        return -1;
    if (zmq_msg_send(&msg, side->xpub, 0) == -1) {
        int err = errno;
        zmq_msg_close(&msg);
        errno = err;
        return -1;
    }
    return 0;
}

/*  Sends end markers until every subscriber has finished. Without waiting
    for room: a marker that does not fit is sent again a moment later.     */
static void s_end_run(zkit__pubsub_side_t *side)
{
    pthread_mutex_lock(&side->lock);
    while (side->done < side->nsubs) {
        pthread_mutex_unlock(&side->lock);
        if (zmq_send(side->xpub, S_END_TOPIC, sizeof S_END_TOPIC - 1, ZMQ_SNDMORE | ZMQ_DONTWAIT) !=
            -1)
            zmq_send(side->xpub, &side->run_id, sizeof side->run_id, 0);
        pthread_mutex_lock(&side->lock);
        if (side->done >= side->nsubs)
            break;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += S_RESEND_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&side->cond, &side->lock, &until);
    }
    pthread_mutex_unlock(&side->lock);
}

int zkit__pubsub_run(zkit__pubsub_side_t *side, uint64_t messages, zkit__pubsub_run_t *run)
{
    memset(run, 0, sizeof *run);
    side->run_id++;
    side->done = 0;
    pthread_t threads[ZKIT__PUBSUB_MAX_SUBS];
    int started = 0;
    for (int i = 0; i < side->nsubs; i++) {
        s_sub_t *sub = &side->subs[i];
        sub->delivered = 0;
        sub->last_ns = 0;
        sub->rc = -1; /* until it sees this run's end marker */
        sub->error[0] = 0;
        if (pthread_create(&threads[i], NULL, s_subscribe, sub))
            break;
        started++;
    }
    int rc = 0;
    if (started < side->nsubs) {
        /* The ones started end at their receive timeout or on a marker. */
        rc = s_fail(side, "setup", "cannot start a thread");
        side->nsubs = started;
        s_end_run(side);
        for (int i = 0; i < started; i++)
            pthread_join(threads[i], NULL);
        return -1;
    }
    uint64_t cpu0 = zkit__bench_cpu_ns(ZKIT__BENCH_CPU_PROCESS);
    uint64_t start = zkit__bench_wall_ns();
    for (uint64_t i = 0; i < messages && !rc; i++)
        if (s_publish(side))
            rc = s_fail(side, "publisher send", s_zmq_error(errno));
    s_end_run(side);
    run->cpu_ns = zkit__bench_cpu_ns(ZKIT__BENCH_CPU_PROCESS) - cpu0;
    for (int i = 0; i < side->nsubs; i++) {
        s_sub_t *sub = &side->subs[i];
        pthread_join(threads[i], NULL);
        if (sub->rc && !rc)
            rc = s_fail(side, "subscriber", sub->error);
        run->delivered[i] = sub->delivered;
        run->elapsed_ns[i] = sub->delivered ? sub->last_ns - start : 0;
        if (run->elapsed_ns[i] > run->wall_ns)
            run->wall_ns = run->elapsed_ns[i];
    }
    return rc;
}

/* ---- setup ---------------------------------------------------------------- */

/*  A socket with the kit's high-water mark and timeouts, so a stalled run
    fails instead of hanging.                                                */
static void *s_socket(void *ctx, int type)
{
    void *socket = zmq_socket(ctx, type);
    int linger = 0, hwm = S_HWM, timeout = ZKIT__PUBSUB_STALL_MS;
    if (socket && (zmq_setsockopt(socket, ZMQ_LINGER, &linger, sizeof linger) ||
                   zmq_setsockopt(socket, ZMQ_SNDHWM, &hwm, sizeof hwm) ||
                   zmq_setsockopt(socket, ZMQ_RCVHWM, &hwm, sizeof hwm) ||
                   zmq_setsockopt(socket, ZMQ_SNDTIMEO, &timeout, sizeof timeout) ||
                   zmq_setsockopt(socket, ZMQ_RCVTIMEO, &timeout, sizeof timeout))) {
        zmq_close(socket);
        return NULL;
    }
    return socket;
}

/*  Binds socket to a kernel-chosen loopback port; its endpoint into buf.   */
static int s_bind(void *socket, char *buf, size_t size)
{
    if (zmq_bind(socket, "tcp://127.0.0.1:*"))
        return -1;
    return zmq_getsockopt(socket, ZMQ_LAST_ENDPOINT, buf, &size);
}

static void *s_proxy(void *arg)
{
    zkit__pubsub_side_t *side = arg;
    /* Returns when the proxy's context is shut down. */
    zmq_proxy(side->proxy_front, side->proxy_back, NULL);
    return NULL;
}

/*  Builds the device (if any) and says where the publisher and the
    subscribers attach.                                                      */
static int s_open_device(zkit__pubsub_side_t *side, char *pub_ep, char *sub_ep, size_t size)
{
    if (side->path == ZKIT__PUBSUB_PROXY || side->path == ZKIT__PUBSUB_PROXY_NODROP) {
        side->proxy_ctx = zmq_ctx_new();
        if (!side->proxy_ctx)
            return s_fail(side, "proxy", zmq_strerror(errno));
        side->proxy_front = s_socket(side->proxy_ctx, ZMQ_XSUB);
        side->proxy_back = s_socket(side->proxy_ctx, ZMQ_XPUB);
        if (!side->proxy_front || !side->proxy_back || s_bind(side->proxy_front, pub_ep, size) ||
            s_bind(side->proxy_back, sub_ep, size))
            return s_fail(side, "proxy", zmq_strerror(errno));
        /* zmq_proxy blocks for ever: no send timeout on its data path. */
        int forever = -1, on = 1;
        zmq_setsockopt(side->proxy_back, ZMQ_SNDTIMEO, &forever, sizeof forever);
        zmq_setsockopt(side->proxy_front, ZMQ_RCVTIMEO, &forever, sizeof forever);
        if (side->path == ZKIT__PUBSUB_PROXY_NODROP)
            zmq_setsockopt(side->proxy_back, ZMQ_XPUB_NODROP, &on, sizeof on);
        if (pthread_create(&side->proxy_thread, NULL, s_proxy, side))
            return s_fail(side, "proxy", "cannot start a thread");
        side->proxy_running = true;
        return 0;
    }
    zkit_forwarder_opts_t opts = ZKIT_FORWARDER_OPTS_DEFAULT;
    opts.frontend = "tcp://127.0.0.1:*";
    opts.backend = "tcp://127.0.0.1:*";
    opts.policy = side->path == ZKIT__PUBSUB_NODROP ? ZKIT_FORWARDER_NODROP : ZKIT_FORWARDER_DROP;
    opts.hwm = S_HWM;
    opts.linger_ms = 0;
    side->forwarder = zkit_forwarder_new(&opts);
    if (!side->forwarder)
        return s_fail(side, "forwarder", zkit_strerror(errno));
    snprintf(pub_ep, size, "%s", zkit_forwarder_frontend(side->forwarder));
    snprintf(sub_ep, size, "%s", zkit_forwarder_backend(side->forwarder));
    return 0;
}

/*  Waits until the publisher's XPUB has reported one subscribe message per
    subscriber (each subscribes to a distinct prefix).                      */
static int s_wait_subscribed(zkit__pubsub_side_t *side)
{
    int seen = 0;
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    while (seen < side->nsubs) {
        if (zmq_msg_recv(&msg, side->xpub, 0) == -1) {
            zmq_msg_close(&msg);
            return s_fail(side, "waiting for the subscriptions", s_zmq_error(errno));
        }
        const uint8_t *data = zmq_msg_data(&msg);
        if (zmq_msg_size(&msg) > 0 && data[0] == 1)
            seen++;
    }
    zmq_msg_close(&msg);
    return 0;
}

zkit__pubsub_side_t *zkit__pubsub_open(zkit__pubsub_path_t path, int subscribers, size_t payload)
{
    zkit__pubsub_side_t *side = calloc(1, sizeof *side);
    if (!side) {
        fprintf(stderr, "zkit bench " ZKIT__PUBSUB_NAME ": out of memory\n");
        return NULL;
    }
    side->path = path;
    side->nsubs = subscribers;
    side->payload_size = payload;
    pthread_mutex_init(&side->lock, NULL);
    pthread_cond_init(&side->cond, NULL);
    side->payload = malloc(payload ? payload : 1);
    side->out = zkit_envelope_new();
    if (!side->payload || !side->out || zkit_envelope_set_src(side->out, "bench")) {
        s_fail(side, "setup", "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < payload; i++)
        side->payload[i] = (uint8_t) (i * 31 + 7);
    zkit_envelope_set_body_ref(side->out, side->payload, payload);

    side->ctx = zmq_ctx_new();
    side->xpub = side->ctx ? s_socket(side->ctx, ZMQ_XPUB) : NULL;
    if (!side->xpub) {
        s_fail(side, "publisher", zmq_strerror(errno));
        goto fail;
    }
    if (path == ZKIT__PUBSUB_NODROP || path == ZKIT__PUBSUB_PROXY_NODROP) {
        int on = 1;
        zmq_setsockopt(side->xpub, ZMQ_XPUB_NODROP, &on, sizeof on);
    }
    char pub_ep[256], sub_ep[256];
    if (path == ZKIT__PUBSUB_DIRECT) {
        if (s_bind(side->xpub, sub_ep, sizeof sub_ep)) {
            s_fail(side, "publisher bind", zmq_strerror(errno));
            goto fail;
        }
    }
    else if (s_open_device(side, pub_ep, sub_ep, sizeof pub_ep))
        goto fail;
    else if (zmq_connect(side->xpub, pub_ep)) {
        s_fail(side, "publisher connect", zmq_strerror(errno));
        goto fail;
    }
    for (int i = 0; i < subscribers; i++) {
        s_sub_t *sub = &side->subs[i];
        sub->side = side;
        sub->index = i;
        sub->env = zkit_envelope_new();
        sub->socket = s_socket(side->ctx, ZMQ_SUB);
        if (!sub->env || !sub->socket || zmq_connect(sub->socket, sub_ep) ||
            zmq_setsockopt(sub->socket, ZMQ_SUBSCRIBE, S_PREFIX_FROM, (size_t) i + 1)) {
            s_fail(side, "subscriber", zmq_strerror(errno));
            goto fail;
        }
    }
    if (s_wait_subscribed(side))
        goto fail;
    return side;
fail:
    zkit__pubsub_destroy(side);
    return NULL;
}

void zkit__pubsub_destroy(zkit__pubsub_side_t *side)
{
    if (!side)
        return;
    for (int i = 0; i < side->nsubs; i++) {
        if (side->subs[i].socket)
            zmq_close(side->subs[i].socket);
        zkit_envelope_destroy(&side->subs[i].env);
    }
    if (side->xpub)
        zmq_close(side->xpub);
    if (side->ctx)
        zmq_ctx_term(side->ctx);
    zkit_forwarder_destroy(&side->forwarder);
    if (side->proxy_running) {
        /* zmq_proxy returns ETERM once its context is shut down. */
        zmq_ctx_shutdown(side->proxy_ctx);
        pthread_join(side->proxy_thread, NULL);
    }
    if (side->proxy_front)
        zmq_close(side->proxy_front);
    if (side->proxy_back)
        zmq_close(side->proxy_back);
    if (side->proxy_ctx)
        zmq_ctx_term(side->proxy_ctx);
    zkit_envelope_destroy(&side->out);
    pthread_cond_destroy(&side->cond);
    pthread_mutex_destroy(&side->lock);
    free(side->payload);
    free(side);
}

size_t zkit__pubsub_wire_bytes(size_t payload)
{
    zkit_envelope_t *env = zkit_envelope_new();
    uint8_t *body = malloc(payload ? payload : 1);
    size_t size = 0;
    if (env && body && !zkit_envelope_set_src(env, "bench")) {
        uint8_t id[ZKIT_ID_SIZE] = {0};
        zkit_envelope_set_id(env, id);
        zkit_envelope_set_ts(env, zkit_clock_usec());
        zkit_envelope_set_body_ref(env, body, payload);
        zkit_envelope_set_seq(env, 100000); /* a typical seq in a run */
        size = sizeof ZKIT__PUBSUB_TOPIC - 1 + zkit_envelope_encoded_size(env);
    }
    zkit_envelope_destroy(&env);
    free(body);
    return size;
}
