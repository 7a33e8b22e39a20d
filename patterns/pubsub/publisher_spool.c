/*  publisher_spool.c: a publisher's replay buffer on disk (see
    publisher_spool.h and docs/pubsub-protocol.md, "Replay spool").

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "pubsub/publisher_spool.h"

#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/ratelimit.h"
#include "zkit_spool.h"

/* version, type, epoch, seq, topic size                                    */
#define S_HEAD (2 + 8 + 8 + 2)

struct zkit__pub_spool {
    zkit_spool_t *spool;
    zkit_spool_reader_t *reader; /* for FETCH, made on first use */
    uint64_t epoch;
    uint64_t last_seq;   /* the newest message seq appended */
    uint64_t last_spool; /* its spool seq */
    uint64_t run_start;  /* spool seq of the first record of this epoch's run */
    uint64_t unsynced;   /* the newest spool seq not yet synced, 0: none */
    uint8_t *buf;
    size_t capacity;
    zkit__ratelimit_t log; /* ZKIT-PUB-SPOOL: a full disk repeats it */
    char name[ZKIT_SRC_MAX + 1];
};

static void s_put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t) v;
}

static uint64_t s_get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* A record's fields; 0 when it is not a message record of this format.    */
static int s_parse(const zkit_spool_record_t *rec, uint64_t *epoch, uint64_t *seq,
                   const uint8_t **topic, size_t *topic_size, const uint8_t **env, size_t *env_size)
{
    const uint8_t *p = rec->data;
    if (rec->size < S_HEAD || p[0] != ZKIT__PUB_SPOOL_VERSION || p[1] != ZKIT__PUB_SPOOL_MESSAGE)
        return -1;
    size_t tsize = (size_t) p[18] << 8 | p[19];
    if (rec->size < S_HEAD + tsize || tsize > ZKIT_TOPIC_MAX)
        return -1;
    *epoch = s_get64(p + 2);
    *seq = s_get64(p + 10);
    *topic = p + S_HEAD;
    *topic_size = tsize;
    *env = p + S_HEAD + tsize;
    *env_size = rec->size - S_HEAD - tsize;
    return 0;
}

/* True when spool record x is message last_seq - (last_spool - x) of this
   epoch, i.e. part of the current run.                                    */
static bool s_in_run(zkit__pub_spool_t *self, zkit_spool_reader_t *reader, uint64_t x)
{
    zkit_spool_reader_seek(reader, x);
    zkit_spool_record_t rec;
    uint64_t epoch, seq;
    const uint8_t *t, *e;
    size_t ts, es;
    return zkit_spool_reader_next(reader, &rec) == 1 && rec.seq == x &&
           s_parse(&rec, &epoch, &seq, &t, &ts, &e, &es) == 0 && epoch == self->epoch &&
           self->last_seq - seq == self->last_spool - x;
}

/* Where the run of a resumed stream starts: records before it are of
   another stream or epoch. A binary search, since the run is the tail.    */
static uint64_t s_run_start(zkit__pub_spool_t *self, zkit_spool_reader_t *reader, uint64_t oldest)
{
    uint64_t lo = oldest, hi = self->last_spool; /* hi is in the run */
    if (self->last_spool - oldest >= self->last_seq)
        lo = self->last_spool - self->last_seq + 1; /* message 1 at the earliest */
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (s_in_run(self, reader, mid))
            hi = mid;
        else
            lo = mid + 1;
    }
    return hi;
}

/* Reads the newest record: the stream goes on from it when it is ours.    */
static void s_resume(zkit__pub_spool_t *self, uint64_t want_epoch)
{
    zkit_spool_stats_t st;
    zkit_spool_stats(self->spool, &st);
    if (st.newest_seq == 0)
        return;
    zkit_spool_reader_t *reader = zkit_spool_reader_new(self->spool, st.newest_seq, 0);
    zkit_spool_record_t rec;
    uint64_t epoch, seq;
    const uint8_t *topic, *env;
    size_t topic_size, env_size;
    if (reader && zkit_spool_reader_next(reader, &rec) == 1 && rec.seq == st.newest_seq &&
        s_parse(&rec, &epoch, &seq, &topic, &topic_size, &env, &env_size) == 0 &&
        (want_epoch == 0 || want_epoch == epoch)) {
        zkit_envelope_t *e = zkit_envelope_new();
        const char *src = NULL;
        if (e && zkit_envelope_decode_bytes(e, env, env_size) == 0)
            src = zkit_envelope_src(e);
        if (src && strcmp(src, self->name) == 0 && seq) {
            self->epoch = epoch;
            self->last_seq = seq;
            self->last_spool = rec.seq;
        }
        zkit_envelope_destroy(&e);
    }
    if (reader && self->last_seq)
        self->run_start = s_run_start(self, reader, st.oldest_seq ? st.oldest_seq : 1);
    zkit_spool_reader_destroy(&reader);
}

