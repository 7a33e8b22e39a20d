/*  device_out.c: the spool device's consumer side, built on the dispatcher
    core (patterns/core/dispatcher.h): per-consumer credit, heartbeats and
    liveness, an in-flight table keyed by envelope id, requeue when a
    consumer dies or gives a record back, attempts, dead letters.

    Records come from a spool reader that starts at the cursor and skips
    what is acknowledged, so after a restart everything stored and not
    acknowledged is delivered again. At most prefetch records are in memory
    (queued or in flight); the reader moves on as acks make room. A record
    leaves the spool (zkit_spool_ack) only when a consumer acknowledged it,
    or when it is dead-lettered.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "spool/device_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* After a read error, the reader is tried again this much later.           */
#define S_READ_RETRY_MS 1000

typedef struct {
    const void *data;
    size_t size;
} s_rid_t;

static void s_record_free(void *payload, void *arg)
{
    (void) arg;
    free(payload);
}

/* ---- consumers ----------------------------------------------------------------- */

static bool s_consumer_match(const void *entry, const void *key)
{
    const zkit__sdev_consumer_t *c = entry;
    const s_rid_t *rid = key;
    return c->size == rid->size && memcmp(c->rid, rid->data, rid->size) == 0;
}

static zkit__sdev_consumer_t *s_consumer_find(zkit__sdev_t *self, const void *rid, size_t size)
{
    s_rid_t key = {rid, size};
    uint64_t hash = zkit__idtable_hash_bytes(rid, size, self->hash_seed);
    return zkit__idtable_find(&self->consumers, hash, &key, s_consumer_match);
}

static void s_consumer_remove(zkit__sdev_t *self, zkit__sdev_consumer_t *c, const char *why)
{
    if (self->opts.verbose) {
        char hex[33];
        uint8_t id[ZKIT_ID_SIZE] = {0};
        memcpy(id, c->rid, c->size < ZKIT_ID_SIZE ? c->size : ZKIT_ID_SIZE);
        zsys_info("ZKIT-SPOOL-DEVICE-CONSUMER %s: consumer %s %s", self->name,
                  zkit_id_to_hex(id, hex), why);
    }
    zkit__idtable_remove(&self->consumers, c->hash, c);
    zkit__dlist_unlink(&c->link);
    free(c);
    self->stats.consumers--;
}

/* The consumer went away: what it held goes back to the queue at once.
   rid must not point into the consumer.                                     */
static void s_consumer_gone(zkit__sdev_t *self, const void *rid, size_t size, int64_t now,
                            const char *why)
{
    zkit__dispatcher_peer_gone(self->dispatcher, rid, size, now);
    zkit__sdev_consumer_t *c = s_consumer_find(self, rid, size);
    if (c)
        s_consumer_remove(self, c, why);
    self->stats.consumers_gone++;
}

static void s_consumer_ready(zkit__sdev_t *self, const void *rid, size_t size, uint32_t credit,
                             int64_t now)
{
    /* A repeated READY refreshes the credit and takes nothing back, as in
       the pipeline protocol: the consumer may still ack what it holds.    */
    zkit__sdev_consumer_t *c = s_consumer_find(self, rid, size);
    if (c) {
        zkit__dispatcher_peer_ready(self->dispatcher, rid, size, credit, now);
        return;
    }
    c = calloc(1, sizeof *c + size);
    if (!c)
        return;
    c->hash = zkit__idtable_hash_bytes(rid, size, self->hash_seed);
    c->size = (uint8_t) size;
    memcpy(c->rid, rid, size);
    if (zkit__dispatcher_peer_ready(self->dispatcher, rid, size, credit, now) ||
        zkit__idtable_insert(&self->consumers, c->hash, c)) {
        zkit__dispatcher_peer_gone(self->dispatcher, rid, size, now);
        zsys_error("ZKIT-SPOOL-DEVICE-NOMEM %s: cannot register a consumer", self->name);
        free(c);
        return;
    }
    zkit__dlist_append(&self->list, &c->link);
    self->stats.consumers++;
    self->stats.consumers_ready++;
    if (self->opts.verbose)
        zsys_info("ZKIT-SPOOL-DEVICE-CONSUMER %s: a consumer is ready (credit %u)", self->name,
                  credit);
}

