/*  test_pipeline_fast: the fast paths of the pipeline, end to end in process:
    the worker that runs its handler on its socket thread (fast mode, window
    1), batches submitted back to back through the ventilator's submit
    queue, max_pending in fast mode, and destroying a ventilator that still
    holds queued tasks.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/pipeline.h"

#define HB        50
#define DEADLINE  20000
#define MAX_TASKS 4000

/* ---- a sink store that knows batches ------------------------------------------ */

typedef struct {
    pthread_mutex_t lock;
    char names[2][ZKIT_BATCH_NAME_MAX + 1];
    uint32_t counts[2][MAX_TASKS + 1];
    uint64_t other; /* results of a third batch, or without a usable seq */
} s_store_t;

static int s_store(const zkit_envelope_t *result, void *arg)
{
    s_store_t *store = arg;
    zkit_value_t seq, batch;
    pthread_mutex_lock(&store->lock);
    int which = -1;
    if (zkit_envelope_batch(result, &batch) == 0)
        for (int i = 0; i < 2 && which < 0; i++)
            if (strlen(store->names[i]) == batch.size &&
                memcmp(store->names[i], batch.data, batch.size) == 0)
                which = i;
    if (which >= 0 && zkit_envelope_header(result, "task-seq", &seq) == 0 && seq.i >= 1 &&
        seq.i <= MAX_TASKS)
        store->counts[which][seq.i]++;
    else
        store->other++;
    pthread_mutex_unlock(&store->lock);
    return 0;
}

static void s_store_init(s_store_t *store, const char *first, const char *second)
{
    memset(store, 0, sizeof *store);
    pthread_mutex_init(&store->lock, NULL);
    snprintf(store->names[0], sizeof store->names[0], "%s", first);
    snprintf(store->names[1], sizeof store->names[1], "%s", second ? second : "");
}

/* Batch which has seqs 1..n stored exactly once (except `except`). */
static void s_store_exact(s_store_t *store, int which, int n, int except)
{
    pthread_mutex_lock(&store->lock);
    for (int i = 1; i <= MAX_TASKS; i++)
        assert_int_equal(store->counts[which][i], i <= n && i != except ? 1 : 0);
    assert_int_equal(store->other, 0);
    pthread_mutex_unlock(&store->lock);
}

/* ---- a handler that can be held ----------------------------------------------- */

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool hold;    /* the next task waits until released */
    bool holding; /* a task is waiting now */
    uint64_t fail_seq;
    uint64_t runs;
    pthread_t thread; /* where the first task ran */
    bool one_thread;  /* every task ran there */
} s_work_t;

static void s_work_init(s_work_t *work)
{
    memset(work, 0, sizeof *work);
    pthread_mutex_init(&work->lock, NULL);
    pthread_cond_init(&work->cond, NULL);
    work->one_thread = true;
}

static int s_echo(const zkit_envelope_t *task, zkit_envelope_t *result, char *reason,
                  size_t reason_size, void *arg)
{
    s_work_t *work = arg;
    pthread_mutex_lock(&work->lock);
    if (work->runs++ == 0)
        work->thread = pthread_self();
    else if (!pthread_equal(work->thread, pthread_self()))
        work->one_thread = false;
    if (work->hold) {
        work->holding = true;
        pthread_cond_broadcast(&work->cond);
        while (work->hold)
            pthread_cond_wait(&work->cond, &work->lock);
        work->holding = false;
    }
    bool fail = zkit_envelope_seq(task) == work->fail_seq;
    pthread_mutex_unlock(&work->lock);
    if (fail) {
        snprintf(reason, reason_size, "boom");
        return -1;
    }
    size_t size;
    const void *body = zkit_envelope_body(task, &size);
    return zkit_envelope_set_body(result, body, size);
}

static void s_wait_holding(s_work_t *work)
{
    pthread_mutex_lock(&work->lock);
    while (!work->holding)
        pthread_cond_wait(&work->cond, &work->lock);
    pthread_mutex_unlock(&work->lock);
}

static void s_release(s_work_t *work)
{
    pthread_mutex_lock(&work->lock);
    work->hold = false;
    pthread_cond_broadcast(&work->cond);
    pthread_mutex_unlock(&work->lock);
}

/* ---- components ------------------------------------------------------------------- */

static zkit_sink_t *s_sink(bool fast, s_store_t *store)
{
    zkit_sink_opts_t opts = ZKIT_SINK_OPTS_DEFAULT;
    opts.bind = "tcp://127.0.0.1:*";
    opts.fast = fast;
    opts.handler = store ? s_store : NULL;
    opts.handler_arg = store;
    zkit_sink_t *sink = zkit_sink_new(&opts);
    assert_non_null(sink);
    return sink;
}

