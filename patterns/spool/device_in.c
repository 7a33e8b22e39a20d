/*  device_in.c: the spool device's producer side. PUT and fire-and-forget
    envelopes in, records appended, one sync per burst (group commit), then
    CONFIRMED for every PUT of the burst, batched per producer. A resent PUT
    whose id is in the dedup window is confirmed without a second record.

    Under the BLOCK policy a PUT that finds the spool full is held, with
    everything after it, and the producer sockets are not read (producers
    then wait in libzmq's queues): held messages are retried as acks free
    room, and those held longer than block_timeout_ms are rejected FULL.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "spool/device_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* DONE: stored, confirmed, rejected or dropped; FULL: nothing done (BLOCK);
   BAD: not an envelope, nothing done (the caller counts it for its socket). */
typedef enum { S_DONE, S_FULL, S_BAD } s_store_t;

/* ---- the dedup window ------------------------------------------------------------ */

static bool s_seen_match(const void *entry, const void *key)
{
    return memcmp(((const zkit__sdev_seen_t *) entry)->id, key, ZKIT_ID_SIZE) == 0;
}

static zkit__sdev_seen_t *s_seen_find(zkit__sdev_t *self, const uint8_t *id)
{
    if (!self->seen)
        return NULL;
    uint64_t hash = zkit__idtable_hash_id(id, self->hash_seed);
    return zkit__idtable_find(&self->seen_table, hash, id, s_seen_match);
}

/* Remembers that id was stored at seq, forgetting the oldest entry when the
   window is full. Out of memory only makes the window forget this id.      */
static void s_seen_add(zkit__sdev_t *self, const uint8_t *id, uint64_t seq)
{
    if (!self->seen || s_seen_find(self, id))
        return;
    zkit__sdev_seen_t *e = &self->seen[self->seen_next];
    if (e->used)
        zkit__idtable_remove(&self->seen_table, e->hash, e);
    memcpy(e->id, id, ZKIT_ID_SIZE);
    e->seq = seq;
    e->hash = zkit__idtable_hash_id(id, self->hash_seed);
    e->used = zkit__idtable_insert(&self->seen_table, e->hash, e) == 0;
    self->seen_next = (self->seen_next + 1) % self->opts.dedup_window;
}

int zkit__sdev_in_start(zkit__sdev_t *self)
{
    zkit__idtable_init(&self->seen_table);
    zkit_spool_stats_t st;
    zkit_spool_stats(self->spool, &st);
    /* Everything recovery kept is on disk: a resent PUT of it may be
       confirmed.                                                            */
    self->durable_seq = st.next_seq - 1;
    uint32_t window = self->opts.dedup_window;
    if (!window)
        return 0;
    self->seen = calloc(window, sizeof *self->seen);
    if (!self->seen) {
        errno = ENOMEM;
        return -1;
    }
    /* Rebuild the window from the newest records, so that a producer
       resending what a killed device stored is still recognised.          */
    uint64_t from = st.next_seq > window ? st.next_seq - window : 1;
    zkit_spool_reader_t *reader = zkit_spool_reader_new(self->spool, from, 0);
    if (!reader)
        return -1;
    zkit_spool_record_t rec;
    int rc;
    while ((rc = zkit_spool_reader_next(reader, &rec)) == 1)
        if (zkit_envelope_decode_bytes(self->env, rec.data, rec.size) == 0)
            s_seen_add(self, zkit_envelope_id(self->env), rec.seq);
    int err = errno;
    zkit_envelope_reset(self->env);
    zkit_spool_reader_destroy(&reader);
    if (rc < 0) {
        zsys_error("ZKIT-SPOOL-DEVICE-OPEN %s: cannot read the newest records: %s", self->name,
                   zkit_strerror(err));
        errno = err;
        return -1;
    }
    return 0;
}

void zkit__sdev_in_stop(zkit__sdev_t *self)
{
    zkit__idtable_fini(&self->seen_table);
    free(self->seen);
    self->seen = NULL;
    for (size_t i = 0; i < self->producers_cap; i++)
        free(self->producers[i].ids);
    free(self->producers);
    self->producers = NULL;
    self->producers_cap = self->nproducers = 0;
    while (self->held) {
        zkit__sdev_held_t *h = self->held;
        self->held = h->next;
        free(h);
    }
    self->held_tail = NULL;
}

/* ---- replies ------------------------------------------------------------------------ */

static void s_reject(zkit__sdev_t *self, const uint8_t *rid, size_t rid_size, const uint8_t *id,
                     zkit_spool_device_reject_t why, const char *text)
{
    self->stats.rejected[why]++;
    char reason[ZKIT__SDEV_REASON_MAX];
    snprintf(reason, sizeof reason, "%s: %s", zkit_spool_device_reject_name(why), text);
    const void *data[3] = {"REJECTED", id, reason};
    size_t size[3] = {8, ZKIT_ID_SIZE, strlen(reason)};
    if (zkit__sdev_send(self->in, rid, rid_size, data, size, 3, &self->traffic_in))
        self->stats.unroutable++;
}