/* Drops the consumers the dispatcher presumed dead since the last drain
   (the dispatcher hands them out: no scan). Called right after every
   next() and tick(), so none can have said READY again in between; one
   that had would keep its new registration.                               */
static void s_consumers_expired(zkit__sdev_t *self)
{
    zkit__dispatcher_expired_t gone;
    while (zkit__dispatcher_next_expired(self->dispatcher, &gone)) {
        self->stats.consumers_expired++;
        zkit__sdev_consumer_t *c =
            gone.registered ? NULL : s_consumer_find(self, gone.peer, gone.peer_size);
        if (c)
            s_consumer_remove(self, c, "presumed dead (no heartbeat)");
    }
}

static int s_command(zkit__sdev_t *self, const void *rid, size_t size, const char *cmd)
{
    const void *data[1] = {cmd};
    size_t len[1] = {strlen(cmd)};
    return zkit__sdev_send(self->out, rid, size, data, len, 1, &self->traffic_out);
}

static void s_heartbeat(zkit__sdev_t *self, int64_t now)
{
    /* s_consumer_gone may free the consumer at hand: step on before.      */
    zkit__dlink_t *link = self->list.next;
    while (link != &self->list) {
        zkit__sdev_consumer_t *c = ZKIT__DLIST_CONTAINER(link, zkit__sdev_consumer_t, link);
        link = link->next;
        if (s_command(self, c->rid, c->size, "HEARTBEAT") == -1 && errno == EHOSTUNREACH) {
            uint8_t rid[ZKIT__DISPATCHER_PEER_MAX];
            size_t size = c->size;
            memcpy(rid, c->rid, size);
            s_consumer_gone(self, rid, size, now, "disconnected");
        }
    }
}

/* ---- input ------------------------------------------------------------------------ */

/* An integer field: 1 to 5 digits, no leading zero, in [1, max].           */
static bool s_parse_credit(const zmq_msg_t *frame, uint32_t *out)
{
    const char *p = zmq_msg_data((zmq_msg_t *) frame);
    size_t n = zmq_msg_size((zmq_msg_t *) frame);
    if (n < 1 || n > 5 || p[0] == '0')
        return false;
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (uint32_t) (p[i] - '0');
    }
    if (v > ZKIT__SDEV_CREDIT_MAX)
        return false;
    *out = v;
    return true;
}

static bool s_id_list(const zmq_msg_t *frame)
{
    size_t n = zmq_msg_size((zmq_msg_t *) frame);
    return n >= ZKIT_ID_SIZE && n % ZKIT_ID_SIZE == 0 && n <= ZKIT__SDEV_IDS_MAX * ZKIT_ID_SIZE;
}

static void s_ack(zkit__sdev_t *self, const void *rid, size_t rid_size, const zmq_msg_t *ids,
                  int64_t now)
{
    const uint8_t *id = zmq_msg_data((zmq_msg_t *) ids);
    size_t n = zmq_msg_size((zmq_msg_t *) ids) / ZKIT_ID_SIZE;
    for (size_t i = 0; i < n; i++, id += ZKIT_ID_SIZE) {
        void *payload = NULL;
        if (zkit__dispatcher_ack(self->dispatcher, rid, rid_size, id, now, &payload)) {
            /* EPROTO: held but never delivered by this device. A consumer
               of the device before a restart processed it: retire it now,
               and skip it when its turn to be delivered comes.           */
            zkit__dispatcher_item_info_t info;
            if (errno == EPROTO && zkit__dispatcher_find(self->dispatcher, id, &info) == 0) {
                zkit__sdev_record_t *r = info.payload;
                if (!r->retired) {
                    r->retired = true;
                    zkit_spool_ack(self->spool, r->seq);
                    self->stats.acked++;
                }
            }
            else
                self->stats.duplicate_acks++;
            continue;
        }
        zkit__sdev_record_t *r = payload;
        /* A failed cursor write keeps the ack in memory; it is written
           later (and redelivered after a crash before that).              */
        zkit_spool_ack(self->spool, r->seq);
        free(r);
        self->stats.acked++;
    }
}

