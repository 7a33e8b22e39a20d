/*  sink_batch.c: what the sink knows about one batch (see sink_batch.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "pipeline/sink_batch.h"
#include "pipeline/protocol.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The table starts at this many seqs and at least doubles when it grows. */
#define S_CAPACITY_MIN 1024

zkit__sink_batch_t *zkit__sink_batch_new(const char *name)
{
    zkit__sink_batch_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    snprintf(self->name, sizeof self->name, "%s", name);
    self->started_us = zkit_clock_usec();
    self->started_ms = zclock_mono();
    return self;
}

void zkit__sink_batch_destroy(zkit__sink_batch_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->states);
    free((*self_p)->letters);
    free(*self_p);
    *self_p = NULL;
}

int zkit__sink_batch_set_total(zkit__sink_batch_t *self, uint64_t total)
{
    if (total == 0 || total == self->total)
        return 0;
    if (self->total) {
        errno = EEXIST;
        return -1;
    }
    if (total > ZKIT_BATCH_TASKS_MAX || self->highest > total) {
        errno = ERANGE;
        return -1;
    }
    self->total = total;
    return 0;
}

zkit__sink_state_t zkit__sink_batch_state(const zkit__sink_batch_t *self, uint64_t seq)
{
    if (seq == 0 || seq > self->capacity)
        return ZKIT__SINK_NONE;
    uint64_t i = seq - 1;
    return (zkit__sink_state_t) ((self->states[i / 4] >> (2 * (i % 4))) & 3);
}

static void s_set_state(zkit__sink_batch_t *self, uint64_t seq, zkit__sink_state_t state)
{
    uint64_t i = seq - 1;
    uint8_t *byte = &self->states[i / 4];
    unsigned shift = (unsigned) (2 * (i % 4));
    *byte = (uint8_t) ((*byte & ~(3u << shift)) | ((unsigned) state << shift));
    if (seq > self->highest)
        self->highest = seq;
}

size_t zkit__sink_batch_table_bytes(const zkit__sink_batch_t *self)
{
    return (size_t) ((self->capacity + 3) / 4);
}

int zkit__sink_batch_reserve(zkit__sink_batch_t *self, uint64_t seq, size_t *budget)
{
    uint64_t limit = self->total ? self->total : ZKIT_BATCH_TASKS_MAX;
    if (seq == 0 || seq > limit) {
        errno = ERANGE;
        return -1;
    }
    if (seq <= self->capacity)
        return 0;
    uint64_t capacity = self->capacity * 2;
    if (capacity < S_CAPACITY_MIN)
        capacity = S_CAPACITY_MIN;
    if (capacity < seq)
        capacity = seq;
    if (capacity > limit)
        capacity = limit;
    size_t old_bytes = zkit__sink_batch_table_bytes(self);
    if ((capacity + 3) / 4 - old_bytes > *budget)
        capacity = seq; /* no room to grow ahead: just what is needed */
    size_t bytes = (size_t) ((capacity + 3) / 4);
    if (bytes - old_bytes > *budget) {
        errno = ENOSPC;
        return -1;
    }
    uint8_t *states = realloc(self->states, bytes);
    if (!states) {
        errno = ENOMEM;
        return -1;
    }
    memset(states + old_bytes, 0, bytes - old_bytes);
    self->states = states;
    self->capacity = capacity;
    *budget -= bytes - old_bytes;
    return 0;
}

static void s_remove_letter(zkit__sink_batch_t *self, uint64_t seq)
{
    for (size_t i = 0; i < self->letter_count; i++) {
        if (self->letters[i].task_seq == seq) {
            memmove(&self->letters[i], &self->letters[i + 1],
                    (self->letter_count - i - 1) * sizeof *self->letters);
            self->letter_count--;
            return;
        }
    }
}

void zkit__sink_batch_stored(zkit__sink_batch_t *self, uint64_t seq, uint64_t attempt)
{
    if (zkit__sink_batch_state(self, seq) == ZKIT__SINK_DEAD) {
        /* The worker was only slow: its result replaces the dead letter.    */
        s_remove_letter(self, seq);
        self->dead--;
    }
    s_set_state(self, seq, ZKIT__SINK_STORED);
    self->done++;
    if (attempt > 1)
        self->retried += attempt - 1;
}

int zkit__sink_batch_dead(zkit__sink_batch_t *self, uint64_t seq, const uint8_t id[16],
                          uint32_t attempts, const char *reason)
{
    if (self->letter_count == self->letter_capacity) {
        size_t capacity = self->letter_capacity ? self->letter_capacity * 2 : 16;
        zkit_dead_letter_t *letters = realloc(self->letters, capacity * sizeof *letters);
        if (!letters) {
            errno = ENOMEM;
            return -1;
        }
        self->letters = letters;
        self->letter_capacity = capacity;
    }
    zkit_dead_letter_t *letter = &self->letters[self->letter_count++];
    memset(letter, 0, sizeof *letter);
    letter->task_seq = seq;
    memcpy(letter->task_id, id, 16);
    letter->attempts = attempts;
    zkit__pipeline_copy_text(letter->reason, sizeof letter->reason, reason);
    s_set_state(self, seq, ZKIT__SINK_DEAD);
    self->dead++;
    if (attempts > 1)
        self->retried += attempts - 1;
    return 0;
}

bool zkit__sink_batch_check(zkit__sink_batch_t *self)
{
    if (!self->complete && self->total && self->done + self->dead == self->total) {
        self->complete = true;
        self->timed_out = false;
        self->elapsed_us = zkit_clock_usec() - self->started_us;
    }
    return self->complete;
}

void zkit__sink_batch_report(const zkit__sink_batch_t *self, zkit_batch_report_t *report)
{
    memset(report, 0, sizeof *report);
    memcpy(report->name, self->name, sizeof report->name);
    report->total = self->total;
    report->done = self->done;
    report->dead = self->dead;
    report->retried = self->retried;
    report->duplicates = self->duplicates;
    report->gaps = self->gaps;
    report->started_us = self->started_us;
    report->elapsed_us = self->complete ? self->elapsed_us : zkit_clock_usec() - self->started_us;
    report->complete = self->complete;
}

ssize_t zkit__sink_batch_missing(const zkit__sink_batch_t *self, uint64_t *seqs, size_t max)
{
    if (!self->total) {
        errno = EINVAL;
        return -1;
    }
    size_t count = 0;
    for (uint64_t seq = 1; seq <= self->total; seq++) {
        /* Whole bytes of seqs all stored or dead are skipped four at a time. */
        uint64_t i = seq - 1;
        if (i % 4 == 0 && seq + 3 <= self->capacity) {
            uint8_t b = self->states[i / 4];
            if ((b & 0x03) && (b & 0x0c) && (b & 0x30) && (b & 0xc0)) {
                seq += 3;
                continue;
            }
        }
        if (zkit__sink_batch_state(self, seq) == ZKIT__SINK_NONE) {
            if (count < max)
                seqs[count] = seq;
            count++;
        }
    }
    return (ssize_t) count;
}
