/*  sink_batch.h (internal): what the sink knows about one batch.

    A batch's tasks are numbered 1..total. The sink keeps two bits per task
    seq (nothing yet, result stored, dead-lettered), so deciding whether a
    result is a duplicate, whether the batch is complete and which seqs are
    missing never needs more than 25 MB, even for ZKIT_BATCH_TASKS_MAX tasks.
    The table grows with the highest seq seen and never beyond the total (once
    known) or ZKIT_BATCH_TASKS_MAX, so a peer cannot make the sink allocate
    more than that by announcing a large number.

    A result is identified by (batch, task-seq): a task that ran twice (a
    retry, a worker presumed dead that was only slow) is stored once however
    many ids its attempts carried.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_PIPELINE_SINK_BATCH_H_INCLUDED
#define ZKIT_PIPELINE_SINK_BATCH_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "zkit_batch.h"

/* libzmq's longest routing id. */
#define ZKIT__SINK_RID_MAX 255

typedef enum {
    ZKIT__SINK_NONE = 0, /* neither stored nor dead: missing */
    ZKIT__SINK_STORED = 1,
    ZKIT__SINK_DEAD = 2,
} zkit__sink_state_t;

typedef struct {
    char name[ZKIT_BATCH_NAME_MAX + 1];
    uint64_t total; /* 0 = not known yet */
    uint64_t done;
    uint64_t dead;
    uint64_t retried;
    uint64_t duplicates;
    uint64_t gaps;
    uint64_t started_us;
    int64_t started_ms; /* monotonic, for the batch timeout */
    uint64_t elapsed_us;
    uint64_t highest; /* highest seq marked */
    bool complete;
    bool timed_out;
    /* Reliable mode: the routing id of the peer that last announced the
       batch (BATCH), which the sink tells of the batch's completion with
       COMPLETE until it confirms (OK).                                     */
    uint8_t vent_rid[ZKIT__SINK_RID_MAX];
    size_t vent_rid_size;   /* 0: no announcement seen */
    bool completing;        /* COMPLETE sent, its OK not received yet */
    int64_t complete_at_ms; /* monotonic: when COMPLETE is sent again */
    uint8_t *states;        /* 2 bits per seq, seq 1 in the low bits of byte 0 */
    uint64_t capacity;      /* seqs the table covers */
    zkit_dead_letter_t *letters;
    size_t letter_count;
    size_t letter_capacity;
} zkit__sink_batch_t;

/*  A new batch, first seen now. NULL when out of memory.                    */
zkit__sink_batch_t *zkit__sink_batch_new(const char *name);

void zkit__sink_batch_destroy(zkit__sink_batch_t **self_p);

/*  Sets the total (1..ZKIT_BATCH_TASKS_MAX; 0 does nothing). Returns 0, or -1
    with errno EEXIST (a different total was set before: the first stands) or
    ERANGE (a seq above it was already recorded).                             */
int zkit__sink_batch_set_total(zkit__sink_batch_t *self, uint64_t total);

zkit__sink_state_t zkit__sink_batch_state(const zkit__sink_batch_t *self, uint64_t seq);

/*  Makes room for seq in the table, so the mark after it cannot fail. The
    bytes the table grows by come out of *budget, which the sink shares among
    its batches, so many batches cannot add up to more than it allows.
    Returns 0, or -1 with errno ERANGE (seq is 0, above the total or above
    ZKIT_BATCH_TASKS_MAX), ENOSPC (beyond the budget) or ENOMEM.              */
int zkit__sink_batch_reserve(zkit__sink_batch_t *self, uint64_t seq, size_t *budget);

/*  Bytes the batch's table holds (what it took from the budget).            */
size_t zkit__sink_batch_table_bytes(const zkit__sink_batch_t *self);

/*  Records a stored result for seq (reserved), with its attempt number. A
    dead letter for seq is dropped: the result stands instead.               */
void zkit__sink_batch_stored(zkit__sink_batch_t *self, uint64_t seq, uint64_t attempt);

/*  Records a dead letter for seq (reserved, and not stored or dead yet).
    Returns 0, or -1 with errno ENOMEM.                                       */
int zkit__sink_batch_dead(zkit__sink_batch_t *self, uint64_t seq, const uint8_t id[16],
                          uint32_t attempts, const char *reason);

/*  Marks the batch complete when done + dead == total; true when it is.     */
bool zkit__sink_batch_check(zkit__sink_batch_t *self);

void zkit__sink_batch_report(const zkit__sink_batch_t *self, zkit_batch_report_t *report);

/*  Copies up to max missing seqs (ascending) into seqs; returns how many are
    missing in all, or -1 with errno EINVAL when the total is not known.     */
ssize_t zkit__sink_batch_missing(const zkit__sink_batch_t *self, uint64_t *seqs, size_t max);

#endif