/* Queues id for a CONFIRMED to its producer at the end of the burst.       */
static void s_confirm_later(zkit__sdev_t *self, const uint8_t *rid, size_t rid_size,
                            const uint8_t *id)
{
    zkit__sdev_producer_t *p = NULL;
    for (size_t i = 0; i < self->nproducers && !p; i++)
        if (self->producers[i].rid_size == rid_size &&
            memcmp(self->producers[i].rid, rid, rid_size) == 0)
            p = &self->producers[i];
    if (!p) {
        if (self->nproducers == self->producers_cap) {
            size_t cap = self->producers_cap ? self->producers_cap * 2 : 8;
            zkit__sdev_producer_t *grown = realloc(self->producers, cap * sizeof *grown);
            if (!grown)
                goto oom;
            memset(grown + self->producers_cap, 0, (cap - self->producers_cap) * sizeof *grown);
            self->producers = grown;
            self->producers_cap = cap;
        }
        p = &self->producers[self->nproducers++];
        memcpy(p->rid, rid, rid_size);
        p->rid_size = rid_size;
        p->count = 0;
    }
    if (p->count == p->capacity) {
        size_t cap = p->capacity ? p->capacity * 2 : 64;
        uint8_t *grown = realloc(p->ids, cap * ZKIT_ID_SIZE);
        if (!grown)
            goto oom;
        p->ids = grown;
        p->capacity = cap;
    }
    memcpy(p->ids + p->count * ZKIT_ID_SIZE, id, ZKIT_ID_SIZE);
    p->count++;
    return;
oom:
    /* Not confirmed: the producer resends it, and the resend is confirmed
       from the dedup window.                                                */
    self->stats.unroutable++;
}

/* ---- storing ------------------------------------------------------------------------ */

static zkit_spool_device_reject_t s_reason(int err, char *text, size_t size, zkit__sdev_t *self)
{
    switch (err) {
    case ZKIT_EFULL:
        snprintf(text, size, "the spool is full (max-bytes %" PRIu64 ")",
                 self->opts.spool.max_bytes);
        return ZKIT_SPOOL_DEVICE_FULL;
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        snprintf(text, size, "no space left for the spool: %s; nothing was stored", strerror(err));
        return ZKIT_SPOOL_DEVICE_NOSPACE;
    case ZKIT_ETOOBIG:
        snprintf(text, size, "the envelope is larger than the spool's record limit (%u bytes)",
                 self->opts.spool.max_record);
        return ZKIT_SPOOL_DEVICE_TOOBIG;
    case ENOMEM: snprintf(text, size, "out of memory"); return ZKIT_SPOOL_DEVICE_ERROR;
    default: {
        zkit_spool_stats_t st;
        zkit_spool_stats(self->spool, &st);
        snprintf(text, size, "the spool failed (%s) and refuses writes until the device restarts",
                 zkit_strerror(st.failed ? st.failed_errno : err));
        return ZKIT_SPOOL_DEVICE_FAILED;
    }
    }
}

/* Stores one envelope: a PUT when rid_size > 0, else fire-and-forget.
   Returns S_BAD when data is not an envelope, S_FULL (nothing done) when
   the spool is full and the policy is BLOCK; S_DONE otherwise (stored,
   confirmed, rejected or dropped).                                          */
