/*  ventilator_queue.h (internal): the hand-off from zkit_ventilator_submit
    (the caller's thread) to the ventilator's actor.

    A task used to cross the actor's pipe as its own message: one allocation
    and one wakeup of the actor per task, which made the pipe, not the
    network, the limit. Here the caller copies each record (a task's body,
    or a batch's OPEN or CLOSE) into slabs of memory under a mutex, and the
    actor reads the records in order, as many as are there, without taking
    the mutex per record. The actor is woken (a byte on a pipe it polls) only
    when it went idle: it found nothing left and is about to sleep.

    OPEN and CLOSE travel with the tasks, so the actor sees every task in the
    batch it was submitted to however far the caller runs ahead.

    A record stays where it was written until the actor releases it: a slab
    goes back to a free list once the actor has read past it and released
    every record in it. So a record costs no allocation in steady state, and
    a task the actor still holds (reliable mode: until retired) keeps at most
    one slab of ZKIT__VQUEUE_SLAB bytes alive. A record larger than a quarter
    of a slab gets a slab of its own, freed with it.

    max_pending (when not 0) bounds the tasks put and not yet given back
    (zkit__vqueue_give): put blocks beyond it.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_PIPELINE_VENTILATOR_QUEUE_H_INCLUDED
#define ZKIT_PIPELINE_VENTILATOR_QUEUE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of a shared slab. Large enough that a slab carries hundreds of small
   tasks, small enough that a held task pins little memory.                 */
#define ZKIT__VQUEUE_SLAB (32u * 1024)

typedef enum {
    ZKIT__VQUEUE_TASK = 1,
    ZKIT__VQUEUE_OPEN,  /* body: the batch name */
    ZKIT__VQUEUE_CLOSE, /* no body */
} zkit__vqueue_kind_t;

typedef struct zkit__vqueue zkit__vqueue_t;
typedef struct zkit__vqueue_slab zkit__vqueue_slab_t;
typedef struct zkit__ventilator_batch zkit__ventilator_batch_t;

/*  One record, as the caller wrote it. The fields marked "actor" are the
    actor's to use while it holds the record (a task's batch, seq, its last
    failure, its place in fast mode's send FIFO or in its batch's list).     */
typedef struct zkit__ventilator_task {
    struct zkit__ventilator_task *next; /* actor */
    zkit__ventilator_batch_t *batch;    /* actor */
    uint64_t seq;                       /* actor */
    char *reason;                       /* actor: the last FAIL's text, or NULL */
    /* actor, reliable mode: the task's id and its place in its batch's list
       of live tasks, so a COMPLETE from the sink can retire them all.      */
    struct zkit__ventilator_task *live_prev;
    struct zkit__ventilator_task *live_next;
    uint8_t id[16];
    bool retired;       /* actor: retired by COMPLETE before it was ever sent */
    uint64_t spool_seq; /* the record's seq in the ventilator's spool, 0 = none */
    zkit__vqueue_slab_t *slab;
    uint64_t ts; /* when it was put, in zkit_clock_usec */
    size_t size;
    uint32_t kind; /* zkit__vqueue_kind_t */
    uint8_t body[];
} zkit__ventilator_task_t;

/*  A queue whose put blocks beyond max_pending tasks (0: no limit). Returns
    NULL with errno ENOMEM or the error of pipe(2).                          */
zkit__vqueue_t *zkit__vqueue_new(uint32_t max_pending);

/*  Frees the queue, every slab and every record still in it, including those
    the actor did not release. Safe on NULL.                                 */
void zkit__vqueue_destroy(zkit__vqueue_t **self_p);

/* ---- the caller's side ------------------------------------------------------- */

/*  Copies a record in (size bytes of body). A TASK first takes one of the
    max_pending credits, waiting while none is left; the wait ends each
    slice_ms to look at *interrupted. Returns 0, or -1 with errno EINTR
    (*interrupted became non-zero while waiting), ECANCELED (the queue was
    stopped) or ENOMEM. Safe to call from any thread.                        */
int zkit__vqueue_put(zkit__vqueue_t *self, zkit__vqueue_kind_t kind, const void *body, size_t size,
                     volatile int *interrupted, int slice_ms);

/*  What the caller fixes for a record instead of the actor (the spool-backed
    ventilator, which must store a task's seq and id before the actor sees
    it). seq: a TASK's seq in its batch, or a CLOSE's total (0: the actor
    decides, as without a preset). id: a TASK's id (NULL: the actor makes
    one). ts: when it was first submitted (0: now). spool_seq: the record's
    seq in the spool.                                                        */
typedef struct {
    uint64_t seq;
    const uint8_t *id;
    uint64_t ts;
    uint64_t spool_seq;
} zkit__vqueue_preset_t;

/*  How zkit__vqueue_put_preset deals with a TASK's credit.                  */
typedef enum {
    ZKIT__VQUEUE_CREDIT_TAKEN = 1, /* taken before (zkit__vqueue_reserve); given
                                      back when the put fails                  */
    ZKIT__VQUEUE_CREDIT_FORCE,     /* take one now even beyond max_pending (tasks
                                      resumed from a spool: they are held already) */
} zkit__vqueue_credit_t;

/*  Takes one task credit, waiting as zkit__vqueue_put does. Returns 0 or -1
    with errno EINTR or ECANCELED. zkit__vqueue_give(self, 1) gives it back. */
int zkit__vqueue_reserve(zkit__vqueue_t *self, volatile int *interrupted, int slice_ms);

/*  As zkit__vqueue_put, with the fields of preset (may be NULL) set in the
    record and a TASK's credit dealt with as credit says. Never waits.
    Returns 0, or -1 with errno ECANCELED or ENOMEM.                         */
int zkit__vqueue_put_preset(zkit__vqueue_t *self, zkit__vqueue_kind_t kind, const void *body,
                            size_t size, const zkit__vqueue_preset_t *preset,
                            zkit__vqueue_credit_t credit);

/* ---- the actor's side --------------------------------------------------------- */

/*  The file descriptor the actor polls for reading: readable after a put
    found the actor idle.                                                    */
int zkit__vqueue_fd(const zkit__vqueue_t *self);

/*  Consumes the wakeup bytes (call when the fd polled readable).            */
void zkit__vqueue_clear(zkit__vqueue_t *self);

/*  The next record, in the order put, or NULL when there is none; the actor
    is then idle until the next put makes the fd readable. The record is the
    actor's until zkit__vqueue_release.                                     */
zkit__ventilator_task_t *zkit__vqueue_next(zkit__vqueue_t *self);

/*  The actor is done with the record (its reason, if any, is its own to
    free). Safe on NULL.                                                     */
void zkit__vqueue_release(zkit__vqueue_t *self, zkit__ventilator_task_t *record);

/*  Gives back count task credits (tasks the actor retired, dead-lettered or
    sent), waking a blocked put.                                             */
void zkit__vqueue_give(zkit__vqueue_t *self, uint64_t count);

/*  The actor stopped: every put, waiting or not, fails with ECANCELED.     */
void zkit__vqueue_stop(zkit__vqueue_t *self);

/*  Tasks put and not given back (credits in use).                           */
uint64_t zkit__vqueue_held(zkit__vqueue_t *self);

#endif
