/*  zkit_spool.h: a crash-safe, segmented, append-only log on local disk.

    The spool is the store in store-and-forward. Producers append records (an
    envelope frame's bytes, treated as opaque); each record gets a sequence
    number (seq), monotonic across segments and restarts, starting at 1, and a
    timestamp. Readers iterate records from a seq, from a time, or from the
    cursor ("everything not yet acknowledged"); downstream acknowledges seqs,
    in any order, and whole segments whose records are all acknowledged are
    retired. The on-disk format, the recovery rules and the fsync semantics are
    specified in docs/spool-format.md.

    Promises (docs/spool-format.md states them exactly):
    - With fsync ALWAYS, zkit_spool_append returns 0 only after the record is
      on stable storage (fdatasync). Concurrent appenders share one fdatasync
      (group commit). Such an acknowledged record survives a crash of the
      process or of the machine and is delivered by every reader until it is
      acknowledged downstream or removed by an explicit policy (age retention,
      drop-oldest), each of which is counted.
    - Recovery on open truncates a torn record at the end of the newest
      segment (a crash during a write) and quarantines a bad record in the
      middle (reported, recorded in the quarantine file, never delivered);
      later records are still delivered. Recovery run twice gives the same
      result.
    - A failed write (ENOSPC, EFBIG, EDQUOT) gives the appender the error and
      leaves the files as they were before that append; the spool stays usable.
      A failed fdatasync puts the spool in the FAILED state: every later write
      fails with ZKIT_EFAILED until the spool is destroyed and opened again.

    Threads. A spool is thread-safe: any number of threads may append, ack,
    sync, read stats and use readers at the same time. A reader is used by one
    thread at a time. Destroying the spool while another thread still uses it
    or one of its readers is a programming error.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_SPOOL_H_INCLUDED
#define ZKIT_SPOOL_H_INCLUDED

#include <sys/types.h>

#include "zkit_library.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _zkit_spool_t zkit_spool_t;
typedef struct _zkit_spool_reader_t zkit_spool_reader_t;

/*  When appended data reaches stable storage.                                */
typedef enum {
    ZKIT_SPOOL_FSYNC_ALWAYS = 0, /* append returns after an fdatasync covering
                                    its record; concurrent appends share one */
    ZKIT_SPOOL_FSYNC_INTERVAL,   /* a background thread syncs every
                                    fsync_interval_ms; a crash of the machine
                                    loses at most that window                */
    ZKIT_SPOOL_FSYNC_NEVER,      /* the operating system decides; a crash of
                                    the process loses nothing, one of the
                                    machine may lose anything not yet written
                                    back                                      */
} zkit_spool_fsync_t;

/*  What an append does when the spool holds max_bytes (after the acknowledged
    segments have been deleted to make room).                                */
typedef enum {
    ZKIT_SPOOL_FULL_BLOCK = 0,   /* wait up to block_timeout_ms for room     */
    ZKIT_SPOOL_FULL_REJECT,      /* fail at once with ZKIT_EFULL             */
    ZKIT_SPOOL_FULL_DROP_OLDEST, /* delete the oldest segment, acknowledged or
                                    not, and count what was lost             */
} zkit_spool_full_t;

/*  The file operations the spool performs, so that tests can inject failures
    (a failing fdatasync, ENOSPC, short writes). Each has the contract of the
    system call it names (return value and errno), plus arg, the table's arg.
    fsync is used on directories only; everything else is used on files.
    zkit_spool_io_default() gives the real system calls.                     */
typedef struct {
    int (*open)(void *arg, const char *path, int flags, mode_t mode);
    int (*close)(void *arg, int fd);
    ssize_t (*pread)(void *arg, int fd, void *buf, size_t size, off_t offset);
    ssize_t (*pwrite)(void *arg, int fd, const void *buf, size_t size, off_t offset);
    int (*fdatasync)(void *arg, int fd);
    int (*fsync)(void *arg, int fd);
    int (*ftruncate)(void *arg, int fd, off_t size);
    int (*rename)(void *arg, const char *from, const char *to);
    int (*unlink)(void *arg, const char *path);
    void *arg;
} zkit_spool_io_t;

