/*  dispatcher.c: credit-based dispatch with acknowledgements (see dispatcher.h).

    Data structures, chosen so every call is O(1) or O(log n) in the number
    of items, never a scan:
    - items: one id table of every queued or in-flight item; each item sits
      on exactly one intrusive list at a time: the retry queue, the fresh
      queue, its peer's in-flight list (dispatch order), or the dead list.
    - timers: one binary min-heap over items with something due: an
      in-flight item's attempt deadline or a queued item's expiry. An item
      has at most one timer, so the heap never outgrows the table; its space
      is reserved at submit, which is why only submit and peer_ready can
      fail.
    - peers: a table by routing id, a liveness list ordered by last_seen
      (now never goes backwards, so a touched peer moves to the tail and the
      head is always the next to expire) and the LRU list of available
      peers. A peer liveness removes is not freed: it moves, as the record
      next_expired() hands out, to the expired list (oldest first), so
      expiring never allocates and can't fail.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "core/dispatcher.h"
#include "core/dlist.h"
#include "core/idtable.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- types ----------------------------------------------------------------- */

#define S_NO_TIMER SIZE_MAX

enum { S_QUEUED = ZKIT__DISPATCHER_QUEUED, S_IN_FLIGHT = ZKIT__DISPATCHER_IN_FLIGHT, S_DEAD };

typedef struct s_peer s_peer_t;

typedef struct {
    uint8_t id[16];
    uint8_t state;
    uint8_t reason; /* S_DEAD: why */
    uint32_t attempts;
    zkit__dlink_t link; /* queue, peer's in-flight list or dead list */
    void *payload;
    s_peer_t *peer; /* S_IN_FLIGHT: where */
    int64_t expires_at;
    int64_t deadline;  /* S_IN_FLIGHT: attempt times out from here on */
    int64_t due;       /* heap key */
    uint64_t due_seq;  /* heap tie-break: equal times fire in set order */
    size_t heap_index; /* S_NO_TIMER when not in the heap */
    uint64_t hash;
} s_item_t;

struct s_peer {
    zkit__dlink_t live_link;  /* liveness order, least recently seen first; once
                            expired, the expired list */
    zkit__dlink_t avail_link; /* LRU order, valid while available */
    zkit__dlink_t items;      /* in flight to it, oldest dispatch first */
    uint64_t hash;
    int64_t last_seen;
    int64_t expired_at; /* on the expired list: the now that removed it */
    uint32_t window;
    uint32_t in_flight;
    bool available;
    bool dying; /* being removed: never available again */
    uint8_t size;
    uint8_t rid[];
};

struct zkit__dispatcher_t {
    zkit__dispatcher_opts_t opts;
    int64_t now;
    int64_t silence_ms; /* heartbeat_ms * liveness; 0 = liveness off */
    zkit__idtable_t items;
    zkit__idtable_t peers;
    zkit__dlink_t retry; /* failed attempts, served first, in failure order */
    zkit__dlink_t fresh; /* never dispatched, in submit order */
    zkit__dlink_t dead;
    zkit__dlink_t live;
    zkit__dlink_t expired; /* peers removed by liveness, not yet drained */
    zkit__dlink_t avail;
    s_item_t **heap;
    size_t heap_size;
    size_t heap_capacity;
    uint64_t due_seq;
    size_t held; /* items allocated: live ones plus dead letters */
    zkit__dispatcher_counters_t counters;
};

typedef struct {
    const void *data;
    size_t size;
} s_rid_t;

/* ---- small helpers --------------------------------------------------------- */

static int64_t s_add(int64_t t, int64_t ms)
{
    return t > ZKIT__DISPATCHER_NEVER - ms ? ZKIT__DISPATCHER_NEVER : t + ms;
}

/* Time never goes backwards inside the dispatcher: the liveness list and
   the timers rely on it.                                                    */
static void s_clock(zkit__dispatcher_t *self, int64_t now_ms)
{
    if (now_ms > self->now)
        self->now = now_ms;
}

