/*  ventilator_queue.c: the submit hand-off (see ventilator_queue.h).

    Slabs form a chain: the caller writes at the end of the tail slab, the
    actor reads from its own cursor towards it. Under the mutex: the chain's
    links, the tail's fill level, the free list, the credits and the idle
    flag. The actor's cursor, and each slab's count of records it holds, are
    the actor's alone. A slab other than the tail is never written again, so
    once the actor has seen it as such (under the mutex) it reads it freely.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "pipeline/ventilator_queue.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "zkit_library.h"

/* Slabs kept for reuse: enough for a burst in flight, little when idle.    */
#define S_FREE_MAX 8
#define S_ALIGN    alignof(max_align_t)

struct zkit__vqueue_slab {
    zkit__vqueue_slab_t *next;     /* the chain, or the free list */
    zkit__vqueue_slab_t *all_prev; /* every slab the queue owns */
    zkit__vqueue_slab_t *all_next;
    size_t capacity;
    size_t used; /* bytes written; changes only while the slab is the tail */
    size_t live; /* actor: records read and not released */
    bool left;   /* actor: read to its end and no longer the tail */
    alignas(max_align_t) uint8_t data[];
};

struct zkit__vqueue {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint32_t max_pending;
    uint64_t held;
    bool stopped;
    bool idle; /* the actor found nothing: the next put wakes it */
    zkit__vqueue_slab_t *tail;
    zkit__vqueue_slab_t *free;
    size_t free_count;
    zkit__vqueue_slab_t *all;
    int fds[2];
    /* The actor's cursor. */
    zkit__vqueue_slab_t *read;
    size_t read_off;
    size_t read_end; /* what was written in read when last looked at */
};

static size_t s_record_bytes(size_t body)
{
    size_t n = sizeof(zkit__ventilator_task_t) + body;
    return (n + S_ALIGN - 1) & ~(S_ALIGN - 1);
}

/* ---- slabs ---------------------------------------------------------------------- */

/* A new slab, not yet owned by the queue (so it needs no lock).            */
static zkit__vqueue_slab_t *s_slab_alloc(size_t capacity)
{
    zkit__vqueue_slab_t *slab = malloc(sizeof *slab + capacity);
    if (slab) {
        memset(slab, 0, sizeof *slab);
        slab->capacity = capacity;
    }
    return slab;
}

static void s_own_locked(zkit__vqueue_t *self, zkit__vqueue_slab_t *slab)
{
    slab->all_prev = NULL;
    slab->all_next = self->all;
    if (self->all)
        self->all->all_prev = slab;
    self->all = slab;
}

/* The actor is done with the slab: reuse it, or free it.                   */
static void s_recycle_locked(zkit__vqueue_t *self, zkit__vqueue_slab_t *slab)
{
    if (slab->capacity == ZKIT__VQUEUE_SLAB && self->free_count < S_FREE_MAX) {
        slab->used = 0;
        slab->live = 0;
        slab->left = false;
        slab->next = self->free;
        self->free = slab;
        self->free_count++;
        return;
    }
    if (slab->all_prev)
        slab->all_prev->all_next = slab->all_next;
    else
        self->all = slab->all_next;
    if (slab->all_next)
        slab->all_next->all_prev = slab->all_prev;
    free(slab);
}

/* Makes slab the new tail. The old tail is never written again.           */
static void s_append_locked(zkit__vqueue_t *self, zkit__vqueue_slab_t *slab)
{
    slab->next = NULL;
    self->tail->next = slab;
    self->tail = slab;
}

static void s_write(zkit__ventilator_task_t *rec, zkit__vqueue_slab_t *slab,
                    zkit__vqueue_kind_t kind, const void *body, size_t size, uint64_t ts,
                    const zkit__vqueue_preset_t *preset)
{
    memset(rec, 0, sizeof *rec);
    rec->slab = slab;
    rec->ts = ts;
    rec->size = size;
    rec->kind = (uint32_t) kind;
    if (preset) {
        rec->seq = preset->seq;
        if (preset->id)
            memcpy(rec->id, preset->id, sizeof rec->id);
        if (preset->ts)
            rec->ts = preset->ts;
        rec->spool_seq = preset->spool_seq;
    }
    if (size)
        memcpy(rec->body, body, size);
}

