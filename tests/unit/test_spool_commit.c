/*  test_spool_commit: the fsync policies. ALWAYS with group commit (threads
    share fdatasyncs, and no append returns before a sync that covers it),
    INTERVAL (appends do not wait; a background sync follows), NEVER (no
    fdatasync at all), and explicit sync / wait_synced. fdatasync calls are
    counted, held and proven through the fault-injecting I/O table.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "test_spool_util.h"

#define THREADS     8
#define PER_THREAD  100
#define RECORD_SIZE 100

typedef struct {
    zkit_spool_t *spool;
    tu_fault_t *fault;
    int index;
    int failures;    /* appends that failed                          */
    int not_durable; /* appends that returned before a covering sync */
    uint64_t seqs[PER_THREAD];
} s_worker_t;

static void *s_worker(void *arg)
{
    s_worker_t *w = arg;
    uint8_t buf[RECORD_SIZE];
    for (int i = 0; i < PER_THREAD; i++) {
        uint64_t index = (uint64_t) w->index * 1000000 + (uint64_t) i + 1;
        size_t size = tu_payload(buf, sizeof buf, index, sizeof buf);
        uint64_t seq = 0;
        if (zkit_spool_append(w->spool, buf, size, &seq)) {
            w->failures++;
            continue;
        }
        w->seqs[i] = seq;
        /* The proof: the fault table saw an fdatasync that started after
           this record was written complete before append returned. */
        pthread_mutex_lock(&w->fault->lock);
        if (w->fault->durable_seq < seq)
            w->not_durable++;
        pthread_mutex_unlock(&w->fault->lock);
    }
    return NULL;
}

static void test_group_commit_shares_fdatasync(void **state)
{
    (void) state;
    char dir[256];
    tu_tmpdir(dir, sizeof dir, "spool-group");
    tu_fault_t fault;
    tu_fault_init(&fault);
    zkit_spool_opts_t opts = ZKIT_SPOOL_OPTS_DEFAULT;
    opts.io = &fault.io;
    zkit_spool_t *spool = zkit_spool_new(dir, &opts);
    assert_non_null(spool);
    /* Create the segment first, so only record syncs are counted below. */
    uint64_t seq = 0;
    assert_int_equal(zkit_spool_append(spool, "first", 5, &seq), 0);
    assert_int_equal(seq, 1);
    int syncs_before = tu_fault_get(&fault, &fault.fdatasyncs);
    /* Make batching certain rather than likely on a fast disk: the next
       fdatasync waits (bounded) until every thread has written a record,
       so the sync after it must cover several appends. */
    tu_fault_set(&fault, &fault.hold_first_sync_until_writes, 1 + THREADS);

    s_worker_t workers[THREADS];
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++) {
        workers[t] = (s_worker_t){.spool = spool, .fault = &fault, .index = t + 1};
        assert_int_equal(pthread_create(&threads[t], NULL, s_worker, &workers[t]), 0);
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);

    int syncs = tu_fault_get(&fault, &fault.fdatasyncs) - syncs_before;
    int appends = THREADS * PER_THREAD;
    for (int t = 0; t < THREADS; t++) {
        assert_int_equal(workers[t].failures, 0);
        assert_int_equal(workers[t].not_durable, 0);
    }
    print_message("group commit: %d appends from %d threads, %d fdatasyncs\n", appends, THREADS,
                  syncs);
    assert_true(syncs >= 1);
    assert_true(syncs < appends);
    zkit_spool_stats_t st;
    zkit_spool_stats(spool, &st);
    assert_int_equal(st.appends, (uint64_t) appends + 1);
    assert_int_equal(st.synced_seq, (uint64_t) appends + 1);

    /* Every seq was given once, and every record reads back intact. */
    static uint64_t seqs[THREADS * PER_THREAD + 1];
    assert_int_equal(tu_read_all(spool, seqs, THREADS * PER_THREAD + 1, false), appends + 1);
    for (int i = 0; i <= appends; i++)
        assert_int_equal(seqs[i], (uint64_t) i + 1);
    zkit_spool_reader_t *reader = zkit_spool_reader_new(spool, 2, 0);
    zkit_spool_record_t rec;
    while (zkit_spool_reader_next(reader, &rec) == 1) {
        uint64_t index;
        memcpy(&index, rec.data, 8);
        assert_true(tu_payload_ok(rec.data, rec.size, index));
        int t = (int) (index / 1000000) - 1, i = (int) (index % 1000000) - 1;
        assert_int_equal(workers[t].seqs[i], rec.seq);
    }
    zkit_spool_reader_destroy(&reader);
    zkit_spool_destroy(&spool);
    tu_fault_fini(&fault);
    tu_rmrf(dir);
}

