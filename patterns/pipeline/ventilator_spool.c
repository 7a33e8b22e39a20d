/*  ventilator_spool.c: the spool behind a reliable ventilator (see
    ventilator_spool.h and docs/pipeline-protocol.md).

    Records are a version byte, a type byte and fixed big-endian fields, not
    an envelope: the spool holds what the ventilator needs to rebuild its
    state (a batch's name and total, a task's seq, id, ts and body), and a
    task's envelope is made again, with its src, on every attempt anyway.

    Resume relies on the order of the log and on one invariant of the
    actor: a batch's OPEN record is acknowledged only once the batch is
    complete, after every one of its tasks was acknowledged. So reading
    from the cursor (the lowest record not acknowledged) finds the OPEN of
    every unfinished batch, and each task or CLOSE belongs to the OPEN before
    it. Acknowledged tasks are read too (to learn the highest seq of a batch
    that was never closed) but not resumed.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "pipeline/ventilator_spool.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/pipeline.h"
#include "pipeline/protocol.h"

#define S_HEADER    2
#define S_TASK_HEAD (S_HEADER + 8 + 8 + 16)

struct zkit__vspool {
    zkit_spool_t *spool;
    uint8_t *buf; /* the caller's record buffer, grown to the largest task */
    size_t capacity;
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

/* ---- construction ------------------------------------------------------------ */

zkit__vspool_t *zkit__vspool_new(const zkit_ventilator_opts_t *opts)
{
    zkit_spool_opts_t sopts = ZKIT_SPOOL_OPTS_DEFAULT;
    if (opts->spool_fsync && zkit_spool_parse_fsync(opts->spool_fsync, &sopts)) {
        zsys_error("ZKIT-PIPE-OPTS ventilator: spool_fsync '%s' is not always, never or "
                   "interval:MS",
                   opts->spool_fsync);
        errno = EINVAL;
        return NULL;
    }
    zkit__vspool_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    self->spool = zkit_spool_new(opts->spool_dir, &sopts);
    if (!self->spool) {
        int err = errno;
        zsys_error("ZKIT-PIPE-SPOOL ventilator: cannot open the spool in %s: %s", opts->spool_dir,
                   zkit_strerror(err));
        free(self);
        errno = err;
        return NULL;
    }
    return self;
}

void zkit__vspool_destroy(zkit__vspool_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zkit__vspool_t *self = *self_p;
    zkit_spool_destroy(&self->spool);
    free(self->buf);
    free(self);
    *self_p = NULL;
}

zkit_spool_t *zkit__vspool_spool(zkit__vspool_t *self)
{
    return self ? self->spool : NULL;
}

/* ---- appends ------------------------------------------------------------------ */

static uint8_t *s_buffer(zkit__vspool_t *self, size_t size)
{
    if (size > self->capacity) {
        uint8_t *grown = realloc(self->buf, size);
        if (!grown) {
            errno = ENOMEM;
            return NULL;
        }
        self->buf = grown;
        self->capacity = size;
    }
    return self->buf;
}

int zkit__vspool_open_batch(zkit__vspool_t *self, const char *name, uint64_t *spool_seq)
{
    uint8_t rec[S_HEADER + ZKIT_BATCH_NAME_MAX];
    size_t len = strlen(name);
    if (len > ZKIT_BATCH_NAME_MAX) {
        errno = EINVAL;
        return -1;
    }
    rec[0] = ZKIT__VSPOOL_VERSION;
    rec[1] = ZKIT__VSPOOL_OPEN;
    memcpy(rec + S_HEADER, name, len);
    return zkit_spool_append(self->spool, rec, S_HEADER + len, spool_seq);
}

int zkit__vspool_task(zkit__vspool_t *self, uint64_t seq, const uint8_t id[16], uint64_t ts,
                      const void *body, size_t size, uint64_t *spool_seq)
{
    uint8_t *rec = s_buffer(self, S_TASK_HEAD + size);
    if (!rec)
        return -1;
    rec[0] = ZKIT__VSPOOL_VERSION;
    rec[1] = ZKIT__VSPOOL_TASK;
    s_put64(rec + S_HEADER, seq);
    s_put64(rec + S_HEADER + 8, ts);
    memcpy(rec + S_HEADER + 16, id, 16);
    if (size)
        memcpy(rec + S_TASK_HEAD, body, size);
    return zkit_spool_append(self->spool, rec, S_TASK_HEAD + size, spool_seq);
}

int zkit__vspool_close_batch(zkit__vspool_t *self, uint64_t total, uint64_t *spool_seq)
{
    uint8_t rec[S_HEADER + 8];
    rec[0] = ZKIT__VSPOOL_VERSION;
    rec[1] = ZKIT__VSPOOL_CLOSE;
    s_put64(rec + S_HEADER, total);
    return zkit_spool_append(self->spool, rec, sizeof rec, spool_seq);
}

void zkit__vspool_ack(zkit_spool_t *spool, uint64_t spool_seq)
{
    int err = errno; /* callers ack on their error paths */
    if (spool && spool_seq && zkit_spool_ack(spool, spool_seq))
        zsys_warning("ZKIT-PIPE-SPOOL ventilator: ack of record %" PRIu64 " failed: %s", spool_seq,
                     zkit_strerror(errno));
    errno = err;
}

/* ---- resume --------------------------------------------------------------------- */

