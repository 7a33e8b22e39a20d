/*  gaps.h (internal): the per-source gap detector under zkit_subscriber.

    A source (meta src) numbers its messages 1, 2, 3, ... within an epoch
    (hdr zkit-epoch, the publisher's start time). For each source the
    detector keeps the epoch, `next` (the highest seq seen + 1) and the sorted
    list of seqs below next that never arrived, as disjoint ranges. Each
    message is then classified in O(log gaps): in order, a gap before it, a
    fill of a missing seq (out of order or recovered), a duplicate, or a
    leftover from an older epoch.

    A newer epoch means the publisher restarted: what was missing from the
    old epoch can no longer be fetched (its buffer died with it) and is
    reported LOST; the stream starts again at seq 1, so a restarted publisher
    whose first messages were missed shows a gap from 1.

    Without an epoch (a peer that sets none: epoch 0), seq 1 after a higher
    seq is read as a restart; a duplicated seq 1 then looks like one too.

    Events (GAP, LOST, RESTART) go to a callback, synchronously, in the order
    they happen. Owned by one thread; not thread-safe.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_PUBSUB_GAPS_H_INCLUDED
#define ZKIT_PUBSUB_GAPS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zkit_subscriber.h"

typedef enum {
    ZKIT__GAPS_NEW = 0,   /* the first message of the stream, or the next  */
    ZKIT__GAPS_GAP,       /* new; the seqs between next and it went missing */
    ZKIT__GAPS_FILL,      /* it was missing and now is not                  */
    ZKIT__GAPS_DUPLICATE, /* seen before (or below the stream's start)      */
    ZKIT__GAPS_STALE      /* from an older epoch                            */
} zkit__gaps_verdict_t;

typedef struct {
    uint64_t from;
    uint64_t to;
} zkit__range_t;

/*  Per-source counters.                                                      */
typedef struct {
    uint64_t in_order;  /* NEW verdicts                                   */
    uint64_t gaps;      /* GAP events                                     */
    uint64_t missing;   /* seqs that went missing                         */
    uint64_t late;      /* fills by a live message                        */
    uint64_t recovered; /* fills by a replayed message                    */
    uint64_t duplicates;
    uint64_t stale;
    uint64_t lost; /* seqs reported LOST (open-ended ranges not counted) */
    uint64_t restarts;
} zkit__gaps_counters_t;

typedef struct {
    char *src;
    uint64_t epoch;
    uint64_t next;          /* highest seq seen + 1; 0: no message seen yet */
    zkit__range_t *missing; /* sorted, disjoint, all below next            */
    size_t nmissing;
    size_t missing_capacity;
    uint64_t missing_now; /* seqs in missing                                 */
    zkit__gaps_counters_t counters;
    void *user; /* the caller's per-source state; freed by free_user    */
} zkit__gaps_stream_t;

typedef struct _zkit__gaps_t zkit__gaps_t;

/*  Receives every event. event->src points at the stream's name.            */
typedef void(zkit__gaps_event_fn)(zkit__gaps_stream_t *stream, const zkit_stream_event_t *event,
                                  void *arg);

/*  Makes a detector for at most max_sources sources and max_gaps separate
    missing ranges per source (both >= 1). on_event may be NULL; free_user
    (may be NULL) releases a stream's user pointer when the detector is
    destroyed. Returns NULL with errno EINVAL or ENOMEM.                      */
zkit__gaps_t *zkit__gaps_new(size_t max_sources, size_t max_gaps, zkit__gaps_event_fn *on_event,
                             void *arg, void (*free_user)(void *user));

void zkit__gaps_destroy(zkit__gaps_t **self_p);

/*  The stream of src, made (with no message seen) when create is true and
    there is room. NULL when absent, when max_sources are tracked already, or
    out of memory.                                                            */
zkit__gaps_stream_t *zkit__gaps_stream(zkit__gaps_t *self, const char *src, bool create);

/*  Classifies message seq (>= 1) of epoch, updating the stream and firing
    events (a restart first, then a gap). replayed says it came from the
    replay channel (it counts as recovered rather than late).                */
zkit__gaps_verdict_t zkit__gaps_observe(zkit__gaps_t *self, zkit__gaps_stream_t *stream,
                                        uint64_t epoch, uint64_t seq, bool replayed);

/*  Reports every seq of [from, to] not yet seen as LOST with reason: the
    missing ones, and those at or above next (then next moves past to). to
    UINT64_MAX reports [max(from, next), UINT64_MAX] open-ended and leaves
    next alone. Fires one LOST event per contiguous run.                      */
void zkit__gaps_declare_lost(zkit__gaps_t *self, zkit__gaps_stream_t *stream, uint64_t from,
                             uint64_t to, zkit_lost_reason_t reason);

/*  The source says it has published up to last: when that is beyond what
    was seen, [next, last] is a gap (fired as GAP) and next moves past it.
    Returns true when it made a gap.                                         */
bool zkit__gaps_extend(zkit__gaps_t *self, zkit__gaps_stream_t *stream, uint64_t last);

/*  The source restarted with new_epoch: reports what was missing as LOST
    (RESTART), fires RESTART, and starts the stream again expecting seq 1.  */
void zkit__gaps_restart(zkit__gaps_t *self, zkit__gaps_stream_t *stream, uint64_t new_epoch);

/*  Sets where a stream stands without any message: epoch, and next (>= 1),
    the first seq it still wants. Forgets what was missing, silently.        */
void zkit__gaps_set_position(zkit__gaps_stream_t *stream, uint64_t epoch, uint64_t next);

/*  True when seq is in one of the stream's missing ranges.                   */
bool zkit__gaps_is_missing(const zkit__gaps_stream_t *stream, uint64_t seq);

/*  The lowest seq not yet settled: the first missing one, else next (0 when
    nothing was seen).                                                        */
uint64_t zkit__gaps_low_water(const zkit__gaps_stream_t *stream);

/*  Calls fn once per stream, in no particular order.                          */
void zkit__gaps_foreach(zkit__gaps_t *self, void (*fn)(zkit__gaps_stream_t *stream, void *arg),
                        void *arg);

size_t zkit__gaps_count(const zkit__gaps_t *self);

#endif
