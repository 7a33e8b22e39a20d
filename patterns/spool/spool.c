/*  spool.c: the spool's life cycle, appends with group commit, rollover,
    the overflow policies and the stats (zkit_spool.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "spool/spool_internal.h"

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- options ------------------------------------------------------------------ */

ZKIT_EXPORT int zkit_spool_parse_fsync(const char *text, zkit_spool_opts_t *opts)
{
    if (!text || !opts)
        goto err;
    if (strcmp(text, "always") == 0)
        opts->fsync = ZKIT_SPOOL_FSYNC_ALWAYS;
    else if (strcmp(text, "never") == 0)
        opts->fsync = ZKIT_SPOOL_FSYNC_NEVER;
    else if (strncmp(text, "interval:", 9) == 0) {
        const char *digits = text + 9;
        char *end = NULL;
        errno = 0;
        unsigned long ms = strtoul(digits, &end, 10);
        if (*digits < '0' || *digits > '9' || *end || errno || ms < 1 || ms > 3600000)
            goto err;
        opts->fsync = ZKIT_SPOOL_FSYNC_INTERVAL;
        opts->fsync_interval_ms = (uint32_t) ms;
    }
    else
        goto err;
    return 0;
err:
    errno = EINVAL;
    return -1;
}

ZKIT_EXPORT int zkit_spool_parse_full(const char *text, zkit_spool_opts_t *opts)
{
    if (text && opts && strcmp(text, "block") == 0)
        opts->on_full = ZKIT_SPOOL_FULL_BLOCK;
    else if (text && opts && strcmp(text, "reject") == 0)
        opts->on_full = ZKIT_SPOOL_FULL_REJECT;
    else if (text && opts && strcmp(text, "drop-oldest") == 0)
        opts->on_full = ZKIT_SPOOL_FULL_DROP_OLDEST;
    else {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

static bool s_opts_valid(const zkit_spool_opts_t *o)
{
    if ((unsigned) o->fsync > ZKIT_SPOOL_FSYNC_NEVER || (unsigned) o->on_full > 2)
        return false;
    if (o->fsync == ZKIT_SPOOL_FSYNC_INTERVAL && o->fsync_interval_ms == 0)
        return false;
    if (o->segment_size < 512 || o->max_record > ZKIT__REC_MAX || o->block_timeout_ms < -1)
        return false;
    if (o->max_bytes && o->max_bytes / 2 < o->segment_size)
        return false;
    return true;
}

/* ---- time and small helpers ----------------------------------------------------- */

static uint64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

/* An absolute CLOCK_MONOTONIC deadline timeout_ms from now (the condition
   variables run on that clock). */
static struct timespec s_deadline(int64_t timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t) (timeout_ms / 1000);
    ts.tv_nsec += (long) (timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

uint64_t zkit__spool_now(zkit_spool_t *self)
{
    return self->opts.clock ? self->opts.clock(self->opts.clock_arg) : zkit_clock_usec();
}

int zkit__spool_path(zkit_spool_t *self, char *out, size_t size, const char *name)
{
    int n = snprintf(out, size, "%s/%s", self->dir, name);
    if (n < 0 || (size_t) n >= size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return 0;
}

uint64_t zkit__spool_seg_end(const zkit_spool_t *self, size_t i)
{
    return i + 1 < self->nsegs ? self->segs[i + 1].first_seq : self->next_seq;
}

void zkit__spool_fail(zkit_spool_t *self, int err, const char *what)
{
    if (self->failed)
        return;
    self->failed = true;
    self->failed_errno = err ? err : EIO;
    zsys_error("ZKIT-SPOOL-FAILED: %s: %s failed: %s; writes are refused until the spool is "
               "reopened",
               self->dir, what, zkit_strerror(self->failed_errno));
    pthread_cond_broadcast(&self->sync_cond);
    pthread_cond_broadcast(&self->space_cond);
}

/* Errors after which the failed write was undone and the spool goes on. */
static bool s_is_space_error(int err)
{
    return err == ENOSPC || err == EFBIG || err == EDQUOT;
}

/* ---- group commit --------------------------------------------------------------

    Appenders write their records under the mutex, so the file holds them in
    seq order, and then need an fdatasync that started after their write.
    The first appender to find no sync under way becomes the leader: it notes
    the newest written seq, releases the mutex, calls fdatasync once, and on
    success declares every seq up to the one it noted durable. Appenders that
    wrote meanwhile wait on sync_cond; when the leader is done, one of those
    still not covered leads the next sync, for all of them. So under load one
    fdatasync covers many appends, and no append returns before a sync that
    covers it.

    A failed fdatasync fails the spool for good (until reopened). After a
    failed fsync, Linux may already have dropped the dirty pages and cleared
    the error: a retried fsync then returns 0 although the data never reached
    the disk (the "fsyncgate" problem PostgreSQL hit in 2018). Only reopening
    and recovering from what is really on disk is safe.                      */

/* Mutex held, no sync under way, an active segment. */
static void s_lead_sync(zkit_spool_t *self)
{
    zkit__segment_t *seg = &self->segs[self->nsegs - 1];
    uint64_t target = self->written_seq;
    uint64_t target_size = seg->size;
    int fd = self->active_fd;
    self->syncing = true;
    pthread_mutex_unlock(&self->mutex);
    int rc = self->io.fdatasync(self->io.arg, fd);
    int err = errno;
    pthread_mutex_lock(&self->mutex);
    self->syncing = false;
    self->st.fsyncs++;
    if (rc) {
        self->st.fsync_errors++;
        zkit__spool_fail(self, err, "fdatasync");
    }
    else if (target > self->synced_seq) {
        /* Rolls wait for syncing to end, so seg is still the active one. */
        self->synced_seq = target;
        seg = &self->segs[self->nsegs - 1];
        if (target_size > seg->visible)
            seg->visible = target_size;
    }
    pthread_cond_broadcast(&self->sync_cond);
}

/* Mutex held. Returns once seq is durable (leading syncs as needed), or -1
   with the error that failed the spool. */
static int s_wait_durable(zkit_spool_t *self, uint64_t seq)
{
    while (self->synced_seq < seq) {
        if (self->failed) {
            errno = self->failed_errno;
            return -1;
        }
        if (!self->syncing && self->active_fd >= 0)
            s_lead_sync(self);
        else
            pthread_cond_wait(&self->sync_cond, &self->mutex);
    }
    return 0;
}

static void *s_ticker(void *arg)
{
    zkit_spool_t *self = arg;
    pthread_mutex_lock(&self->mutex);
    while (!self->stopping) {
        struct timespec deadline = s_deadline(self->opts.fsync_interval_ms);
        pthread_cond_timedwait(&self->tick_cond, &self->mutex, &deadline);
        if (self->stopping)
            break;
        if (!self->failed && !self->syncing && self->active_fd >= 0 &&
            self->written_seq > self->synced_seq)
            s_lead_sync(self);
    }
    pthread_mutex_unlock(&self->mutex);
    return NULL;
}

/* ---- rollover ---------------------------------------------------------------- */

static bool s_needs_roll(const zkit_spool_t *self, uint64_t rec_size)
{
    if (self->active_fd < 0)
        return true;
    const zkit__segment_t *seg = &self->segs[self->nsegs - 1];
    return seg->size > ZKIT__SEG_HDR_SIZE && seg->size + rec_size > self->opts.segment_size;
}

/*  Seals the active segment (synced first unless NEVER) and starts a new one
    at next_seq. The new file is written as NAME.tmp and renamed once its
    header is complete (and synced), so a segment file never has a partial
    header. Mutex held. Returns 0, or -1 with errno: the old segment stays
    active after a failed write; a failed sync fails the spool.              */
static int s_roll(zkit_spool_t *self)
{
    while (self->syncing)
        pthread_cond_wait(&self->sync_cond, &self->mutex);
    if (self->failed) {
        errno = ZKIT_EFAILED;
        return -1;
    }
    bool durable = self->opts.fsync != ZKIT_SPOOL_FSYNC_NEVER;
    if (self->nsegs == self->segs_cap) {
        size_t cap = self->segs_cap ? self->segs_cap * 2 : 16;
        zkit__segment_t *grown = realloc(self->segs, cap * sizeof *grown);
        if (!grown) {
            errno = ENOMEM;
            return -1;
        }
        self->segs = grown;
        self->segs_cap = cap;
    }
    if (self->active_fd >= 0 && durable && self->written_seq > self->synced_seq) {
        self->st.fsyncs++;
        if (self->io.fdatasync(self->io.arg, self->active_fd)) {
            self->st.fsync_errors++;
            zkit__spool_fail(self, errno, "fdatasync");
            errno = self->failed_errno;
            return -1;
        }
        self->synced_seq = self->written_seq;
        /* Durable is visible, now: if creating the next segment fails
           below, this one stays active and no later sync would ever find
           anything left to do for these records.                           */
        self->segs[self->nsegs - 1].visible = self->segs[self->nsegs - 1].size;
        pthread_cond_broadcast(&self->sync_cond);
    }

    uint64_t now = zkit__spool_now(self);
    uint64_t ts = now > self->last_ts ? now : self->last_ts;
    char name[ZKIT__SEG_NAME_SIZE], tmpname[ZKIT__SEG_NAME_SIZE + 8];
    char path[PATH_MAX], tmp[PATH_MAX];
    zkit__seg_name(name, sizeof name, self->next_seq);
    snprintf(tmpname, sizeof tmpname, "%s.tmp", name);
    if (zkit__spool_path(self, path, sizeof path, name) ||
        zkit__spool_path(self, tmp, sizeof tmp, tmpname))
        return -1;
    uint8_t header[ZKIT__SEG_HDR_SIZE];
    zkit__seghdr_encode(header, self->next_seq, ts);
    int fd = self->io.open(self->io.arg, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        goto err;
    if (zkit__io_pwrite_all(&self->io, fd, header, sizeof header, 0)) {
        self->st.write_errors++;
        goto err;
    }
    if (durable && self->io.fdatasync(self->io.arg, fd)) {
        self->st.fsync_errors++;
        zkit__spool_fail(self, errno, "fdatasync of a new segment");
        goto err;
    }
    if (self->io.rename(self->io.arg, tmp, path))
        goto err;
    if (durable && self->io.fsync(self->io.arg, self->dir_fd)) {
        zkit__spool_fail(self, errno, "fsync of the directory");
        /* The renamed file stays: it is complete, and recovery takes it. */
        self->io.close(self->io.arg, fd);
        errno = self->failed_errno;
        return -1;
    }
    if (self->active_fd >= 0) {
        self->segs[self->nsegs - 1].visible = self->segs[self->nsegs - 1].size;
        self->io.close(self->io.arg, self->active_fd);
    }
    self->segs[self->nsegs++] = (zkit__segment_t){.first_seq = self->next_seq,
                                                  .create_ts = ts,
                                                  .last_ts = 0,
                                                  .size = ZKIT__SEG_HDR_SIZE,
                                                  .visible = ZKIT__SEG_HDR_SIZE};
    self->active_fd = fd;
    self->bytes += ZKIT__SEG_HDR_SIZE;
    self->last_ts = ts;
    self->st.rolls++;
    return 0;
err:;
    int err = errno;
    if (fd >= 0) {
        self->io.close(self->io.arg, fd);
        self->io.unlink(self->io.arg, tmp);
    }
    zsys_warning("ZKIT-SPOOL-ROLL: %s: cannot create segment %s: %s", self->dir, name,
                 zkit_strerror(err));
    errno = self->failed ? self->failed_errno : err;
    return -1;
}

/* ---- overflow ------------------------------------------------------------------ */

/*  Makes room for a record of rec_size bytes under max_bytes: deletes
    acknowledged segments first, then applies the policy. Mutex held.
    Returns 0, or -1 with errno (ZKIT_EFULL, ZKIT_EFAILED, or an error of a
    roll or an unlink).                                                        */
static int s_make_room(zkit_spool_t *self, uint64_t rec_size)
{
    if (!self->opts.max_bytes)
        return 0;
    bool blocked = false;
    struct timespec deadline = s_deadline(self->opts.block_timeout_ms);
    int rc = 0;
    for (;;) {
        uint64_t need = rec_size + (s_needs_roll(self, rec_size) ? ZKIT__SEG_HDR_SIZE : 0);
        if (self->bytes + need <= self->opts.max_bytes)
            break;
        if (zkit__spool_retain_locked(self, true) > 0)
            continue;
        bool oldest_sealed = self->nsegs > 1 || (self->nsegs == 1 && self->active_fd < 0);
        if (self->opts.on_full == ZKIT_SPOOL_FULL_REJECT) {
            self->st.full_rejects++;
            errno = ZKIT_EFULL;
            rc = -1;
            break;
        }
        if (self->opts.on_full == ZKIT_SPOOL_FULL_DROP_OLDEST) {
            if (oldest_sealed) {
                if (zkit__spool_delete_oldest(self, "dropped")) {
                    rc = -1;
                    break;
                }
            }
            else if (self->nsegs == 1 && self->segs[0].size > ZKIT__SEG_HDR_SIZE) {
                /* Only the active segment is left: seal it so it can go. */
                if (s_roll(self)) {
                    rc = -1;
                    break;
                }
            }
            else {
                errno = ZKIT_EFULL; /* cannot happen with valid options */
                rc = -1;
                break;
            }
            continue;
        }
        /* BLOCK: wait for acks or retention to free room. */
        if (self->failed) {
            errno = ZKIT_EFAILED;
            rc = -1;
            break;
        }
        if (!blocked) {
            blocked = true;
            self->st.full_blocks++;
            self->blocked_now++;
            pthread_cond_broadcast(&self->event_cond);
        }
        if (self->opts.block_timeout_ms < 0)
            pthread_cond_wait(&self->space_cond, &self->mutex);
        else if (pthread_cond_timedwait(&self->space_cond, &self->mutex, &deadline) == ETIMEDOUT) {
            uint64_t again = rec_size + (s_needs_roll(self, rec_size) ? ZKIT__SEG_HDR_SIZE : 0);
            if (self->bytes + again <= self->opts.max_bytes)
                break;
            self->st.full_timeouts++;
            errno = ZKIT_EFULL;
            rc = -1;
            break;
        }
    }
    if (blocked) {
        self->blocked_now--;
        pthread_cond_broadcast(&self->event_cond);
    }
    return rc;
}

/* ---- appending ------------------------------------------------------------------- */

/*  wait: under ALWAYS, return only once an fdatasync covers the record
    (false: the caller syncs later, see zkit_spool_append_nosync).          */
static int s_append_locked(zkit_spool_t *self, const void *data, size_t size, uint64_t *seq_p,
                           bool wait)
{
    uint64_t rec_size = zkit__rec_size(size);
    if (self->opts.read_only) {
        errno = EROFS;
        return -1;
    }
    if (self->failed) {
        errno = ZKIT_EFAILED;
        return -1;
    }
    if (self->opts.max_age_ms)
        zkit__spool_retain_locked(self, false);
    if (s_make_room(self, rec_size))
        return -1;
    if (self->failed) { /* while it waited for room */
        errno = ZKIT_EFAILED;
        return -1;
    }
    if (s_needs_roll(self, rec_size) && s_roll(self))
        return -1;
    if (rec_size > self->wbuf_cap) {
        size_t cap = rec_size > 4096 ? (size_t) rec_size : 4096;
        uint8_t *grown = realloc(self->wbuf, cap);
        if (!grown) {
            errno = ENOMEM;
            return -1;
        }
        self->wbuf = grown;
        self->wbuf_cap = cap;
    }
    uint64_t seq = self->next_seq;
    uint64_t now = zkit__spool_now(self);
    uint64_t ts = now > self->last_ts ? now : self->last_ts;
    zkit__rec_encode(self->wbuf, seq, ts, data, (uint32_t) size);

    /* One pwrite per record: a crash tears at most the record being written. */
    zkit__segment_t *seg = &self->segs[self->nsegs - 1];
    if (zkit__io_pwrite_all(&self->io, self->active_fd, self->wbuf, (size_t) rec_size, seg->size)) {
        int err = errno;
        self->st.write_errors++;
        /* Undo the part that was written: left there, a partial record would
           become a bad record in the middle once later appends succeed. */
        if (self->io.ftruncate(self->io.arg, self->active_fd, (off_t) seg->size))
            zkit__spool_fail(self, errno, "truncating a failed append");
        else if (!s_is_space_error(err))
            zkit__spool_fail(self, err, "write");
        else
            zsys_warning("ZKIT-SPOOL-WRITE: %s: append of seq %" PRIu64 " failed: %s", self->dir,
                         seq, zkit_strerror(err));
        errno = err;
        return -1;
    }
    self->next_seq = seq + 1;
    self->written_seq = seq;
    self->last_ts = ts;
    seg->size += rec_size;
    seg->last_ts = ts;
    self->bytes += rec_size;
    self->st.appends++;
    self->st.append_bytes += size;
    if (self->opts.fsync != ZKIT_SPOOL_FSYNC_ALWAYS)
        seg->visible = seg->size;
    else if (wait && s_wait_durable(self, seq))
        return -1;
    if (seq_p)
        *seq_p = seq;
    return 0;
}

static int s_append(zkit_spool_t *self, const void *data, size_t size, uint64_t *seq_p, bool wait)
{
    if (!self || (!data && size)) {
        errno = EINVAL;
        return -1;
    }
    if (size > self->opts.max_record ||
        (self->opts.max_bytes &&
         zkit__rec_size(size) + ZKIT__SEG_HDR_SIZE > self->opts.max_bytes / 2)) {
        errno = ZKIT_ETOOBIG;
        return -1;
    }
    pthread_mutex_lock(&self->mutex);
    int rc = s_append_locked(self, data, size, seq_p, wait);
    int err = errno;
    pthread_mutex_unlock(&self->mutex);
    errno = err;
    return rc;
}

ZKIT_EXPORT int zkit_spool_append(zkit_spool_t *self, const void *data, size_t size,
                                  uint64_t *seq_p)
{
    return s_append(self, data, size, seq_p, true);
}

ZKIT_EXPORT int zkit_spool_append_nosync(zkit_spool_t *self, const void *data, size_t size,
                                         uint64_t *seq_p)
{
    return s_append(self, data, size, seq_p, false);
}

ZKIT_EXPORT int zkit_spool_sync(zkit_spool_t *self)
{
    if (self->opts.read_only) {
        errno = EROFS;
        return -1;
    }
    pthread_mutex_lock(&self->mutex);
    int rc = 0;
    if (self->failed) {
        errno = ZKIT_EFAILED;
        rc = -1;
    }
    else
        rc = s_wait_durable(self, self->written_seq);
    int err = errno;
    pthread_mutex_unlock(&self->mutex);
    errno = err;
    return rc;
}

ZKIT_EXPORT int zkit_spool_wait_synced(zkit_spool_t *self, uint64_t seq, int timeout_ms)
{
    struct timespec deadline = s_deadline(timeout_ms < 0 ? 0 : timeout_ms);
    int rc = 0;
    pthread_mutex_lock(&self->mutex);
    while (self->synced_seq < seq) {
        if (self->failed) {
            errno = ZKIT_EFAILED;
            rc = -1;
            break;
        }
        if (timeout_ms < 0)
            pthread_cond_wait(&self->sync_cond, &self->mutex);
        else if (pthread_cond_timedwait(&self->sync_cond, &self->mutex, &deadline) == ETIMEDOUT &&
                 self->synced_seq < seq) {
            errno = ETIMEDOUT;
            rc = -1;
            break;
        }
    }
    int err = errno;
    pthread_mutex_unlock(&self->mutex);
    errno = err;
    return rc;
}

int zkit__spool_wait_blocked(zkit_spool_t *self, uint64_t n, int timeout_ms)
{
    struct timespec deadline = s_deadline(timeout_ms);
    int rc = 0;
    pthread_mutex_lock(&self->mutex);
    while (self->blocked_now < n) {
        if (pthread_cond_timedwait(&self->event_cond, &self->mutex, &deadline) == ETIMEDOUT &&
            self->blocked_now < n) {
            rc = -1;
            break;
        }
    }
    pthread_mutex_unlock(&self->mutex);
    if (rc)
        errno = ETIMEDOUT;
    return rc;
}

/* ---- stats ------------------------------------------------------------------------- */

ZKIT_EXPORT void zkit_spool_stats(zkit_spool_t *self, zkit_spool_stats_t *stats)
{
    pthread_mutex_lock(&self->mutex);
    *stats = self->st;
    stats->segments = self->nsegs;
    stats->bytes = self->bytes;
    stats->oldest_seq = self->nsegs ? self->segs[0].first_seq : 0;
    stats->newest_seq = self->next_seq > 1 ? self->next_seq - 1 : 0;
    stats->records = self->nsegs && stats->newest_seq >= stats->oldest_seq
                         ? stats->newest_seq - stats->oldest_seq + 1
                         : 0;
    stats->oldest_ts = self->nsegs ? self->segs[0].create_ts : 0;
    stats->newest_ts = self->next_seq > 1 ? self->last_ts : 0;
    stats->next_seq = self->next_seq;
    stats->ack_floor = self->acks.floor;
    stats->unacked = self->next_seq > self->acks.floor
                         ? self->next_seq - self->acks.floor -
                               zkit__ackset_count(&self->acks, self->acks.floor, self->next_seq)
                         : 0;
    stats->synced_seq = self->synced_seq;
    stats->failed = self->failed;
    stats->failed_errno = self->failed ? self->failed_errno : 0;
    pthread_mutex_unlock(&self->mutex);
}

ZKIT_EXPORT const char *zkit_spool_dir(zkit_spool_t *self)
{
    return self->dir;
}

/* ---- life cycle ------------------------------------------------------------------- */

static void s_free(zkit_spool_t *self)
{
    if (self->active_fd >= 0)
        self->io.close(self->io.arg, self->active_fd);
    if (self->dir_fd >= 0)
        self->io.close(self->io.arg, self->dir_fd);
    if (self->lock_fd >= 0)
        close(self->lock_fd); /* releases the lock */
    zkit__ackset_fini(&self->acks);
    pthread_cond_destroy(&self->tick_cond);
    pthread_cond_destroy(&self->event_cond);
    pthread_cond_destroy(&self->space_cond);
    pthread_cond_destroy(&self->sync_cond);
    pthread_mutex_destroy(&self->mutex);
    pthread_mutex_destroy(&self->cursor_mutex);
    free(self->qkeys);
    free(self->wbuf);
    free(self->segs);
    free(self->dir);
    free(self);
}

ZKIT_EXPORT zkit_spool_t *zkit_spool_new(const char *dir, const zkit_spool_opts_t *opts)
{
    static const zkit_spool_opts_t defaults = ZKIT_SPOOL_OPTS_DEFAULT;
    if (!opts)
        opts = &defaults;
    if (!dir || !*dir || !s_opts_valid(opts)) {
        errno = EINVAL;
        return NULL;
    }
    const char *what = NULL; /* for the log line when a step fails */
    zkit_spool_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    self->opts = *opts;
    self->io = opts->io ? *opts->io : *zkit_spool_io_default();
    self->active_fd = self->dir_fd = self->lock_fd = -1;
    zkit__ackset_init(&self->acks);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&self->cursor_mutex, NULL);
    pthread_mutex_init(&self->mutex, NULL);
    pthread_cond_init(&self->sync_cond, &attr);
    pthread_cond_init(&self->space_cond, &attr);
    pthread_cond_init(&self->event_cond, &attr);
    pthread_cond_init(&self->tick_cond, &attr);
    pthread_condattr_destroy(&attr);
    self->cursor_mono_ms = s_mono_ms();

    self->dir = strdup(dir);
    if (!self->dir) {
        errno = ENOMEM;
        goto err;
    }
    if (!opts->read_only && mkdir(dir, 0755) && errno != EEXIST) {
        what = "cannot create the directory";
        goto err;
    }
    self->dir_fd = self->io.open(self->io.arg, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (self->dir_fd < 0) {
        what = "cannot open the directory";
        goto err;
    }
    if (!opts->read_only) {
        char path[PATH_MAX];
        if (zkit__spool_path(self, path, sizeof path, ZKIT__LOCK_NAME))
            goto err;
        self->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (self->lock_fd < 0) {
            what = "cannot open the lock file";
            goto err;
        }
        if (flock(self->lock_fd, LOCK_EX | LOCK_NB)) {
            if (errno == EWOULDBLOCK)
                errno = EBUSY;
            what = "in use by another spool";
            goto err;
        }
    }
    if (zkit__spool_recover(self))
        goto err;
    if (!opts->read_only && opts->fsync == ZKIT_SPOOL_FSYNC_INTERVAL) {
        if (pthread_create(&self->ticker, NULL, s_ticker, self)) {
            errno = EAGAIN;
            goto err;
        }
        self->ticker_running = true;
    }
    return self;
err:;
    int err = errno;
    if (what)
        zsys_error("ZKIT-SPOOL-OPEN: %s: %s: %s", dir, what, zkit_strerror(err));
    s_free(self);
    errno = err;
    return NULL;
}

ZKIT_EXPORT void zkit_spool_destroy(zkit_spool_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zkit_spool_t *self = *self_p;
    *self_p = NULL;
    pthread_mutex_lock(&self->mutex);
    self->stopping = true;
    pthread_cond_broadcast(&self->tick_cond);
    pthread_mutex_unlock(&self->mutex);
    if (self->ticker_running)
        pthread_join(self->ticker, NULL);
    assert(self->readers == 0); /* destroy every reader first */
    if (!self->opts.read_only) {
        pthread_mutex_lock(&self->mutex);
        while (self->syncing)
            pthread_cond_wait(&self->sync_cond, &self->mutex);
        if (!self->failed && self->opts.fsync != ZKIT_SPOOL_FSYNC_NEVER &&
            self->written_seq > self->synced_seq && s_wait_durable(self, self->written_seq))
            zsys_warning("ZKIT-SPOOL-CLOSE: %s: final sync failed: %s", self->dir,
                         zkit_strerror(errno));
        pthread_mutex_unlock(&self->mutex);
        zkit__spool_checkpoint(self); /* logs its own failure */
    }
    s_free(self);
}