static bool s_item_match(const void *entry, const void *key)
{
    return memcmp(((const s_item_t *) entry)->id, key, 16) == 0;
}

static bool s_peer_match(const void *entry, const void *key)
{
    const s_peer_t *peer = entry;
    const s_rid_t *rid = key;
    return peer->size == rid->size && memcmp(peer->rid, rid->data, rid->size) == 0;
}

static s_item_t *s_item_find(const zkit__dispatcher_t *self, const uint8_t id[16], uint64_t *hash)
{
    uint64_t h = zkit__idtable_hash_id(id, self->opts.hash_seed);
    if (hash)
        *hash = h;
    return zkit__idtable_find(&self->items, h, id, s_item_match);
}

static int s_rid_check(const void *peer, size_t size)
{
    if (!peer || size == 0 || size > ZKIT__DISPATCHER_PEER_MAX) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

static s_peer_t *s_peer_find(const zkit__dispatcher_t *self, const void *peer, size_t size,
                             uint64_t *hash)
{
    s_rid_t rid = {peer, size};
    uint64_t h = zkit__idtable_hash_bytes(peer, size, self->opts.hash_seed);
    if (hash)
        *hash = h;
    return zkit__idtable_find(&self->peers, h, &rid, s_peer_match);
}

static void s_payload_free(zkit__dispatcher_t *self, void *payload)
{
    if (self->opts.payload_free)
        self->opts.payload_free(payload, self->opts.payload_free_arg);
}

/* ---- timer heap, ordered by (due, due_seq) ------------------------------- */

static bool s_heap_less(const s_item_t *a, const s_item_t *b)
{
    return a->due < b->due || (a->due == b->due && a->due_seq < b->due_seq);
}

static void s_heap_put(zkit__dispatcher_t *self, size_t index, s_item_t *item)
{
    self->heap[index] = item;
    item->heap_index = index;
}

static void s_heap_up(zkit__dispatcher_t *self, size_t index)
{
    s_item_t *item = self->heap[index];
    while (index > 0) {
        size_t parent = (index - 1) / 2;
        if (!s_heap_less(item, self->heap[parent]))
            break;
        s_heap_put(self, index, self->heap[parent]);
        index = parent;
    }
    s_heap_put(self, index, item);
}

static void s_heap_down(zkit__dispatcher_t *self, size_t index)
{
    s_item_t *item = self->heap[index];
    for (;;) {
        size_t child = 2 * index + 1;
        if (child >= self->heap_size)
            break;
        if (child + 1 < self->heap_size && s_heap_less(self->heap[child + 1], self->heap[child]))
            child++;
        if (!s_heap_less(self->heap[child], item))
            break;
        s_heap_put(self, index, self->heap[child]);
        index = child;
    }
    s_heap_put(self, index, item);
}

static void s_heap_remove(zkit__dispatcher_t *self, s_item_t *item)
{
    size_t index = item->heap_index;
    if (index == S_NO_TIMER)
        return;
    item->heap_index = S_NO_TIMER;
    s_item_t *last = self->heap[--self->heap_size];
    if (index < self->heap_size) {
        s_heap_put(self, index, last);
        s_heap_up(self, index);
        s_heap_down(self, last->heap_index);
    }
}

/* Sets or clears (NEVER) the item's one timer. Never allocates: submit
   reserved a slot for every live item.                                      */
static void s_timer_set(zkit__dispatcher_t *self, s_item_t *item, int64_t due)
{
    s_heap_remove(self, item);
    item->due = due;
    if (due == ZKIT__DISPATCHER_NEVER)
        return;
    assert(self->heap_size < self->heap_capacity);
    item->due_seq = self->due_seq++;
    s_heap_put(self, self->heap_size++, item);
    s_heap_up(self, item->heap_index);
}

static int s_heap_reserve(zkit__dispatcher_t *self, size_t needed)
{
    if (needed <= self->heap_capacity)
        return 0;
    size_t capacity = self->heap_capacity ? self->heap_capacity * 2 : 64;
    while (capacity < needed)
        capacity *= 2;
    s_item_t **heap = realloc(self->heap, capacity * sizeof *heap);
    if (!heap) {
        errno = ENOMEM;
        return -1;
    }
    self->heap = heap;
    self->heap_capacity = capacity;
    return 0;
}

/* Gives memory back after a burst; the heap never holds more than the live
   items, and a failed shrink just keeps the larger array.                   */
static void s_heap_trim(zkit__dispatcher_t *self)
{
    size_t live = self->items.count;
    if (self->heap_capacity <= 64 || live * 4 >= self->heap_capacity)
        return;
    size_t capacity = self->heap_capacity / 2;
    s_item_t **heap = realloc(self->heap, capacity * sizeof *heap);
    if (heap) {
        self->heap = heap;
        self->heap_capacity = capacity;
    }
}

/* ---- peers: availability and liveness -------------------------------------- */

/* A peer is available while it holds less than its window. One that becomes
   available joins the tail of the LRU list; one that stays keeps its place. */
static void s_peer_update(zkit__dispatcher_t *self, s_peer_t *peer)
{
    bool available = !peer->dying && peer->in_flight < peer->window;
    if (available && !peer->available) {
        zkit__dlist_append(&self->avail, &peer->avail_link);
        self->counters.peers_available++;
    }
    else if (!available && peer->available) {
        zkit__dlist_unlink(&peer->avail_link);
        self->counters.peers_available--;
    }
    peer->available = available;
}

static void s_peer_touch(zkit__dispatcher_t *self, s_peer_t *peer)
{
    peer->last_seen = self->now;
    zkit__dlist_move_tail(&self->live, &peer->live_link);
}

static int64_t s_peer_expiry(const zkit__dispatcher_t *self, const s_peer_t *peer)
{
    if (!self->silence_ms)
        return ZKIT__DISPATCHER_NEVER;
    /* Presumed dead when silent for MORE than heartbeat * liveness.         */
    return s_add(s_add(peer->last_seen, self->silence_ms), 1);
}

/* ---- item state transitions -------------------------------------------------- */

static void s_enqueue(zkit__dispatcher_t *self, s_item_t *item, bool retry)
{
    item->state = S_QUEUED;
    item->peer = NULL;
    item->deadline = ZKIT__DISPATCHER_NEVER;
    zkit__dlist_append(retry ? &self->retry : &self->fresh, &item->link);
    self->counters.queued++;
    s_timer_set(self, item, item->expires_at);
}

static void s_dequeue(zkit__dispatcher_t *self, s_item_t *item)
{
    assert(item->state == S_QUEUED);
    zkit__dlist_unlink(&item->link);
    self->counters.queued--;
}

static void s_flight_remove(zkit__dispatcher_t *self, s_item_t *item)
{
    assert(item->state == S_IN_FLIGHT && item->peer);
    s_peer_t *peer = item->peer;
    zkit__dlist_unlink(&item->link);
    peer->in_flight--;
    self->counters.in_flight--;
    item->peer = NULL;
    s_peer_update(self, peer);
}

/* Takes an item out of the table and the timers; the caller has already
   taken it off its list.                                                    */
static void s_untrack(zkit__dispatcher_t *self, s_item_t *item)
{
    s_timer_set(self, item, ZKIT__DISPATCHER_NEVER);
    zkit__idtable_remove(&self->items, item->hash, item);
    s_heap_trim(self);
}

static void s_dead_letter(zkit__dispatcher_t *self, s_item_t *item, zkit__dispatcher_reason_t why)
{
    s_untrack(self, item);
    item->state = S_DEAD;
    item->reason = (uint8_t) why;
    item->peer = NULL;
    zkit__dlist_append(&self->dead, &item->link);
    self->counters.dead_lettered++;
    self->counters.dead_lettered_by[why]++;
    self->counters.dead_pending++;
}

/* An in-flight attempt failed: back to the queue (ahead of fresh items), or
   to the dead letters when it has had all its attempts. A requeued item
   whose expiry has passed is dead-lettered by its timer at the next tick.   */
static void s_fail(zkit__dispatcher_t *self, s_item_t *item, zkit__dispatcher_reason_t why)
{
    s_flight_remove(self, item);
    if (self->opts.max_attempts && item->attempts >= self->opts.max_attempts) {
        s_dead_letter(self, item, why);
        return;
    }
    self->counters.requeued++;
    self->counters.requeued_by[why]++;
    s_enqueue(self, item, true);
}

/* Removes a peer. One that expired becomes a record on the expired list;
   first, while max_expired or more records wait, the oldest from an
   earlier instant are discarded: bounded memory for a caller that never
   drains, nothing lost for one that drains after each instant.             */
static void s_peer_remove(zkit__dispatcher_t *self, s_peer_t *peer, bool expired)
{
    peer->dying = true;
    s_peer_update(self, peer);
    zkit__dlist_unlink(&peer->live_link);
    /* Oldest dispatch first, so the retries keep their original order.      */
    while (!zkit__dlist_empty(&peer->items))
        s_fail(self, ZKIT__DLIST_CONTAINER(peer->items.next, s_item_t, link),
               ZKIT__DISPATCHER_PEER_DIED);
    zkit__idtable_remove(&self->peers, peer->hash, peer);
    self->counters.peers--;
    if (!expired) {
        free(peer);
        return;
    }
    while (self->counters.expired_pending >= self->opts.max_expired &&
           !zkit__dlist_empty(&self->expired)) {
        s_peer_t *old = ZKIT__DLIST_CONTAINER(self->expired.next, s_peer_t, live_link);
        if (old->expired_at >= self->now)
            break;
        zkit__dlist_unlink(&old->live_link);
        free(old);
        self->counters.expired_pending--;
        self->counters.expired_dropped++;
    }
    peer->expired_at = self->now;
    zkit__dlist_append(&self->expired, &peer->live_link);
    self->counters.expired_pending++;
}

/* Everything due at self->now: peers first, so their items are requeued
   before the timers run, then attempt deadlines and expiries.               */
static void s_process_due(zkit__dispatcher_t *self)
{
    while (!zkit__dlist_empty(&self->live)) {
        s_peer_t *peer = ZKIT__DLIST_CONTAINER(self->live.next, s_peer_t, live_link);
        if (s_peer_expiry(self, peer) > self->now)
            break;
        self->counters.peers_expired++;
        s_peer_remove(self, peer, true);
    }
    while (self->heap_size && self->heap[0]->due <= self->now) {
        s_item_t *item = self->heap[0];
        if (item->state == S_IN_FLIGHT)
            s_fail(self, item, ZKIT__DISPATCHER_TIMED_OUT);
        else {
            s_dequeue(self, item);
            s_dead_letter(self, item, ZKIT__DISPATCHER_EXPIRED);
        }
    }
}

/* ---- API -------------------------------------------------------------------- */

zkit__dispatcher_t *zkit__dispatcher_new(const zkit__dispatcher_opts_t *opts)
{
    static const zkit__dispatcher_opts_t defaults = ZKIT__DISPATCHER_OPTS_DEFAULT;
    if (!opts)
        opts = &defaults;
    if (opts->liveness == 0) {
        errno = EINVAL;
        return NULL;
    }
    zkit__dispatcher_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    self->opts = *opts;
    self->now = INT64_MIN;
    self->silence_ms = (int64_t) opts->heartbeat_ms * opts->liveness;
    zkit__idtable_init(&self->items);
    zkit__idtable_init(&self->peers);
    zkit__dlist_init(&self->retry);
    zkit__dlist_init(&self->fresh);
    zkit__dlist_init(&self->dead);
    zkit__dlist_init(&self->live);
    zkit__dlist_init(&self->expired);
    zkit__dlist_init(&self->avail);
    return self;
}

static void s_destroy_item(void *entry, void *arg)
{
    s_item_t *item = entry;
    s_payload_free(arg, item->payload);
    free(item);
}

static void s_destroy_peer(void *entry, void *arg)
{
    (void) arg;
    free(entry);
}

void zkit__dispatcher_destroy(zkit__dispatcher_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zkit__dispatcher_t *self = *self_p;
    zkit__idtable_foreach(&self->items, s_destroy_item, self);
    while (!zkit__dlist_empty(&self->dead)) {
        zkit__dlink_t *link = self->dead.next;
        zkit__dlist_unlink(link);
        s_destroy_item(ZKIT__DLIST_CONTAINER(link, s_item_t, link), self);
    }
    while (!zkit__dlist_empty(&self->expired)) {
        zkit__dlink_t *link = self->expired.next;
        zkit__dlist_unlink(link);
        free(ZKIT__DLIST_CONTAINER(link, s_peer_t, live_link));
    }
    zkit__idtable_foreach(&self->peers, s_destroy_peer, NULL);
    zkit__idtable_fini(&self->items);
    zkit__idtable_fini(&self->peers);
    free(self->heap);
    free(self);
    *self_p = NULL;
}

int zkit__dispatcher_submit(zkit__dispatcher_t *self, const uint8_t id[16], void *payload,
                            int64_t expires_at_ms, int64_t now_ms)
{
    assert(self && id);
    s_clock(self, now_ms);
    uint64_t hash;
    if (s_item_find(self, id, &hash)) {
        errno = EEXIST;
        return -1;
    }
    if (self->opts.max_items && self->held >= self->opts.max_items) {
        errno = ENOBUFS;
        return -1;
    }
    if (s_heap_reserve(self, self->items.count + 1))
        return -1;
    s_item_t *item = calloc(1, sizeof *item);
    if (!item) {
        errno = ENOMEM;
        return -1;
    }
    memcpy(item->id, id, 16);
    item->payload = payload;
    item->expires_at = expires_at_ms;
    item->deadline = ZKIT__DISPATCHER_NEVER;
    item->due = ZKIT__DISPATCHER_NEVER;
    item->heap_index = S_NO_TIMER;
    item->hash = hash;
    zkit__dlist_init(&item->link);
    if (zkit__idtable_insert(&self->items, hash, item)) {
        free(item);
        return -1;
    }
    self->held++;
    self->counters.submitted++;
    if (expires_at_ms <= self->now)
        s_dead_letter(self, item, ZKIT__DISPATCHER_EXPIRED);
    else
        s_enqueue(self, item, false);
    return 0;
}

int zkit__dispatcher_peer_ready(zkit__dispatcher_t *self, const void *peer, size_t peer_size,
                                uint32_t window, int64_t now_ms)
{
    assert(self);
    if (s_rid_check(peer, peer_size))
        return -1;
    s_clock(self, now_ms);
    uint64_t hash;
    s_peer_t *p = s_peer_find(self, peer, peer_size, &hash);
    if (p)
        s_peer_touch(self, p);
    else {
        p = calloc(1, sizeof *p + peer_size);
        if (!p) {
            errno = ENOMEM;
            return -1;
        }
        p->hash = hash;
        p->size = (uint8_t) peer_size;
        memcpy(p->rid, peer, peer_size);
        zkit__dlist_init(&p->items);
        zkit__dlist_init(&p->avail_link);
        if (zkit__idtable_insert(&self->peers, hash, p)) {
            free(p);
            return -1;
        }
        p->last_seen = self->now;
        zkit__dlist_append(&self->live, &p->live_link);
        self->counters.peers++;
    }
    p->window = window;
    s_peer_update(self, p);
    return 0;
}

int zkit__dispatcher_peer_seen(zkit__dispatcher_t *self, const void *peer, size_t peer_size,
                               int64_t now_ms)
{
    assert(self);
    if (s_rid_check(peer, peer_size))
        return -1;
    s_clock(self, now_ms);
    s_peer_t *p = s_peer_find(self, peer, peer_size, NULL);
    if (!p) {
        errno = ENOENT;
        return -1;
    }
    s_peer_touch(self, p);
    return 0;
}

int zkit__dispatcher_peer_gone(zkit__dispatcher_t *self, const void *peer, size_t peer_size,
                               int64_t now_ms)
{
    assert(self);
    if (s_rid_check(peer, peer_size))
        return -1;
    s_clock(self, now_ms);
    s_peer_t *p = s_peer_find(self, peer, peer_size, NULL);
    if (!p) {
        errno = ENOENT;
        return -1;
    }
    self->counters.peers_gone++;
    s_peer_remove(self, p, false);
    return 0;
}

bool zkit__dispatcher_next(zkit__dispatcher_t *self, int64_t now_ms, zkit__dispatcher_job_t *job)
{
    assert(self && job);
    s_clock(self, now_ms);
    s_process_due(self);
    if (zkit__dlist_empty(&self->avail))
        return false;
    zkit__dlink_t *head = !zkit__dlist_empty(&self->retry)   ? self->retry.next
                          : !zkit__dlist_empty(&self->fresh) ? self->fresh.next
                                                             : NULL;
    if (!head)
        return false;
    s_item_t *item = ZKIT__DLIST_CONTAINER(head, s_item_t, link);
    s_peer_t *peer = ZKIT__DLIST_CONTAINER(self->avail.next, s_peer_t, avail_link);
    s_dequeue(self, item);

    item->state = S_IN_FLIGHT;
    item->attempts++;
    item->peer = peer;
    item->deadline = self->opts.attempt_timeout_ms ? s_add(self->now, self->opts.attempt_timeout_ms)
                                                   : ZKIT__DISPATCHER_NEVER;
    s_timer_set(self, item, item->deadline);
    zkit__dlist_append(&peer->items, &item->link);
    peer->in_flight++;
    self->counters.in_flight++;
    self->counters.dispatched++;
    /* LRU: the peer just used goes to the back, if it is still available.  */
    s_peer_update(self, peer);
    if (peer->available)
        zkit__dlist_move_tail(&self->avail, &peer->avail_link);

    job->peer = peer->rid;
    job->peer_size = peer->size;
    job->id = item->id;
    job->payload = item->payload;
    job->attempts = item->attempts;
    job->deadline_ms = item->deadline;
    return true;
}

int zkit__dispatcher_ack(zkit__dispatcher_t *self, const void *peer, size_t peer_size,
                         const uint8_t id[16], int64_t now_ms, void **payload_p)
{
    assert(self && id);
    if (payload_p)
        *payload_p = NULL;
    if (peer && s_rid_check(peer, peer_size))
        return -1;
    s_clock(self, now_ms);
    s_peer_t *p = peer ? s_peer_find(self, peer, peer_size, NULL) : NULL;
    if (p)
        s_peer_touch(self, p);
    s_item_t *item = s_item_find(self, id, NULL);
    if (!item) {
        self->counters.duplicate_acks++;
        errno = ENOENT;
        return -1;
    }
    if (item->state == S_QUEUED) {
        if (item->attempts == 0) {
            self->counters.rejected_acks++;
            errno = EPROTO;
            return -1;
        }
        s_dequeue(self, item);
        self->counters.late_acks++;
    }
    else
        s_flight_remove(self, item);
    self->counters.acked++;
    s_untrack(self, item);
    self->held--;
    void *payload = item->payload;
    free(item);
    if (payload_p)
        *payload_p = payload;
    else
        s_payload_free(self, payload);
    return 0;
}

int zkit__dispatcher_nack(zkit__dispatcher_t *self, const void *peer, size_t peer_size,
                          const uint8_t id[16], int64_t now_ms)
{
    assert(self && id);
    if (peer && s_rid_check(peer, peer_size))
        return -1;
    s_clock(self, now_ms);
    s_peer_t *p = peer ? s_peer_find(self, peer, peer_size, NULL) : NULL;
    if (p)
        s_peer_touch(self, p);
    s_item_t *item = s_item_find(self, id, NULL);
    if (!item || item->state != S_IN_FLIGHT || (peer && item->peer != p)) {
        self->counters.stale_nacks++;
        errno = item ? ESTALE : ENOENT;
        return -1;
    }
    self->counters.nacked++;
    s_fail(self, item, ZKIT__DISPATCHER_NACKED);
    return 0;
}

int64_t zkit__dispatcher_tick(zkit__dispatcher_t *self, int64_t now_ms)
{
    assert(self);
    s_clock(self, now_ms);
    s_process_due(self);
    return zkit__dispatcher_next_due(self);
}

int64_t zkit__dispatcher_next_due(const zkit__dispatcher_t *self)
{
    assert(self);
    int64_t due = self->heap_size ? self->heap[0]->due : ZKIT__DISPATCHER_NEVER;
    if (!zkit__dlist_empty(&self->live)) {
        int64_t expiry =
            s_peer_expiry(self, ZKIT__DLIST_CONTAINER(self->live.next, s_peer_t, live_link));
        if (expiry < due)
            due = expiry;
    }
    return due;
}

bool zkit__dispatcher_next_dead(zkit__dispatcher_t *self, zkit__dispatcher_dead_t *dead)
{
    assert(self && dead);
    if (zkit__dlist_empty(&self->dead))
        return false;
    s_item_t *item = ZKIT__DLIST_CONTAINER(self->dead.next, s_item_t, link);
    zkit__dlist_unlink(&item->link);
    memcpy(dead->id, item->id, 16);
    dead->payload = item->payload;
    dead->attempts = item->attempts;
    dead->reason = (zkit__dispatcher_reason_t) item->reason;
    self->counters.dead_pending--;
    self->held--;
    free(item);
    return true;
}

bool zkit__dispatcher_next_expired(zkit__dispatcher_t *self, zkit__dispatcher_expired_t *expired)
{
    assert(self && expired);
    if (zkit__dlist_empty(&self->expired))
        return false;
    s_peer_t *peer = ZKIT__DLIST_CONTAINER(self->expired.next, s_peer_t, live_link);
    zkit__dlist_unlink(&peer->live_link);
    memcpy(expired->peer, peer->rid, peer->size);
    expired->peer_size = peer->size;
    expired->last_seen_ms = peer->last_seen;
    expired->expired_ms = peer->expired_at;
    expired->registered = s_peer_find(self, peer->rid, peer->size, NULL) != NULL;
    self->counters.expired_pending--;
    free(peer);
    return true;
}

int zkit__dispatcher_find(const zkit__dispatcher_t *self, const uint8_t id[16],
                          zkit__dispatcher_item_info_t *info)
{
    assert(self && id && info);
    const s_item_t *item = s_item_find(self, id, NULL);
    if (!item) {
        errno = ENOENT;
        return -1;
    }
    info->state = (zkit__dispatcher_state_t) item->state;
    info->attempts = item->attempts;
    info->peer = item->peer ? item->peer->rid : NULL;
    info->peer_size = item->peer ? item->peer->size : 0;
    info->deadline_ms = item->deadline;
    info->expires_at_ms = item->expires_at;
    info->payload = item->payload;
    return 0;
}

int zkit__dispatcher_peer_info(const zkit__dispatcher_t *self, const void *peer, size_t peer_size,
                               zkit__dispatcher_peer_info_t *info)
{
    assert(self && info);
    if (s_rid_check(peer, peer_size))
        return -1;
    const s_peer_t *p = s_peer_find(self, peer, peer_size, NULL);
    if (!p) {
        errno = ENOENT;
        return -1;
    }
    info->window = p->window;
    info->in_flight = p->in_flight;
    info->last_seen_ms = p->last_seen;
    info->expires_at_ms = s_peer_expiry(self, p);
    return 0;
}

const zkit__dispatcher_counters_t *zkit__dispatcher_counters(const zkit__dispatcher_t *self)
{
    assert(self);
    return &self->counters;
}

const char *zkit__dispatcher_reason_name(zkit__dispatcher_reason_t reason)
{
    switch (reason) {
    case ZKIT__DISPATCHER_NACKED: return "NACKED";
    case ZKIT__DISPATCHER_PEER_DIED: return "PEER_DIED";
    case ZKIT__DISPATCHER_TIMED_OUT: return "TIMED_OUT";
    case ZKIT__DISPATCHER_EXPIRED: return "EXPIRED";
    default: return "?";
    }
}
