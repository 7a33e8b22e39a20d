/*  test_pipeline: the ventilator, worker and sink, in process, end to end.

    Real components over tcp://127.0.0.1:*, plus raw DEALER sockets playing a
    misbehaving peer (a worker that takes tasks and goes silent, a worker
    that sends its result twice, a peer that sends garbage). Nothing sleeps:
    every step waits for an event (a message, a batch end, a counter) with a
    deadline, and the heartbeat is 50 ms so dead peers are found quickly.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/pipeline.h"
#include "pipeline/protocol.h"

#define HB        50 /* heartbeat, ms */
#define LIVENESS  3
#define DEADLINE  20000 /* ms any single wait may take before the test fails */
#define MAX_TASKS 1000

/* ---- the sink's store: what was stored, how often ------------------------- */

typedef struct {
    pthread_mutex_t lock;
    uint32_t counts[MAX_TASKS + 1]; /* stores per task seq */
    uint64_t calls;
    int refuse; /* refuse this many calls first */
} s_store_t;

static void s_store_init(s_store_t *store)
{
    memset(store, 0, sizeof *store);
    pthread_mutex_init(&store->lock, NULL);
}

static int s_store_handler(const zkit_envelope_t *result, void *arg)
{
    s_store_t *store = arg;
    zkit_value_t seq;
    pthread_mutex_lock(&store->lock);
    store->calls++;
    int rc = 0;
    if (store->refuse > 0) {
        store->refuse--;
        rc = -1;
    }
    else if (zkit_envelope_header(result, "task-seq", &seq) == 0 && seq.i >= 1 &&
             seq.i <= MAX_TASKS)
        store->counts[seq.i]++;
    pthread_mutex_unlock(&store->lock);
    return rc;
}

/* Every seq 1..n stored exactly once, nothing else. */
static void s_store_exact(s_store_t *store, int n, int except)
{
    pthread_mutex_lock(&store->lock);
    for (int i = 1; i <= MAX_TASKS; i++)
        assert_int_equal(store->counts[i], i <= n && i != except ? 1 : 0);
    pthread_mutex_unlock(&store->lock);
}

/* ---- task handlers ------------------------------------------------------------ */

typedef struct {
    uint64_t fail_seq; /* 0: never fail */
} s_work_t;

static int s_echo(const zkit_envelope_t *task, zkit_envelope_t *result, char *reason,
                  size_t reason_size, void *arg)
{
    s_work_t *work = arg;
    if (work && zkit_envelope_seq(task) == work->fail_seq) {
        snprintf(reason, reason_size, "boom %d", (int) work->fail_seq);
        return -1;
    }
    size_t size;
    const void *body = zkit_envelope_body(task, &size);
    return zkit_envelope_set_body(result, body, size);
}

/* ---- components --------------------------------------------------------------- */

static zkit_sink_t *s_sink(bool fast, s_store_t *store, uint32_t batch_timeout_ms)
{
    zkit_sink_opts_t opts = ZKIT_SINK_OPTS_DEFAULT;
    opts.bind = "tcp://127.0.0.1:*";
    opts.fast = fast;
    opts.batch_timeout_ms = batch_timeout_ms;
    opts.handler = store ? s_store_handler : NULL;
    opts.handler_arg = store;
    zkit_sink_t *sink = zkit_sink_new(&opts);
    assert_non_null(sink);
    assert_non_null(zkit_sink_endpoint(sink));
    return sink;
}

static zkit_ventilator_t *s_vent_at(bool fast, const char *bind, const char *sink,
                                    uint32_t max_attempts, uint32_t max_pending)
{
    zkit_ventilator_opts_t opts = ZKIT_VENTILATOR_OPTS_DEFAULT;
    opts.bind = bind;
    opts.sink = sink;
    opts.fast = fast;
    opts.name = "vent";
    opts.heartbeat_ms = HB;
    opts.liveness = LIVENESS;
    opts.max_attempts = max_attempts;
    opts.max_pending = max_pending;
    zkit_ventilator_t *vent = zkit_ventilator_new(&opts);
    assert_non_null(vent);
    return vent;
}

static zkit_ventilator_t *s_vent(bool fast, zkit_sink_t *sink)
{
    return s_vent_at(fast, "tcp://127.0.0.1:*", zkit_sink_endpoint(sink), 5, 0);
}

static zkit_worker_t *s_worker(bool fast, zkit_ventilator_t *vent, zkit_sink_t *sink,
                               s_work_t *work, uint32_t window)
{
    zkit_worker_opts_t opts = ZKIT_WORKER_OPTS_DEFAULT;
    opts.connect = zkit_ventilator_endpoint(vent);
    opts.sink = zkit_sink_endpoint(sink);
    opts.fast = fast;
    opts.window = window;
    opts.heartbeat_ms = HB;
    opts.liveness = LIVENESS;
    opts.reconnect_ms = 20;
    opts.handler = s_echo;
    opts.handler_arg = work;
    zkit_worker_t *worker = zkit_worker_new(&opts);
    assert_non_null(worker);
    return worker;
}

static void s_submit_batch(zkit_ventilator_t *vent, const char *name, int n)
{
    assert_int_equal(zkit_ventilator_open(vent, name), 0);
    for (int i = 1; i <= n; i++) {
        char body[32];
        int len = snprintf(body, sizeof body, "task %d", i);
        assert_int_equal(zkit_ventilator_submit(vent, body, (size_t) len), 0);
    }
    assert_int_equal(zkit_ventilator_close(vent), 0);
}

static void s_wait_both(zkit_ventilator_t *vent, zkit_sink_t *sink, zkit_batch_report_t *vr,
                        zkit_batch_report_t *sr)
{
    assert_int_equal(zkit_sink_wait(sink, DEADLINE, sr), 0);
    assert_true(sr->complete);
    assert_int_equal(zkit_ventilator_wait(vent, DEADLINE, vr), 0);
    assert_true(vr->complete);
}

/* ---- raw peers -------------------------------------------------------------------- */

static zsock_t *s_raw(const char *endpoint)
{
    zsock_t *sock = zsock_new(ZMQ_DEALER);
    assert_non_null(sock);
    zsock_set_linger(sock, 0);
    zsock_set_rcvtimeo(sock, DEADLINE);
    assert_int_equal(zsock_connect(sock, "%s", endpoint), 0);
    return sock;
}

static void s_raw_send(zsock_t *sock, ...)
{
    /* Straight to libzmq: garbage may have more frames than any command. */
    const char *data[16];
    size_t size[16];
    int n = 0;
    va_list ap;
    va_start(ap, sock);
    for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *)) {
        assert_true(n < 16);
        data[n] = s;
        size[n++] = va_arg(ap, size_t);
    }
    va_end(ap);
    for (int i = 0; i < n; i++)
        assert_int_equal(
            zmq_send(zsock_resolve(sock), data[i], size[i], i + 1 < n ? ZMQ_SNDMORE : 0),
            (int) size[i]);
}

