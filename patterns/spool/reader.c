/*  reader.c: iterating records (zkit_spool_reader_*), and verify.

    A reader has its own file descriptor and read buffer, so readers and
    appenders only share the spool's mutex, taken briefly per record to learn
    how far the current segment may be read. Bytes past that point may still
    be being written and are never read. A segment deleted under a reader
    stays readable through its open descriptor; the reader then goes on with
    the oldest segment still there.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "spool/spool_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>

struct _zkit_spool_reader_t {
    zkit_spool_t *spool;
    int flags;
    uint64_t want;      /* the next record delivered has seq >= want        */
    uint64_t seg_first; /* segment open in the view; 0 when none            */
    int fd;
    uint64_t off;  /* next scan offset in it                                */
    uint64_t prev; /* seq of the last good record before off               */
    zkit__segview_t view;
    uint64_t bad_regions, bad_records; /* met by this reader (verify)        */
    zkit_spool_bad_fn *on_bad;         /* verify_regions: told of each one   */
    void *on_bad_arg;
};

/* Index of the segment holding seq (the last with first_seq <= seq), the
   oldest when seq is below it; -1 when there are none. Mutex held. */
static ssize_t s_find(const zkit_spool_t *spool, uint64_t seq)
{
    if (!spool->nsegs)
        return -1;
    size_t lo = 0, hi = spool->nsegs;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (spool->segs[mid].first_seq <= seq)
            lo = mid;
        else
            hi = mid;
    }
    return (ssize_t) lo;
}

/* Index of the segment starting at first_seq, or -1 when it is gone. */
static ssize_t s_index_of(const zkit_spool_t *spool, uint64_t first_seq)
{
    ssize_t i = s_find(spool, first_seq);
    return i >= 0 && spool->segs[i].first_seq == first_seq ? i : -1;
}

static void s_close_segment(zkit_spool_reader_t *self)
{
    if (self->fd >= 0)
        self->spool->io.close(self->spool->io.arg, self->fd);
    self->fd = -1;
    self->seg_first = 0;
    zkit__segview_set_fd(&self->view, -1);
}

ZKIT_EXPORT zkit_spool_reader_t *zkit_spool_reader_new(zkit_spool_t *spool, uint64_t from_seq,
                                                       int flags)
{
    zkit_spool_reader_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    self->spool = spool;
    self->flags = flags;
    self->fd = -1;
    zkit__segview_init(&self->view, &spool->io);
    pthread_mutex_lock(&spool->mutex);
    spool->readers++;
    pthread_mutex_unlock(&spool->mutex);
    zkit_spool_reader_seek(self, from_seq);
    return self;
}

ZKIT_EXPORT void zkit_spool_reader_destroy(zkit_spool_reader_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zkit_spool_reader_t *self = *self_p;
    *self_p = NULL;
    s_close_segment(self);
    zkit__segview_fini(&self->view);
    pthread_mutex_lock(&self->spool->mutex);
    self->spool->readers--;
    pthread_mutex_unlock(&self->spool->mutex);
    free(self);
}

ZKIT_EXPORT void zkit_spool_reader_seek(zkit_spool_reader_t *self, uint64_t seq)
{
    if (seq == 0) {
        pthread_mutex_lock(&self->spool->mutex);
        seq = self->spool->acks.floor;
        pthread_mutex_unlock(&self->spool->mutex);
    }
    self->want = seq;
    s_close_segment(self);
}

/* Opens the segment holding want. Returns 1, 0 when there is no segment,
   -1 with errno. */
static int s_locate(zkit_spool_reader_t *self)
{
    zkit_spool_t *spool = self->spool;
    for (;;) {
        pthread_mutex_lock(&spool->mutex);
        ssize_t i = s_find(spool, self->want);
        uint64_t first = i >= 0 ? spool->segs[i].first_seq : 0;
        pthread_mutex_unlock(&spool->mutex);
        if (i < 0)
            return 0;
        char name[ZKIT__SEG_NAME_SIZE], path[PATH_MAX];
        zkit__seg_name(name, sizeof name, first);
        if (zkit__spool_path(spool, path, sizeof path, name))
            return -1;
        int fd = spool->io.open(spool->io.arg, path, O_RDONLY | O_CLOEXEC, 0);
        if (fd < 0) {
            if (errno == ENOENT)
                continue; /* deleted since: look again */
            return -1;
        }
        self->fd = fd;
        self->seg_first = first;
        self->off = ZKIT__SEG_HDR_SIZE;
        self->prev = first - 1;
        zkit__segview_set_fd(&self->view, fd);
        return 1;
    }
}

