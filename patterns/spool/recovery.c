/*  recovery.c: what a spool does on open, and the quarantine list.

    Recovery (docs/spool-format.md, "Recovery"), in order:
    1. Remove temporary files a crash left (*.tmp).
    2. Read the cursor: the acknowledged seqs. A damaged cursor is reported
       and ignored: everything is then redelivered (at-least-once).
    3. Read the quarantine list: regions found bad before, and the seqs they
       lost, which count as gone.
    4. Check every segment header. A segment with a bad header is recorded in
       the quarantine list and renamed NAME.bad: none of it is delivered.
    5. Scan the newest segment record by record. A bad region followed by a
       good record is quarantined; a bad region that runs to the end of the
       file is a torn write and is truncated away.
    6. Derive the next seq: above every record, every acknowledged seq and
       every seq known lost, so a seq downstream may have seen is never
       reused for a different record.
    Each step leaves the directory in a state the same steps map to itself,
    so recovery run twice gives the same result.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "spool/spool_internal.h"

#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Largest cursor or quarantine file read (a cursor with 4M holes). */
#define S_MAX_META_FILE (64u * 1024 * 1024)

/* Reads a whole small file into a malloc'd buffer. Returns 1 with *data and
 *size set, 0 when the file does not exist, -1 with errno. */
