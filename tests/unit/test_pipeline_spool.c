/*  test_pipeline_spool: the spool-backed ventilator (opts.spool_dir).

    A ventilator that crashed (a child process that submits and _exit()s),
    or was destroyed mid-batch, is started again on the same directory: it
    resumes the batch with the same name, total, seqs and ids, and the sink
    ends up with every result exactly once. A restart with nothing left is a
    clean start. The crash test forks, so it runs first, before this process
    has a ZeroMQ context that a child would inherit broken.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

/* First: it defines _GNU_SOURCE (nftw) for everything after it. */
#include "test_spool_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pipeline/pipeline.h"

#define HB       50 /* heartbeat, ms */
#define DEADLINE 20000
#define N        200

/* ---- the sink's store: stores per task seq ------------------------------------- */

typedef struct {
    pthread_mutex_t lock;
    uint32_t counts[N + 2];
    uint64_t other; /* results outside 1..N */
} s_store_t;

static int s_store_handler(const zkit_envelope_t *result, void *arg)
{
    s_store_t *store = arg;
    zkit_value_t seq;
    pthread_mutex_lock(&store->lock);
    if (zkit_envelope_header(result, "task-seq", &seq) == 0 && seq.i >= 1 && seq.i <= N)
        store->counts[seq.i]++;
    else
        store->other++;
    pthread_mutex_unlock(&store->lock);
    return 0;
}

static void s_store_exact(s_store_t *store, int n)
{
    pthread_mutex_lock(&store->lock);
    for (int i = 1; i <= N; i++)
        assert_int_equal(store->counts[i], i <= n ? 1 : 0);
    assert_int_equal(store->other, 0);
    pthread_mutex_unlock(&store->lock);
}

/* Runs slowly enough that a test can stop the ventilator mid-batch.        */
static int s_echo(const zkit_envelope_t *task, zkit_envelope_t *result, char *reason,
                  size_t reason_size, void *arg)
{
    (void) reason;
    (void) reason_size;
    if (arg)
        usleep(*(const useconds_t *) arg);
    size_t size;
    const void *body = zkit_envelope_body(task, &size);
    return zkit_envelope_set_body(result, body, size);
}

/* ---- components --------------------------------------------------------------- */

static zkit_sink_t *s_sink(s_store_t *store)
{
    zkit_sink_opts_t opts = ZKIT_SINK_OPTS_DEFAULT;
    opts.bind = "tcp://127.0.0.1:*";
    opts.handler = s_store_handler;
    opts.handler_arg = store;
    zkit_sink_t *sink = zkit_sink_new(&opts);
    assert_non_null(sink);
    return sink;
}

static zkit_ventilator_opts_t s_vent_opts(const char *sink, const char *dir)
{
    zkit_ventilator_opts_t opts = ZKIT_VENTILATOR_OPTS_DEFAULT;
    opts.bind = "tcp://127.0.0.1:*";
    opts.sink = sink;
    opts.name = "vent";
    opts.heartbeat_ms = HB;
    opts.spool_dir = dir;
    return opts;
}

static zkit_worker_t *s_worker(zkit_ventilator_t *vent, zkit_sink_t *sink, useconds_t *delay)
{
    zkit_worker_opts_t opts = ZKIT_WORKER_OPTS_DEFAULT;
    opts.connect = zkit_ventilator_endpoint(vent);
    opts.sink = zkit_sink_endpoint(sink);
    opts.window = 4;
    opts.heartbeat_ms = HB;
    opts.reconnect_ms = 20;
    opts.handler = s_echo;
    opts.handler_arg = delay;
    zkit_worker_t *worker = zkit_worker_new(&opts);
    assert_non_null(worker);
    return worker;
}

static void s_submit(zkit_ventilator_t *vent, int from, int to)
{
    for (int i = from; i <= to; i++) {
        char body[32];
        int len = snprintf(body, sizeof body, "task %d", i);
        assert_int_equal(zkit_ventilator_submit(vent, body, (size_t) len), 0);
    }
}