static void test_always_single_thread_syncs_each_append(void **state)
{
    (void) state;
    char dir[256];
    tu_tmpdir(dir, sizeof dir, "spool-always");
    tu_fault_t fault;
    tu_fault_init(&fault);
    zkit_spool_opts_t opts = ZKIT_SPOOL_OPTS_DEFAULT;
    opts.io = &fault.io;
    zkit_spool_t *spool = zkit_spool_new(dir, &opts);
    for (uint64_t i = 1; i <= 20; i++) {
        uint64_t seq;
        assert_int_equal(zkit_spool_append(spool, "abc", 3, &seq), 0);
        pthread_mutex_lock(&fault.lock);
        assert_true(fault.durable_seq >= seq);
        pthread_mutex_unlock(&fault.lock);
    }
    zkit_spool_stats_t st;
    zkit_spool_stats(spool, &st);
    assert_int_equal(st.fsyncs, 20);
    assert_int_equal(st.synced_seq, 20);
    zkit_spool_destroy(&spool);
    tu_fault_fini(&fault);
    tu_rmrf(dir);
}

static void test_interval_syncs_in_background(void **state)
{
    (void) state;
    char dir[256];
    tu_tmpdir(dir, sizeof dir, "spool-interval");
    tu_fault_t fault;
    tu_fault_init(&fault);
    zkit_spool_opts_t opts = ZKIT_SPOOL_OPTS_DEFAULT;
    assert_int_equal(zkit_spool_parse_fsync("interval:5", &opts), 0);
    opts.io = &fault.io;
    zkit_spool_t *spool = zkit_spool_new(dir, &opts);
    uint64_t seq;
    assert_int_equal(zkit_spool_append(spool, "x", 1, &seq), 0); /* creates the segment */
    assert_int_equal(zkit_spool_wait_synced(spool, seq, 10000), 0);

    /* Hold every fdatasync at a gate: appends still return, readers still
       see the records, and nothing past what was synced claims to be. */
    tu_fault_gate(&fault, true);
    uint64_t first = 0;
    for (int i = 0; i < 200; i++) {
        assert_int_equal(zkit_spool_append(spool, "interval", 8, &seq), 0);
        if (!first)
            first = seq;
    }
    assert_int_equal(tu_fault_wait_gate(&fault, 1), 0); /* the thread is in fdatasync */
    zkit_spool_stats_t st;
    zkit_spool_stats(spool, &st);
    assert_true(st.synced_seq < seq);
    assert_int_equal(st.appends, 201);
    zkit_spool_reader_t *reader = zkit_spool_reader_new(spool, first, 0);
    zkit_spool_record_t rec;
    int seen = 0;
    while (zkit_spool_reader_next(reader, &rec) == 1)
        seen++;
    assert_int_equal(seen, 200);
    zkit_spool_reader_destroy(&reader);
    assert_int_equal(zkit_spool_wait_synced(spool, seq, 0), -1);
    assert_int_equal(errno, ETIMEDOUT);

    /* Open the gate: the background thread catches up without another
       append, in far fewer syncs than appends. */
    tu_fault_gate(&fault, false);
    assert_int_equal(zkit_spool_wait_synced(spool, seq, 10000), 0);
    zkit_spool_stats(spool, &st);
    assert_true(st.fsyncs < 20);
    assert_int_equal(st.synced_seq, seq);
    zkit_spool_destroy(&spool);
    tu_fault_fini(&fault);
    tu_rmrf(dir);
}

static void test_never_does_not_sync(void **state)
{
    (void) state;
    char dir[256];
    tu_tmpdir(dir, sizeof dir, "spool-never");
    tu_fault_t fault;
    tu_fault_init(&fault);
    zkit_spool_opts_t opts = ZKIT_SPOOL_OPTS_DEFAULT;
    assert_int_equal(zkit_spool_parse_fsync("never", &opts), 0);
    opts.io = &fault.io;
    opts.segment_size = 4096;
    zkit_spool_t *spool = zkit_spool_new(dir, &opts);
    uint64_t seq = 0;
    for (int i = 0; i < 100; i++)
        assert_int_equal(zkit_spool_append(spool, "never never never", 17, &seq), 0);
    assert_int_equal(zkit_spool_ack(spool, 1), 0);
    zkit_spool_destroy(&spool);
    assert_int_equal(tu_fault_get(&fault, &fault.fdatasyncs), 0);
    /* The records are there all the same (the page cache has them). */
    spool = zkit_spool_new(dir, &opts);
    zkit_spool_stats_t st;
    zkit_spool_stats(spool, &st);
    assert_int_equal(st.newest_seq, 100);
    assert_int_equal(st.ack_floor, 2);
    assert_true(st.segments > 1);
    /* An explicit sync syncs, whatever the policy. */
    assert_int_equal(zkit_spool_append(spool, "y", 1, &seq), 0);
    assert_int_equal(zkit_spool_sync(spool), 0);
    assert_int_equal(tu_fault_get(&fault, &fault.fdatasyncs), 1);
    assert_int_equal(zkit_spool_wait_synced(spool, seq, 0), 0);
    zkit_spool_destroy(&spool);
    tu_fault_fini(&fault);
    tu_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_commit_shares_fdatasync),
        cmocka_unit_test(test_always_single_thread_syncs_each_append),
        cmocka_unit_test(test_interval_syncs_in_background),
        cmocka_unit_test(test_never_does_not_sync),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