static int s_read_file(zkit_spool_t *self, const char *name, uint8_t **data, size_t *size)
{
    char path[PATH_MAX];
    if (zkit__spool_path(self, path, sizeof path, name))
        return -1;
    int fd = self->io.open(self->io.arg, path, O_RDONLY | O_CLOEXEC, 0);
    if (fd < 0)
        return errno == ENOENT ? 0 : -1;
    struct stat st;
    uint8_t *buf = NULL;
    size_t got = 0;
    if (fstat(fd, &st))
        goto err;
    if ((uint64_t) st.st_size > S_MAX_META_FILE) {
        errno = EFBIG;
        goto err;
    }
    buf = malloc((size_t) st.st_size + 1);
    if (!buf) {
        errno = ENOMEM;
        goto err;
    }
    while (got < (size_t) st.st_size) {
        ssize_t n =
            self->io.pread(self->io.arg, fd, buf + got, (size_t) st.st_size - got, (off_t) got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto err;
        if (n == 0)
            break;
        got += (size_t) n;
    }
    buf[got] = 0;
    self->io.close(self->io.arg, fd);
    *data = buf;
    *size = got;
    return 1;
err:;
    int err = errno;
    free(buf);
    self->io.close(self->io.arg, fd);
    errno = err;
    return -1;
}

/* ---- the quarantine list ---------------------------------------------------------

    A text file, one line per bad region (docs/spool-format.md):
      SEGMENT OFFSET SIZE LOST_START LOST_END DETECTED_TS REASON
    The lost seqs are [LOST_START, LOST_END).                                */

static bool s_known(zkit_spool_t *self, uint64_t seg_first, uint64_t offset)
{
    for (size_t i = 0; i < self->nq; i++)
        if (self->qkeys[i].first_seq == seg_first && self->qkeys[i].offset == offset)
            return true;
    return false;
}

static void s_remember(zkit_spool_t *self, uint64_t seg_first, uint64_t offset)
{
    if (self->nq == self->qcap) {
        size_t cap = self->qcap ? self->qcap * 2 : 8;
        zkit__qkey_t *grown = realloc(self->qkeys, cap * sizeof *grown);
        if (!grown)
            return; /* it may then be recorded twice: harmless */
        self->qkeys = grown;
        self->qcap = cap;
    }
    self->qkeys[self->nq++] = (zkit__qkey_t){seg_first, offset};
}

/* Appends one line to the quarantine file, synced unless NEVER. */
static int s_write_quarantine_line(zkit_spool_t *self, const char *line)
{
    char path[PATH_MAX];
    if (zkit__spool_path(self, path, sizeof path, ZKIT__QUARANTINE_NAME))
        return -1;
    int fd = self->io.open(self->io.arg, path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    struct stat st;
    int rc = fstat(fd, &st);
    char prefix[1] = {'\n'};
    if (rc == 0 && st.st_size > 0) {
        /* A line torn by a crash is ended first, so it stays one bad line. */
        char last = '\n';
        if (self->io.pread(self->io.arg, fd, &last, 1, st.st_size - 1) == 1 && last != '\n')
            rc = zkit__io_pwrite_all(&self->io, fd, prefix, 1, (uint64_t) st.st_size++);
    }
    if (rc == 0)
        rc = zkit__io_pwrite_all(&self->io, fd, line, strlen(line), (uint64_t) st.st_size);
    if (rc == 0 && self->opts.fsync != ZKIT_SPOOL_FSYNC_NEVER)
        rc = self->io.fdatasync(self->io.arg, fd);
    int err = errno;
    self->io.close(self->io.arg, fd);
    errno = err;
    return rc;
}

int zkit__spool_quarantine(zkit_spool_t *self, uint64_t seg_first, uint64_t offset, uint64_t size,
                           uint64_t lost_start, uint64_t lost_end, const char *reason)
{
    if (lost_end > lost_start && zkit__ackset_add(&self->acks, lost_start, lost_end) > 0)
        self->acks_dirty = true;
    if (s_known(self, seg_first, offset))
        return 0;
    s_remember(self, seg_first, offset);
    self->st.quarantined_regions++;
    self->st.quarantined_records += lost_end > lost_start ? lost_end - lost_start : 0;
    self->st.quarantined_bytes += size;
    char name[ZKIT__SEG_NAME_SIZE];
    zkit__seg_name(name, sizeof name, seg_first);
    zsys_error("ZKIT-SPOOL-QUARANTINE: %s/%s: bad region at offset %" PRIu64 ", %" PRIu64
               " bytes (%s); seqs [%" PRIu64 ", %" PRIu64 ") quarantined, never delivered",
               self->dir, name, offset, size, reason, lost_start, lost_end);
    if (!self->opts.read_only) {
        char line[256];
        snprintf(line, sizeof line,
                 "%s %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %s\n", name,
                 offset, size, lost_start, lost_end, zkit__spool_now(self), reason);
        if (s_write_quarantine_line(self, line))
            zsys_error("ZKIT-SPOOL-QUARANTINE: %s: cannot record it in %s: %s", self->dir,
                       ZKIT__QUARANTINE_NAME, strerror(errno));
    }
    return 1;
}

static int s_load_quarantine(zkit_spool_t *self)
{
    uint8_t *data = NULL;
    size_t size = 0;
    int rc = s_read_file(self, ZKIT__QUARANTINE_NAME, &data, &size);
    if (rc <= 0)
        return rc;
    char *save = NULL;
    for (char *line = strtok_r((char *) data, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        char name[64], reason[64];
        uint64_t offset, bytes, lost_start, lost_end, ts, seg_first;
        if (sscanf(line, "%63s %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %63s",
                   name, &offset, &bytes, &lost_start, &lost_end, &ts, reason) != 7 ||
            !zkit__seg_parse_name(name, &seg_first))
            continue; /* a line torn by a crash: its region is found again */
        s_remember(self, seg_first, offset);
        if (lost_end > lost_start && lost_start > 0)
            zkit__ackset_add(&self->acks, lost_start, lost_end);
    }
    free(data);
    return 0;
}

/* ---- the cursor ------------------------------------------------------------------ */

static int s_load_cursor(zkit_spool_t *self)
{
    uint8_t *data = NULL;
    size_t size = 0;
    int rc = s_read_file(self, ZKIT__CURSOR_NAME, &data, &size);
    if (rc <= 0)
        return rc;
    const char *reason = NULL;
    rc = zkit__cursor_decode(&self->acks, data, size, &reason);
    free(data);
    if (rc && errno == EINVAL) {
        zsys_warning("ZKIT-SPOOL-CURSOR: %s/%s is damaged (%s) and ignored: unacknowledged "
                     "records are all redelivered",
                     self->dir, ZKIT__CURSOR_NAME, reason);
        self->st.cursor_errors++;
        return 0;
    }
    return rc;
}

/* ---- segments ------------------------------------------------------------------- */

static int s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return x < y ? -1 : x > y;
}

/* The first seqs of the segment files, sorted. Removes *.tmp (read-write). */
static int s_list(zkit_spool_t *self, uint64_t **seqs_p, size_t *count_p)
{
    DIR *dir = opendir(self->dir);
    if (!dir)
        return -1;
    uint64_t *seqs = NULL;
    size_t count = 0, cap = 0;
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        const char *name = entry->d_name;
        size_t len = strlen(name);
        uint64_t seq;
        if (len > 4 && strcmp(name + len - 4, ".tmp") == 0 && !self->opts.read_only) {
            char path[PATH_MAX];
            if (zkit__spool_path(self, path, sizeof path, name) == 0)
                self->io.unlink(self->io.arg, path);
            continue;
        }
        if (!zkit__seg_parse_name(name, &seq))
            continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *grown = realloc(seqs, cap * sizeof *grown);
            if (!grown) {
                free(seqs);
                closedir(dir);
                errno = ENOMEM;
                return -1;
            }
            seqs = grown;
        }
        seqs[count++] = seq;
    }
    closedir(dir);
    if (count)
        qsort(seqs, count, sizeof *seqs, s_cmp_u64);
    *seqs_p = seqs;
    *count_p = count;
    return 0;
}