static s_store_t s_store(zkit__sdev_t *self, const uint8_t *rid, size_t rid_size, const void *data,
                         size_t size, int64_t now)
{
    if (zkit_envelope_decode_bytes(self->env, data, size)) {
        zkit_envelope_reset(self->env);
        return S_BAD;
    }
    uint8_t id[ZKIT_ID_SIZE];
    memcpy(id, zkit_envelope_id(self->env), ZKIT_ID_SIZE);
    zkit_envelope_reset(self->env);

    zkit__sdev_seen_t *seen = s_seen_find(self, id);
    if (seen) {
        /* Stored before: durable, or in this burst (confirmed after its
           sync); otherwise its sync failed and the spool with it.          */
        self->stats.duplicates++;
        if (!rid_size)
            return S_DONE;
        if (seen->seq <= self->durable_seq || (self->burst_first && seen->seq >= self->burst_first))
            s_confirm_later(self, rid, rid_size, id);
        else
            s_reject(self, rid, rid_size, id, ZKIT_SPOOL_DEVICE_FAILED,
                     "it was written but the sync after it failed; resend it to a restarted "
                     "device");
        return S_DONE;
    }
    uint64_t seq;
    if (zkit_spool_append_nosync(self->spool, data, size, &seq) == 0) {
        self->stats.stored++;
        self->stats.stored_bytes += size;
        s_seen_add(self, id, seq);
        if (!self->burst_first)
            self->burst_first = seq;
        self->burst_last = seq;
        if (self->opts.spool.fsync != ZKIT_SPOOL_FSYNC_ALWAYS)
            self->durable_seq = seq; /* stored as the policy promises */
        if (rid_size)
            s_confirm_later(self, rid, rid_size, id);
        return S_DONE;
    }
    int err = errno;
    if (err == ZKIT_EFULL && self->on_full == ZKIT_SPOOL_FULL_BLOCK)
        return S_FULL;
    char text[160];
    zkit_spool_device_reject_t why = s_reason(err, text, sizeof text, self);
    if (rid_size)
        s_reject(self, rid, rid_size, id, why, text);
    else {
        self->stats.push_dropped++;
        uint64_t suppressed = 0;
        if (zkit__ratelimit(&self->push_log, now, &suppressed))
            zsys_warning("ZKIT-SPOOL-DEVICE-DROPPED %s: a fire-and-forget message was not "
                         "stored: %s: %s (%" PRIu64 " more since the last line)",
                         self->name, zkit_spool_device_reject_name(why), text, suppressed);
    }
    return S_DONE;
}

static void s_hold(zkit__sdev_t *self, const uint8_t *rid, size_t rid_size, const void *data,
                   size_t size, int64_t now)
{
    zkit__sdev_held_t *h = malloc(sizeof *h + size);
    if (!h) {
        /* Not held, not confirmed: the producer resends it.                */
        self->stats.rejected[ZKIT_SPOOL_DEVICE_ERROR]++;
        return;
    }
    if (!self->held)
        self->stats.blocked++;
    h->next = NULL;
    h->since_ms = now;
    h->rid_size = rid_size;
    memcpy(h->rid, rid, rid_size);
    h->size = size;
    memcpy(h->data, data, size);
    if (self->held_tail)
        self->held_tail->next = h;
    else
        self->held = h;
    self->held_tail = h;
}

/* ---- bursts ------------------------------------------------------------------------- */

static void s_burst_begin(zkit__sdev_t *self)
{
    self->burst_first = self->burst_last = 0;
    self->nproducers = 0;
}

/*  Makes the burst durable with one sync, then confirms it. A failed sync
    fails the spool: every PUT of the burst is rejected instead (it may or
    may not be on disk; a resend to a restarted device is de-duplicated). */
static void s_burst_end(zkit__sdev_t *self)
{
    int err = 0;
    if (self->burst_first && self->opts.spool.fsync == ZKIT_SPOOL_FSYNC_ALWAYS) {
        if (zkit_spool_sync(self->spool) == 0) {
            self->durable_seq = self->burst_last;
            self->stats.group_commits++;
        }
        else
            err = errno;
    }
    else if (self->burst_first)
        self->stats.group_commits++;
    for (size_t i = 0; i < self->nproducers; i++) {
        zkit__sdev_producer_t *p = &self->producers[i];
        if (err) {
            char text[160];
            zkit_spool_device_reject_t why = s_reason(err, text, sizeof text, self);
            for (size_t k = 0; k < p->count; k++)
                s_reject(self, p->rid, p->rid_size, p->ids + k * ZKIT_ID_SIZE, why, text);
            continue;
        }
        for (size_t k = 0; k < p->count; k += ZKIT__SDEV_IDS_MAX) {
            size_t n = p->count - k < ZKIT__SDEV_IDS_MAX ? p->count - k : ZKIT__SDEV_IDS_MAX;
            const void *data[2] = {"CONFIRMED", p->ids + k * ZKIT_ID_SIZE};
            size_t size[2] = {9, n * ZKIT_ID_SIZE};
            if (zkit__sdev_send(self->in, p->rid, p->rid_size, data, size, 2, &self->traffic_in))
                self->stats.unroutable += n;
            else
                self->stats.confirmed += n;
        }
    }
    self->nproducers = 0;
    if (self->burst_first)
        zkit__sdev_out_wake(self);
    self->burst_first = self->burst_last = 0;
}

