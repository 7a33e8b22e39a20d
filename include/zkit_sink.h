/*  zkit_sink.h: collects the results of a batch.

    A czmq actor. In reliable mode every result is stored exactly once: the
    sink drops duplicates by (batch, task seq), acknowledges a result only
    after the handler stored it, and counts dead letters the ventilator
    reports, so a batch completes with exact results even when tasks were
    retried. When a batch completes it tells the ventilator (COMPLETE, sent
    at once and every second until confirmed), so the ventilator ends even
    if a worker died between the sink's ack and its report to the
    ventilator; a sink may be destroyed as soon as its batch completes.
    Results stored before are acknowledged again, after completion too. It
    tracks up to 64 batches at once; wait, report, dead_letters and missing
    are about the first batch it hears of.
    Protocol: docs/pipeline-protocol.md.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_SINK_H_INCLUDED
#define ZKIT_SINK_H_INCLUDED

#include "zkit_batch.h"
#include "zkit_envelope.h"
#include "zkit_library.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _zkit_sink_t zkit_sink_t;

/*  Stores one new result, on the sink's thread. Called once per task (never
    for a duplicate). Return 0 when stored: the sink then acknowledges it.
    Return -1 to refuse it (e.g. disk full): no ack is sent and the worker
    sends it again later.                                                      */
typedef int(zkit_result_handler_fn)(const zkit_envelope_t *result, void *arg);

typedef struct {
    const char *bind;          /* endpoint(s) workers and the ventilator connect to; required */
    bool fast;                 /* fast mode: PULL, no acks                         */
    uint32_t batch_timeout_ms; /* a batch not complete in this time is reported
                                  with what is missing (0 = no limit)       */
    zkit_result_handler_fn *handler; /* NULL: results are only counted     */
    void *handler_arg;
    zkit_ops_opts_t ops; /* control endpoint and security (zkit_library.h) */
} zkit_sink_opts_t;

#define ZKIT_SINK_OPTS_DEFAULT                                                                     \
    {                                                                                              \
        .bind = NULL, .fast = false, .batch_timeout_ms = 0, .handler = NULL, .handler_arg = NULL   \
    }

/*  Starts a sink. Returns only after it is bound; NULL with errno set and a
    log line naming the endpoint when that failed.                             */
ZKIT_EXPORT zkit_sink_t *zkit_sink_new(const zkit_sink_opts_t *opts);

/*  Stops the sink and nulls *self_p; safe on NULL.                           */
ZKIT_EXPORT void zkit_sink_destroy(zkit_sink_t **self_p);

/*  Waits until the first batch the sink hears of completes, or times out
    (its batch_timeout, or timeout_ms here; -1 = no limit). Fills *report (may
    be NULL). Returns 0 when complete; -1 with errno ETIMEDOUT (then
    zkit_sink_missing lists what is missing), EINTR on a signal, or ECANCELED. */
ZKIT_EXPORT int zkit_sink_wait(zkit_sink_t *self, int timeout_ms, zkit_batch_report_t *report);

/*  The batch's state now, without waiting. 0, or -1 with errno ECANCELED.    */
ZKIT_EXPORT int zkit_sink_report(zkit_sink_t *self, zkit_batch_report_t *report);

/*  Copies up to max dead letters of the batch into letters; returns how many
    there are in all (which may be more than max), or -1 with errno ECANCELED. */
ZKIT_EXPORT ssize_t zkit_sink_dead_letters(zkit_sink_t *self, zkit_dead_letter_t *letters,
                                           size_t max);

/*  Copies up to max task seqs (ascending) that are neither stored nor dead
    into seqs; returns how many are missing in all, or -1 with errno ECANCELED
    or EINVAL when the total is not known yet.                                 */
ZKIT_EXPORT ssize_t zkit_sink_missing(zkit_sink_t *self, uint64_t *seqs, size_t max);

/*  The bound endpoint, resolved, owned by the sink; NULL if unknown.         */
ZKIT_EXPORT const char *zkit_sink_endpoint(zkit_sink_t *self);

/*  The control endpoint (opts.ops.control), resolved, owned by the sink and
    valid until destroy; NULL when it has none. It answers STATS (metrics in
    docs/pipeline-protocol.md, section 8) and PING; PAUSE and RESUME answer
    "ERROR not supported" (a sink that stopped reading would only make every
    worker resend its results).                                              */
ZKIT_EXPORT const char *zkit_sink_control(zkit_sink_t *self);

#ifdef __cplusplus
}
#endif

#endif