/* Highest good seq in a segment whose header is bad, scanning from just after
   the header (read-only, nothing delivered); 0 when none. */
static uint64_t s_highest_seq(zkit_spool_t *self, int fd, uint64_t size, uint64_t first)
{
    zkit__segview_t view;
    zkit__segview_init(&view, &self->io);
    zkit__segview_set_fd(&view, fd);
    uint64_t off = ZKIT__SEG_HDR_SIZE, prev = first - 1, highest = 0;
    zkit__scan_item_t item;
    for (;;) {
        zkit__scan_t r = zkit__segment_scan(&view, off, size, prev, &item);
        if (r == ZKIT__SCAN_RECORD)
            highest = prev = item.seq;
        else if (r != ZKIT__SCAN_BAD || item.to_end)
            break;
        off = item.next_off;
    }
    zkit__segview_fini(&view);
    return highest;
}

/* Quarantines segment file name_seq whose header is bad and renames it aside.
   lost_end is the next segment's first seq, or 0 for the newest. */
static int s_set_aside(zkit_spool_t *self, uint64_t name_seq, int fd, uint64_t size,
                       uint64_t lost_end, const char *reason)
{
    if (!lost_end) {
        uint64_t highest = s_highest_seq(self, fd, size, name_seq);
        lost_end = highest ? highest + 1 : name_seq;
    }
    char why[64];
    snprintf(why, sizeof why, "segment-%s", reason);
    zkit__spool_quarantine(self, name_seq, 0, size, name_seq, lost_end, why);
    if (self->next_seq < lost_end)
        self->next_seq = lost_end;
    self->st.bad_segments++;
    if (self->opts.read_only)
        return 0;
    char name[ZKIT__SEG_NAME_SIZE], path[PATH_MAX], bad[PATH_MAX + 8];
    zkit__seg_name(name, sizeof name, name_seq);
    if (zkit__spool_path(self, path, sizeof path, name))
        return -1;
    snprintf(bad, sizeof bad, "%s.bad", path);
    /* Recorded before renamed: a crash in between finds it again, and the
       quarantine list already knows it. */
    if (self->io.rename(self->io.arg, path, bad)) {
        ZKIT__KEEP_ERRNO(zsys_error("ZKIT-SPOOL-OPEN: %s: cannot set %s aside: %s", self->dir, name,
                                    strerror(errno)));
        return -1;
    }
    return 0;
}

static int s_push(zkit_spool_t *self, const zkit__segment_t *seg)
{
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
    self->segs[self->nsegs++] = *seg;
    self->bytes += seg->size;
    return 0;
}