/* The unfinished batch being read.                                          */
typedef struct {
    bool active;
    bool queued; /* its OPEN is in the queue (put with its first live task) */
    char name[ZKIT_BATCH_NAME_MAX + 1];
    uint64_t open_seq; /* spool seqs */
    uint64_t max_seq;  /* highest task seq read */
} s_resume_t;

static int s_put_open(zkit__vqueue_t *queue, s_resume_t *r)
{
    if (r->queued)
        return 0;
    zkit__vqueue_preset_t preset = {.spool_seq = r->open_seq};
    if (zkit__vqueue_put_preset(queue, ZKIT__VQUEUE_OPEN, r->name, strlen(r->name), &preset,
                                ZKIT__VQUEUE_CREDIT_TAKEN))
        return -1;
    r->queued = true;
    return 0;
}

/* Ends the batch being read: with its CLOSE (close_seq not 0) or, when it
   was never closed, with one appended now.                                 */
static int s_finish(zkit__vspool_t *self, zkit__vqueue_t *queue, s_resume_t *r, uint64_t total,
                    uint64_t close_seq, size_t *resumed)
{
    if (!r->active)
        return 0;
    r->active = false;
    if (!close_seq) {
        total = r->max_seq;
        if (total && zkit__vspool_close_batch(self, total, &close_seq))
            return -1;
    }
    if (total == 0) {
        /* Opened and nothing submitted: nothing to resume or announce.     */
        zkit__vspool_ack(self->spool, r->open_seq);
        zkit__vspool_ack(self->spool, close_seq);
        return 0;
    }
    zkit__vqueue_preset_t preset = {.seq = total, .spool_seq = close_seq};
    if (s_put_open(queue, r) || zkit__vqueue_put_preset(queue, ZKIT__VQUEUE_CLOSE, NULL, 0, &preset,
                                                        ZKIT__VQUEUE_CREDIT_TAKEN))
        return -1;
    zsys_info("ZKIT-PIPE-RESUME ventilator: batch %s resumed from %s (%" PRIu64 " tasks)", r->name,
              zkit_spool_dir(self->spool), total);
    (*resumed)++;
    return 0;
}

/* One record. A record that does not parse is skipped with a log line: it
   was written by this code, so only a newer format gets here.             */
static int s_resume_record(zkit__vspool_t *self, zkit__vqueue_t *queue, s_resume_t *r,
                           const zkit_spool_record_t *rec, size_t *resumed)
{
    const uint8_t *p = rec->data;
    bool acked = zkit_spool_is_acked(self->spool, rec->seq);
    if (rec->size < S_HEADER || p[0] != ZKIT__VSPOOL_VERSION)
        goto bad;
    if (p[1] == ZKIT__VSPOOL_OPEN) {
        size_t len = rec->size - S_HEADER;
        if (!zkit__pipeline_batch_valid(p + S_HEADER, len))
            goto bad;
        if (s_finish(self, queue, r, 0, 0, resumed))
            return -1;
        if (acked)
            return 0; /* complete: its tasks are all acknowledged */
        memset(r, 0, sizeof *r);
        r->active = true;
        memcpy(r->name, p + S_HEADER, len);
        r->open_seq = rec->seq;
        return 0;
    }
    if (p[1] == ZKIT__VSPOOL_TASK) {
        if (rec->size < S_TASK_HEAD)
            goto bad;
        uint64_t seq = s_get64(p + S_HEADER);
        if (!r->active) {
            if (!acked) /* cannot happen (see the top): do not hold it forever */
                zkit__vspool_ack(self->spool, rec->seq);
            return 0;
        }
        if (seq > r->max_seq)
            r->max_seq = seq;
        if (acked)
            return 0;
        zkit__vqueue_preset_t preset = {.seq = seq,
                                        .ts = s_get64(p + S_HEADER + 8),
                                        .id = p + S_HEADER + 16,
                                        .spool_seq = rec->seq};
        if (s_put_open(queue, r) ||
            zkit__vqueue_put_preset(queue, ZKIT__VQUEUE_TASK, p + S_TASK_HEAD,
                                    rec->size - S_TASK_HEAD, &preset, ZKIT__VQUEUE_CREDIT_FORCE))
            return -1;
        return 0;
    }
    if (p[1] == ZKIT__VSPOOL_CLOSE) {
        if (rec->size != S_HEADER + 8)
            goto bad;
        return s_finish(self, queue, r, s_get64(p + S_HEADER), rec->seq, resumed);
    }
bad:
    zsys_warning("ZKIT-PIPE-SPOOL ventilator: record %" PRIu64 " in %s is not a ventilator "
                 "record of version %d; skipped",
                 rec->seq, zkit_spool_dir(self->spool), ZKIT__VSPOOL_VERSION);
    return 0;
}

int zkit__vspool_resume(zkit__vspool_t *self, zkit__vqueue_t *queue, size_t *resumed)
{
    *resumed = 0;
    zkit_spool_reader_t *reader = zkit_spool_reader_new(self->spool, 0, 0);
    if (!reader)
        return -1;
    s_resume_t r;
    memset(&r, 0, sizeof r);
    int rc = 0;
    zkit_spool_record_t rec;
    while (rc == 0) {
        int got = zkit_spool_reader_next(reader, &rec);
        if (got <= 0) {
            rc = got;
            break;
        }
        rc = s_resume_record(self, queue, &r, &rec, resumed);
    }
    int err = errno;
    zkit_spool_reader_destroy(&reader);
    if (rc == 0)
        rc = s_finish(self, queue, &r, 0, 0, resumed);
    else
        errno = err;
    return rc;
}
