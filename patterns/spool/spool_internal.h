/*  spool_internal.h (internal): the spool object shared by spool.c (life
    cycle, appends, group commit), retention.c (acks, cursor, retention),
    recovery.c (open-time recovery, quarantine) and reader.c.

    Locking. self->mutex guards every field below it. File writes of appends
    and rolls happen under it, so the file order is the seq order; the
    group-commit fdatasync happens outside it (syncing says one is under way,
    and nothing closes the active segment's fd while it is). The cursor file
    is written under cursor_mutex, taken before mutex, never after.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_SPOOL_INTERNAL_H_INCLUDED
#define ZKIT_SPOOL_INTERNAL_H_INCLUDED

#include <errno.h>
#include <limits.h>
#include <pthread.h>

#include "zkit_spool.h"

#include "spool/ackset.h"
#include "spool/format.h"
#include "spool/segment.h"

/*  One segment file. A segment's seqs are [first_seq, the next segment's
    first_seq), or [first_seq, next_seq) for the newest: gaps and lost seqs in
    that range are in the ack set, so "all acknowledged" is exact.          */
typedef struct {
    uint64_t first_seq;
    uint64_t create_ts;
    uint64_t last_ts; /* ts of its newest record; 0 when unknown (a segment
                         sealed before this open: the next segment's
                         create_ts bounds it)                             */
    uint64_t size;    /* bytes in the file                                */
    uint64_t visible; /* bytes readers may read: size, except for the
                         active segment under ALWAYS (synced bytes only)  */
} zkit__segment_t;

/*  A quarantined region, for not recording one twice.                      */
typedef struct {
    uint64_t first_seq; /* of its segment */
    uint64_t offset;
} zkit__qkey_t;

struct _zkit_spool_t {
    char *dir;
    zkit_spool_opts_t opts;
    zkit_spool_io_t io;
    int dir_fd;
    int lock_fd;
    pthread_mutex_t cursor_mutex;
    pthread_mutex_t mutex;
    pthread_cond_t sync_cond;  /* synced_seq, syncing or failed changed     */
    pthread_cond_t space_cond; /* bytes were freed, or the spool failed     */
    pthread_cond_t event_cond; /* blocked_now changed (tests wait on it)    */
    pthread_cond_t tick_cond;  /* stop the INTERVAL thread                  */

    zkit__segment_t *segs; /* oldest first */
    size_t nsegs, segs_cap;
    int active_fd;  /* segs[nsegs - 1] open for appends, or -1: the
                       next append creates a segment               */
    uint64_t bytes; /* sum of sizes                                  */
    uint64_t next_seq;
    uint64_t written_seq; /* every seq up to it is written               */
    uint64_t synced_seq;  /* every seq up to it is durable               */
    uint64_t last_ts;     /* ts of the newest record (ts never decreases) */
    bool syncing;         /* a group-commit leader is in fdatasync        */
    bool failed;
    int failed_errno;

    zkit__ackset_t acks;
    bool acks_dirty;         /* acks changed since the cursor was written   */
    uint64_t cursor_mono_ms; /* when the cursor was last written            */

    uint8_t *wbuf; /* the record being appended */
    size_t wbuf_cap;

    pthread_t ticker; /* INTERVAL */
    bool ticker_running, stopping;

    zkit__qkey_t *qkeys;
    size_t nq, qcap;

    size_t readers;
    uint64_t blocked_now;  /* appenders waiting for room */
    zkit_spool_stats_t st; /* the counters (state fields unused)          */
};

/*  Runs a logging statement without losing errno (logging may change it).   */
#define ZKIT__KEEP_ERRNO(stmt)                                                                     \
    do {                                                                                           \
        int zkit__saved_errno = errno;                                                             \
        stmt;                                                                                      \
        errno = zkit__saved_errno;                                                                 \
    } while (0)

/* ---- spool.c ---------------------------------------------------------------- */

/*  The spool's clock (opts.clock or zkit_clock_usec).                         */
uint64_t zkit__spool_now(zkit_spool_t *self);

/*  dir + "/" + name into out. Returns 0, or -1 with ENAMETOOLONG.           */
int zkit__spool_path(zkit_spool_t *self, char *out, size_t size, const char *name);

/*  Puts the spool in the FAILED state with err (logged once). Mutex held.   */
void zkit__spool_fail(zkit_spool_t *self, int err, const char *what);

/*  Seqs of segment i are [segs[i].first_seq, zkit__spool_seg_end(i)).       */
uint64_t zkit__spool_seg_end(const zkit_spool_t *self, size_t i);

/* ---- retention.c ------------------------------------------------------------- */

/*  Deletes segs[0] (never the active one) for reason "retired", "expired" or
    "dropped", counting the unacknowledged seqs it held and adding its seqs
    to the ack set. Mutex held. Returns 0, or -1 with errno (unlink failed;
    logged; the segment stays).                                              */
int zkit__spool_delete_oldest(zkit_spool_t *self, const char *reason);

/*  Deletes what retention allows; ignore_retain deletes every acknowledged
    sealed segment whatever retain_bytes says (to make room). Mutex held.
    Returns the number of segments deleted.                                   */
int zkit__spool_retain_locked(zkit_spool_t *self, bool ignore_retain);

/*  Writes the cursor file if dirty (takes the locks itself).                 */
int zkit__spool_checkpoint(zkit_spool_t *self);

/* ---- recovery.c ---------------------------------------------------------------- */

/*  Loads the cursor and the quarantine list, checks the segments and scans
    the newest (see zkit_spool_new). Called by the constructor with the
    directory locked and nothing else running. Returns 0 or -1 with errno.    */
int zkit__spool_recover(zkit_spool_t *self);

/*  Records a bad region of the segment starting at seg_first: [offset,
    offset + size), whose lost seqs are [lost_start, lost_end). Unless already
    known, appends it to the quarantine file (read-write spools), counts it,
    logs it and adds the lost seqs to the ack set so that they never hold
    back the floor. Mutex held. Returns 1 when new, 0 when already known.   */
int zkit__spool_quarantine(zkit_spool_t *self, uint64_t seg_first, uint64_t offset, uint64_t size,
                           uint64_t lost_start, uint64_t lost_end, const char *reason);

/* ---- io.c -------------------------------------------------------------------- */

/*  Writes all size bytes at offset, retrying short writes and EINTR.
    Returns 0, or -1 with errno (EIO when the file accepts 0 bytes).         */
int zkit__io_pwrite_all(const zkit_spool_io_t *io, int fd, const void *buf, size_t size,
                        uint64_t offset);

/*  Replaces path with data atomically: writes tmp_path, fdatasyncs it,
    renames it over path and fsyncs the directory (the syncs only when
    durable). Returns 0, or -1 with errno; on failure before the rename
    tmp_path is removed and path is untouched.                               */
int zkit__io_replace(const zkit_spool_io_t *io, int dir_fd, const char *tmp_path, const char *path,
                     const void *data, size_t size, bool durable);

/* ---- test hooks --------------------------------------------------------------- */

/*  Waits until at least n appenders are blocked waiting for room, for at
    most timeout_ms. Returns 0, or -1 with ETIMEDOUT.                        */
int zkit__spool_wait_blocked(zkit_spool_t *self, uint64_t n, int timeout_ms);

#endif