/* Scans the newest segment, open as fd: quarantines bad regions in the middle
   and cuts a torn tail. Sets the segment's size and the spool's last seq. */
static int s_scan_tail(zkit_spool_t *self, int fd, uint64_t *last_seq)
{
    zkit__segment_t *seg = &self->segs[self->nsegs - 1];
    zkit__segview_t view;
    zkit__segview_init(&view, &self->io);
    zkit__segview_set_fd(&view, fd);
    uint64_t off = ZKIT__SEG_HDR_SIZE, prev = seg->first_seq - 1;
    int rc = 0;
    zkit__scan_item_t item;
    for (;;) {
        zkit__scan_t r = zkit__segment_scan(&view, off, seg->size, prev, &item);
        if (r == ZKIT__SCAN_END)
            break;
        if (r == ZKIT__SCAN_ERROR) {
            ZKIT__KEEP_ERRNO(zsys_error("ZKIT-SPOOL-OPEN: %s: cannot read the newest segment: %s",
                                        self->dir, strerror(errno)));
            rc = -1;
            break;
        }
        if (r == ZKIT__SCAN_RECORD) {
            prev = item.seq;
            seg->last_ts = item.ts;
            off = item.next_off;
            continue;
        }
        if (!item.to_end) {
            zkit__spool_quarantine(self, seg->first_seq, item.off, item.bad_size, prev + 1,
                                   item.next_seq, item.reason);
            off = item.next_off;
            continue;
        }
        /* A bad region running to the end: the write a crash interrupted. */
        char name[ZKIT__SEG_NAME_SIZE];
        zkit__seg_name(name, sizeof name, seg->first_seq);
        zsys_warning("ZKIT-SPOOL-TORN: %s/%s: torn record at offset %" PRIu64 " (%s), %" PRIu64
                     " bytes %s; the last complete record is seq %" PRIu64,
                     self->dir, name, item.off, item.reason, item.bad_size,
                     self->opts.read_only ? "skipped (read-only)" : "truncated", prev);
        if (!self->opts.read_only && self->io.ftruncate(self->io.arg, fd, (off_t) item.off)) {
            ZKIT__KEEP_ERRNO(zsys_error("ZKIT-SPOOL-OPEN: %s/%s: cannot truncate: %s", self->dir,
                                        name, strerror(errno)));
            rc = -1;
            break;
        }
        self->st.torn_truncations++;
        self->st.torn_bytes += item.bad_size;
        self->bytes -= seg->size - item.off;
        seg->size = item.off;
        break;
    }
    seg->visible = seg->size;
    zkit__segview_fini(&view);
    *last_seq = prev;
    return rc;
}