#define S(str) str, sizeof str - 1

/* Receives the next command other than HEARTBEAT, and other than COMPLETE
   unless that is what is expected (the sink tells a raw peer that sent BATCH
   when the batch completes, and again every second); fails at the deadline. */
static void s_raw_expect(zsock_t *sock, zkit__pipeline_cmd_t cmd, zkit__pipeline_msg_t *msg,
                         zkit__pipeline_frames_t *frames)
{
    for (;;) {
        assert_int_equal(zkit__pipeline_recv(sock, frames, 0), 0);
        assert_int_equal(zkit__pipeline_parse(frames, 0, msg, NULL), 0);
        if (msg->cmd != ZKIT__PIPELINE_HEARTBEAT &&
            (msg->cmd != ZKIT__PIPELINE_COMPLETE || cmd == ZKIT__PIPELINE_COMPLETE))
            break;
        zkit__pipeline_frames_close(frames);
    }
    assert_int_equal(msg->cmd, cmd);
}

/* A RESULT as a worker makes it, for task seq in batch. */
static void s_result_msg(zmq_msg_t *msg, const char *batch, uint64_t seq, const uint8_t *id,
                         bool with_corr)
{
    zkit_envelope_t *env = zkit_envelope_new();
    zkit_envelope_set_body(env, "r", 1);
    zkit_envelope_set_seq(env, seq);
    zkit_envelope_set_src(env, "raw");
    zkit_envelope_set_batch_str(env, batch);
    if (with_corr)
        zkit_envelope_set_corr(env, id, 16);
    zkit_envelope_set_header_int(env, "task-seq", (int64_t) seq);
    assert_int_equal(zkit_envelope_encode(env, msg), 0);
    zkit_envelope_destroy(&env);
}

static void s_raw_result(zsock_t *sock, const char *batch, uint64_t seq, const uint8_t *id)
{
    zmq_msg_t env;
    s_result_msg(&env, batch, seq, id, true);
    zkit__pipeline_msg_t msg = {.cmd = ZKIT__PIPELINE_RESULT, .envelope = &env};
    assert_int_equal(zkit__pipeline_send_msg(sock, NULL, 0, &msg, NULL), 0);
    zmq_msg_close(&env);
}

static void s_expect_ack(zsock_t *sock, const uint8_t *id)
{
    zkit__pipeline_msg_t msg;
    zkit__pipeline_frames_t frames;
    s_raw_expect(sock, ZKIT__PIPELINE_ACK, &msg, &frames);
    assert_memory_equal(msg.task_id, id, 16);
    zkit__pipeline_frames_close(&frames);
}

static void s_expect_ok(zsock_t *sock, const char *token)
{
    zkit__pipeline_msg_t msg;
    zkit__pipeline_frames_t frames;
    s_raw_expect(sock, ZKIT__PIPELINE_OK, &msg, &frames);
    assert_string_equal(msg.token, token);
    zkit__pipeline_frames_close(&frames);
}

static void s_id(uint8_t id[16], int n)
{
    memset(id, 0, 16);
    id[0] = 0x01;
    id[15] = (uint8_t) n;
}

/* Polls the workers' counters until their sums reach succeeded and failed,
   or fails at the deadline. The batch can complete (the sink's COMPLETE
   retires it) before a worker has handled the ACK of its last result, so
   right after the wait a worker's own count may still be one short.        */
static void s_workers_until(zkit_worker_t **workers, size_t count, uint64_t succeeded,
                            uint64_t failed)
{
    int64_t until = zclock_mono() + DEADLINE;
    uint64_t ok, bad;
    do {
        ok = bad = 0;
        for (size_t i = 0; i < count; i++) {
            zkit_worker_stats_t ws;
            assert_int_equal(zkit_worker_stats(workers[i], &ws), 0);
            ok += ws.succeeded;
            bad += ws.failed;
        }
        if (ok == succeeded && bad == failed)
            return;
    } while (zclock_mono() < until);
    fail_msg("workers succeeded %llu (want %llu), failed %llu (want %llu)", (unsigned long long) ok,
             (unsigned long long) succeeded, (unsigned long long) bad, (unsigned long long) failed);
}

/* Polls the sink's counters until check() holds, or fails at the deadline. */
static void s_sink_until(zkit_sink_t *sink, bool (*check)(const zkit__sink_stats_t *, uint64_t),
                         uint64_t value, zkit__sink_stats_t *stats)
{
    int64_t until = zclock_mono() + DEADLINE;
    do {
        assert_int_equal(zkit__sink_stats(sink, stats), 0);
        if (check(stats, value))
            return;
    } while (zclock_mono() < until);
    fail_msg("sink counter did not reach %llu", (unsigned long long) value);
}

static bool s_refused_at_least(const zkit__sink_stats_t *s, uint64_t v)
{
    return s->refused >= v;
}

