/*  idtable.h (internal): an open-addressing hash table of entry pointers.

    The dispatcher keeps every live item in one table keyed by its 16-byte id
    and every peer in another keyed by its routing id. Both want the same
    thing: O(1) lookup, no allocation per entry (the entries are the caller's
    own structs), and memory that shrinks again after a burst. So the table
    stores (hash, pointer) pairs only; the caller computes the hash and says
    how to compare a key with an entry. Linear probing with backward-shift
    deletion keeps it tombstone-free, so a long run of inserts and removals
    never degrades lookups.

    Message ids are UUIDv7-like: the first 6 bytes are a millisecond
    timestamp that barely changes, so the id hash mixes both 64-bit halves
    through the splitmix64 finalizer; any slot-index bits depend on all 128.
    A seed (from the component's options) makes the slot of an id
    unpredictable to a peer that chooses ids to collide.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_IDTABLE_H_INCLUDED
#define ZKIT_IDTABLE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t hash;
    void *entry; /* NULL marks an empty slot */
} zkit__idtable_slot_t;

/*  All fields are private; the struct is public so it can be embedded.      */
typedef struct {
    zkit__idtable_slot_t *slots; /* NULL until the first insert */
    size_t capacity;             /* 0 or a power of two */
    size_t count;
} zkit__idtable_t;

/*  Says whether entry has the key the caller looks for.                     */
typedef bool(zkit__idtable_match_fn)(const void *entry, const void *key);

/*  Makes an empty table. Allocates nothing, so it can't fail.              */
void zkit__idtable_init(zkit__idtable_t *self);

/*  Frees the slot array. The entries belong to the caller and are left
    alone. The table is empty and usable afterwards. Safe to call twice.    */
void zkit__idtable_fini(zkit__idtable_t *self);

/*  Returns the entry with this hash for which match(entry, key) is true, or
    NULL when there is none. Does not modify the table.                     */
void *zkit__idtable_find(const zkit__idtable_t *self, uint64_t hash, const void *key,
                         zkit__idtable_match_fn *match);

/*  Adds entry (not NULL) under hash. The caller guarantees that no entry
    with the same key is present (find first). Returns 0, or -1 with errno
    ENOMEM when the table had to grow and could not; it is then unchanged. */
int zkit__idtable_insert(zkit__idtable_t *self, uint64_t hash, void *entry);

/*  Removes this exact entry, which must be present under hash (asserted: a
    missing entry is a bug in the caller). May shrink the slot array after
    many removals; a failed shrink leaves the table valid. Can't fail.      */
void zkit__idtable_remove(zkit__idtable_t *self, uint64_t hash, const void *entry);

/*  Calls fn(entry, arg) once for every entry, in no particular order. fn
    must not insert into or remove from the table.                          */
void zkit__idtable_foreach(const zkit__idtable_t *self, void (*fn)(void *entry, void *arg),
                           void *arg);

/*  Hash of a 16-byte id. Every output bit depends on every input bit.      */
uint64_t zkit__idtable_hash_id(const uint8_t id[16], uint64_t seed);

/*  Hash of size bytes (a routing id). size may be 0.                       */
uint64_t zkit__idtable_hash_bytes(const void *data, size_t size, uint64_t seed);

#endif