int zkit__spool_recover(zkit_spool_t *self)
{
    uint64_t *seqs = NULL;
    size_t count = 0;
    int fd = -1;
    if (s_load_cursor(self) || s_load_quarantine(self) || s_list(self, &seqs, &count))
        goto err;

    /* Segment headers. */
    for (size_t i = 0; i < count; i++) {
        char name[ZKIT__SEG_NAME_SIZE], path[PATH_MAX];
        zkit__seg_name(name, sizeof name, seqs[i]);
        if (zkit__spool_path(self, path, sizeof path, name))
            goto err;
        bool newest = i + 1 == count;
        int flags = (newest && !self->opts.read_only ? O_RDWR : O_RDONLY) | O_CLOEXEC;
        fd = self->io.open(self->io.arg, path, flags, 0);
        struct stat st;
        if (fd < 0 || fstat(fd, &st)) {
            ZKIT__KEEP_ERRNO(
                zsys_error("ZKIT-SPOOL-OPEN: cannot open %s: %s", path, strerror(errno)));
            goto err;
        }
        uint8_t header[ZKIT__SEG_HDR_SIZE];
        ssize_t got = self->io.pread(self->io.arg, fd, header, sizeof header, 0);
        if (got < 0)
            goto err;
        zkit__seghdr_t hdr;
        const char *reason = NULL;
        int hrc = zkit__seghdr_decode(header, (size_t) got, &hdr, &reason);
        if (hrc > 0) {
            zsys_error("ZKIT-SPOOL-OPEN: %s: format version %u is newer than this zkit's (%d)",
                       path, hdr.version, ZKIT__SPOOL_VERSION);
            errno = ZKIT_EFORMAT;
            goto err;
        }
        if (hrc == 0 && hdr.first_seq != seqs[i]) {
            hrc = -1;
            reason = "name";
        }
        if (hrc < 0) {
            pthread_mutex_lock(&self->mutex);
            int arc = s_set_aside(self, seqs[i], fd, (uint64_t) st.st_size,
                                  newest ? 0 : seqs[i + 1], reason);
            pthread_mutex_unlock(&self->mutex);
            if (arc)
                goto err;
            self->io.close(self->io.arg, fd);
            fd = -1;
            continue;
        }
        zkit__segment_t seg = {.first_seq = hdr.first_seq,
                               .create_ts = hdr.create_ts,
                               .size = (uint64_t) st.st_size,
                               .visible = (uint64_t) st.st_size};
        if (s_push(self, &seg))
            goto err;
        if (!newest) {
            self->io.close(self->io.arg, fd);
            fd = -1;
        }
    }
    free(seqs);
    seqs = NULL;

    /* The newest segment. fd is open on it when its header was good. */
    uint64_t present_end = 1; /* one past the newest record's seq */
    if (fd >= 0) {
        uint64_t last = 0;
        pthread_mutex_lock(&self->mutex);
        int rc = s_scan_tail(self, fd, &last);
        pthread_mutex_unlock(&self->mutex);
        if (rc)
            goto err;
        /* Make what recovery keeps durable, so a reader never delivers a
           record a machine crash could take back. */
        if (!self->opts.read_only && self->opts.fsync != ZKIT_SPOOL_FSYNC_NEVER &&
            self->io.fdatasync(self->io.arg, fd)) {
            ZKIT__KEEP_ERRNO(
                zsys_error("ZKIT-SPOOL-OPEN: %s: fdatasync of the newest segment failed: %s",
                           self->dir, strerror(errno)));
            goto err;
        }
        const zkit__segment_t *tail = &self->segs[self->nsegs - 1];
        present_end = last + 1;
        self->last_ts = tail->last_ts > tail->create_ts ? tail->last_ts : tail->create_ts;
        if (self->opts.read_only)
            self->io.close(self->io.arg, fd);
        else
            self->active_fd = fd;
        fd = -1;
    }
    else if (self->nsegs) {
        /* The newest file was set aside (s_set_aside raised next_seq past
           what it held): appends start a new segment. */
        self->last_ts = self->segs[self->nsegs - 1].create_ts;
        present_end = self->next_seq;
    }

    /* The next seq: never one downstream may have seen, so above every
       acknowledged seq and every seq a set-aside segment held. */
    uint64_t next = present_end;
    if (next < self->next_seq)
        next = self->next_seq;
    if (next < zkit__ackset_top(&self->acks))
        next = zkit__ackset_top(&self->acks);
    self->next_seq = next;
    /* Below the oldest segment everything is gone, and seqs from the newest
       record to next do not exist: both count as acknowledged. */
    uint64_t oldest = self->nsegs ? self->segs[0].first_seq : next;
    if (zkit__ackset_add(&self->acks, 1, oldest) > 0)
        self->acks_dirty = true;
    if (zkit__ackset_add(&self->acks, present_end, next) > 0)
        self->acks_dirty = true;
    self->written_seq = self->synced_seq = next - 1;
    if (!self->opts.read_only) {
        pthread_mutex_lock(&self->mutex);
        zkit__spool_retain_locked(self, false);
        pthread_mutex_unlock(&self->mutex);
        if (self->acks_dirty)
            zkit__spool_checkpoint(self); /* a failure is logged; retried later */
    }
    return 0;
err:;
    int err = errno;
    free(seqs);
    if (fd >= 0)
        self->io.close(self->io.arg, fd);
    errno = err;
    return -1;
}