static bool s_sink_bad_at_least(const zkit__sink_stats_t *s, uint64_t v)
{
    return s->bad.total >= v;
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_options_and_misuse(void **state)
{
    (void) state;
    zkit_ventilator_opts_t vopts = ZKIT_VENTILATOR_OPTS_DEFAULT;
    errno = 0;
    assert_null(zkit_ventilator_new(&vopts));
    assert_int_equal(errno, EINVAL);
    vopts.bind = "tcp://127.0.0.1:*"; /* reliable mode needs a sink */
    assert_null(zkit_ventilator_new(&vopts));
    assert_int_equal(errno, EINVAL);
    vopts.sink = "tcp://127.0.0.1:1";
    vopts.bind = "nonsense://x";
    assert_null(zkit_ventilator_new(&vopts));
    assert_int_not_equal(errno, 0);

    zkit_sink_opts_t sopts = ZKIT_SINK_OPTS_DEFAULT;
    assert_null(zkit_sink_new(&sopts));
    assert_int_equal(errno, EINVAL);
    sopts.bind = "nonsense://x";
    assert_null(zkit_sink_new(&sopts));

    zkit_worker_opts_t wopts = ZKIT_WORKER_OPTS_DEFAULT;
    wopts.connect = "tcp://127.0.0.1:1";
    wopts.sink = "tcp://127.0.0.1:2";
    assert_null(zkit_worker_new(&wopts)); /* no handler */
    assert_int_equal(errno, EINVAL);
    wopts.handler = s_echo;
    wopts.window = 0;
    assert_null(zkit_worker_new(&wopts));
    assert_int_equal(errno, EINVAL);

    zkit_sink_t *sink = s_sink(false, NULL, 0);
    zkit_ventilator_t *vent = s_vent(false, sink);
    zkit_batch_report_t report;
    assert_int_equal(zkit_ventilator_wait(vent, 0, &report), -1); /* no batch */
    assert_int_equal(errno, EINVAL);
    assert_int_equal(zkit_ventilator_submit(vent, "x", 1), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(zkit_ventilator_close(vent), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(zkit_ventilator_open(vent, "a b"), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(zkit_ventilator_open(vent, NULL), 0); /* generated name */
    assert_int_equal(zkit_ventilator_open(vent, "again"), -1);
    assert_int_equal(errno, EBUSY);
    assert_int_equal(zkit_ventilator_wait(vent, 0, &report), -1); /* still open */
    assert_int_equal(errno, EINVAL);
    assert_int_equal(zkit_ventilator_report(vent, &report), 0);
    assert_memory_equal(report.name, "batch-", 6);
    assert_int_equal(report.total, 0);
    assert_false(report.complete);
    /* An empty batch is complete once the sink has confirmed its total.   */
    assert_int_equal(zkit_ventilator_close(vent), 0);
    assert_int_equal(zkit_ventilator_wait(vent, DEADLINE, &report), 0);
    assert_int_equal(report.total, 0);
    /* The sink has no total for it (0 means not known), so it is running. */
    assert_int_equal(zkit_sink_wait(sink, 0, &report), -1);
    assert_int_equal(errno, ETIMEDOUT);
    assert_int_equal(zkit_sink_missing(sink, NULL, 0), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(zkit_sink_dead_letters(sink, NULL, 0), 0);
    zkit_ventilator_destroy(&vent);
    zkit_ventilator_destroy(&vent); /* idempotent */
    zkit_sink_destroy(&sink);
    zkit_worker_destroy(NULL);
}

static void test_fast_end_to_end(void **state)
{
    (void) state;
    enum { N = 500 };
    s_store_t store;
    s_store_init(&store);
    zkit_sink_t *sink = s_sink(true, &store, 0);
    zkit_ventilator_t *vent = s_vent(true, sink);
    zkit_worker_t *worker = s_worker(true, vent, sink, NULL, 4);
    s_submit_batch(vent, "fast", N);
    zkit_batch_report_t vr, sr;
    s_wait_both(vent, sink, &vr, &sr);
    assert_string_equal(sr.name, "fast");
    assert_int_equal(sr.total, N);
    assert_int_equal(sr.done, N);
    assert_int_equal(sr.gaps, 0);
    assert_int_equal(vr.done, N);
    s_store_exact(&store, N, 0);
    zkit_worker_stats_t ws;
    assert_int_equal(zkit_worker_stats(worker, &ws), 0);
    assert_int_equal(ws.tasks, N);
    assert_int_equal(ws.succeeded, N);
    assert_int_equal(ws.gaps, 0); /* the only worker sees every seq */
    zkit_worker_destroy(&worker);
    zkit_ventilator_destroy(&vent);
    zkit_sink_destroy(&sink);
}

static void test_reliable_three_workers(void **state)
{
    (void) state;
    enum { N = 300 };
    s_store_t store;
    s_store_init(&store);
    zkit_sink_t *sink = s_sink(false, &store, 0);
    zkit_ventilator_t *vent = s_vent(false, sink);
    zkit_worker_t *workers[3];
    for (int i = 0; i < 3; i++)
        workers[i] = s_worker(false, vent, sink, NULL, 2);
    s_submit_batch(vent, "reliable", N);
    zkit_batch_report_t vr, sr;
    s_wait_both(vent, sink, &vr, &sr);
    assert_int_equal(sr.total, N);
    assert_int_equal(sr.done, N);
    assert_int_equal(sr.dead, 0);
    assert_int_equal(vr.total, N);
    assert_int_equal(vr.done, N);
    s_store_exact(&store, N, 0);
    s_workers_until(workers, 3, N, 0);
    for (int i = 0; i < 3; i++)
        zkit_worker_destroy(&workers[i]);
    zkit_ventilator_destroy(&vent);
    zkit_sink_destroy(&sink);
}

/*  A "worker" registers, takes a window of tasks and never says another
    word. The ventilator presumes it dead and gives its tasks to a real
    worker: the batch is still exact, and the retries show.                 */
static void test_silent_worker_tasks_requeued(void **state)
{
    (void) state;
    enum { N = 12, WINDOW = 4 };
    s_store_t store;
    s_store_init(&store);
    zkit_sink_t *sink = s_sink(false, &store, 0);
    zkit_ventilator_t *vent = s_vent(false, sink);
    /* Tasks first, so they are there the moment it registers: it is
       presumed dead heartbeat x liveness after its READY, whatever else.  */
    s_submit_batch(vent, "silent", N);
    zsock_t *raw = s_raw(zkit_ventilator_endpoint(vent));
    s_raw_send(raw, S("READY"), S("4"), NULL);
    for (int i = 0; i < WINDOW; i++) {
        zkit__pipeline_msg_t msg;
        zkit__pipeline_frames_t frames;
        s_raw_expect(raw, ZKIT__PIPELINE_TASK, &msg, &frames);
        zkit_envelope_t *env = zkit_envelope_new();
        assert_int_equal(
            zkit_envelope_decode_bytes(env, zmq_msg_data(msg.envelope), zmq_msg_size(msg.envelope)),
            0);
        assert_int_equal(zkit_envelope_att(env), 1);
        assert_string_equal(zkit_envelope_src(env), "vent");
        zkit_value_t batch;
        assert_int_equal(zkit_envelope_batch(env, &batch), 0);
        assert_int_equal(batch.type, ZKIT_VALUE_STR);
        assert_memory_equal(batch.data, "silent", 6);
        zkit_envelope_destroy(&env);
        zkit__pipeline_frames_close(&frames);
    }
    /* Only now a worker that works. */
    zkit_worker_t *worker = s_worker(false, vent, sink, NULL, 2);
    zkit_batch_report_t vr, sr;
    s_wait_both(vent, sink, &vr, &sr);
    assert_int_equal(sr.done, N);
    assert_int_equal(sr.dead, 0);
    assert_true(sr.retried >= WINDOW);
    assert_true(vr.retried >= WINDOW);
    s_store_exact(&store, N, 0);
    zkit__ventilator_stats_t vs;
    assert_int_equal(zkit__ventilator_stats(vent, &vs), 0);
    assert_true(vs.dispatcher.requeued_by[ZKIT__DISPATCHER_PEER_DIED] >= WINDOW);
    assert_true(vs.dispatcher.peers_expired >= 1);
    zsock_destroy(&raw);
    zkit_worker_destroy(&worker);
    zkit_ventilator_destroy(&vent);
    zkit_sink_destroy(&sink);
}

/*  A task whose handler always fails ends as a dead letter after
    max_attempts, with the handler's reason, and the batch completes.       */
static void test_failing_task_dead_letter(void **state)
{
    (void) state;
    enum { N = 20, FAIL_SEQ = 7 };
    s_store_t store;
    s_store_init(&store);
    zkit_sink_t *sink = s_sink(false, &store, 0);
    zkit_ventilator_t *vent = s_vent_at(false, "tcp://127.0.0.1:*", zkit_sink_endpoint(sink), 3, 0);
    s_work_t work = {.fail_seq = FAIL_SEQ};
    zkit_worker_t *w1 = s_worker(false, vent, sink, &work, 1);
    zkit_worker_t *w2 = s_worker(false, vent, sink, &work, 3);
    s_submit_batch(vent, "poison", N);
    zkit_batch_report_t vr, sr;
    s_wait_both(vent, sink, &vr, &sr);
    assert_int_equal(sr.total, N);
    assert_int_equal(sr.done, N - 1);
    assert_int_equal(sr.dead, 1);
    assert_int_equal(vr.done, N - 1);
    assert_int_equal(vr.dead, 1);
    s_store_exact(&store, N, FAIL_SEQ);
    zkit_dead_letter_t letters[4];
    assert_int_equal(zkit_sink_dead_letters(sink, letters, 4), 1);
    assert_int_equal(letters[0].task_seq, FAIL_SEQ);
    assert_int_equal(letters[0].attempts, 3);
    assert_string_equal(letters[0].reason, "NACKED: boom 7");
    assert_int_equal(zkit_sink_missing(sink, NULL, 0), 0);
    zkit_worker_t *both[] = {w1, w2};
    s_workers_until(both, 2, N - 1, 3);
    zkit_worker_destroy(&w1);
    zkit_worker_destroy(&w2);
    zkit_ventilator_destroy(&vent);
    zkit_sink_destroy(&sink);
}

/*  A worker that sends its RESULT twice: stored once, acknowledged twice. */
static void test_duplicate_result_stored_once(void **state)
{
    (void) state;
    s_store_t store;
    s_store_init(&store);
    zkit_sink_t *sink = s_sink(false, &store, 0);
    zsock_t *raw = s_raw(zkit_sink_endpoint(sink));
    uint8_t id[16];
    s_id(id, 1);
    s_raw_send(raw, S("BATCH"), S("dup"), S("1"), NULL);
    s_expect_ok(raw, "dup:1");
    s_raw_result(raw, "dup", 1, id);
    s_expect_ack(raw, id);
    s_raw_result(raw, "dup", 1, id);
    s_expect_ack(raw, id);
    /* The announcement again: idempotent, confirmed again. */
    s_raw_send(raw, S("BATCH"), S("dup"), S("1"), NULL);
    s_expect_ok(raw, "dup:1");
    zkit_batch_report_t sr;
    assert_int_equal(zkit_sink_wait(sink, DEADLINE, &sr), 0);
    assert_int_equal(sr.done, 1);
    assert_int_equal(sr.duplicates, 1);
    zkit__sink_stats_t ss;
    assert_int_equal(zkit__sink_stats(sink, &ss), 0);
    assert_int_equal(ss.stored, 1);
    assert_int_equal(ss.duplicates, 1);
    assert_int_equal(ss.acks, 2);
    assert_int_equal(ss.oks, 2);
    assert_int_equal(store.calls, 1);
    s_store_exact(&store, 1, 0);
    zsock_destroy(&raw);
    zkit_sink_destroy(&sink);
}

/*  The sink's handler refuses (disk full, say) and then accepts: no ACK
    until it is stored, stored once.                                        */
static void test_refused_then_stored(void **state)
{
    (void) state;
    s_store_t store;
    s_store_init(&store);
    store.refuse = 2;
    zkit_sink_t *sink = s_sink(false, &store, 0);
    zsock_t *raw = s_raw(zkit_sink_endpoint(sink));
    uint8_t id[16];
    s_id(id, 9);
    zkit__sink_stats_t ss;
    s_raw_result(raw, "refuse", 1, id);
    s_sink_until(sink, s_refused_at_least, 1, &ss);
    s_raw_result(raw, "refuse", 1, id);
    s_sink_until(sink, s_refused_at_least, 2, &ss);
    assert_int_equal(ss.acks, 0);
    s_raw_result(raw, "refuse", 1, id);
    s_expect_ack(raw, id);
    assert_int_equal(zkit__sink_stats(sink, &ss), 0);
    assert_int_equal(ss.refused, 2);
    assert_int_equal(ss.stored, 1);
    assert_int_equal(ss.acks, 1);
    s_store_exact(&store, 1, 0);
    zsock_destroy(&raw);
    zkit_sink_destroy(&sink);

    /* End to end: workers resend what the sink refused until it is stored. */
    enum { N = 10 };
    s_store_init(&store);
    store.refuse = 3;
    sink = s_sink(false, &store, 0);
    zkit_ventilator_t *vent = s_vent(false, sink);
    zkit_worker_t *worker = s_worker(false, vent, sink, NULL, 2);
    s_submit_batch(vent, "refuse-e2e", N);
    zkit_batch_report_t vr, sr;
    s_wait_both(vent, sink, &vr, &sr);
    assert_int_equal(sr.done, N);
    s_store_exact(&store, N, 0);
    zkit__worker_stats_t wi;
    int64_t until = zclock_mono() + DEADLINE;
    do /* the last ACK may still be on its way when the batch completes */
        assert_int_equal(zkit__worker_stats(worker, &wi), 0);
    while (wi.acks < N && zclock_mono() < until);
    assert_true(wi.results_sent >= N + 3);
    assert_int_equal(wi.acks, N);
    zkit_worker_destroy(&worker);
    zkit_ventilator_destroy(&vent);
    zkit_sink_destroy(&sink);
}

static bool s_vent_bad(zkit_ventilator_t *vent, uint64_t at_least, zkit__ventilator_stats_t *vs)
{
    int64_t until = zclock_mono() + DEADLINE;
    do {
        assert_int_equal(zkit__ventilator_stats(vent, vs), 0);
        if (vs->bad.total >= at_least)
            return true;
    } while (zclock_mono() < until);
    return false;
}

/*  Garbage into the ventilator's ROUTER and the sink's ROUTER: each message
    counted once under its reason, nothing crashes, and a batch then runs.  */
static void test_garbage_counted_traffic_flows(void **state)
{
    (void) state;
    s_store_t store;
    s_store_init(&store);
    zkit_sink_t *sink = s_sink(false, &store, 0);
    zkit_ventilator_t *vent = s_vent(false, sink);
    zsock_t *rv = s_raw(zkit_ventilator_endpoint(vent));
    zsock_t *rs = s_raw(zkit_sink_endpoint(sink));
    const char *id = "0123456789abcdef";
    zmq_msg_t env;
    s_result_msg(&env, "g", 1, (const uint8_t *) id, true);
    size_t env_size = zmq_msg_size(&env);
    const char *env_data = zmq_msg_data(&env);

    /* Into the ventilator: 13 bad messages. */
    s_raw_send(rv, S("HELLO"), NULL);
    s_raw_send(rv, "", (size_t) 0, NULL);
    s_raw_send(rv, "\x00\x01\x02", (size_t) 3, NULL);
    s_raw_send(rv, S("READY"), NULL);
    s_raw_send(rv, S("READY"), S("abc"), NULL);
    s_raw_send(rv, S("READY"), S("0"), NULL);
    s_raw_send(rv, S("DONE"), S("short"), NULL);
    s_raw_send(rv, S("FAIL"), id, (size_t) 16, NULL);
    s_raw_send(rv, S("x"), S("x"), S("x"), S("x"), S("x"), S("x"), S("x"), S("x"), S("x"), S("x"),
               S("x"), S("x"), NULL);
    s_raw_send(rv, S("TASK"), env_data, env_size, NULL);
    s_raw_send(rv, S("RESULT"), S("junk"), NULL);
    s_raw_send(rv, env_data, env_size, NULL);
    s_raw_send(rv, S("OK"), S("nothing:1"), NULL);
    /* And valid messages from a peer it does not know: DISCONNECT.       */
    s_raw_send(rv, S("FAIL"), id, (size_t) 16, S("no such task"), NULL);
    s_raw_send(rv, S("HEARTBEAT"), NULL);
    zkit__pipeline_msg_t msg;
    zkit__pipeline_frames_t frames;
    s_raw_expect(rv, ZKIT__PIPELINE_DISCONNECT, &msg, &frames);
    zkit__pipeline_frames_close(&frames);

    /* Into the sink: 9 bad messages. */
    zmq_msg_t no_corr;
    s_result_msg(&no_corr, "g", 1, NULL, false);
    s_raw_send(rs, S("HELLO"), NULL);
    s_raw_send(rs, S("RESULT"), "\x95garbage", (size_t) 8, NULL);
    s_raw_send(rs, S("RESULT"), zmq_msg_data(&no_corr), zmq_msg_size(&no_corr), NULL);
    s_raw_send(rs, S("BATCH"), S("g"), S("x"), NULL);
    s_raw_send(rs, S("DEAD"), S("g"), id, (size_t) 16, S("1"), S("1"), S("BOGUS"), NULL);
    s_raw_send(rs, S("ACK"), id, (size_t) 16, NULL);
    s_raw_send(rs, S("x"), S("x"), S("x"), S("x"), S("x"), S("x"), S("x"), S("x"), S("x"), NULL);
    s_raw_send(rs, env_data, env_size, NULL);
    s_raw_send(rs, S("BATCH"), S("g"), S("100000001"), NULL);
    zmq_msg_close(&no_corr);
    zmq_msg_close(&env);

    zkit__ventilator_stats_t vs;
    assert_true(s_vent_bad(vent, 13, &vs));
    zkit__sink_stats_t ss;
    s_sink_until(sink, s_sink_bad_at_least, 9, &ss);

    /* Valid traffic still flows. */
    enum { N = 50 };
    zkit_worker_t *worker = s_worker(false, vent, sink, NULL, 2);
    s_submit_batch(vent, "after-garbage", N);
    zkit_batch_report_t vr, sr;
    assert_int_equal(zkit_ventilator_wait(vent, DEADLINE, &vr), 0);
    assert_int_equal(vr.done, N);
    s_store_exact(&store, N, 0);

    assert_int_equal(zkit__ventilator_stats(vent, &vs), 0);
    assert_int_equal(vs.bad.total, 13);
    assert_int_equal(vs.bad.count[ZKIT__PIPELINE_BAD_COMMAND], 3);
    assert_int_equal(vs.bad.count[ZKIT__PIPELINE_BAD_FRAMES], 3);
    assert_int_equal(vs.bad.count[ZKIT__PIPELINE_BAD_FIELD], 3);
    assert_int_equal(vs.bad.count[ZKIT__PIPELINE_BAD_ENVELOPE], 1);
    assert_int_equal(vs.bad.count[ZKIT__PIPELINE_BAD_UNEXPECTED], 3);
    assert_true(vs.disconnects >= 2); /* the HEARTBEAT and the valid FAIL */
    assert_int_equal(vs.stale_fail, 1);
    assert_int_equal(zkit__sink_stats(sink, &ss), 0);
    assert_int_equal(ss.bad.total, 9);
    assert_int_equal(ss.bad.count[ZKIT__PIPELINE_BAD_COMMAND], 1);
    assert_int_equal(ss.bad.count[ZKIT__PIPELINE_BAD_ENVELOPE], 1);
    assert_int_equal(ss.bad.count[ZKIT__PIPELINE_BAD_META], 1);
    assert_int_equal(ss.bad.count[ZKIT__PIPELINE_BAD_FIELD], 3);
    assert_int_equal(ss.bad.count[ZKIT__PIPELINE_BAD_UNEXPECTED], 2);
    assert_int_equal(ss.bad.count[ZKIT__PIPELINE_BAD_FRAMES], 1);
    (void) sr;
    zsock_destroy(&rv);
    zsock_destroy(&rs);
    zkit_worker_destroy(&worker);
    zkit_ventilator_destroy(&vent);
    zkit_sink_destroy(&sink);
}

/*  Waits until a TCP port can be bound again: libzmq closes a listener in
    its I/O thread, a moment after the socket is closed.                   */
static void s_wait_port_free(const char *endpoint)
{
    const char *colon = strrchr(endpoint, ':');
    assert_non_null(colon);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t) atoi(colon + 1))};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int64_t until = zclock_mono() + DEADLINE;
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        assert_true(fd >= 0);
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        int rc = bind(fd, (struct sockaddr *) &addr, sizeof addr);
        close(fd);
        if (rc == 0)
            return;
        assert_true(zclock_mono() < until);
    }
}

/*  The ventilator goes away and a new one binds the same endpoint: the
    worker registers again (READY) and runs the new batch.                 */
static void test_ventilator_restart(void **state)
{
    (void) state;
    enum { N = 10 };
    s_store_t store;
    s_store_init(&store);
    zkit_sink_t *sink = s_sink(false, &store, 0);
    zkit_ventilator_t *vent = s_vent(false, sink);
    char endpoint[256];
    snprintf(endpoint, sizeof endpoint, "%s", zkit_ventilator_endpoint(vent));
    zkit_worker_t *worker = s_worker(false, vent, sink, NULL, 2);
    s_submit_batch(vent, "before", N);
    zkit_batch_report_t vr;
    assert_int_equal(zkit_ventilator_wait(vent, DEADLINE, &vr), 0);
    zkit__worker_stats_t before;
    assert_int_equal(zkit__worker_stats(worker, &before), 0);
    zkit_ventilator_destroy(&vent);
    s_wait_port_free(endpoint);

    vent = s_vent_at(false, endpoint, zkit_sink_endpoint(sink), 5, 0);
    s_submit_batch(vent, "after", N);
    assert_int_equal(zkit_ventilator_wait(vent, DEADLINE, &vr), 0);
    assert_int_equal(vr.done, N);
    assert_string_equal(vr.name, "after");
    zkit__worker_stats_t after;
    assert_int_equal(zkit__worker_stats(worker, &after), 0);
    assert_true(after.readies > before.readies);
    s_workers_until(&worker, 1, 2 * N, 0);
    zkit_worker_destroy(&worker);
    zkit_ventilator_destroy(&vent);
    zkit_sink_destroy(&sink);
}

/*  A batch that does not complete in time: the sink reports exactly the
    task seqs that are neither stored nor dead.                             */
static void test_sink_batch_timeout_missing(void **state)
{
    (void) state;
    s_store_t store;
    s_store_init(&store);
    zkit_sink_t *sink = s_sink(false, &store, 300);
    zsock_t *raw = s_raw(zkit_sink_endpoint(sink));
    s_raw_send(raw, S("BATCH"), S("late"), S("10"), NULL);
    s_expect_ok(raw, "late:10");
    const int stored[] = {1, 2, 4, 5, 6, 8, 10};
    for (size_t i = 0; i < sizeof stored / sizeof *stored; i++) {
        uint8_t id[16];
        s_id(id, stored[i]);
        s_raw_result(raw, "late", (uint64_t) stored[i], id);
        s_expect_ack(raw, id);
    }
    uint8_t dead_id[16];
    s_id(dead_id, 9);
    s_raw_send(raw, S("DEAD"), S("late"), dead_id, (size_t) 16, S("9"), S("5"), S("PEER_DIED"),
               NULL);
    char hex[33];
    s_expect_ok(raw, zkit_id_to_hex(dead_id, hex));

    zkit_batch_report_t sr;
    assert_int_equal(zkit_sink_wait(sink, DEADLINE, &sr), -1);
    assert_int_equal(errno, ETIMEDOUT);
    assert_false(sr.complete);
    assert_int_equal(sr.total, 10);
    assert_int_equal(sr.done, 7);
    assert_int_equal(sr.dead, 1);
    assert_int_equal(sr.retried, 4);
    uint64_t seqs[16];
    assert_int_equal(zkit_sink_missing(sink, seqs, 16), 2);
    assert_int_equal(seqs[0], 3);
    assert_int_equal(seqs[1], 7);
    assert_int_equal(zkit_sink_missing(sink, seqs, 1), 2);
    assert_int_equal(seqs[0], 3);
    zkit_dead_letter_t letters[2];
    assert_int_equal(zkit_sink_dead_letters(sink, letters, 2), 1);
    assert_int_equal(letters[0].task_seq, 9);
    assert_int_equal(letters[0].attempts, 5);
    assert_string_equal(letters[0].reason, "PEER_DIED");
    assert_memory_equal(letters[0].task_id, dead_id, 16);

    /* The slow worker's result arrives after all: it replaces the dead
       letter, and the last missing ones complete the batch.               */
    s_raw_result(raw, "late", 9, dead_id);
    s_expect_ack(raw, dead_id);
    for (int seq = 3; seq <= 7; seq += 4) {
        uint8_t id[16];
        s_id(id, seq);
        s_raw_result(raw, "late", (uint64_t) seq, id);
        s_expect_ack(raw, id);
    }
    assert_int_equal(zkit_sink_wait(sink, DEADLINE, &sr), 0);
    assert_int_equal(sr.done, 10);
    assert_int_equal(sr.dead, 0);
    assert_int_equal(zkit_sink_dead_letters(sink, letters, 2), 0);
    s_store_exact(&store, 10, 0);
    zsock_destroy(&raw);
    zkit_sink_destroy(&sink);
}

/* ---- the sink's COMPLETE --------------------------------------------------------- */

/* Takes a TASK from a raw worker's socket: its id and seq. */
static void s_raw_task(zsock_t *sock, uint8_t id[16], uint64_t *seq)
{
    zkit__pipeline_msg_t msg;
    zkit__pipeline_frames_t frames;
    s_raw_expect(sock, ZKIT__PIPELINE_TASK, &msg, &frames);
    zkit_envelope_t *env = zkit_envelope_new();
    assert_int_equal(
        zkit_envelope_decode_bytes(env, zmq_msg_data(msg.envelope), zmq_msg_size(msg.envelope)), 0);
    memcpy(id, zkit_envelope_id(env), 16);
    *seq = zkit_envelope_seq(env);
    zkit_envelope_destroy(&env);
    zkit__pipeline_frames_close(&frames);
}

/* Polls the ventilator's counters until check() holds, or fails. */
static void s_vent_until(zkit_ventilator_t *vent,
                         bool (*check)(const zkit__ventilator_stats_t *, uint64_t), uint64_t value,
                         zkit__ventilator_stats_t *stats)
{
    int64_t until = zclock_mono() + DEADLINE;
    do {
        assert_int_equal(zkit__ventilator_stats(vent, stats), 0);
        if (check(stats, value))
            return;
    } while (zclock_mono() < until);
    fail_msg("ventilator counter did not reach %llu", (unsigned long long) value);
}

static bool s_vent_done_at_least(const zkit__ventilator_stats_t *s, uint64_t v)
{
    return s->dispatcher.acked >= v;
}

static bool s_vent_duplicate_done_at_least(const zkit__ventilator_stats_t *s, uint64_t v)
{
    return s->duplicate_done >= v;
}

static bool s_vent_held_none(const zkit__ventilator_stats_t *s, uint64_t v)
{
    (void) v;
    return s->dispatcher.queued == 0 && s->dispatcher.in_flight == 0;
}

static bool s_vent_nacked_at_least(const zkit__ventilator_stats_t *s, uint64_t v)
{
    return s->dispatcher.nacked >= v;
}

static bool s_confirmed_at_least(const zkit__sink_stats_t *s, uint64_t v)
{
    return s->confirmed >= v;
}

/*  The race COMPLETE closes. A worker takes two tasks; both results are
    stored and acknowledged; it sends the first DONE and dies before the
    second. No other worker exists, so no DONE will ever come for it: only
    the sink's COMPLETE retires it, and the ventilator completes. Late words
    about the task are then harmless: the sink acknowledges its result again
    (stores nothing), and the ventilator counts its DONE as a duplicate.
    Then a second ventilator reuses the batch's name: the sink answers its
    BATCH with COMPLETE, and tasks never sent are retired unsent.          */
static void test_complete_retires_lost_done(void **state)
{
    (void) state;
    enum { N = 2 };
    s_store_t store;
    s_store_init(&store);
    zkit_sink_t *sink = s_sink(false, &store, 0);
    zkit_ventilator_t *vent = s_vent(false, sink);
    s_submit_batch(vent, "lost-done", N);
    zsock_t *rv = s_raw(zkit_ventilator_endpoint(vent));
    zsock_t *rs = s_raw(zkit_sink_endpoint(sink));
    s_raw_send(rv, S("READY"), S("2"), NULL);
    uint8_t ids[N][16];
    uint64_t seqs[N];
    for (int i = 0; i < N; i++)
        s_raw_task(rv, ids[i], &seqs[i]);

    /* The first task the normal way: stored, acknowledged, DONE, retired. */
    zkit__ventilator_stats_t vs;
    s_raw_result(rs, "lost-done", seqs[0], ids[0]);
    s_expect_ack(rs, ids[0]);
    s_raw_send(rv, S("DONE"), ids[0], (size_t) 16, NULL);
    s_vent_until(vent, s_vent_done_at_least, 1, &vs);
    /* The second: stored and acknowledged, and the worker says no more.    */
    s_raw_result(rs, "lost-done", seqs[1], ids[1]);
    s_expect_ack(rs, ids[1]);

    zkit_batch_report_t vr, sr;
    assert_int_equal(zkit_sink_wait(sink, DEADLINE, &sr), 0);
    assert_int_equal(zkit_ventilator_wait(vent, DEADLINE, &vr), 0);
    assert_true(vr.complete);
    assert_int_equal(vr.total, N);
    assert_int_equal(vr.done, N);
    assert_int_equal(vr.dead, 0);
    assert_int_equal(zkit__ventilator_stats(vent, &vs), 0);
    assert_int_equal(vs.sink_retired, 1);
    assert_true(vs.completes >= 1);
    /* The ventilator's OK ends the sink's resends.                         */
    zkit__sink_stats_t ss;
    s_sink_until(sink, s_confirmed_at_least, 1, &ss);
    assert_int_equal(ss.completing, 0);

    /* After completion: the result again is acknowledged, not stored; the
       late DONE is a duplicate.                                            */
    s_raw_result(rs, "lost-done", seqs[1], ids[1]);
    s_expect_ack(rs, ids[1]);
    s_raw_send(rv, S("DONE"), ids[1], (size_t) 16, NULL);
    s_vent_until(vent, s_vent_duplicate_done_at_least, 1, &vs);
    assert_int_equal(zkit_ventilator_report(vent, &vr), 0);
    assert_int_equal(vr.done, N);
    s_store_exact(&store, N, 0);
    zsock_destroy(&rv);
    zsock_destroy(&rs);
    zkit_ventilator_destroy(&vent);

    /* The same name again, with the same total: complete at the sink, so
       its tasks retire unsent, and a worker that comes is given none.     */
    vent = s_vent(false, sink);
    s_submit_batch(vent, "lost-done", N);
    assert_int_equal(zkit_ventilator_wait(vent, DEADLINE, &vr), 0);
    assert_int_equal(vr.done, N);
    assert_int_equal(zkit__ventilator_stats(vent, &vs), 0);
    assert_int_equal(vs.sink_retired, N);
    zkit_worker_t *worker = s_worker(false, vent, sink, NULL, 2);
    s_vent_until(vent, s_vent_held_none, 0, &vs);
    zkit_worker_stats_t ws;
    assert_int_equal(zkit_worker_stats(worker, &ws), 0);
    assert_int_equal(ws.tasks, 0);
    s_store_exact(&store, N, 0);
    zkit_worker_destroy(&worker);
    zkit_ventilator_destroy(&vent);
    zkit_sink_destroy(&sink);
}

/*  A sink that never acknowledges (a raw ROUTER): the worker sends the
    RESULT exactly 10 times, every heartbeat x liveness, then gives it up
    and reports the attempt failed, so the ventilator gives the task out
    again (attempt 2) instead of the worker holding it for ever.            */
static void test_worker_gives_up_unacknowledged_result(void **state)
{
    (void) state;
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    assert_non_null(router);
    zsock_set_linger(router, 0);
    zsock_set_rcvtimeo(router, DEADLINE);
    assert_true(zsock_bind(router, "tcp://127.0.0.1:*") > 0);
    char sink_ep[256];
    snprintf(sink_ep, sizeof sink_ep, "%s", zsock_endpoint(router));
    zkit_ventilator_t *vent = s_vent_at(false, "tcp://127.0.0.1:*", sink_ep, 5, 0);
    zkit_worker_opts_t opts = ZKIT_WORKER_OPTS_DEFAULT;
    opts.connect = zkit_ventilator_endpoint(vent);
    opts.sink = sink_ep;
    opts.heartbeat_ms = HB;
    opts.liveness = LIVENESS;
    opts.handler = s_echo;
    zkit_worker_t *worker = zkit_worker_new(&opts);
    assert_non_null(worker);
    s_submit_batch(vent, "no-ack", 1);

    /* RESULTs of attempt 1 until the first of attempt 2 (BATCH from the
       ventilator comes in between, unanswered).                            */
    int first_attempt = 0;
    /* Heartbeats keep each receive within its timeout: bound the whole wait
       so a lost attempt 2 fails here instead of hanging until ctest kills. */
    int64_t give_up = zclock_mono() + 3 * (int64_t) DEADLINE;
    for (;;) {
        assert_true(zclock_mono() < give_up);
        zkit__pipeline_frames_t frames;
        zkit__pipeline_msg_t msg;
        assert_int_equal(zkit__pipeline_recv(router, &frames, 0), 0);
        assert_int_equal(zkit__pipeline_parse(&frames, 1, &msg, NULL), 0);
        uint64_t att = 0;
        if (msg.cmd == ZKIT__PIPELINE_RESULT) {
            zkit_envelope_t *env = zkit_envelope_new();
            assert_int_equal(zkit_envelope_decode_bytes(env, zmq_msg_data(msg.envelope),
                                                        zmq_msg_size(msg.envelope)),
                             0);
            att = zkit_envelope_att(env);
            zkit_envelope_destroy(&env);
        }
        zkit__pipeline_frames_close(&frames);
        if (att == 1)
            first_attempt++;
        else if (att == 2)
            break;
    }
    assert_int_equal(first_attempt, 10);
    zkit__worker_stats_t wi;
    assert_int_equal(zkit__worker_stats(worker, &wi), 0);
    assert_true(wi.abandoned >= 1);
    assert_int_equal(wi.acks, 0);
    zkit__ventilator_stats_t vs;
    s_vent_until(vent, s_vent_nacked_at_least, 1, &vs);
    zkit_worker_destroy(&worker);
    zkit_ventilator_destroy(&vent);
    zsock_destroy(&router);
}

/* ---- max_pending -------------------------------------------------------------- */

typedef struct {
    zkit_ventilator_t *vent;
    const char *signal; /* inproc endpoint to report on */
    int rc;
    int err;
} s_submitter_t;

static void *s_submit_one(void *arg)
{
    s_submitter_t *s = arg;
    zsock_t *out = zsock_new_pair(s->signal);
    zstr_send(out, "submitting");
    s->rc = zkit_ventilator_submit(s->vent, "late", 4);
    s->err = errno;
    zstr_send(out, "returned");
    zsock_destroy(&out);
    return NULL;
}

static void s_expect_signal(zsock_t *in, const char *what, int timeout_ms, bool want)
{
    zsock_set_rcvtimeo(in, timeout_ms);
    char *got = zstr_recv(in);
    if (want) {
        assert_non_null(got);
        assert_string_equal(got, what);
    }
    else
        assert_null(got);
    zstr_free(&got);
}

static void test_max_pending_blocks(void **state)
{
    (void) state;
    s_store_t store;
    s_store_init(&store);
    zkit_sink_t *sink = s_sink(false, &store, 0);
    zkit_ventilator_t *vent = s_vent_at(false, "tcp://127.0.0.1:*", zkit_sink_endpoint(sink), 5, 3);
    assert_int_equal(zkit_ventilator_open(vent, "pending"), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(zkit_ventilator_submit(vent, "t", 1), 0);

    /* A fourth blocks; a signal (zsys_interrupted) ends the wait: EINTR.   */
    zsock_t *in = zsock_new_pair("@inproc://max-pending-1");
    s_submitter_t s = {.vent = vent, .signal = ">inproc://max-pending-1"};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, s_submit_one, &s), 0);
    s_expect_signal(in, "submitting", DEADLINE, true);
    s_expect_signal(in, "returned", 100, false); /* still blocked */
    zsys_interrupted = 1;
    s_expect_signal(in, "returned", DEADLINE, true);
    pthread_join(thread, NULL);
    zsys_interrupted = 0;
    assert_int_equal(s.rc, -1);
    assert_int_equal(s.err, EINTR);
    zsock_destroy(&in);

    /* Blocked again, released when a worker retires tasks.                */
    in = zsock_new_pair("@inproc://max-pending-2");
    s.signal = ">inproc://max-pending-2";
    assert_int_equal(pthread_create(&thread, NULL, s_submit_one, &s), 0);
    s_expect_signal(in, "submitting", DEADLINE, true);
    s_expect_signal(in, "returned", 100, false);
    zkit_batch_report_t vr;
    assert_int_equal(zkit_ventilator_report(vent, &vr), 0);
    assert_int_equal(vr.done, 0);
    zkit_worker_t *worker = s_worker(false, vent, sink, NULL, 1);
    s_expect_signal(in, "returned", DEADLINE, true);
    pthread_join(thread, NULL);
    assert_int_equal(s.rc, 0);
    zsock_destroy(&in);
    assert_int_equal(zkit_ventilator_close(vent), 0);
    zkit_batch_report_t sr;
    s_wait_both(vent, sink, &vr, &sr);
    assert_int_equal(vr.total, 4);
    assert_int_equal(sr.done, 4);
    s_store_exact(&store, 4, 0);
    zkit_worker_destroy(&worker);
    zkit_ventilator_destroy(&vent);
    zkit_sink_destroy(&sink);
}