/*  The real system calls (arg unused). Static; never NULL.                  */
ZKIT_EXPORT const zkit_spool_io_t *zkit_spool_io_default(void);

/*  A clock in microseconds since the Unix epoch. Records are stamped with it
    and age retention measures against it.                                    */
typedef uint64_t(zkit_spool_clock_fn)(void *arg);

typedef struct {
    zkit_spool_fsync_t fsync;    /* default ALWAYS                               */
    uint32_t fsync_interval_ms;  /* INTERVAL: period of the background sync    */
    uint64_t segment_size;       /* a segment rolls over before it would pass
                                    this many bytes (a single larger record
                                    gets a segment of its own); default 64 MiB */
    uint32_t max_record;         /* largest payload accepted; default 16 MiB     */
    uint64_t max_bytes;          /* total size of the segment files; 0 = no
                                    limit. Must be at least
                                    2 * (segment_size) when set               */
    zkit_spool_full_t on_full;   /* policy when max_bytes would be passed      */
    int block_timeout_ms;        /* BLOCK: longest wait, -1 = forever          */
    uint64_t retain_bytes;       /* acknowledged segments are kept for replay
                                    while the spool is no larger than this;
                                    0 = delete them as soon as they are
                                    acknowledged                               */
    uint64_t max_age_ms;         /* segments whose newest record is older are
                                    deleted, acknowledged or not; 0 = no limit */
    uint32_t cursor_interval_ms; /* ack writes the cursor file at most this
                                    often; 0 = on every ack. Acks not yet
                                    written are redelivered after a crash
                                    (at-least-once)                            */
    bool read_only;              /* inspect only: no lock, no repair on disk (a
                                    torn tail is skipped, not truncated), every
                                    write fails with EROFS, acks stay in memory */
    const zkit_spool_io_t *io;   /* NULL = zkit_spool_io_default(); the table
                                    is copied, arg must outlive the spool     */
    zkit_spool_clock_fn *clock;  /* NULL = zkit_clock_usec                    */
    void *clock_arg;
} zkit_spool_opts_t;

#define ZKIT_SPOOL_OPTS_DEFAULT                                                                    \
    {                                                                                              \
        .fsync = ZKIT_SPOOL_FSYNC_ALWAYS, .fsync_interval_ms = 100,                                \
        .segment_size = 64u * 1024 * 1024, .max_record = 16u * 1024 * 1024, .max_bytes = 0,        \
        .on_full = ZKIT_SPOOL_FULL_BLOCK, .block_timeout_ms = 10000, .retain_bytes = 0,            \
        .max_age_ms = 0, .cursor_interval_ms = 100, .read_only = false, .io = NULL, .clock = NULL, \
        .clock_arg = NULL                                                                          \
    }

/*  Parses an fsync policy as the CLI spells it: "always", "never" or
    "interval:MS" (MS from 1 to 3600000), into opts->fsync and
    opts->fsync_interval_ms. Returns 0, or -1 with errno EINVAL and opts
    unchanged.                                                                 */
ZKIT_EXPORT int zkit_spool_parse_fsync(const char *text, zkit_spool_opts_t *opts);

/*  Parses an overflow policy: "block", "reject" or "drop-oldest", into
    opts->on_full. Returns 0, or -1 with errno EINVAL and opts unchanged.      */
ZKIT_EXPORT int zkit_spool_parse_full(const char *text, zkit_spool_opts_t *opts);

/*  Opens the spool in directory dir, creating the directory (one level) when
    it does not exist, and recovers it: reads the cursor, checks every
    segment header, scans the newest segment record by record, truncates a
    torn record at its end and quarantines bad records (each reported with a
    log line and counted in the stats). opts NULL means the defaults; opts is
    copied. Only one read-write spool may be open on a directory at a time
    (an advisory lock); read_only spools take no lock.
    Returns NULL with errno set: EINVAL for bad options, EBUSY when another
    spool holds the directory, ZKIT_EFORMAT for a segment or cursor written
    by a newer format version, ENOMEM, or the errno of a failed system call
    (with a log line naming the file).                                        */