ZKIT_EXPORT int zkit_spool_reader_next(zkit_spool_reader_t *self, zkit_spool_record_t *record)
{
    zkit_spool_t *spool = self->spool;
    for (;;) {
        if (self->fd < 0) {
            int rc = s_locate(self);
            if (rc <= 0)
                return rc;
        }
        /* How far this segment may be read, and what follows it. */
        pthread_mutex_lock(&spool->mutex);
        ssize_t i = s_index_of(spool, self->seg_first);
        bool newest = i >= 0 && (size_t) i + 1 == spool->nsegs;
        uint64_t end = i >= 0 ? spool->segs[i].visible : 0;
        uint64_t after = i >= 0 && !newest ? spool->segs[i + 1].first_seq : 0;
        uint64_t visible_seq =
            spool->opts.fsync == ZKIT_SPOOL_FSYNC_ALWAYS ? spool->synced_seq : spool->written_seq;
        pthread_mutex_unlock(&spool->mutex);
        if (i < 0) {
            /* Deleted under us: what it held is retired or dropped. */
            s_close_segment(self);
            continue;
        }
        zkit__scan_item_t item;
        zkit__scan_t r = zkit__segment_scan(&self->view, self->off, end, self->prev, &item);
        if (r == ZKIT__SCAN_ERROR)
            return -1;
        if (r == ZKIT__SCAN_END) {
            if (newest)
                return 0;
            /* Seqs between the last record here and the next segment do
               not exist. */
            if (self->want < after)
                self->want = after;
            s_close_segment(self);
            continue;
        }
        if (r == ZKIT__SCAN_BAD) {
            uint64_t lost_end = !item.to_end ? item.next_seq : newest ? visible_seq + 1 : after;
            if (lost_end < self->prev + 1)
                lost_end = self->prev + 1;
            self->bad_regions++;
            self->bad_records += lost_end - (self->prev + 1);
            pthread_mutex_lock(&spool->mutex);
            zkit__spool_quarantine(spool, self->seg_first, item.off, item.bad_size, self->prev + 1,
                                   lost_end, item.reason);
            pthread_mutex_unlock(&spool->mutex);
            if (self->on_bad) {
                char name[ZKIT__SEG_NAME_SIZE];
                zkit__seg_name(name, sizeof name, self->seg_first);
                zkit_spool_bad_region_t region = {name,           item.off, item.bad_size,
                                                  self->prev + 1, lost_end, item.reason};
                self->on_bad(&region, self->on_bad_arg);
            }
            self->off = item.next_off;
            continue;
        }
        self->off = item.next_off;
        self->prev = item.seq;
        if (item.seq < self->want)
            continue;
        self->want = item.seq + 1;
        if (self->flags & ZKIT_SPOOL_READ_UNACKED) {
            pthread_mutex_lock(&spool->mutex);
            bool acked = zkit__ackset_has(&spool->acks, item.seq);
            pthread_mutex_unlock(&spool->mutex);
            if (acked)
                continue;
        }
        record->seq = item.seq;
        record->ts = item.ts;
        record->data = item.data;
        record->size = item.size;
        return 1;
    }
}

ZKIT_EXPORT int zkit_spool_reader_seek_time(zkit_spool_reader_t *self, uint64_t ts)
{
    /* Timestamps never decrease with seq, and no record is older than the
       segment holding it nor newer than the next segment's create_ts: every
       record before the last segment created before ts is older than ts. */
    zkit_spool_t *spool = self->spool;
    pthread_mutex_lock(&spool->mutex);
    uint64_t start = spool->nsegs ? spool->segs[0].first_seq : spool->next_seq;
    for (size_t i = 0; i < spool->nsegs && spool->segs[i].create_ts < ts; i++)
        start = spool->segs[i].first_seq;
    pthread_mutex_unlock(&spool->mutex);
    int flags = self->flags;
    self->flags = 0;
    zkit_spool_reader_seek(self, start);
    zkit_spool_record_t record;
    int rc;
    while ((rc = zkit_spool_reader_next(self, &record)) == 1 && record.ts < ts)
        ;
    self->flags = flags;
    if (rc < 0)
        return -1;
    if (rc == 1)
        zkit_spool_reader_seek(self, record.seq);
    return 0;
}

ZKIT_EXPORT int zkit_spool_verify(zkit_spool_t *self, zkit_spool_verify_t *report)
{
    return zkit_spool_verify_regions(self, report, NULL, NULL);
}

ZKIT_EXPORT int zkit_spool_verify_regions(zkit_spool_t *self, zkit_spool_verify_t *report,
                                          zkit_spool_bad_fn *on_bad, void *arg)
{
    zkit_spool_reader_t *reader = zkit_spool_reader_new(self, 1, 0);
    if (!reader)
        return -1;
    reader->on_bad = on_bad;
    reader->on_bad_arg = arg;
    zkit_spool_verify_t out = {0};
    zkit_spool_record_t record;
    int rc;
    while ((rc = zkit_spool_reader_next(reader, &record)) == 1)
        out.records++;
    out.bad_regions = reader->bad_regions;
    out.bad_records = reader->bad_records;
    int err = errno;
    zkit_spool_reader_destroy(&reader);
    zkit_spool_stats_t stats;
    zkit_spool_stats(self, &stats);
    out.segments = stats.segments;
    out.bytes = stats.bytes;
    if (report)
        *report = out;
    if (rc < 0) {
        errno = err;
        return -1;
    }
    return out.bad_regions ? 1 : 0;
}
