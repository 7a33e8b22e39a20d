/*  bench_pipeline_kit.c: the kit's side of `zkit bench pipeline`,
    zkit_ventilator -> zkit_worker -> zkit_sink in fast or reliable mode.

    The components are built once per payload size and each run is one batch:
    the calling thread (the producer) opens it, submits every task, closes it,
    then waits until the sink has stored every result (and, in reliable mode,
    until the ventilator has retired every task). The worker's handler copies
    the task's body into the result, as the raw relay copies each frame.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "bench_pipeline.h"
#include "zkit.h"
#include "zkit_sink.h"
#include "zkit_ventilator.h"
#include "zkit_worker.h"

#define S_WAIT_SLICE_MS 100 /* how often a wait looks for progress */

typedef struct {
    bool reliable;
    size_t payload_size;
    uint8_t *payload;
    zkit_sink_t *sink;
    zkit_ventilator_t *ventilator;
    zkit_worker_t *worker;
    uint64_t batches; /* batches run so far, to name the next one */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t stored; /* results the sink stored in this run (under lock) */
    uint64_t target; /* the run's messages: signal cond on reaching it */
} s_kit_t;

static const char *s_mode(const s_kit_t *kit)
{
    return kit->reliable ? "reliable" : "fast";
}

static int s_fail(const s_kit_t *kit, const char *what, int err)
{
    fprintf(stderr, "zkit bench " ZKIT__PIPE_NAME ": %s, %zu B: %s: %s\n", s_mode(kit),
            kit->payload_size, what, zkit_strerror(err));
    return -1;
}

/*  The work of a task: copy its body into the result.                     */
static int s_identity(const zkit_envelope_t *task, zkit_envelope_t *result, char *reason,
                      size_t reason_size, void *arg)
{
    (void) arg;
    size_t size;
    const void *body = zkit_envelope_body(task, &size);
    if (zkit_envelope_set_body(result, body, size)) {
        snprintf(reason, reason_size, "out of memory");
        return -1;
    }
    return 0;
}

/*  The sink's handler, on the sink's thread: counts results stored. The
    sink's own wait and report follow only the first batch it hears of, and
    every round here is a new batch on the same components.               */
static int s_stored(const zkit_envelope_t *result, void *arg)
{
    s_kit_t *kit = arg;
    (void) result;
    pthread_mutex_lock(&kit->lock);
    if (++kit->stored >= kit->target)
        pthread_cond_signal(&kit->cond);
    pthread_mutex_unlock(&kit->lock);
    return 0;
}

/*  Waits until the sink stored messages results. Fast mode may lose some:
    the wait then ends when nothing arrived for the stall time, and what is
    missing is lost. Returns 0, or -1 when reliable mode stalled.           */
static int s_wait_stored(s_kit_t *kit, uint64_t messages, uint64_t *lost)
{
    uint64_t seen = 0;
    uint64_t progress_ns = zkit__bench_wall_ns();
    pthread_mutex_lock(&kit->lock);
    while (kit->stored < messages) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += S_WAIT_SLICE_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&kit->cond, &kit->lock, &until);
        uint64_t now = zkit__bench_wall_ns();
        if (kit->stored != seen) {
            seen = kit->stored;
            progress_ns = now;
        }
        else if (now - progress_ns > (uint64_t) ZKIT__PIPE_STALL_MS * 1000000u)
            break;
    }
    uint64_t stored = kit->stored;
    pthread_mutex_unlock(&kit->lock);
    *lost = messages > stored ? messages - stored : 0;
    if (*lost && kit->reliable) {
        fprintf(stderr,
                "zkit bench " ZKIT__PIPE_NAME ": reliable, %zu B: stalled with %" PRIu64
                " of %" PRIu64 " results stored\n",
                kit->payload_size, stored, messages);
        return -1;
    }
    return 0;
}

