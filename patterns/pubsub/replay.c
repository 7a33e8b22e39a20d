/*  replay.c: a publisher's bounded replay buffer (see replay.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "pubsub/replay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Entries start small and double: a publisher configured for 100 000
   messages that only ever sends ten should not hold 13 MB of slots. */
#define S_INITIAL_SLOTS 64

struct _zkit__replay_t {
    zkit__replay_entry_t *slots; /* ring of `allocated` slots               */
    size_t allocated;
    size_t capacity;  /* bound on messages held                             */
    size_t max_bytes; /* bound on frame bytes held                          */
    size_t head;      /* slot of the oldest entry                           */
    size_t count;
    size_t bytes;
    uint64_t last; /* newest seq ever put; 0 = none                         */
    uint64_t evicted;
};

static size_t s_entry_bytes(const zkit__replay_entry_t *entry)
{
    return zmq_msg_size((zmq_msg_t *) &entry->topic) + zmq_msg_size((zmq_msg_t *) &entry->envelope);
}

zkit__replay_t *zkit__replay_new(size_t capacity, size_t max_bytes)
{
    if (capacity == 0 || max_bytes == 0) {
        errno = EINVAL;
        return NULL;
    }
    zkit__replay_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    self->capacity = capacity;
    self->max_bytes = max_bytes;
    return self;
}

static void s_evict_oldest(zkit__replay_t *self)
{
    zkit__replay_entry_t *entry = &self->slots[self->head];
    self->bytes -= s_entry_bytes(entry);
    zmq_msg_close(&entry->topic);
    zmq_msg_close(&entry->envelope);
    self->head = (self->head + 1) % self->allocated;
    self->count--;
    self->evicted++;
}

static void s_clear(zkit__replay_t *self)
{
    while (self->count)
        s_evict_oldest(self);
    self->head = 0;
}

void zkit__replay_destroy(zkit__replay_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zkit__replay_t *self = *self_p;
    s_clear(self);
    free(self->slots);
    free(self);
    *self_p = NULL;
}

/*  Doubles the slot array (up to capacity), unrolling the ring so the
    oldest entry sits in slot 0.                                              */
static int s_grow(zkit__replay_t *self)
{
    size_t want = self->allocated ? self->allocated * 2 : S_INITIAL_SLOTS;
    if (want > self->capacity)
        want = self->capacity;
    zkit__replay_entry_t *slots = malloc(want * sizeof *slots);
    if (!slots) {
        errno = ENOMEM;
        return -1;
    }
    /* A zmq_msg_t may be moved bytewise: it holds no pointer into itself
       (libzmq's own pipes move messages by value the same way).           */
    for (size_t i = 0; i < self->count; i++)
        memcpy(&slots[i], &self->slots[(self->head + i) % self->allocated], sizeof *slots);
    free(self->slots);
    self->slots = slots;
    self->allocated = want;
    self->head = 0;
    return 0;
}

int zkit__replay_put(zkit__replay_t *self, uint64_t seq, zmq_msg_t *topic, zmq_msg_t *envelope)
{
    if (seq == 0) {
        errno = EINVAL;
        return -1;
    }
    size_t size = zmq_msg_size(topic) + zmq_msg_size(envelope);
    if (self->last != 0 && seq != self->last + 1)
        s_clear(self);
    if (size > self->max_bytes) {
        /* Too big to keep at all: it is evicted the moment it arrives, and
           so is everything older, which keeps the held run contiguous. */
        s_clear(self);
        self->evicted++;
        self->last = seq;
        return 0;
    }
    if (self->count == self->allocated && self->allocated < self->capacity && s_grow(self) == -1)
        return -1;

    zkit__replay_entry_t entry;
    entry.seq = seq;
    zmq_msg_init(&entry.topic);
    zmq_msg_init(&entry.envelope);
    if (zmq_msg_copy(&entry.topic, topic) == -1 || zmq_msg_copy(&entry.envelope, envelope) == -1) {
        zmq_msg_close(&entry.topic);
        zmq_msg_close(&entry.envelope);
        errno = ENOMEM;
        return -1;
    }
    while (self->count > 0 &&
           (self->count >= self->capacity || self->bytes + size > self->max_bytes))
        s_evict_oldest(self);
    self->slots[(self->head + self->count) % self->allocated] = entry;
    self->count++;
    self->bytes += size;
    self->last = seq;
    return 0;
}

uint64_t zkit__replay_first(const zkit__replay_t *self)
{
    /* With nothing held, the first seq that could still be served is the
       next one to be published. */
    return self->count ? self->slots[self->head].seq : self->last + 1;
}

uint64_t zkit__replay_last(const zkit__replay_t *self)
{
    return self->last;
}

size_t zkit__replay_count(const zkit__replay_t *self)
{
    return self->count;
}

size_t zkit__replay_bytes(const zkit__replay_t *self)
{
    return self->bytes;
}

uint64_t zkit__replay_evicted(const zkit__replay_t *self)
{
    return self->evicted;
}

const zkit__replay_entry_t *zkit__replay_get(const zkit__replay_t *self, uint64_t seq)
{
    if (self->count == 0)
        return NULL;
    uint64_t first = self->slots[self->head].seq;
    if (seq < first || seq > self->last)
        return NULL;
    return &self->slots[(self->head + (size_t) (seq - first)) % self->allocated];
}

void zkit__replay_plan(const zkit__replay_t *self, uint64_t from, uint64_t to, size_t max_count,
                       zkit__replay_plan_t *plan)
{
    memset(plan, 0, sizeof *plan);
    if (from == 0 || from > to || max_count == 0)
        return;
    uint64_t first = zkit__replay_first(self);
    uint64_t start = from;
    if (from < first) {
        /* Everything below the oldest held seq is gone, up to the end of
           the request. A request wholly above what was ever published
           loses nothing: it is simply not there yet. */
        plan->lost_to = to < first - 1 ? to : first - 1;
        start = first;
    }
    if (start > to || self->count == 0 || start > self->last)
        return;
    uint64_t end = to < self->last ? to : self->last;
    if (end - start >= (uint64_t) max_count)
        end = start + (uint64_t) max_count - 1;
    plan->serve_from = start;
    plan->serve_to = end;
}
