/*  ackset.h (internal): the set of acknowledged seqs, and the cursor file
    that persists it.

    Acks arrive in any order. The set is a floor, the lowest seq not
    acknowledged (every seq below it is), plus the acknowledged seqs above the
    floor as sorted, disjoint, non-adjacent half-open ranges [start, end). An
    ack at the floor raises the floor past every range it now touches, so the
    ranges only hold the holes' far sides: when downstream acks roughly in
    order, there are few. Seqs that are no longer in the spool (retired,
    dropped, expired, quarantined) are in the set too: "acknowledged or gone".

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_SPOOL_ACKSET_H_INCLUDED
#define ZKIT_SPOOL_ACKSET_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t start, end; /* [start, end) */
} zkit__range_t;

typedef struct {
    uint64_t floor;        /* lowest seq not acknowledged (>= 1)         */
    zkit__range_t *ranges; /* acknowledged above the floor, start > floor */
    size_t count, cap;
    uint64_t above; /* seqs in the ranges                          */
} zkit__ackset_t;

/*  An empty set: nothing acknowledged, floor 1.                              */
void zkit__ackset_init(zkit__ackset_t *set);
void zkit__ackset_fini(zkit__ackset_t *set);

/*  Acknowledges [start, end). Returns 1 when the set changed, 0 when all of
    it was already acknowledged, or -1 with errno ENOMEM (set unchanged).      */
int zkit__ackset_add(zkit__ackset_t *set, uint64_t start, uint64_t end);

/*  True when seq is acknowledged.                                           */
bool zkit__ackset_has(const zkit__ackset_t *set, uint64_t seq);

/*  Acknowledged seqs in [start, end).                                        */
uint64_t zkit__ackset_count(const zkit__ackset_t *set, uint64_t start, uint64_t end);

/*  One past the highest acknowledged seq (the floor when no range).         */
uint64_t zkit__ackset_top(const zkit__ackset_t *set);

/*  The smallest seq >= seq that is not acknowledged.                        */
uint64_t zkit__ackset_next_unacked(const zkit__ackset_t *set, uint64_t seq);

/*  Serialises the set as a cursor file (docs/spool-format.md), stamped with
    ts. Returns a malloc'd buffer and its size in *size, or NULL (ENOMEM).   */
uint8_t *zkit__cursor_encode(const zkit__ackset_t *set, uint64_t ts, size_t *size);

/*  Parses a cursor file into *set (which must be empty). Returns 0, -1 with
    errno EINVAL when the bytes are not a valid cursor (*reason says why), or
    with ZKIT_EFORMAT for a newer version, or ENOMEM.                         */
int zkit__cursor_decode(zkit__ackset_t *set, const uint8_t *data, size_t size, const char **reason);

#endif
