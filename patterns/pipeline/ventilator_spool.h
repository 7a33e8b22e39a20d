/*  ventilator_spool.h (internal): the spool behind a reliable ventilator
    (opts.spool_dir): the records it appends, and the resume on start.

    The caller's thread appends (open, submit, close: so that the call
    returns only once its record is in the spool); the actor acknowledges
    (a task when it is retired or its dead letter confirmed, a batch's open
    and close when the batch is complete). The spool is thread-safe, so the
    two need nothing more between them. Record format: docs/pipeline-
    protocol.md, "Spool-backed ventilator".

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_PIPELINE_VENTILATOR_SPOOL_H_INCLUDED
#define ZKIT_PIPELINE_VENTILATOR_SPOOL_H_INCLUDED

#include "pipeline/ventilator_queue.h"
#include "zkit_spool.h"
#include "zkit_ventilator.h"

/* The first byte of every record: the version of the record format.       */
#define ZKIT__VSPOOL_VERSION 1

/* The second byte: what the record is.                                     */
#define ZKIT__VSPOOL_OPEN  'O' /* name                                   */
#define ZKIT__VSPOOL_TASK  'T' /* seq, ts, id, body                      */
#define ZKIT__VSPOOL_CLOSE 'C' /* total                                  */

typedef struct zkit__vspool zkit__vspool_t;

/*  Opens the spool of opts->spool_dir with the fsync policy of
    opts->spool_fsync. Returns NULL with errno EINVAL (a bad policy) or the
    error of zkit_spool_new, after a log line naming the directory.          */
zkit__vspool_t *zkit__vspool_new(const zkit_ventilator_opts_t *opts);

/*  Closes the spool (zkit_spool_destroy: syncs, writes the cursor). Safe on
    NULL.                                                                    */
void zkit__vspool_destroy(zkit__vspool_t **self_p);

/*  The spool, for the actor's acknowledgements.                             */
zkit_spool_t *zkit__vspool_spool(zkit__vspool_t *self);

/*  Append one record each and store its spool seq in *spool_seq. Each
    returns once the record is as durable as the fsync policy makes it:
    0, or -1 with the errno of zkit_spool_append.                            */
int zkit__vspool_open_batch(zkit__vspool_t *self, const char *name, uint64_t *spool_seq);
int zkit__vspool_task(zkit__vspool_t *self, uint64_t seq, const uint8_t id[16], uint64_t ts,
                      const void *body, size_t size, uint64_t *spool_seq);
int zkit__vspool_close_batch(zkit__vspool_t *self, uint64_t total, uint64_t *spool_seq);

/*  Reads what the spool holds from its cursor on and puts every unfinished
    batch into queue, in order: its OPEN, its tasks not acknowledged (seq,
    id, ts and spool seq preset, each taking a credit beyond max_pending if
    need be), its CLOSE with its total as the preset seq. A batch never
    closed is closed now (a CLOSE record is appended) with the highest task
    seq it had; one that had no task is dropped (its records acknowledged).
    Call before the actor starts. Stores in *resumed how many batches were
    put. Returns 0, or -1 with errno (a read error, ENOMEM, or the error of
    the append of a CLOSE).                                                  */
int zkit__vspool_resume(zkit__vspool_t *self, zkit__vqueue_t *queue, size_t *resumed);

/*  The actor's acknowledgement of a record: a no-op when spool is NULL or
    spool_seq 0. A failure is logged, not returned: the record is then
    resumed again after a restart, which the sink tolerates. errno is kept. */
void zkit__vspool_ack(zkit_spool_t *spool, uint64_t spool_seq);

#endif
