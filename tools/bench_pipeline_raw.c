/*  bench_pipeline_raw.c: the anchor of `zkit bench pipeline`, raw libzmq
    PUSH -> PULL/PUSH relay -> PULL, and the same sockets with a zkit envelope
    on every message (the envelope's cost alone, without the components).

    The layout is the one the kit's fast mode has: the producer binds its PUSH
    (as the ventilator does), the relay connects a PULL to it and a PUSH to the
    consumer (as a worker does), the consumer binds its PULL (as the sink
    does). The producer runs on the calling thread, the relay and the consumer
    on a thread each, started for every run: the sockets persist between runs
    (thread creation and join are the memory barriers libzmq asks for when a
    socket changes threads), so connections are set up once, before timing.

    The relay copies each frame into a new message, as the kit's handler
    copies a task's body into a result: both sides do the same work per
    message, and what differs is the machinery around it.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "bench.h"
#include "bench_pipeline.h"
#include "zkit.h"

#define S_HWM 1000 /* libzmq's default, and the kit's (core/socket.h) */

typedef struct {
    void *ctx;
    void *push;      /* producer, bound                    */
    void *relay_in;  /* relay's PULL, connected to push    */
    void *relay_out; /* relay's PUSH, connected to pull    */
    void *pull;      /* consumer, bound                    */
    size_t frame_bytes;
    bool envelope;
    uint8_t *payload;
    /* envelope mode: one envelope per stage, reused (as a real loop would) */
    zkit_envelope_t *produced, *task, *result, *consumed;
    uint64_t produce_seq, relay_seq, expect_seq;
} s_raw_t;

/*  What a stage thread reports back.                                        */
typedef struct {
    s_raw_t *raw;
    uint64_t messages;
    uint64_t lost;
    int rc;
    char error[160];
} s_stage_t;

static int s_stage_fail(s_stage_t *stage, const char *what, const char *detail)
{
    snprintf(stage->error, sizeof stage->error, "%s: %s", what, detail);
    stage->rc = -1;
    return -1;
}

/*  A socket's failure as text: a timeout means no message moved for
    ZKIT__PIPE_STALL_MS.                                                     */
static const char *s_zmq_error(int err)
{
    return err == EAGAIN ? "stalled (nothing moved for 10 s)" : zmq_strerror(err);
}

/* ---- stages --------------------------------------------------------------- */

static int s_send_envelope(zkit_envelope_t *env, void *socket, uint64_t seq)
{
    uint8_t id[ZKIT_ID_SIZE];
    /* What a real sender does per message: a new id, the time, the next seq. */
    zkit_id_generate(id);
    zkit_envelope_set_id(env, id);
    zkit_envelope_set_ts(env, zkit_clock_usec());
    zkit_envelope_set_seq(env, seq);
    zmq_msg_t msg;
    if (zkit_envelope_encode(env, &msg))
        return -1;
    if (zmq_msg_send(&msg, socket, 0) == -1) {
        int err = errno;
        zmq_msg_close(&msg);
        errno = err;
        return -1;
    }
    return 0;
}

static int s_produce(s_raw_t *raw, uint64_t messages, s_stage_t *stage)
{
    for (uint64_t i = 0; i < messages; i++) {
        int rc;
        if (raw->envelope)
            rc = s_send_envelope(raw->produced, raw->push, ++raw->produce_seq);
        else
            rc = zmq_send(raw->push, raw->payload, raw->frame_bytes, 0) == -1 ? -1 : 0;
        if (rc)
            return s_stage_fail(stage, "producer send", s_zmq_error(errno));
    }
    return 0;
}