/* ---- a signal during a wait ------------------------------------------------------ */

typedef struct {
    zkit_sink_t *sink;
    atomic_int done;
    int rc;
    int err;
} s_waiter_t;

static void s_on_signal(int sig)
{
    (void) sig;
}

static void *s_wait_thread(void *arg)
{
    s_waiter_t *w = arg;
    zkit_batch_report_t report;
    w->rc = zkit_sink_wait(w->sink, DEADLINE, &report);
    w->err = errno;
    atomic_store(&w->done, 1);
    return NULL;
}

/*  A signal ends a wait with EINTR and leaves the actor's pipe in step:
    the next calls get their own replies.                                   */
static void test_wait_interrupted(void **state)
{
    (void) state;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal; /* no SA_RESTART: blocking calls see EINTR */
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, &old), 0);
    s_waiter_t w = {.sink = s_sink(false, NULL, 0)};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, s_wait_thread, &w), 0);
    /* Signals until one lands while the thread is blocked in the wait. */
    int64_t until = zclock_mono() + DEADLINE;
    while (!atomic_load(&w.done)) {
        assert_true(zclock_mono() < until);
        pthread_kill(thread, SIGUSR1);
    }
    pthread_join(thread, NULL);
    assert_int_equal(w.rc, -1);
    assert_int_equal(w.err, EINTR);
    zkit_batch_report_t report;
    assert_int_equal(zkit_sink_report(w.sink, &report), 0);
    assert_int_equal(zkit_sink_wait(w.sink, 0, &report), -1);
    assert_int_equal(errno, ETIMEDOUT);
    zkit__sink_stats_t ss;
    assert_int_equal(zkit__sink_stats(w.sink, &ss), 0);
    zkit_sink_destroy(&w.sink);
    sigaction(SIGUSR1, &old, NULL);
}

int main(void)
{
    zsys_init();
    /* ZKIT_TEST_FILTER=test_fast* runs a subset, when debugging.           */
    if (getenv("ZKIT_TEST_FILTER"))
        cmocka_set_test_filter(getenv("ZKIT_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_and_misuse),
        cmocka_unit_test(test_fast_end_to_end),
        cmocka_unit_test(test_reliable_three_workers),
        cmocka_unit_test(test_silent_worker_tasks_requeued),
        cmocka_unit_test(test_failing_task_dead_letter),
        cmocka_unit_test(test_duplicate_result_stored_once),
        cmocka_unit_test(test_refused_then_stored),
        cmocka_unit_test(test_garbage_counted_traffic_flows),
        cmocka_unit_test(test_ventilator_restart),
        cmocka_unit_test(test_sink_batch_timeout_missing),
        cmocka_unit_test(test_complete_retires_lost_done),
        cmocka_unit_test(test_worker_gives_up_unacknowledged_result),
        cmocka_unit_test(test_max_pending_blocks),
        cmocka_unit_test(test_wait_interrupted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