void zkit__sdev_out_message(zkit__sdev_t *self, zkit__sdev_msg_t *msg, int64_t now)
{
    if (msg->count < 2 || msg->dropped) {
        zkit__sdev_bad(self, ZKIT__SDEV_OUT, ZKIT_SPOOL_DEVICE_BAD_FRAMES, now);
        return;
    }
    const void *rid = zmq_msg_data(&msg->part[0]);
    size_t rid_size = zmq_msg_size(&msg->part[0]);
    zmq_msg_t *cmd = &msg->part[1];
    size_t fields = msg->count - 2;
    bool known = s_consumer_find(self, rid, rid_size) != NULL;
    if (zkit__sdev_is(cmd, "READY")) {
        uint32_t credit;
        if (fields != 1)
            zkit__sdev_bad(self, ZKIT__SDEV_OUT, ZKIT_SPOOL_DEVICE_BAD_FRAMES, now);
        else if (!s_parse_credit(&msg->part[2], &credit))
            zkit__sdev_bad(self, ZKIT__SDEV_OUT, ZKIT_SPOOL_DEVICE_BAD_FIELD, now);
        else
            s_consumer_ready(self, rid, rid_size, credit, now);
        return;
    }
    if (zkit__sdev_is(cmd, "HEARTBEAT")) {
        if (fields != 0)
            zkit__sdev_bad(self, ZKIT__SDEV_OUT, ZKIT_SPOOL_DEVICE_BAD_FRAMES, now);
        else if (zkit__dispatcher_peer_seen(self->dispatcher, rid, rid_size, now)) {
            self->stats.unknown_consumer++;
            s_command(self, rid, rid_size, "DISCONNECT");
        }
        return;
    }
    if (zkit__sdev_is(cmd, "ACK")) {
        if (fields != 1)
            zkit__sdev_bad(self, ZKIT__SDEV_OUT, ZKIT_SPOOL_DEVICE_BAD_FRAMES, now);
        else if (!s_id_list(&msg->part[2]))
            zkit__sdev_bad(self, ZKIT__SDEV_OUT, ZKIT_SPOOL_DEVICE_BAD_FIELD, now);
        else {
            /* An ack retires its record whoever sends it: the work was done.
               A stranger is told to register again.                         */
            s_ack(self, rid, rid_size, &msg->part[2], now);
            if (!known) {
                self->stats.unknown_consumer++;
                s_command(self, rid, rid_size, "DISCONNECT");
            }
        }
        return;
    }
    if (zkit__sdev_is(cmd, "NACK")) {
        if (fields != 1)
            zkit__sdev_bad(self, ZKIT__SDEV_OUT, ZKIT_SPOOL_DEVICE_BAD_FRAMES, now);
        else if (zmq_msg_size(&msg->part[2]) != ZKIT_ID_SIZE)
            zkit__sdev_bad(self, ZKIT__SDEV_OUT, ZKIT_SPOOL_DEVICE_BAD_FIELD, now);
        else if (zkit__dispatcher_nack(self->dispatcher, rid, rid_size, zmq_msg_data(&msg->part[2]),
                                       now) == 0)
            self->stats.nacks++;
        else if (!known)
            self->stats.unknown_consumer++;
        return;
    }
    if (zkit__sdev_is(cmd, "DISCONNECT")) {
        if (fields != 0)
            zkit__sdev_bad(self, ZKIT__SDEV_OUT, ZKIT_SPOOL_DEVICE_BAD_FRAMES, now);
        else if (known)
            s_consumer_gone(self, rid, rid_size, now, "said DISCONNECT");
        else
            self->stats.unknown_consumer++;
        return;
    }
    zkit__sdev_bad(self, ZKIT__SDEV_OUT, ZKIT_SPOOL_DEVICE_BAD_COMMAND, now);
}

/* ---- records in ---------------------------------------------------------------------- */

/* The dispatcher time at which a record expires: its ts + ttl (wall clock,
   converted to the monotonic clock), or never. env holds its envelope.    */