/* The spool holds nothing unacknowledged (read without taking its lock).   */
static void s_spool_clean(const char *dir)
{
    zkit_spool_opts_t opts = ZKIT_SPOOL_OPTS_DEFAULT;
    opts.read_only = true;
    zkit_spool_t *spool = zkit_spool_new(dir, &opts);
    assert_non_null(spool);
    zkit_spool_stats_t st;
    zkit_spool_stats(spool, &st);
    assert_int_equal(st.unacked, 0);
    zkit_spool_destroy(&spool);
}

/* Restarts on dir with 3 workers and waits: the batch `name` ends with N
   tasks, each stored once at the sink.                                    */
static void s_resume_and_check(const char *dir, const char *name, s_store_t *store,
                               zkit_sink_t *sink)
{
    zkit_ventilator_opts_t opts = s_vent_opts(zkit_sink_endpoint(sink), dir);
    zkit_ventilator_t *vent = zkit_ventilator_new(&opts);
    assert_non_null(vent);
    zkit_batch_report_t vr;
    assert_int_equal(zkit_ventilator_report(vent, &vr), 0);
    assert_string_equal(vr.name, name);
    assert_int_equal(vr.total, N);
    /* A batch resumed is closed: a new one may not be opened meanwhile... */
    zkit_worker_t *workers[3];
    for (int i = 0; i < 3; i++)
        workers[i] = s_worker(vent, sink, NULL);
    assert_int_equal(zkit_ventilator_wait(vent, DEADLINE, &vr), 0);
    assert_true(vr.complete);
    assert_string_equal(vr.name, name);
    assert_int_equal(vr.total, N);
    assert_int_equal(vr.done + vr.dead, N);
    assert_int_equal(vr.dead, 0);
    zkit_batch_report_t sr;
    assert_int_equal(zkit_sink_wait(sink, DEADLINE, &sr), 0);
    assert_int_equal(sr.total, N);
    s_store_exact(store, N);
    for (int i = 0; i < 3; i++)
        zkit_worker_destroy(&workers[i]);
    zkit_ventilator_destroy(&vent);
    s_spool_clean(dir);
}

/* ---- tests -------------------------------------------------------------------- */

/*  A child submits N tasks and dies without closing the batch or cleaning
    up; no worker ever ran them. The restarted ventilator closes the batch
    with its N tasks and sees it through.                                   */
static void test_crash_resume(void **state)
{
    (void) state;
    char dir[256];
    tu_tmpdir(dir, sizeof dir, "ventspool");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Nobody listens at the sink: nothing is retired.                  */
        zkit_ventilator_opts_t opts = s_vent_opts("tcp://127.0.0.1:9", dir);
        zkit_ventilator_t *vent = zkit_ventilator_new(&opts);
        if (!vent || zkit_ventilator_open(vent, "crashed"))
            _exit(1);
        for (int i = 1; i <= N; i++) {
            char body[32];
            int len = snprintf(body, sizeof body, "task %d", i);
            if (zkit_ventilator_submit(vent, body, (size_t) len))
                _exit(2);
        }
        _exit(0); /* a crash: no close, no destroy */
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    s_store_t store;
    memset(&store, 0, sizeof store);
    pthread_mutex_init(&store.lock, NULL);
    zkit_sink_t *sink = s_sink(&store);
    s_resume_and_check(dir, "crashed", &store, sink);
    zkit_sink_destroy(&sink);
    tu_rmrf(dir);
}

/*  Destroyed while a slow worker is part way through a closed batch: some
    tasks retired, some in flight (their results may reach the sink after
    the restart, and those of the re-run too), the rest queued.            */