ZKIT_EXPORT zkit_spool_t *zkit_spool_new(const char *dir, const zkit_spool_opts_t *opts);

/*  Closes the spool and sets *self_p to NULL; safe when either is NULL.
    Before closing it syncs what was appended (ALWAYS and INTERVAL; not NEVER)
    and writes the cursor file if acks changed since it was last written.
    Errors while doing so are logged, not returned: nothing acknowledged to a
    producer depends on them. Every reader of the spool must be destroyed
    first.                                                                    */
ZKIT_EXPORT void zkit_spool_destroy(zkit_spool_t **self_p);

/*  Appends one record of size bytes (copied; may be 0) and stores its seq in
    *seq_p (seq_p may be NULL). With fsync ALWAYS it returns only after an
    fdatasync that covers the record has succeeded. When the spool is full
    the opts.on_full policy applies.
    Returns 0, or -1 with errno set, in which case the record is not in the
    spool and the files are as before (except after a failed fdatasync, see
    below):
      ZKIT_ETOOBIG   size is above opts.max_record (or above max_bytes / 2)
      ZKIT_EFULL     full and policy REJECT, or BLOCK timed out
      ZKIT_EFAILED   the spool is FAILED after an earlier fdatasync or I/O
                     error
      EROFS          the spool is read-only
      ENOMEM         out of memory
      ENOSPC, EFBIG, EDQUOT  the disk (or a limit) is full: the partial record
                     is removed and later appends may succeed
      EIO and other system errors of the write or of the fdatasync: the spool
                     enters the FAILED state. Whether the record survives is
                     unknown; it was not acknowledged.                       */
ZKIT_EXPORT int zkit_spool_append(zkit_spool_t *self, const void *data, size_t size,
                                  uint64_t *seq_p);

/*  As zkit_spool_append, except that under ALWAYS it returns as soon as the
    record is written, without waiting for an fdatasync. The record becomes
    durable, and visible to readers, with the next fdatasync that covers it:
    zkit_spool_sync, a waiting append, a segment roll, or close. The caller
    must not acknowledge the record to anyone before zkit_spool_sync (or
    zkit_spool_wait_synced) returned 0 for it. Under INTERVAL and NEVER it is
    zkit_spool_append. This is group commit for a single thread, such as a
    device that drains its sockets: append the burst with this, call
    zkit_spool_sync once, then acknowledge the whole burst. Same returns as
    zkit_spool_append; a record refused with ENOSPC or EFULL leaves the
    records appended before it in place.                                    */
ZKIT_EXPORT int zkit_spool_append_nosync(zkit_spool_t *self, const void *data, size_t size,
                                         uint64_t *seq_p);

/*  Makes everything appended so far durable now, whatever the policy (one
    fdatasync, shared with concurrent appenders). A single thread that
    receives records in bursts can open the spool with NEVER, append a burst
    and call this once before acknowledging the whole burst: group commit
    without threads. Returns 0, or -1 with errno: ZKIT_EFAILED or the
    fdatasync's errno (the spool is then FAILED), EROFS.                     */
ZKIT_EXPORT int zkit_spool_sync(zkit_spool_t *self);

/*  Waits until every record up to and including seq is durable, for at most
    timeout_ms (-1 forever). Does not start a sync itself: use it to wait for
    the INTERVAL thread. Returns 0, or -1 with errno ETIMEDOUT, or
    ZKIT_EFAILED when the spool failed before seq was synced.               */
ZKIT_EXPORT int zkit_spool_wait_synced(zkit_spool_t *self, uint64_t seq, int timeout_ms);

/*  Marks seq acknowledged by downstream. Acks may come in any order and more
    than once (a repeated ack is a no-op). A sealed segment all of whose
    records are acknowledged is deleted (subject to opts.retain_bytes), which
    may let a blocked appender go on. The cursor file is written at most every
    opts.cursor_interval_ms (0: before this returns).
    Returns 0, or -1 with errno EINVAL when seq was never appended (0 or not
    below the next seq), or the errno of a failed cursor write (the ack is
    kept in memory and written later; the spool does not fail).              */