static zkit_ventilator_t *s_vent(bool fast, zkit_sink_t *sink, uint32_t max_pending)
{
    zkit_ventilator_opts_t opts = ZKIT_VENTILATOR_OPTS_DEFAULT;
    opts.bind = "tcp://127.0.0.1:*";
    opts.sink = sink ? zkit_sink_endpoint(sink) : NULL;
    opts.fast = fast;
    opts.name = "vent";
    opts.heartbeat_ms = HB;
    opts.max_pending = max_pending;
    zkit_ventilator_t *vent = zkit_ventilator_new(&opts);
    assert_non_null(vent);
    return vent;
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
    opts.reconnect_ms = 20;
    opts.handler = s_echo;
    opts.handler_arg = work;
    zkit_worker_t *worker = zkit_worker_new(&opts);
    assert_non_null(worker);
    return worker;
}

static void s_submit(zkit_ventilator_t *vent, int n)
{
    for (int i = 1; i <= n; i++) {
        char body[32];
        int len = snprintf(body, sizeof body, "task %d", i);
        assert_int_equal(zkit_ventilator_submit(vent, body, (size_t) len), 0);
    }
}

/* ---- the handler on the socket thread ------------------------------------------------ */

static void test_inline_end_to_end(void **state)
{
    (void) state;
    enum { N = 3000 };
    s_store_t store;
    s_store_init(&store, "inline", NULL);
    s_work_t work;
    s_work_init(&work);
    zkit_sink_t *sink = s_sink(true, &store);
    zkit_ventilator_t *vent = s_vent(true, sink, 0);
    zkit_worker_t *worker = s_worker(true, vent, sink, &work, 1);
    assert_int_equal(zkit_ventilator_open(vent, "inline"), 0);
    s_submit(vent, N);
    assert_int_equal(zkit_ventilator_close(vent), 0);
    zkit_batch_report_t sr, vr;
    assert_int_equal(zkit_sink_wait(sink, DEADLINE, &sr), 0);
    assert_int_equal(zkit_ventilator_wait(vent, DEADLINE, &vr), 0);
    assert_int_equal(sr.total, N);
    assert_int_equal(sr.done, N);
    assert_int_equal(sr.gaps, 0);
    assert_int_equal(vr.done, N);
    s_store_exact(&store, 0, N, 0);
    zkit_worker_stats_t ws;
    assert_int_equal(zkit_worker_stats(worker, &ws), 0);
    assert_int_equal(ws.tasks, N);
    assert_int_equal(ws.succeeded, N);
    assert_int_equal(ws.failed, 0);
    assert_int_equal(ws.gaps, 0);
    assert_int_equal(work.runs, N);
    assert_true(work.one_thread);
    zkit_worker_destroy(&worker);
    zkit_ventilator_destroy(&vent);
    zkit_sink_destroy(&sink);
}

/*  A failed task in fast mode is counted and its result never sent; the
    others go on.                                                            */
static void test_inline_failure(void **state)
{
    (void) state;
    enum { N = 20, FAIL = 7 };
    s_store_t store;
    s_store_init(&store, "fails", NULL);
    s_work_t work;
    s_work_init(&work);
    work.fail_seq = FAIL;
    zkit_sink_t *sink = s_sink(true, &store);
    zkit_ventilator_t *vent = s_vent(true, sink, 0);
    zkit_worker_t *worker = s_worker(true, vent, sink, &work, 1);
    assert_int_equal(zkit_ventilator_open(vent, "fails"), 0);
    s_submit(vent, N);
    assert_int_equal(zkit_ventilator_close(vent), 0);
    zkit_worker_stats_t ws;
    int64_t until = zclock_mono() + DEADLINE;
    do
        assert_int_equal(zkit_worker_stats(worker, &ws), 0);
    while (ws.succeeded + ws.failed < N && zclock_mono() < until);
    assert_int_equal(ws.succeeded, N - 1);
    assert_int_equal(ws.failed, 1);
    zkit_batch_report_t sr;
    until = zclock_mono() + DEADLINE;
    do
        assert_int_equal(zkit_sink_report(sink, &sr), 0);
    while (sr.done < N - 1 && zclock_mono() < until);
    assert_int_equal(sr.done, N - 1);
    assert_false(sr.complete);
    s_store_exact(&store, 0, N, FAIL);
    zkit_worker_destroy(&worker);
    zkit_ventilator_destroy(&vent);
    zkit_sink_destroy(&sink);
}