zkit__pub_spool_t *zkit__pub_spool_new(const zkit_publisher_opts_t *opts, uint64_t *epoch,
                                       uint64_t *last_seq)
{
    zkit__pub_spool_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    snprintf(self->name, sizeof self->name, "%s", opts->name);
    zkit_spool_opts_t sopts = ZKIT_SPOOL_OPTS_DEFAULT;
    /* Synced once per burst by the actor (zkit__pub_spool_sync), not per
       append: publishing never waits for the disk message by message.     */
    sopts.fsync = ZKIT_SPOOL_FSYNC_NEVER;
    sopts.retain_bytes = opts->replay_spool_bytes;
    sopts.max_age_ms = opts->replay_spool_age_ms;
    /* Retention deletes whole segments: keep them small against the bound. */
    uint64_t segment = opts->replay_spool_bytes / 8;
    if (segment < 1024 * 1024)
        segment = 1024 * 1024;
    if (segment < sopts.segment_size)
        sopts.segment_size = segment;
    self->spool = zkit_spool_new(opts->replay_spool_dir, &sopts);
    if (!self->spool) {
        int err = errno;
        zsys_error("ZKIT-PUB-SPOOL %s: cannot open the replay spool in %s: %s", opts->name,
                   opts->replay_spool_dir, zkit_strerror(err));
        free(self);
        errno = err;
        return NULL;
    }
    s_resume(self, opts->epoch);
    if (!self->last_seq) {
        zkit_spool_stats_t st;
        zkit_spool_stats(self->spool, &st);
        self->epoch = opts->epoch ? opts->epoch : zkit_clock_usec();
        self->run_start = st.next_seq;
    }
    else
        zsys_info("ZKIT-PUB-RESUME %s: epoch %" PRIu64 " goes on after seq %" PRIu64
                  " (replay spool %s)",
                  self->name, self->epoch, self->last_seq, opts->replay_spool_dir);
    *epoch = self->epoch;
    *last_seq = self->last_seq;
    return self;
}

void zkit__pub_spool_destroy(zkit__pub_spool_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zkit__pub_spool_t *self = *self_p;
    zkit__pub_spool_sync(self);
    zkit_spool_reader_destroy(&self->reader);
    zkit_spool_destroy(&self->spool);
    free(self->buf);
    free(self);
    *self_p = NULL;
}

/*  A message the replay spool could not keep: logged at most once a second
    (the disk is full or failing: every message would say the same).      */
static void s_append_failed(zkit__pub_spool_t *self, uint64_t seq, int err)
{
    if (zkit__ratelimit(&self->log, zclock_mono(), NULL))
        zsys_warning("ZKIT-PUB-SPOOL %s: seq %" PRIu64 " not kept in the replay spool: %s",
                     self->name, seq, zkit_strerror(err));
}

void zkit__pub_spool_put(zkit__pub_spool_t *self, uint64_t seq, const zmq_msg_t *topic,
                         const zmq_msg_t *envelope)
{
    size_t tsize = zmq_msg_size((zmq_msg_t *) topic);
    size_t esize = zmq_msg_size((zmq_msg_t *) envelope);
    size_t size = S_HEAD + tsize + esize;
    if (size > self->capacity) {
        uint8_t *grown = realloc(self->buf, size);
        if (!grown)
            goto fail;
        self->buf = grown;
        self->capacity = size;
    }
    uint8_t *p = self->buf;
    p[0] = ZKIT__PUB_SPOOL_VERSION;
    p[1] = ZKIT__PUB_SPOOL_MESSAGE;
    s_put64(p + 2, self->epoch);
    s_put64(p + 10, seq);
    p[18] = (uint8_t) (tsize >> 8);
    p[19] = (uint8_t) tsize;
    memcpy(p + S_HEAD, zmq_msg_data((zmq_msg_t *) topic), tsize);
    memcpy(p + S_HEAD + tsize, zmq_msg_data((zmq_msg_t *) envelope), esize);
    uint64_t spool_seq;
    if (zkit_spool_append_nosync(self->spool, p, size, &spool_seq))
        goto fail;
    /* After a failed append the run starts again here: the arithmetic of
       the header needs consecutive spool seqs.                            */
    if (spool_seq != self->last_spool + 1 || seq != self->last_seq + 1)
        self->run_start = spool_seq;
    self->last_seq = seq;
    self->last_spool = spool_seq;
    self->unsynced = spool_seq;
    return;
fail:
    s_append_failed(self, seq, errno);
}

void zkit__pub_spool_sync(zkit__pub_spool_t *self)
{
    if (!self || !self->unsynced)
        return;
    if (zkit_spool_sync(self->spool) == 0)
        zkit_spool_ack_upto(self->spool, self->unsynced);
    self->unsynced = 0;
}

uint64_t zkit__pub_spool_first(zkit__pub_spool_t *self)
{
    if (!self || !self->last_seq)
        return 0;
    zkit_spool_stats_t st;
    zkit_spool_stats(self->spool, &st);
    uint64_t start = st.oldest_seq > self->run_start ? st.oldest_seq : self->run_start;
    if (!st.oldest_seq || start > self->last_spool)
        return 0;
    return self->last_seq - (self->last_spool - start);
}

int zkit__pub_spool_get(zkit__pub_spool_t *self, uint64_t seq, zmq_msg_t *topic,
                        zmq_msg_t *envelope)
{
    if (!self || !seq || seq > self->last_seq || self->last_seq - seq >= self->last_spool)
        return -1;
    uint64_t spool_seq = self->last_spool - (self->last_seq - seq);
    if (spool_seq < self->run_start)
        return -1;
    if (!self->reader && !(self->reader = zkit_spool_reader_new(self->spool, spool_seq, 0)))
        return -1;
    zkit_spool_reader_seek(self->reader, spool_seq);
    zkit_spool_record_t rec;
    uint64_t epoch, got;
    const uint8_t *t, *e;
    size_t tsize, esize;
    if (zkit_spool_reader_next(self->reader, &rec) != 1 || rec.seq != spool_seq ||
        s_parse(&rec, &epoch, &got, &t, &tsize, &e, &esize) || epoch != self->epoch || got != seq)
        return -1;
    if (zmq_msg_init_size(topic, tsize))
        return -1;
    if (zmq_msg_init_size(envelope, esize)) {
        zmq_msg_close(topic);
        return -1;
    }
    memcpy(zmq_msg_data(topic), t, tsize);
    memcpy(zmq_msg_data(envelope), e, esize);
    return 0;
}
