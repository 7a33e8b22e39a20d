/*  retention.c: acknowledgements, the cursor file, and what may be deleted
    (retirement of acknowledged segments, age retention, drop-oldest).

    Segments are only ever deleted oldest first. Then everything below the
    oldest segment's first seq is gone, and recovery can tell so from the
    directory alone, even when the cursor file is older than the deletion:
    the floor is raised to the oldest segment's first seq on open.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "spool/spool_internal.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

static uint64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

/* ---- deleting segments ------------------------------------------------------------ */

int zkit__spool_delete_oldest(zkit_spool_t *self, const char *reason)
{
    assert(self->nsegs > 1 || (self->nsegs == 1 && self->active_fd < 0));
    zkit__segment_t seg = self->segs[0];
    uint64_t end = zkit__spool_seg_end(self, 0);
    uint64_t unacked = (end - seg.first_seq) - zkit__ackset_count(&self->acks, seg.first_seq, end);
    char name[ZKIT__SEG_NAME_SIZE], path[PATH_MAX];
    zkit__seg_name(name, sizeof name, seg.first_seq);
    if (zkit__spool_path(self, path, sizeof path, name))
        return -1;
    if (self->io.unlink(self->io.arg, path) && errno != ENOENT) {
        int err = errno;
        zsys_error("ZKIT-SPOOL-DELETE: %s: cannot delete %s: %s", self->dir, name, strerror(err));
        errno = err;
        return -1;
    }
    /* Everything below the next segment is now gone: "acknowledged". At the
       floor, so this needs no memory and cannot fail. */
    zkit__ackset_add(&self->acks, seg.first_seq, end);
    self->acks_dirty = true;
    memmove(self->segs, self->segs + 1, (self->nsegs - 1) * sizeof *self->segs);
    self->nsegs--;
    self->bytes -= seg.size;
    if (strcmp(reason, "retired") == 0)
        self->st.retired_segments++;
    else if (strcmp(reason, "expired") == 0) {
        self->st.expired_segments++;
        self->st.expired_records += unacked;
    }
    else {
        self->st.dropped_segments++;
        self->st.dropped_records += unacked;
    }
    if (unacked)
        zsys_warning("ZKIT-SPOOL-%s: %s: deleted %s holding %" PRIu64 " unacknowledged records",
                     strcmp(reason, "expired") == 0 ? "EXPIRED" : "DROPPED", self->dir, name,
                     unacked);
    pthread_cond_broadcast(&self->space_cond);
    return 0;
}

int zkit__spool_retain_locked(zkit_spool_t *self, bool ignore_retain)
{
    int deleted = 0;
    uint64_t now = self->opts.max_age_ms ? zkit__spool_now(self) : 0;
    /* The oldest segment is sealed when it is not the active one. */
    while (self->nsegs > 1 || (self->nsegs == 1 && self->active_fd < 0)) {
        const zkit__segment_t *seg = &self->segs[0];
        uint64_t end = zkit__spool_seg_end(self, 0);
        bool acked = zkit__ackset_count(&self->acks, seg->first_seq, end) == end - seg->first_seq;
        if (acked && (ignore_retain || self->bytes > self->opts.retain_bytes)) {
            if (zkit__spool_delete_oldest(self, "retired"))
                break;
            deleted++;
            continue;
        }
        if (self->opts.max_age_ms) {
            /* Records never get older ts than the segment after them was
               created with, so that bounds a segment sealed before this open. */
            uint64_t newest = seg->last_ts      ? seg->last_ts
                              : self->nsegs > 1 ? self->segs[1].create_ts
                                                : self->last_ts;
            if (newest + self->opts.max_age_ms * 1000u < now) {
                if (zkit__spool_delete_oldest(self, "expired"))
                    break;
                deleted++;
                continue;
            }
        }
        break;
    }
    return deleted;
}

ZKIT_EXPORT int zkit_spool_retain(zkit_spool_t *self)
{
    if (self->opts.read_only) {
        errno = EROFS;
        return -1;
    }
    pthread_mutex_lock(&self->mutex);
    int n = zkit__spool_retain_locked(self, false);
    pthread_mutex_unlock(&self->mutex);
    return n;
}