typedef struct {
    zkit_worker_t *worker;
    atomic_int done;
} s_stats_call_t;

static void *s_stats_thread(void *arg)
{
    s_stats_call_t *call = arg;
    zkit_worker_stats_t ws;
    assert_int_equal(zkit_worker_stats(call->worker, &ws), 0);
    atomic_store(&call->done, 1);
    return NULL;
}

/*  Where the handler runs, seen from outside: while it is held, the socket
    thread answers nothing in fast mode with window 1 (it is that thread),
    and still answers in reliable mode (heartbeats never stall).            */
static void s_check_thread(bool fast, bool expect_blocked)
{
    s_store_t store;
    s_store_init(&store, "held", NULL);
    s_work_t work;
    s_work_init(&work);
    work.hold = true;
    zkit_sink_t *sink = s_sink(fast, &store);
    zkit_ventilator_t *vent = s_vent(fast, sink, 0);
    zkit_worker_t *worker = s_worker(fast, vent, sink, &work, 1);
    assert_int_equal(zkit_ventilator_open(vent, "held"), 0);
    s_submit(vent, 3);
    assert_int_equal(zkit_ventilator_close(vent), 0);
    s_wait_holding(&work);
    s_stats_call_t call = {.worker = worker};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, s_stats_thread, &call), 0);
    int64_t until = zclock_mono() + (expect_blocked ? 200 : DEADLINE);
    while (!atomic_load(&call.done) && zclock_mono() < until)
        usleep(1000);
    assert_int_equal(atomic_load(&call.done), expect_blocked ? 0 : 1);
    s_release(&work);
    pthread_join(thread, NULL);
    zkit_batch_report_t sr;
    assert_int_equal(zkit_sink_wait(sink, DEADLINE, &sr), 0);
    assert_int_equal(sr.done, 3);
    s_store_exact(&store, 0, 3, 0);
    zkit_worker_destroy(&worker);
    zkit_ventilator_destroy(&vent);
    zkit_sink_destroy(&sink);
}

static void test_inline_runs_on_socket_thread(void **state)
{
    (void) state;
    s_check_thread(true, true);
}

static void test_reliable_handler_thread_keeps_socket_thread_free(void **state)
{
    (void) state;
    s_check_thread(false, false);
}

/*  A fast worker with a window above 1 keeps its handler threads.           */
static void test_fast_window_threads(void **state)
{
    (void) state;
    enum { N = 500 };
    s_store_t store;
    s_store_init(&store, "threads", NULL);
    s_work_t work;
    s_work_init(&work);
    zkit_sink_t *sink = s_sink(true, &store);
    zkit_ventilator_t *vent = s_vent(true, sink, 0);
    zkit_worker_t *worker = s_worker(true, vent, sink, &work, 3);
    assert_int_equal(zkit_ventilator_open(vent, "threads"), 0);
    s_submit(vent, N);
    assert_int_equal(zkit_ventilator_close(vent), 0);
    zkit_batch_report_t sr;
    assert_int_equal(zkit_sink_wait(sink, DEADLINE, &sr), 0);
    s_store_exact(&store, 0, N, 0);
    zkit_worker_destroy(&worker);
    zkit_ventilator_destroy(&vent);
    zkit_sink_destroy(&sink);
}

/* ---- the submit queue, through the ventilator ----------------------------------------- */

/*  Two batches submitted back to back, without waiting in between: every
    task lands in the batch it was submitted to, with its own seqs.         */