static void test_restart_mid_batch(void **state)
{
    (void) state;
    char dir[256];
    tu_tmpdir(dir, sizeof dir, "ventspool");
    s_store_t store;
    memset(&store, 0, sizeof store);
    pthread_mutex_init(&store.lock, NULL);
    zkit_sink_t *sink = s_sink(&store);
    zkit_ventilator_opts_t opts = s_vent_opts(zkit_sink_endpoint(sink), dir);
    opts.spool_fsync = "never"; /* the process does not crash here */
    zkit_ventilator_t *vent = zkit_ventilator_new(&opts);
    assert_non_null(vent);
    useconds_t delay = 2000;
    zkit_worker_t *worker = s_worker(vent, sink, &delay);
    assert_int_equal(zkit_ventilator_open(vent, "midway"), 0);
    s_submit(vent, 1, N);
    assert_int_equal(zkit_ventilator_close(vent), 0);
    zkit_batch_report_t vr;
    int64_t until = zclock_mono() + DEADLINE;
    do {
        assert_int_equal(zkit_ventilator_report(vent, &vr), 0);
        assert_true(zclock_mono() < until);
        usleep(1000);
    } while (vr.done < 50);
    assert_false(vr.complete);
    zkit_ventilator_destroy(&vent);
    zkit_worker_destroy(&worker);

    s_resume_and_check(dir, "midway", &store, sink);
    zkit_sink_destroy(&sink);
    tu_rmrf(dir);
}

/*  A restart after a complete batch resumes nothing, and a new batch runs
    as usual; the spool ends empty again.                                   */
static void test_clean_restart(void **state)
{
    (void) state;
    char dir[256];
    tu_tmpdir(dir, sizeof dir, "ventspool");
    s_store_t store;
    memset(&store, 0, sizeof store);
    pthread_mutex_init(&store.lock, NULL);
    zkit_sink_t *sink = s_sink(&store);
    zkit_ventilator_opts_t opts = s_vent_opts(zkit_sink_endpoint(sink), dir);
    for (int round = 0; round < 2; round++) {
        zkit_ventilator_t *vent = zkit_ventilator_new(&opts);
        assert_non_null(vent);
        zkit_batch_report_t vr;
        assert_int_equal(zkit_ventilator_report(vent, &vr), 0);
        assert_string_equal(vr.name, ""); /* nothing resumed */
        assert_int_equal(zkit_ventilator_wait(vent, 0, NULL), -1);
        assert_int_equal(errno, EINVAL);
        zkit_worker_t *worker = s_worker(vent, sink, NULL);
        assert_int_equal(zkit_ventilator_open(vent, round ? "second" : "first"), 0);
        s_submit(vent, 1, 20);
        assert_int_equal(zkit_ventilator_close(vent), 0);
        assert_int_equal(zkit_ventilator_wait(vent, DEADLINE, &vr), 0);
        assert_int_equal(vr.done, 20);
        zkit_worker_destroy(&worker);
        zkit_ventilator_destroy(&vent);
        s_spool_clean(dir);
    }
    zkit_sink_destroy(&sink);
    tu_rmrf(dir);
}

static void test_options(void **state)
{
    (void) state;
    char dir[256];
    tu_tmpdir(dir, sizeof dir, "ventspool");
    zkit_ventilator_opts_t opts = s_vent_opts(NULL, dir);
    opts.fast = true;
    errno = 0;
    assert_null(zkit_ventilator_new(&opts));
    assert_int_equal(errno, EINVAL);
    opts = s_vent_opts("tcp://127.0.0.1:9", dir);
    opts.spool_fsync = "sometimes";
    errno = 0;
    assert_null(zkit_ventilator_new(&opts));
    assert_int_equal(errno, EINVAL);
    /* One ventilator per spool.                                            */
    opts.spool_fsync = "interval:50";
    zkit_ventilator_t *vent = zkit_ventilator_new(&opts);
    assert_non_null(vent);
    errno = 0;
    assert_null(zkit_ventilator_new(&opts));
    assert_int_equal(errno, EBUSY);
    zkit_ventilator_destroy(&vent);
    tu_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crash_resume), /* forks: first */
        cmocka_unit_test(test_restart_mid_batch),
        cmocka_unit_test(test_clean_restart),
        cmocka_unit_test(test_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