/* ---- acks ------------------------------------------------------------------------- */

static int s_ack(zkit_spool_t *self, uint64_t start, uint64_t end)
{
    pthread_mutex_lock(&self->mutex);
    if (start == 0 || end > self->next_seq || start >= end) {
        pthread_mutex_unlock(&self->mutex);
        errno = EINVAL;
        return -1;
    }
    int rc = zkit__ackset_add(&self->acks, start, end);
    if (rc < 0) {
        pthread_mutex_unlock(&self->mutex);
        return -1;
    }
    if (rc > 0) {
        self->st.acks++;
        self->acks_dirty = true;
        if (self->nsegs > 1 && start < self->segs[self->nsegs - 1].first_seq &&
            !self->opts.read_only)
            zkit__spool_retain_locked(self, false);
    }
    bool write = self->acks_dirty && !self->opts.read_only &&
                 (self->opts.cursor_interval_ms == 0 ||
                  s_mono_ms() - self->cursor_mono_ms >= self->opts.cursor_interval_ms);
    pthread_mutex_unlock(&self->mutex);
    return write ? zkit__spool_checkpoint(self) : 0;
}

ZKIT_EXPORT int zkit_spool_ack(zkit_spool_t *self, uint64_t seq)
{
    return s_ack(self, seq, seq + 1);
}

ZKIT_EXPORT int zkit_spool_ack_upto(zkit_spool_t *self, uint64_t seq)
{
    return s_ack(self, seq ? 1 : 0, seq + 1);
}

ZKIT_EXPORT bool zkit_spool_is_acked(zkit_spool_t *self, uint64_t seq)
{
    pthread_mutex_lock(&self->mutex);
    bool acked = seq && seq < self->next_seq && zkit__ackset_has(&self->acks, seq);
    pthread_mutex_unlock(&self->mutex);
    return acked;
}

/* ---- the cursor file ---------------------------------------------------------------- */

int zkit__spool_checkpoint(zkit_spool_t *self)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    if (zkit__spool_path(self, path, sizeof path, ZKIT__CURSOR_NAME) ||
        zkit__spool_path(self, tmp, sizeof tmp, ZKIT__CURSOR_TMP))
        return -1;
    pthread_mutex_lock(&self->cursor_mutex);
    pthread_mutex_lock(&self->mutex);
    if (!self->acks_dirty) {
        pthread_mutex_unlock(&self->mutex);
        pthread_mutex_unlock(&self->cursor_mutex);
        return 0;
    }
    size_t size = 0;
    uint8_t *data = zkit__cursor_encode(&self->acks, zkit__spool_now(self), &size);
    bool durable = self->opts.fsync != ZKIT_SPOOL_FSYNC_NEVER;
    if (data)
        self->acks_dirty = false;
    pthread_mutex_unlock(&self->mutex);

    /* Written outside the spool's mutex: appends go on meanwhile. A failed
       write leaves the previous cursor file in place; acks are then
       redelivered after a crash, never lost. The fsyncs here are on a fresh
       temporary file each time, so the next attempt never trusts a retried
       fsync. */
    int rc = data ? zkit__io_replace(&self->io, self->dir_fd, tmp, path, data, size, durable) : -1;
    int err = errno;
    free(data);
    pthread_mutex_lock(&self->mutex);
    if (rc) {
        self->acks_dirty = true;
        self->st.cursor_errors++;
        zsys_warning("ZKIT-SPOOL-CURSOR: %s: cannot write the cursor: %s", self->dir,
                     zkit_strerror(err));
    }
    else {
        self->st.cursor_writes++;
        self->cursor_mono_ms = s_mono_ms();
    }
    pthread_mutex_unlock(&self->mutex);
    pthread_mutex_unlock(&self->cursor_mutex);
    errno = err;
    return rc;
}

ZKIT_EXPORT int zkit_spool_checkpoint(zkit_spool_t *self)
{
    if (self->opts.read_only) {
        errno = EROFS;
        return -1;
    }
    return zkit__spool_checkpoint(self);
}