static int64_t s_expiry(zkit__sdev_t *self, int64_t now)
{
    if (!zkit_envelope_has(self->env, ZKIT_META_TTL))
        return ZKIT__DISPATCHER_NEVER;
    uint64_t ts = zkit_envelope_ts(self->env);
    uint64_t ttl = zkit_envelope_ttl(self->env);
    uint64_t now_us = zkit_clock_usec();
    uint64_t end_us = ttl > (UINT64_MAX - ts) / 1000 ? UINT64_MAX : ts + ttl * 1000;
    if (end_us <= now_us)
        return now;
    uint64_t left_ms = (end_us - now_us) / 1000;
    return left_ms >= (uint64_t) (ZKIT__DISPATCHER_NEVER - now) ? ZKIT__DISPATCHER_NEVER
                                                                : now + (int64_t) left_ms;
}

/* Hands one record to the dispatcher. Returns 0, or -1 when it could not be
   held now (the reader is then set back to it).                             */
static int s_submit(zkit__sdev_t *self, const zkit_spool_record_t *rec, int64_t now)
{
    if (zkit_envelope_decode_bytes(self->env, rec->data, rec->size)) {
        /* Not an envelope (a foreign writer): it can never be delivered.   */
        zsys_error("ZKIT-SPOOL-DEVICE-BADRECORD %s: seq %" PRIu64 " is not an envelope (%s); "
                   "retired without delivery",
                   self->name, rec->seq, zkit_envelope_error_detail(self->env));
        zkit_spool_ack(self->spool, rec->seq);
        self->stats.dead_letters++;
        return 0;
    }
    uint8_t id[ZKIT_ID_SIZE];
    memcpy(id, zkit_envelope_id(self->env), ZKIT_ID_SIZE);
    int64_t expires = s_expiry(self, now);
    zkit_envelope_reset(self->env);
    zkit__sdev_record_t *r = malloc(sizeof *r + rec->size);
    if (!r)
        goto later;
    r->seq = rec->seq;
    r->retired = false;
    r->size = rec->size;
    memcpy(r->data, rec->data, rec->size);
    if (zkit__dispatcher_submit(self->dispatcher, id, r, expires, now) == 0)
        return 0;
    int err = errno;
    free(r);
    if (err == EEXIST) {
        /* The same message stored twice (resent beyond the dedup window):
           the copy being delivered stands for both.                         */
        zkit_spool_ack(self->spool, rec->seq);
        self->stats.duplicate_records++;
        return 0;
    }
later:
    zkit_spool_reader_seek(self->reader, rec->seq);
    self->reader_retry = now + S_READ_RETRY_MS;
    return -1;
}

static uint64_t s_in_memory(zkit__sdev_t *self)
{
    const zkit__dispatcher_counters_t *c = zkit__dispatcher_counters(self->dispatcher);
    return c->queued + c->in_flight + c->dead_pending;
}

static void s_feed(zkit__sdev_t *self, int64_t now)
{
    if (self->reader_done || now < self->reader_retry)
        return;
    while (s_in_memory(self) < self->opts.prefetch) {
        zkit_spool_record_t rec;
        int rc = zkit_spool_reader_next(self->reader, &rec);
        if (rc == 0) {
            self->reader_done = true;
            return;
        }
        if (rc < 0) {
            zsys_error("ZKIT-SPOOL-DEVICE-READ %s: cannot read the spool: %s; retrying", self->name,
                       zkit_strerror(errno));
            self->reader_retry = now + S_READ_RETRY_MS;
            return;
        }
        if (s_submit(self, &rec, now))
            return;
    }
}

void zkit__sdev_out_wake(zkit__sdev_t *self)
{
    self->reader_done = false;
}

/* ---- records out --------------------------------------------------------------------- */

/* Sends [DELIVER][envelope] with meta att = attempts and counts it.
   Returns 0 or -1.                                                          */
