/*  idtable.c: open-addressing hash table of entry pointers (see idtable.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "core/idtable.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Smallest slot array; below this, shrinking saves nothing worth a rehash. */
#define S_MIN_CAPACITY 16

/* splitmix64's finalizer: a bijection whose output bits each depend on all
   input bits, so the slot index (the low bits) is spread even when the keys
   differ only in a few high bits, as time-ordered ids do.                   */
static inline uint64_t s_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

uint64_t zkit__idtable_hash_id(const uint8_t id[16], uint64_t seed)
{
    uint64_t a, b;
    memcpy(&a, id, 8);
    memcpy(&b, id + 8, 8);
    return s_mix(a ^ s_mix(b ^ seed ^ 0x9e3779b97f4a7c15ULL));
}

uint64_t zkit__idtable_hash_bytes(const void *data, size_t size, uint64_t seed)
{
    const uint8_t *p = data;
    uint64_t h = s_mix(seed ^ (uint64_t) size ^ 0x9e3779b97f4a7c15ULL);
    while (size >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = s_mix(h ^ w);
        p += 8;
        size -= 8;
    }
    if (size) {
        uint64_t w = 0;
        memcpy(&w, p, size);
        h = s_mix(h ^ w ^ 0x5bd1e995ULL);
    }
    return h;
}

void zkit__idtable_init(zkit__idtable_t *self)
{
    assert(self);
    self->slots = NULL;
    self->capacity = 0;
    self->count = 0;
}

void zkit__idtable_fini(zkit__idtable_t *self)
{
    assert(self);
    free(self->slots);
    zkit__idtable_init(self);
}

void *zkit__idtable_find(const zkit__idtable_t *self, uint64_t hash, const void *key,
                         zkit__idtable_match_fn *match)
{
    assert(self && match);
    if (!self->count)
        return NULL;
    size_t mask = self->capacity - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        const zkit__idtable_slot_t *slot = &self->slots[i];
        if (!slot->entry)
            return NULL; /* the load limit guarantees an empty slot exists */
        if (slot->hash == hash && match(slot->entry, key))
            return slot->entry;
    }
}

/* Places a (hash, entry) pair known to be absent; the array has room.       */
static void s_place(zkit__idtable_slot_t *slots, size_t capacity, uint64_t hash, void *entry)
{
    size_t mask = capacity - 1;
    size_t i = hash & mask;
    while (slots[i].entry)
        i = (i + 1) & mask;
    slots[i].hash = hash;
    slots[i].entry = entry;
}

static int s_resize(zkit__idtable_t *self, size_t capacity)
{
    zkit__idtable_slot_t *slots = calloc(capacity, sizeof *slots);
    if (!slots) {
        errno = ENOMEM;
        return -1;
    }
    for (size_t i = 0; i < self->capacity; i++)
        if (self->slots[i].entry)
            s_place(slots, capacity, self->slots[i].hash, self->slots[i].entry);
    free(self->slots);
    self->slots = slots;
    self->capacity = capacity;
    return 0;
}

int zkit__idtable_insert(zkit__idtable_t *self, uint64_t hash, void *entry)
{
    assert(self && entry);
    /* At most 3/4 full: linear probing stays short and find always meets an
       empty slot.                                                            */
    if ((self->count + 1) * 4 > self->capacity * 3) {
        size_t capacity = self->capacity ? self->capacity * 2 : S_MIN_CAPACITY;
        if (capacity < self->capacity || s_resize(self, capacity)) {
            errno = ENOMEM;
            return -1;
        }
    }
    s_place(self->slots, self->capacity, hash, entry);
    self->count++;
    return 0;
}

void zkit__idtable_remove(zkit__idtable_t *self, uint64_t hash, const void *entry)
{
    assert(self && entry && self->count);
    size_t mask = self->capacity - 1;
    size_t i = hash & mask;
    while (self->slots[i].entry != entry) {
        assert(self->slots[i].entry); /* removing an entry that is not there */
        i = (i + 1) & mask;
    }
    /* Backward-shift deletion: pull later members of the probe run into the
       hole when their home slot allows it, so no tombstones ever pile up.   */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (!self->slots[j].entry)
            break;
        size_t home = self->slots[j].hash & mask;
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays)
            continue;
        self->slots[i] = self->slots[j];
        i = j;
    }
    self->slots[i].entry = NULL;
    self->slots[i].hash = 0;
    self->count--;

    /* Shrink below 1/8 full, so a burst of a million items does not pin its
       slot array forever. Halving leaves it at most 1/4 full, far from the
       growth limit, so insert/remove at the boundary cannot thrash.         */
    if (self->capacity > S_MIN_CAPACITY && self->count * 8 < self->capacity) {
        if (self->count == 0)
            zkit__idtable_fini(self);
        else
            (void) s_resize(self, self->capacity / 2); /* failure: keep the big one */
    }
}

void zkit__idtable_foreach(const zkit__idtable_t *self, void (*fn)(void *entry, void *arg),
                           void *arg)
{
    assert(self && fn);
    for (size_t i = 0; i < self->capacity; i++)
        if (self->slots[i].entry)
            fn(self->slots[i].entry, arg);
}