static int s_kit_run(void *self, uint64_t messages, uint64_t *lost)
{
    s_kit_t *kit = self;
    char name[ZKIT_BATCH_NAME_MAX + 1];
    snprintf(name, sizeof name, "bench-%" PRIu64, ++kit->batches);
    *lost = 0;
    pthread_mutex_lock(&kit->lock);
    kit->stored = 0;
    kit->target = messages;
    pthread_mutex_unlock(&kit->lock);
    if (zkit_ventilator_open(kit->ventilator, name))
        return s_fail(kit, "ventilator open", errno);
    for (uint64_t i = 0; i < messages; i++)
        if (zkit_ventilator_submit(kit->ventilator, kit->payload, kit->payload_size))
            return s_fail(kit, "submit", errno);
    if (zkit_ventilator_close(kit->ventilator))
        return s_fail(kit, "ventilator close", errno);
    if (s_wait_stored(kit, messages, lost))
        return -1;
    if (!kit->reliable)
        return 0;
    /* Reliable: the batch ends when the ventilator has retired every task
       (DONE comes after the sink's ACK), each with its result stored. */
    zkit_batch_report_t report;
    if (zkit_ventilator_wait(kit->ventilator, ZKIT__PIPE_STALL_MS, &report))
        return s_fail(kit, "ventilator wait", errno);
    if (report.done != messages || report.dead) {
        fprintf(stderr,
                "zkit bench " ZKIT__PIPE_NAME ": reliable, %zu B: %" PRIu64 " of %" PRIu64
                " tasks done, %" PRIu64 " dead-lettered\n",
                kit->payload_size, report.done, messages, report.dead);
        return -1;
    }
    return 0;
}

static void s_kit_destroy(void *self)
{
    s_kit_t *kit = self;
    if (!kit)
        return;
    /* Workers first, so none outlives the peers it talks to. */
    zkit_worker_destroy(&kit->worker);
    zkit_ventilator_destroy(&kit->ventilator);
    zkit_sink_destroy(&kit->sink);
    pthread_cond_destroy(&kit->cond);
    pthread_mutex_destroy(&kit->lock);
    free(kit->payload);
    free(kit);
}

int zkit__pipe_kit_open(zkit__pipe_side_t *side, size_t payload, bool reliable, uint32_t window)
{
    s_kit_t *kit = calloc(1, sizeof *kit);
    if (!kit) {
        fprintf(stderr, "zkit bench " ZKIT__PIPE_NAME ": out of memory\n");
        return -1;
    }
    pthread_mutex_init(&kit->lock, NULL);
    pthread_cond_init(&kit->cond, NULL);
    kit->reliable = reliable;
    kit->payload_size = payload;
    kit->payload = malloc(payload ? payload : 1);
    if (!kit->payload) {
        s_fail(kit, "setup", ENOMEM);
        goto fail;
    }
    for (size_t i = 0; i < payload; i++)
        kit->payload[i] = (uint8_t) (i * 31 + 7);

    zkit_sink_opts_t sink_opts = ZKIT_SINK_OPTS_DEFAULT;
    sink_opts.bind = "tcp://127.0.0.1:*";
    sink_opts.fast = !reliable;
    sink_opts.handler = s_stored;
    sink_opts.handler_arg = kit;
    kit->sink = zkit_sink_new(&sink_opts);
    if (!kit->sink) {
        s_fail(kit, "sink", errno);
        goto fail;
    }
    zkit_ventilator_opts_t vent_opts = ZKIT_VENTILATOR_OPTS_DEFAULT;
    vent_opts.bind = "tcp://127.0.0.1:*";
    vent_opts.sink = zkit_sink_endpoint(kit->sink);
    vent_opts.fast = !reliable;
    vent_opts.name = "bench";
    kit->ventilator = zkit_ventilator_new(&vent_opts);
    if (!kit->ventilator) {
        s_fail(kit, "ventilator", errno);
        goto fail;
    }
    zkit_worker_opts_t worker_opts = ZKIT_WORKER_OPTS_DEFAULT;
    worker_opts.connect = zkit_ventilator_endpoint(kit->ventilator);
    worker_opts.sink = zkit_sink_endpoint(kit->sink);
    worker_opts.fast = !reliable;
    worker_opts.name = "bench";
    worker_opts.window = window;
    worker_opts.handler = s_identity;
    kit->worker = zkit_worker_new(&worker_opts);
    if (!kit->worker) {
        s_fail(kit, "worker", errno);
        goto fail;
    }
    side->self = kit;
    side->run = s_kit_run;
    side->destroy = s_kit_destroy;
    side->outside_cpu_ns = NULL;
    return 0;
fail:
    s_kit_destroy(kit);
    return -1;
}