/* ---- construction --------------------------------------------------------------- */

zkit__vqueue_t *zkit__vqueue_new(uint32_t max_pending)
{
    zkit__vqueue_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    self->fds[0] = self->fds[1] = -1;
    self->max_pending = max_pending;
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->cond, NULL);
    if (pipe(self->fds))
        goto err;
    for (int i = 0; i < 2; i++) {
        /* Neither end ever blocks: a full pipe is readable already.        */
        fcntl(self->fds[i], F_SETFL, fcntl(self->fds[i], F_GETFL) | O_NONBLOCK);
        fcntl(self->fds[i], F_SETFD, FD_CLOEXEC);
    }
    self->tail = s_slab_alloc(ZKIT__VQUEUE_SLAB);
    if (!self->tail) {
        errno = ENOMEM;
        goto err;
    }
    s_own_locked(self, self->tail);
    self->read = self->tail;
    return self;
err : {
    int err = errno;
    zkit__vqueue_destroy(&self);
    errno = err;
    return NULL;
}
}

void zkit__vqueue_destroy(zkit__vqueue_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zkit__vqueue_t *self = *self_p;
    while (self->all) {
        zkit__vqueue_slab_t *slab = self->all;
        self->all = slab->all_next;
        free(slab);
    }
    for (int i = 0; i < 2; i++)
        if (self->fds[i] >= 0)
            close(self->fds[i]);
    pthread_cond_destroy(&self->cond);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

/* ---- the caller's side ------------------------------------------------------------ */

/* Takes a task credit, waiting in slices. Called and returns locked.       */
static int s_credit_take_locked(zkit__vqueue_t *self, volatile int *interrupted, int slice_ms)
{
    while (!self->stopped && self->max_pending && self->held >= self->max_pending) {
        if (interrupted && *interrupted)
            return EINTR;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long) slice_ms * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&self->cond, &self->lock, &until);
    }
    if (self->stopped)
        return ECANCELED;
    self->held++;
    return 0;
}

/* How s_put takes a TASK's credit: 0 waits (zkit__vqueue_put), otherwise a
   zkit__vqueue_credit_t.                                                   */
static int s_credit_locked(zkit__vqueue_t *self, int credit, volatile int *interrupted,
                           int slice_ms)
{
    if (self->stopped)
        return ECANCELED;
    if (credit == 0)
        return s_credit_take_locked(self, interrupted, slice_ms);
    if (credit == ZKIT__VQUEUE_CREDIT_FORCE)
        self->held++;
    return 0;
}

static int s_put(zkit__vqueue_t *self, zkit__vqueue_kind_t kind, const void *body, size_t size,
                 const zkit__vqueue_preset_t *preset, int credit, volatile int *interrupted,
                 int slice_ms)
{
    size_t bytes = s_record_bytes(size);
    uint64_t ts = zkit_clock_usec();
    /* A large body is copied into its own slab before the lock is taken, so
       the actor never waits for a long copy.                                */
    zkit__vqueue_slab_t *own = NULL;
    if (bytes > ZKIT__VQUEUE_SLAB / 4) {
        own = s_slab_alloc(bytes);
        if (!own) {
            if (kind == ZKIT__VQUEUE_TASK && credit == ZKIT__VQUEUE_CREDIT_TAKEN)
                zkit__vqueue_give(self, 1);
            errno = ENOMEM;
            return -1;
        }
        s_write((zkit__ventilator_task_t *) own->data, own, kind, body, size, ts, preset);
        own->used = bytes;
    }
    pthread_mutex_lock(&self->lock);
    int err = kind == ZKIT__VQUEUE_TASK ? s_credit_locked(self, credit, interrupted, slice_ms)
              : self->stopped           ? ECANCELED
                                        : 0;
    if (err) {
        /* A credit taken before is given back with the failed put.         */
        if (kind == ZKIT__VQUEUE_TASK && credit == ZKIT__VQUEUE_CREDIT_TAKEN && self->held)
            self->held--;
        pthread_mutex_unlock(&self->lock);
        free(own);
        errno = err;
        return -1;
    }
    if (own) {
        s_own_locked(self, own);
        s_append_locked(self, own);
    }
    else {
        zkit__vqueue_slab_t *slab = self->tail;
        if (slab->capacity - slab->used < bytes) {
            slab = self->free;
            if (slab) {
                self->free = slab->next;
                self->free_count--;
            }
            else if ((slab = s_slab_alloc(ZKIT__VQUEUE_SLAB)) != NULL)
                s_own_locked(self, slab);
            else {
                self->held -= kind == ZKIT__VQUEUE_TASK;
                pthread_mutex_unlock(&self->lock);
                errno = ENOMEM;
                return -1;
            }
            s_append_locked(self, slab);
        }
        s_write((zkit__ventilator_task_t *) (slab->data + slab->used), slab, kind, body, size, ts,
                preset);
        slab->used += bytes;
    }
    bool wake = self->idle;
    self->idle = false;
    pthread_mutex_unlock(&self->lock);
    if (wake) {
        /* EAGAIN: the pipe is full, so readable already.                   */
        ssize_t rc = write(self->fds[1], "w", 1);
        (void) rc;
    }
    return 0;
}