ZKIT_EXPORT int zkit_spool_ack(zkit_spool_t *self, uint64_t seq);

/*  Acknowledges every seq up to and including seq, as one ack each would.
    Same returns as zkit_spool_ack.                                           */
ZKIT_EXPORT int zkit_spool_ack_upto(zkit_spool_t *self, uint64_t seq);

/*  True when seq is acknowledged, or no longer in the spool (retired,
    dropped, expired, quarantined, lost in a torn write).                     */
ZKIT_EXPORT bool zkit_spool_is_acked(zkit_spool_t *self, uint64_t seq);

/*  Writes the cursor file now if acks changed since it was last written
    (temp file, fsync, rename, fsync of the directory). Returns 0, or -1 with
    the errno of the failed step; the previous cursor file is then intact.   */
ZKIT_EXPORT int zkit_spool_checkpoint(zkit_spool_t *self);

/*  Applies retention now: deletes sealed segments that are acknowledged
    (beyond retain_bytes) or older than max_age_ms by the spool's clock.
    Appends and acks do this too; a device calls it from a timer so that age
    retention happens while the spool is idle. Returns the number of
    segments deleted (0 or more), or -1 with errno EROFS.                    */
ZKIT_EXPORT int zkit_spool_retain(zkit_spool_t *self);

/*  A snapshot of the spool's state and counters. Counters count since open,
    except the recovery ones, which count what this open repaired.            */
typedef struct {
    /* state */
    uint64_t segments;   /* segment files                                */
    uint64_t bytes;      /* their total size                             */
    uint64_t records;    /* seq span held: newest_seq - oldest_seq + 1, or 0
                            (a quarantined record still counts)           */
    uint64_t oldest_seq; /* first seq of the oldest segment, 0 if none   */
    uint64_t newest_seq; /* last seq appended, 0 if none                 */
    uint64_t oldest_ts;  /* creation time of the oldest segment (no later
                            than the ts of its first record), 0 if none  */
    uint64_t newest_ts;  /* ts of the newest record, 0 if none           */
    uint64_t next_seq;   /* the seq the next append gets                 */
    uint64_t ack_floor;  /* lowest seq not acknowledged (everything below
                            it is acknowledged or gone)                   */
    uint64_t unacked;    /* seqs below next_seq not acknowledged         */
    uint64_t synced_seq; /* every seq up to this one is durable          */
    bool failed;         /* FAILED: writes refused until reopened        */
    int failed_errno;    /* the error that failed it                     */
    /* counters */
    uint64_t appends, append_bytes, acks;
    uint64_t fsyncs; /* fdatasync calls on segments            */
    uint64_t fsync_errors, write_errors;
    uint64_t rolls;            /* segments created                       */
    uint64_t retired_segments; /* deleted because fully acknowledged     */
    uint64_t expired_segments; /* deleted by max_age_ms                  */
    uint64_t expired_records;  /* unacknowledged seqs they held          */
    uint64_t dropped_segments; /* deleted by DROP_OLDEST                 */
    uint64_t dropped_records;  /* unacknowledged seqs they held          */
    uint64_t full_rejects;     /* appends refused by REJECT              */
    uint64_t full_blocks;      /* appends that had to wait (BLOCK)       */
    uint64_t full_timeouts;    /* of those, the ones that gave up        */
    uint64_t cursor_writes, cursor_errors;
    /* recovery and reading */
    uint64_t torn_truncations; /* torn tails cut off                     */
    uint64_t torn_bytes;       /* bytes cut off                          */
    uint64_t quarantined_regions;
    uint64_t quarantined_records; /* seqs lost in quarantined regions      */
    uint64_t quarantined_bytes;
    uint64_t bad_segments; /* segment files set aside (bad header)   */
} zkit_spool_stats_t;

/*  Fills *stats. This function can't fail.                                   */
ZKIT_EXPORT void zkit_spool_stats(zkit_spool_t *self, zkit_spool_stats_t *stats);

/*  The directory the spool lives in. Valid as long as the spool.            */
ZKIT_EXPORT const char *zkit_spool_dir(zkit_spool_t *self);