static void test_batches_back_to_back(void **state)
{
    (void) state;
    for (int reliable = 0; reliable < 2; reliable++) {
        s_store_t store;
        s_store_init(&store, "first", "second");
        s_work_t work;
        s_work_init(&work);
        zkit_sink_t *sink = s_sink(!reliable, &store);
        zkit_ventilator_t *vent = s_vent(!reliable, sink, 0);
        zkit_worker_t *worker = s_worker(!reliable, vent, sink, &work, reliable ? 4 : 1);
        assert_int_equal(zkit_ventilator_open(vent, "first"), 0);
        s_submit(vent, 300);
        assert_int_equal(zkit_ventilator_close(vent), 0);
        assert_int_equal(zkit_ventilator_open(vent, "second"), 0);
        s_submit(vent, 200);
        assert_int_equal(zkit_ventilator_close(vent), 0);
        zkit_batch_report_t vr;
        assert_int_equal(zkit_ventilator_wait(vent, DEADLINE, &vr), 0);
        assert_string_equal(vr.name, "second");
        assert_int_equal(vr.total, 200);
        assert_int_equal(vr.done, 200);
        /* The sink's wait follows the first batch; the second may still be
           on its way in fast mode: wait for the counts.                    */
        zkit_batch_report_t sr;
        assert_int_equal(zkit_sink_wait(sink, DEADLINE, &sr), 0);
        assert_string_equal(sr.name, "first");
        int64_t until = zclock_mono() + DEADLINE;
        for (;;) {
            pthread_mutex_lock(&store.lock);
            uint32_t last = store.counts[1][200];
            pthread_mutex_unlock(&store.lock);
            if (last || zclock_mono() > until)
                break;
            usleep(1000);
        }
        s_store_exact(&store, 0, 300, 0);
        s_store_exact(&store, 1, 200, 0);
        zkit_worker_destroy(&worker);
        zkit_ventilator_destroy(&vent);
        zkit_sink_destroy(&sink);
    }
}

typedef struct {
    zkit_ventilator_t *vent;
    atomic_int done;
    int rc;
} s_submitter_t;

static void *s_submit_thread(void *arg)
{
    s_submitter_t *s = arg;
    s->rc = zkit_ventilator_submit(s->vent, "late", 4);
    atomic_store(&s->done, 1);
    return NULL;
}

/*  Fast mode: a task is held until the socket takes it, so with no worker
    the (max_pending + 1)th submit blocks, and a worker releases it.       */
static void test_fast_max_pending(void **state)
{
    (void) state;
    enum { PENDING = 10 };
    s_store_t store;
    s_store_init(&store, "pending", NULL);
    s_work_t work;
    s_work_init(&work);
    zkit_sink_t *sink = s_sink(true, &store);
    zkit_ventilator_t *vent = s_vent(true, sink, PENDING);
    assert_int_equal(zkit_ventilator_open(vent, "pending"), 0);
    s_submit(vent, PENDING);
    s_submitter_t s = {.vent = vent};
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, s_submit_thread, &s), 0);
    usleep(200 * 1000);
    assert_int_equal(atomic_load(&s.done), 0);
    zkit_worker_t *worker = s_worker(true, vent, sink, &work, 1);
    pthread_join(thread, NULL);
    assert_int_equal(s.rc, 0);
    assert_int_equal(zkit_ventilator_close(vent), 0);
    zkit_batch_report_t sr;
    assert_int_equal(zkit_sink_wait(sink, DEADLINE, &sr), 0);
    assert_int_equal(sr.done, PENDING + 1);
    s_store_exact(&store, 0, PENDING + 1, 0);
    zkit_worker_destroy(&worker);
    zkit_ventilator_destroy(&vent);
    zkit_sink_destroy(&sink);
}

/*  Destroying a ventilator with tasks still queued (no worker ever came)
    frees them, small and large, in both modes (ASan checks the leaks).      */
static void test_destroy_with_queued_tasks(void **state)
{
    (void) state;
    uint8_t *big = calloc(1, 200000);
    assert_non_null(big);
    for (int reliable = 0; reliable < 2; reliable++) {
        zkit_sink_t *sink = s_sink(!reliable, NULL);
        zkit_ventilator_t *vent = s_vent(!reliable, sink, 0);
        assert_int_equal(zkit_ventilator_open(vent, "abandoned"), 0);
        for (int i = 0; i < 2000; i++)
            assert_int_equal(zkit_ventilator_submit(vent, big, (i % 100) ? 64 : 200000), 0);
        zkit_batch_report_t vr;
        assert_int_equal(zkit_ventilator_report(vent, &vr), 0);
        assert_string_equal(vr.name, "abandoned");
        assert_false(vr.complete);
        zkit_ventilator_destroy(&vent);
        zkit_sink_destroy(&sink);
    }
    free(big);
}

int main(void)
{
    zsys_init();
    if (getenv("ZKIT_TEST_FILTER"))
        cmocka_set_test_filter(getenv("ZKIT_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inline_end_to_end),
        cmocka_unit_test(test_inline_failure),
        cmocka_unit_test(test_inline_runs_on_socket_thread),
        cmocka_unit_test(test_reliable_handler_thread_keeps_socket_thread_free),
        cmocka_unit_test(test_fast_window_threads),
        cmocka_unit_test(test_batches_back_to_back),
        cmocka_unit_test(test_fast_max_pending),
        cmocka_unit_test(test_destroy_with_queued_tasks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