/* A message from the ROUTER: [rid][PUT][envelope] or [rid][envelope].      */
static void s_in_message(zkit__sdev_t *self, zkit__sdev_msg_t *msg, int64_t now)
{
    if (msg->count < 2 || msg->dropped) {
        zkit__sdev_bad(self, ZKIT__SDEV_IN, ZKIT_SPOOL_DEVICE_BAD_FRAMES, now);
        return;
    }
    const uint8_t *rid = zmq_msg_data(&msg->part[0]);
    size_t rid_size = zmq_msg_size(&msg->part[0]);
    zmq_msg_t *first = &msg->part[1];
    const uint8_t *head = zmq_msg_data(first);
    /* An envelope starts with an array header, a command with 'A'-'Z'.    */
    bool envelope =
        zmq_msg_size(first) > 0 && ((head[0] & 0xf0) == 0x90 || head[0] == 0xdc || head[0] == 0xdd);
    zmq_msg_t *body = NULL;
    if (envelope && msg->count == 2) {
        rid_size = 0;
        body = first;
    }
    else if (zkit__sdev_is(first, "PUT")) {
        if (msg->count != 3) {
            zkit__sdev_bad(self, ZKIT__SDEV_IN, ZKIT_SPOOL_DEVICE_BAD_FRAMES, now);
            return;
        }
        body = &msg->part[2];
    }
    else {
        zkit__sdev_bad(self, ZKIT__SDEV_IN,
                       envelope ? ZKIT_SPOOL_DEVICE_BAD_FRAMES : ZKIT_SPOOL_DEVICE_BAD_COMMAND,
                       now);
        return;
    }
    const void *data = zmq_msg_data(body);
    size_t size = zmq_msg_size(body);
    s_store_t done = s_store(self, rid, rid_size, data, size, now);
    if (done == S_BAD) {
        zkit__sdev_bad(self, ZKIT__SDEV_IN, ZKIT_SPOOL_DEVICE_BAD_ENVELOPE, now);
        return;
    }
    if (rid_size)
        self->stats.puts++;
    else
        self->stats.pushes++;
    if (done == S_FULL)
        s_hold(self, rid, rid_size, data, size, now);
}

static void s_push_message(zkit__sdev_t *self, zkit__sdev_msg_t *msg, int64_t now)
{
    if (msg->count != 1 || msg->dropped) {
        zkit__sdev_bad(self, ZKIT__SDEV_PUSH, ZKIT_SPOOL_DEVICE_BAD_FRAMES, now);
        return;
    }
    const void *data = zmq_msg_data(&msg->part[0]);
    size_t size = zmq_msg_size(&msg->part[0]);
    s_store_t done = s_store(self, NULL, 0, data, size, now);
    if (done == S_BAD) {
        zkit__sdev_bad(self, ZKIT__SDEV_PUSH, ZKIT_SPOOL_DEVICE_BAD_ENVELOPE, now);
        return;
    }
    self->stats.pushes++;
    if (done == S_FULL)
        s_hold(self, NULL, 0, data, size, now);
}

void zkit__sdev_in_burst(zkit__sdev_t *self, int64_t now)
{
    s_burst_begin(self);
    bool more_in = true, more_push = self->push != NULL;
    uint32_t n = 0;
    while (n < self->opts.burst && (more_in || more_push) && !self->held) {
        zkit__sdev_msg_t msg;
        if (more_in) {
            if (zkit__sdev_recv(self->in, &msg, &self->traffic_in))
                more_in = false;
            else {
                s_in_message(self, &msg, now);
                zkit__sdev_msg_close(&msg);
                n++;
            }
        }
        if (more_push && !self->held) {
            if (zkit__sdev_recv(self->push, &msg, &self->traffic_push))
                more_push = false;
            else {
                s_push_message(self, &msg, now);
                zkit__sdev_msg_close(&msg);
                n++;
            }
        }
    }
    s_burst_end(self);
}

void zkit__sdev_in_retry(zkit__sdev_t *self, int64_t now)
{
    s_burst_begin(self);
    int32_t wait = self->opts.spool.block_timeout_ms;
    while (self->held) {
        zkit__sdev_held_t *h = self->held;
        if (s_store(self, h->rid, h->rid_size, h->data, h->size, now) == S_FULL) {
            if (wait < 0 || now - h->since_ms < wait)
                break;
            char text[160];
            snprintf(text, sizeof text,
                     "the spool is full (max-bytes %" PRIu64 "): waited %d ms for room",
                     self->opts.spool.max_bytes, (int) wait);
            if (h->rid_size) {
                uint8_t id[ZKIT_ID_SIZE] = {0};
                if (zkit_envelope_decode_bytes(self->env, h->data, h->size) == 0)
                    memcpy(id, zkit_envelope_id(self->env), ZKIT_ID_SIZE);
                zkit_envelope_reset(self->env);
                s_reject(self, h->rid, h->rid_size, id, ZKIT_SPOOL_DEVICE_FULL, text);
            }
            else
                self->stats.push_dropped++;
        }
        self->held = h->next;
        if (!self->held)
            self->held_tail = NULL;
        free(h);
    }
    s_burst_end(self);
}
