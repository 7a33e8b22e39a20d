/*  zkit_batch.h: what a pipeline reports about a batch of tasks.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_BATCH_H_INCLUDED
#define ZKIT_BATCH_H_INCLUDED

#include "zkit_library.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ZKIT_BATCH_NAME_MAX 64

/*  Tasks one batch may have. The sink sizes its per-task tables from a total a
    peer announces, so it refuses anything larger; the ventilator refuses to
    submit more.                                                              */
#define ZKIT_BATCH_TASKS_MAX 100000000u

/*  A batch's state as its ventilator or sink sees it. A batch is complete when
    done + dead == total (total known, i.e. non-zero).                         */
typedef struct {
    char name[ZKIT_BATCH_NAME_MAX + 1]; /* NUL-terminated batch id            */
    uint64_t total;                     /* tasks in the batch; 0 while not yet known         */
    uint64_t done;                      /* tasks whose result is stored (each counted once)  */
    uint64_t dead;                      /* tasks dead-lettered after max attempts            */
    uint64_t retried;                   /* attempts beyond the first, summed over tasks      */
    uint64_t duplicates;                /* results that arrived again and were dropped       */
    uint64_t gaps;                      /* fast mode: envelopes missing in (src, seq) streams */
    uint64_t started_us;                /* when the batch was first seen (zkit_clock_usec)   */
    uint64_t elapsed_us;                /* until completion, or until now                    */
    bool complete;
} zkit_batch_report_t;

/*  One dead-lettered task, as the sink reports it.                           */
typedef struct {
    uint64_t task_seq; /* the task's number in its batch                    */
    uint8_t task_id[16];
    uint32_t attempts;
    char reason[160]; /* "NACKED: exit status 3", "PEER_DIED", ...         */
} zkit_dead_letter_t;

#ifdef __cplusplus
}
#endif

#endif