static void *s_relay(void *arg)
{
    s_stage_t *stage = arg;
    s_raw_t *raw = stage->raw;
    zmq_msg_t in;
    zmq_msg_init(&in);
    for (uint64_t i = 0; i < stage->messages; i++) {
        if (raw->envelope) {
            if (zkit_envelope_recv(raw->task, raw->relay_in, 0)) {
                s_stage_fail(stage, "relay receive",
                             errno == EAGAIN ? s_zmq_error(errno)
                                             : zkit_envelope_error_detail(raw->task));
                break;
            }
            size_t size;
            const void *body = zkit_envelope_body(raw->task, &size);
            if (zkit_envelope_set_body(raw->result, body, size) ||
                s_send_envelope(raw->result, raw->relay_out, ++raw->relay_seq)) {
                s_stage_fail(stage, "relay send", s_zmq_error(errno));
                break;
            }
            continue;
        }
        if (zmq_msg_recv(&in, raw->relay_in, 0) == -1) {
            s_stage_fail(stage, "relay receive", s_zmq_error(errno));
            break;
        }
        zmq_msg_t out;
        size_t size = zmq_msg_size(&in);
        if (zmq_msg_init_size(&out, size)) {
            s_stage_fail(stage, "relay", "out of memory");
            break;
        }
        memcpy(zmq_msg_data(&out), zmq_msg_data(&in), size);
        if (zmq_msg_send(&out, raw->relay_out, 0) == -1) {
            zmq_msg_close(&out);
            s_stage_fail(stage, "relay send", s_zmq_error(errno));
            break;
        }
    }
    zmq_msg_close(&in);
    return NULL;
}

static void *s_consume(void *arg)
{
    s_stage_t *stage = arg;
    s_raw_t *raw = stage->raw;
    uint64_t acc = 0;
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    for (uint64_t i = 0; i < stage->messages; i++) {
        if (raw->envelope) {
            if (zkit_envelope_recv(raw->consumed, raw->pull, 0)) {
                s_stage_fail(stage, "consumer receive",
                             errno == EAGAIN ? s_zmq_error(errno)
                                             : zkit_envelope_error_detail(raw->consumed));
                break;
            }
            /* Count gaps in seq, as every zkit receiver does. */
            uint64_t seq = zkit_envelope_seq(raw->consumed);
            if (seq > raw->expect_seq)
                stage->lost += seq - raw->expect_seq;
            raw->expect_seq = seq + 1;
            size_t size;
            const uint8_t *body = zkit_envelope_body(raw->consumed, &size);
            acc += size + (size ? body[size - 1] : 0);
            continue;
        }
        if (zmq_msg_recv(&msg, raw->pull, 0) == -1) {
            s_stage_fail(stage, "consumer receive", s_zmq_error(errno));
            break;
        }
        size_t size = zmq_msg_size(&msg);
        acc += size + (size ? ((const uint8_t *) zmq_msg_data(&msg))[size - 1] : 0);
    }
    zmq_msg_close(&msg);
    zkit__bench_consume(acc);
    return NULL;
}

static int s_raw_run(void *self, uint64_t messages, uint64_t *lost)
{
    s_raw_t *raw = self;
    s_stage_t relay = {.raw = raw, .messages = messages};
    s_stage_t consumer = {.raw = raw, .messages = messages};
    s_stage_t producer = {.raw = raw, .messages = messages};
    pthread_t relay_thread, consumer_thread;
    if (pthread_create(&consumer_thread, NULL, s_consume, &consumer)) {
        fprintf(stderr, "zkit bench " ZKIT__PIPE_NAME ": cannot start a thread\n");
        return -1;
    }
    if (pthread_create(&relay_thread, NULL, s_relay, &relay)) {
        fprintf(stderr, "zkit bench " ZKIT__PIPE_NAME ": cannot start a thread\n");
        /* The consumer ends at its receive timeout. */
        pthread_join(consumer_thread, NULL);
        return -1;
    }
    s_produce(raw, messages, &producer);
    pthread_join(relay_thread, NULL);
    pthread_join(consumer_thread, NULL);
    const s_stage_t *stages[] = {&producer, &relay, &consumer};
    int rc = 0;
    for (int i = 0; i < 3; i++) {
        if (stages[i]->rc) {
            fprintf(stderr, "zkit bench " ZKIT__PIPE_NAME ": %s, %zu B: %s\n",
                    raw->envelope ? "envelope" : "raw", raw->frame_bytes, stages[i]->error);
            rc = -1;
        }
    }
    *lost = consumer.lost;
    return rc;
}

/* ---- setup ---------------------------------------------------------------- */