/*  What a full scan found.                                                   */
typedef struct {
    uint64_t segments, records, bytes;
    uint64_t bad_regions; /* quarantined regions met during this scan (old
                             ones included)                                */
    uint64_t bad_records; /* seqs lost in them                            */
} zkit_spool_verify_t;

/*  Reads every record of every segment and checks its CRCs. A bad region in a
    segment is quarantined as recovery would (the quarantine file is only
    written by a read-write spool). Fills *report. Returns 0 when every
    region is good, 1 when bad regions were found, -1 with errno on an I/O
    error.                                                                     */
ZKIT_EXPORT int zkit_spool_verify(zkit_spool_t *self, zkit_spool_verify_t *report);

/*  A bad region a scan met: where it is and what it lost.                   */
typedef struct {
    const char *segment; /* the segment's file name ("%016x.zseg")           */
    uint64_t offset;     /* of the region in that file                       */
    uint64_t size;       /* bytes                                            */
    uint64_t lost_start; /* seqs [lost_start, lost_end) were lost in it      */
    uint64_t lost_end;
    const char *reason; /* "data-crc", "magic", ... (docs/spool-format.md)  */
} zkit_spool_bad_region_t;

/*  Called once for every bad region a verify meets. The strings are valid
    during the call only.                                                     */
typedef void(zkit_spool_bad_fn)(const zkit_spool_bad_region_t *region, void *arg);

/*  As zkit_spool_verify, and calls on_bad (may be NULL) with arg for every
    bad region met, in file order, so a tool can say where each one is.     */
ZKIT_EXPORT int zkit_spool_verify_regions(zkit_spool_t *self, zkit_spool_verify_t *report,
                                          zkit_spool_bad_fn *on_bad, void *arg);

/* ---- readers ---------------------------------------------------------------- */

/*  A record read from the spool. data points into the reader's buffer and is
    valid until the reader's next call.                                       */
typedef struct {
    uint64_t seq;
    uint64_t ts; /* microseconds since the Unix epoch, non-decreasing with seq */
    const void *data;
    size_t size;
} zkit_spool_record_t;

/*  Reader flag: skip records already acknowledged.                          */
#define ZKIT_SPOOL_READ_UNACKED 1

/*  Creates a reader positioned at from_seq: its first record is the one with
    the smallest seq >= from_seq still in the spool. from_seq 0 means the
    cursor: the lowest unacknowledged seq. flags is 0 or
    ZKIT_SPOOL_READ_UNACKED. A reader sees records once they are durable
    (ALWAYS) or written (INTERVAL, NEVER), never a record still being written.
    Returns NULL with errno ENOMEM.                                            */
ZKIT_EXPORT zkit_spool_reader_t *zkit_spool_reader_new(zkit_spool_t *spool, uint64_t from_seq,
                                                       int flags);

/*  Destroys the reader and sets *self_p to NULL; safe when either is NULL.   */
ZKIT_EXPORT void zkit_spool_reader_destroy(zkit_spool_reader_t **self_p);

/*  Reads the next record into *record. Returns 1, or 0 when there is none yet
    (call again after more appends), or -1 with errno EIO (or another read
    error). Bad records are never returned: a reader that meets one
    quarantines it (see zkit_spool_verify) and goes on with the next good
    one. Records deleted by retention while the reader was behind are
    skipped.                                                                   */
ZKIT_EXPORT int zkit_spool_reader_next(zkit_spool_reader_t *self, zkit_spool_record_t *record);

/*  Moves the reader to the first record with seq >= seq (0: the cursor).
    Can't fail.                                                               */
ZKIT_EXPORT void zkit_spool_reader_seek(zkit_spool_reader_t *self, uint64_t seq);

/*  Moves the reader to the first record with ts >= ts (for replay from a
    time). Returns 0, or -1 with errno EIO.                                   */
ZKIT_EXPORT int zkit_spool_reader_seek_time(zkit_spool_reader_t *self, uint64_t ts);

#ifdef __cplusplus
}
#endif

#endif