static int s_deliver(zkit__sdev_t *self, const zkit__dispatcher_job_t *job)
{
    const zkit__sdev_record_t *r = job->payload;
    if (zkit_envelope_decode_bytes(self->env, r->data, r->size))
        return -1; /* cannot happen: it decoded when it was submitted */
    zkit_envelope_set_att(self->env, job->attempts);
    zmq_msg_t frame;
    int rc = zkit_envelope_encode(self->env, &frame);
    zkit_envelope_reset(self->env);
    if (rc) {
        errno = ENOMEM;
        return -1;
    }
    size_t bytes = zmq_msg_size(&frame);
    if (zmq_send(self->out, job->peer, job->peer_size, ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1 ||
        zmq_send(self->out, "DELIVER", 7, ZMQ_SNDMORE) == -1 ||
        zmq_msg_send(&frame, self->out, 0) == -1) {
        int err = errno;
        zmq_msg_close(&frame);
        errno = err;
        return -1;
    }
    self->stats.delivered++;
    self->stats.delivered_bytes += bytes;
    zkit__traffic_out(&self->traffic_out, job->peer_size + strlen("DELIVER") + bytes);
    return 0;
}

static void s_dispatch(zkit__sdev_t *self, int64_t now)
{
    if (self->paused) {
        /* Nothing new goes out; what is in flight still times out, and
           silent consumers are still presumed dead.                       */
        zkit__dispatcher_tick(self->dispatcher, now);
        s_consumers_expired(self);
        return;
    }
    zkit__dispatcher_job_t job;
    while (zkit__dispatcher_next(self->dispatcher, now, &job)) {
        if (((zkit__sdev_record_t *) job.payload)->retired) {
            void *payload = NULL;
            zkit__dispatcher_ack(self->dispatcher, NULL, 0, job.id, now, &payload);
            free(payload);
            continue;
        }
        if (s_deliver(self, &job) == 0)
            continue;
        uint8_t rid[ZKIT__DISPATCHER_PEER_MAX];
        uint8_t id[ZKIT_ID_SIZE];
        size_t size = job.peer_size;
        memcpy(rid, job.peer, size);
        memcpy(id, job.id, ZKIT_ID_SIZE);
        if (errno == EHOSTUNREACH) {
            s_consumer_gone(self, rid, size, now, "could not be reached");
            continue;
        }
        /* Its queue is full or memory ran out: give the record back and try
           again on the next turn.                                          */
        zkit__dispatcher_nack(self->dispatcher, rid, size, id, now);
        break;
    }
    s_consumers_expired(self);
}

/* A dead letter: the envelope with headers zkit-error and zkit-attempts.   */
static int s_store_dead(zkit__sdev_t *self, const zkit__sdev_record_t *r, const char *reason,
                        uint32_t attempts)
{
    if (zkit_envelope_decode_bytes(self->env, r->data, r->size))
        return -1;
    int rc = -1;
    uint8_t *buf = NULL;
    if (zkit_envelope_set_header_str(self->env, "zkit-error", reason) == 0 &&
        zkit_envelope_set_header_int(self->env, "zkit-attempts", attempts) == 0) {
        size_t size = zkit_envelope_encoded_size(self->env);
        buf = malloc(size);
        if (buf && zkit_envelope_encode_to(self->env, buf, size) == (ssize_t) size)
            rc = zkit_spool_append(self->dead_spool, buf, size, NULL);
    }
    int err = errno;
    free(buf);
    zkit_envelope_reset(self->env);
    errno = err;
    return rc;
}

static void s_dead_letters(zkit__sdev_t *self, int64_t now)
{
    zkit__dispatcher_dead_t dead;
    while (zkit__dispatcher_next_dead(self->dispatcher, &dead)) {
        zkit__sdev_record_t *r = dead.payload;
        const char *reason = zkit__dispatcher_reason_name(dead.reason);
        self->stats.dead_letters++;
        bool retire = true;
        if (self->dead_spool && s_store_dead(self, r, reason, dead.attempts)) {
            /* Left unacknowledged: the next device on the spool tries it
               again rather than losing it.                                 */
            retire = false;
            self->stats.dead_letter_errors++;
            zsys_error("ZKIT-SPOOL-DEVICE-DEADLETTER %s: cannot store seq %" PRIu64
                       " in the dead-letter spool: %s; it stays in the spool",
                       self->name, r->seq, zkit_strerror(errno));
        }
        uint64_t suppressed = 0;
        if (zkit__ratelimit(&self->dead_log, now, &suppressed)) {
            char hex[33];
            zsys_warning("ZKIT-SPOOL-DEVICE-DEADLETTER %s: seq %" PRIu64 " (id %s) given up: %s "
                         "after %u attempts%s (%" PRIu64 " more since the last line)",
                         self->name, r->seq, zkit_id_to_hex(dead.id, hex), reason, dead.attempts,
                         self->dead_spool ? (retire ? ", moved to the dead-letter spool" : "")
                                          : ", retired",
                         suppressed);
        }
        if (retire)
            zkit_spool_ack(self->spool, r->seq);
        free(r);
    }
}

int64_t zkit__sdev_out_work(zkit__sdev_t *self, int64_t now)
{
    if (now >= self->next_heartbeat) {
        s_heartbeat(self, now);
        self->next_heartbeat = now + self->opts.heartbeat_ms;
    }
    s_feed(self, now);
    s_dispatch(self, now);
    s_dead_letters(self, now);
    int64_t due = zkit__dispatcher_next_due(self->dispatcher);
    if (self->next_heartbeat < due)
        due = self->next_heartbeat;
    if (!self->reader_done && self->reader_retry > now && self->reader_retry < due)
        due = self->reader_retry;
    return due;
}

/* ---- STATS ----------------------------------------------------------------------------- */

void zkit__sdev_out_peers(zkit__sdev_t *self, zkit__stats_t *stats)
{
    /* The dispatcher keeps a monotonic time; STATS wants the wall clock.  */
    int64_t mono = zclock_mono();
    uint64_t wall = zkit_clock_usec();
    for (zkit__dlink_t *link = self->list.next; link != &self->list; link = link->next) {
        const zkit__sdev_consumer_t *c = ZKIT__DLIST_CONTAINER(link, zkit__sdev_consumer_t, link);
        zkit__dispatcher_peer_info_t info;
        if (zkit__dispatcher_peer_info(self->dispatcher, c->rid, c->size, &info))
            continue;
        uint64_t ago_us =
            info.last_seen_ms < mono ? (uint64_t) (mono - info.last_seen_ms) * 1000 : 0;
        if (zkit__stats_peer(stats, c->rid, c->size, wall > ago_us ? wall - ago_us : 0) &&
            errno != ENOSPC)
            return;
    }
}

/* ---- life cycle ---------------------------------------------------------------------- */

int zkit__sdev_out_start(zkit__sdev_t *self)
{
    zkit__dlist_init(&self->list);
    zkit__idtable_init(&self->consumers);
    zkit__dispatcher_opts_t dopts = ZKIT__DISPATCHER_OPTS_DEFAULT;
    dopts.max_attempts = self->opts.max_attempts;
    dopts.heartbeat_ms = self->opts.heartbeat_ms;
    dopts.liveness = self->opts.liveness;
    dopts.attempt_timeout_ms = self->opts.attempt_timeout_ms;
    dopts.max_items = 0; /* bounded by prefetch: the feed stops there */
    dopts.payload_free = s_record_free;
    dopts.hash_seed = self->hash_seed;
    self->dispatcher = zkit__dispatcher_new(&dopts);
    if (!self->dispatcher)
        return -1;
    self->reader = zkit_spool_reader_new(self->spool, 0, ZKIT_SPOOL_READ_UNACKED);
    return self->reader ? 0 : -1;
}

void zkit__sdev_out_stop(zkit__sdev_t *self)
{
    zkit_spool_reader_destroy(&self->reader);
    zkit__dispatcher_destroy(&self->dispatcher);
    if (self->list.next) { /* zero until zkit__sdev_out_start ran */
        while (!zkit__dlist_empty(&self->list)) {
            zkit__sdev_consumer_t *c =
                ZKIT__DLIST_CONTAINER(self->list.next, zkit__sdev_consumer_t, link);
            zkit__dlist_unlink(&c->link);
            free(c);
        }
    }
    zkit__idtable_fini(&self->consumers);
}