static void s_raw_destroy(void *self)
{
    s_raw_t *raw = self;
    if (!raw)
        return;
    void *sockets[] = {raw->push, raw->relay_in, raw->relay_out, raw->pull};
    for (int i = 0; i < 4; i++)
        if (sockets[i])
            zmq_close(sockets[i]);
    if (raw->ctx)
        zmq_ctx_term(raw->ctx);
    zkit_envelope_destroy(&raw->produced);
    zkit_envelope_destroy(&raw->task);
    zkit_envelope_destroy(&raw->result);
    zkit_envelope_destroy(&raw->consumed);
    free(raw->payload);
    free(raw);
}

/*  A socket with the options every zkit socket sets explicitly, and receive
    and send timeouts so a stalled run fails instead of hanging.             */
static void *s_socket(void *ctx, int type)
{
    void *socket = zmq_socket(ctx, type);
    int linger = 1000, hwm = S_HWM, timeout = ZKIT__PIPE_STALL_MS;
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

static zkit_envelope_t *s_envelope(void)
{
    zkit_envelope_t *env = zkit_envelope_new();
    if (env && zkit_envelope_set_src(env, "bench")) /* a stream needs a name */
        zkit_envelope_destroy(&env);
    return env;
}

size_t zkit__pipe_envelope_wire_bytes(size_t payload, uint64_t messages)
{
    zkit_envelope_t *env = s_envelope();
    uint8_t *body = malloc(payload ? payload : 1);
    size_t size = 0;
    if (env && body) {
        zkit_envelope_set_body_ref(env, body, payload);
        zkit_envelope_set_seq(env, messages);
        size = zkit_envelope_encoded_size(env);
    }
    zkit_envelope_destroy(&env);
    free(body);
    return size;
}

int zkit__pipe_raw_open(zkit__pipe_side_t *side, size_t frame_bytes, bool envelope)
{
    const char *what = "out of memory";
    int err = 0;
    s_raw_t *raw = calloc(1, sizeof *raw);
    if (!raw)
        goto fail;
    raw->frame_bytes = frame_bytes;
    raw->envelope = envelope;
    raw->expect_seq = 1;
    raw->payload = malloc(frame_bytes ? frame_bytes : 1);
    if (!raw->payload)
        goto fail;
    for (size_t i = 0; i < frame_bytes; i++)
        raw->payload[i] = (uint8_t) (i * 31 + 7);
    if (envelope) {
        raw->produced = s_envelope();
        raw->task = zkit_envelope_new();
        raw->result = s_envelope();
        raw->consumed = zkit_envelope_new();
        if (!raw->produced || !raw->task || !raw->result || !raw->consumed)
            goto fail;
        zkit_envelope_set_body_ref(raw->produced, raw->payload, frame_bytes);
    }
    what = "cannot create the sockets";
    raw->ctx = zmq_ctx_new();
    if (!raw->ctx) {
        err = errno;
        goto fail;
    }
    raw->push = s_socket(raw->ctx, ZMQ_PUSH);
    raw->relay_in = s_socket(raw->ctx, ZMQ_PULL);
    raw->relay_out = s_socket(raw->ctx, ZMQ_PUSH);
    raw->pull = s_socket(raw->ctx, ZMQ_PULL);
    if (!raw->push || !raw->relay_in || !raw->relay_out || !raw->pull) {
        err = errno;
        goto fail;
    }
    char producer_ep[256], consumer_ep[256];
    what = "cannot bind or connect on tcp://127.0.0.1";
    if (s_bind(raw->push, producer_ep, sizeof producer_ep) ||
        s_bind(raw->pull, consumer_ep, sizeof consumer_ep) ||
        zmq_connect(raw->relay_in, producer_ep) || zmq_connect(raw->relay_out, consumer_ep)) {
        err = errno;
        goto fail;
    }
    side->self = raw;
    side->run = s_raw_run;
    side->destroy = s_raw_destroy;
    side->outside_cpu_ns = NULL;
    return 0;
fail:
    fprintf(stderr, "zkit bench " ZKIT__PIPE_NAME ": %s, %zu B: %s%s%s\n",
            envelope ? "envelope" : "raw", frame_bytes, what, err ? ": " : "",
            err ? zmq_strerror(err) : "");
    s_raw_destroy(raw);
    return -1;
}