int zkit__vqueue_put(zkit__vqueue_t *self, zkit__vqueue_kind_t kind, const void *body, size_t size,
                     volatile int *interrupted, int slice_ms)
{
    return s_put(self, kind, body, size, NULL, 0, interrupted, slice_ms);
}

int zkit__vqueue_put_preset(zkit__vqueue_t *self, zkit__vqueue_kind_t kind, const void *body,
                            size_t size, const zkit__vqueue_preset_t *preset,
                            zkit__vqueue_credit_t credit)
{
    return s_put(self, kind, body, size, preset, (int) credit, NULL, 0);
}

int zkit__vqueue_reserve(zkit__vqueue_t *self, volatile int *interrupted, int slice_ms)
{
    pthread_mutex_lock(&self->lock);
    int err = s_credit_take_locked(self, interrupted, slice_ms);
    pthread_mutex_unlock(&self->lock);
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}

/* ---- the actor's side --------------------------------------------------------------- */

int zkit__vqueue_fd(const zkit__vqueue_t *self)
{
    return self->fds[0];
}

void zkit__vqueue_clear(zkit__vqueue_t *self)
{
    char buf[64];
    while (read(self->fds[0], buf, sizeof buf) > 0)
        ;
}

zkit__ventilator_task_t *zkit__vqueue_next(zkit__vqueue_t *self)
{
    for (;;) {
        if (self->read_off < self->read_end) {
            zkit__ventilator_task_t *rec =
                (zkit__ventilator_task_t *) (self->read->data + self->read_off);
            self->read_off += s_record_bytes(rec->size);
            self->read->live++;
            return rec;
        }
        pthread_mutex_lock(&self->lock);
        zkit__vqueue_slab_t *slab = self->read;
        if (slab->used > self->read_off) {
            self->read_end = slab->used; /* more was written here */
            pthread_mutex_unlock(&self->lock);
            continue;
        }
        if (slab == self->tail) {
            self->idle = true;
            pthread_mutex_unlock(&self->lock);
            return NULL;
        }
        /* Read to its end and no longer written: move on to the next.      */
        self->read = slab->next;
        self->read_off = 0;
        self->read_end = self->read->used;
        slab->left = true;
        if (slab->live == 0)
            s_recycle_locked(self, slab);
        pthread_mutex_unlock(&self->lock);
    }
}

void zkit__vqueue_release(zkit__vqueue_t *self, zkit__ventilator_task_t *record)
{
    if (!record)
        return;
    zkit__vqueue_slab_t *slab = record->slab;
    if (--slab->live == 0 && slab->left) {
        pthread_mutex_lock(&self->lock);
        s_recycle_locked(self, slab);
        pthread_mutex_unlock(&self->lock);
    }
}

void zkit__vqueue_give(zkit__vqueue_t *self, uint64_t count)
{
    if (!count)
        return;
    pthread_mutex_lock(&self->lock);
    self->held = self->held > count ? self->held - count : 0;
    if (self->max_pending)
        pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->lock);
}

void zkit__vqueue_stop(zkit__vqueue_t *self)
{
    pthread_mutex_lock(&self->lock);
    self->stopped = true;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->lock);
}

uint64_t zkit__vqueue_held(zkit__vqueue_t *self)
{
    pthread_mutex_lock(&self->lock);
    uint64_t held = self->held;
    pthread_mutex_unlock(&self->lock);
    return held;
}
