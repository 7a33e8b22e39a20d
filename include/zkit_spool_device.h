/*  zkit_spool_device.h: the store-and-forward device.

    Producers hand envelopes to the device; it appends each one to a spool
    (zkit_spool.h) and, for a reliable producer, confirms it once it is stored
    as the fsync policy promises. Consumers take the records from the device
    with credit and acknowledge each one; a record is retired from the spool
    only when a consumer acknowledged it. Records in flight to a consumer that
    dies, goes silent or gives them back are delivered again (to whichever
    consumer has credit), with the envelope's meta att counting the attempts.
    After a restart, even after kill -9, everything stored and not yet
    acknowledged is delivered again. The bytes stored are the envelope frame
    as the producer sent it, so a message keeps its id through the device.
    Protocol: docs/spool-protocol.md; on-disk format: docs/spool-format.md.

    Promises:
    - A CONFIRMED id is in the spool, durable as the fsync policy says (with
      ALWAYS: fdatasync'd, so it survives a crash of the machine), until a
      consumer acknowledges it, or an explicit policy removes it (age
      retention, drop-oldest, max attempts: each counted and logged).
    - Group commit: the device drains every PUT waiting on its sockets (up to
      burst), appends them, makes them durable with one fdatasync and only
      then confirms them all.
    - A PUT whose id the device stored among its last dedup_window records
      is confirmed again without being stored twice, across restarts too.
    - A producer whose PUT cannot be stored gets REJECTED with a reason
      (FULL, NOSPACE, FAILED, TOOBIG); the device keeps running, nothing
      confirmed earlier is touched, and PUTs succeed again once there is
      room (acknowledged segments deleted, disk space freed).
    - Hostile peers: a malformed message on any socket is dropped and
      counted by socket and reason (bad_in, bad_out); frames above the
      socket's MAXMSGSIZE close the peer's connection; memory stays bounded
      (receive HWMs, prefetch) and valid traffic keeps flowing.
    - At-least-once: a consumer may see a record twice (its ack was lost in
      a crash, or its attempt failed); consumers de-duplicate by id.

    A czmq actor: one thread owns the sockets, the dispatcher core
    (patterns/core/dispatcher.h) and the spool's appends. At most prefetch
    records are held in memory for delivery; the rest wait in the spool.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_SPOOL_DEVICE_H_INCLUDED
#define ZKIT_SPOOL_DEVICE_H_INCLUDED

#include "zkit_library.h"
#include "zkit_spool.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _zkit_spool_device_t zkit_spool_device_t;

typedef struct {
    const char *dir;     /* the spool's directory; required */
    const char *in;      /* endpoint(s) producers connect to (a bound ROUTER): PUT,
                            or a bare envelope for fire-and-forget; required */
    const char *in_push; /* endpoint(s) of a PULL socket for plain PUSH
                            producers (fire-and-forget); NULL = none */
    const char *out;     /* endpoint(s) consumers connect to (ROUTER); required */
    const char *name;    /* in log lines; NULL = "spool" */
    /* The log: fsync, sizes, on_full, retention. Under BLOCK a PUT is held
       up to block_timeout_ms (-1: forever) before REJECTED FULL.             */
    zkit_spool_opts_t spool;
    uint32_t heartbeat_ms;       /* both ways with consumers, 1..3600000 */
    uint32_t liveness;           /* missed heartbeats before a consumer is
                                    presumed dead, 1..100 */
    uint32_t max_attempts;       /* deliveries before a record is dead-lettered;
                                    0 = no limit (the default) */
    uint32_t attempt_timeout_ms; /* an unacknowledged delivery fails after this;
                                    0 = off (only a dead consumer fails it) */
    uint32_t prefetch;           /* records held in memory for delivery (queued
                                    and in flight), 1..1000000 */
    uint32_t dedup_window;       /* ids of the newest records remembered, so a
                                    resent PUT is confirmed without a second
                                    copy; 0 = off */
    uint32_t burst;              /* producer messages per group commit, 1..65536 */
    const char *dead_letter_dir; /* a second spool for records given up on (max
                                    attempts, ttl); NULL = they are logged,
                                    counted and retired */
    bool verbose;                /* log consumers arriving and leaving */
    zkit_ops_opts_t ops;         /* control endpoint and security (zkit_library.h) */
} zkit_spool_device_opts_t;

#define ZKIT_SPOOL_DEVICE_OPTS_DEFAULT                                                             \
    {                                                                                              \
        .dir = NULL, .in = NULL, .in_push = NULL, .out = NULL, .name = NULL,                       \
        .spool = ZKIT_SPOOL_OPTS_DEFAULT, .heartbeat_ms = 1000, .liveness = 3, .max_attempts = 0,  \
        .attempt_timeout_ms = 0, .prefetch = 10000, .dedup_window = 100000, .burst = 1024,         \
        .dead_letter_dir = NULL, .verbose = false                                                  \
    }

/*  Why a PUT was refused (REJECTED's reason code).                          */
typedef enum {
    ZKIT_SPOOL_DEVICE_FULL = 0, /* max_bytes reached (REJECT, or BLOCK timed out) */
    ZKIT_SPOOL_DEVICE_NOSPACE,  /* the disk or a file size limit is full          */
    ZKIT_SPOOL_DEVICE_FAILED,   /* the spool failed (fsync or I/O error)          */
    ZKIT_SPOOL_DEVICE_TOOBIG,   /* the envelope is above the spool's max_record   */
    ZKIT_SPOOL_DEVICE_ERROR,    /* any other error (out of memory, ...)            */
    ZKIT_SPOOL_DEVICE_REJECT_REASONS_
} zkit_spool_device_reject_t;

/*  Why a message from a peer was dropped.                                   */
typedef enum {
    ZKIT_SPOOL_DEVICE_BAD_FRAMES = 0, /* wrong number of frames                */
    ZKIT_SPOOL_DEVICE_BAD_COMMAND,    /* a command this protocol does not know */
    ZKIT_SPOOL_DEVICE_BAD_FIELD,      /* malformed credit or id list           */
    ZKIT_SPOOL_DEVICE_BAD_ENVELOPE,   /* not a valid envelope                  */
    ZKIT_SPOOL_DEVICE_BAD_REASONS_
} zkit_spool_device_bad_t;

/*  Counters of one device. Totals only grow; the gauges are current values. */
typedef struct {
    /* producers */
    uint64_t puts;         /* PUT commands received with a valid envelope */
    uint64_t pushes;       /* fire-and-forget envelopes received (valid ones; the
                              rest are counted in bad_in) */
    uint64_t stored;       /* records appended */
    uint64_t stored_bytes; /* bytes of those records (the envelope frames) */
    uint64_t confirmed;    /* ids confirmed */
    uint64_t duplicates;   /* PUTs of an id already stored: confirmed again */
    uint64_t rejected[ZKIT_SPOOL_DEVICE_REJECT_REASONS_]; /* PUTs refused, by reason */
    uint64_t push_dropped;  /* fire-and-forget envelopes that could not be stored */
    uint64_t group_commits; /* bursts made durable by one sync */
    uint64_t blocked;       /* times producers were held because the spool was full */
    uint64_t unroutable;    /* replies whose producer was gone */
    /* consumers */
    uint64_t delivered;          /* DELIVER sent (every attempt) */
    uint64_t delivered_bytes;    /* bytes of the envelope frames they carried */
    uint64_t acked;              /* records retired by an ACK */
    uint64_t duplicate_acks;     /* ACKs for ids not held */
    uint64_t nacks;              /* deliveries a consumer gave back */
    uint64_t requeued;           /* failed deliveries queued again */
    uint64_t duplicate_records;  /* records whose id was already being delivered:
                                    retired at once */
    uint64_t dead_letters;       /* records given up on (max attempts, ttl) */
    uint64_t dead_letter_errors; /* of those, the ones the dead-letter spool
                                    refused (left unacknowledged in the spool) */
    uint64_t consumers_ready;    /* READY from a new consumer */
    uint64_t consumers_expired;  /* presumed dead by liveness */
    uint64_t consumers_gone;     /* said DISCONNECT or could not be reached */
    uint64_t unknown_consumer;   /* HEARTBEAT, ACK, NACK from consumers not known */
    uint64_t bad_in[ZKIT_SPOOL_DEVICE_BAD_REASONS_];  /* dropped producer messages */
    uint64_t bad_out[ZKIT_SPOOL_DEVICE_BAD_REASONS_]; /* dropped consumer messages */
    /* gauges */
    uint64_t consumers;       /* consumers registered */
    uint64_t queued;          /* records in memory waiting for credit */
    uint64_t in_flight;       /* records delivered and not yet acknowledged */
    uint64_t held;            /* producer messages held while the spool is full (BLOCK) */
    bool paused;              /* PAUSE on the control endpoint: no deliveries */
    zkit_spool_stats_t spool; /* the spool's own state and counters */
} zkit_spool_device_stats_t;

/*  Opens (and recovers) the spool in opts->dir, binds the sockets and starts
    the device. opts->ops secures the bound sockets (CURVE server with
    ops.curve_allow, ZAP IP lists) and binds the control endpoint. Returns
    only once it is running, or NULL with errno set and a log line: EINVAL
    for bad options, EBUSY when another process holds the spool (or another
    ZAP configuration is active in this process), ENOENT/EACCES for a
    certificate, a bind's error, or the spool's error from zkit_spool_new.  */
ZKIT_EXPORT zkit_spool_device_t *zkit_spool_device_new(const zkit_spool_device_opts_t *opts);

/*  Stops the device, closes its sockets (giving queued confirmations up to a
    second to leave) and the spool (writing the cursor), and nulls *self_p;
    safe on NULL. Records in flight stay unacknowledged in the spool and are
    delivered again by the next device on the directory.                     */
ZKIT_EXPORT void zkit_spool_device_destroy(zkit_spool_device_t **self_p);

/*  The bound endpoints, resolved ("tcp://127.0.0.1:41234" for a ':*' bind;
    the last one when several were given), owned by the device. in_push is
    "" without one.                                                          */
ZKIT_EXPORT const char *zkit_spool_device_in(zkit_spool_device_t *self);
ZKIT_EXPORT const char *zkit_spool_device_in_push(zkit_spool_device_t *self);
ZKIT_EXPORT const char *zkit_spool_device_out(zkit_spool_device_t *self);

/*  The control endpoint's resolved address (opts->ops.control: STATS, PING,
    PAUSE, RESUME; docs/spool-protocol.md, "Control endpoint"), owned by
    the device and valid until destroy; NULL when none was configured.
    PAUSE stops deliveries to consumers (records in flight may still be
    acknowledged, heartbeats go on) while producers are still stored and
    confirmed; RESUME delivers what accumulated.                            */
ZKIT_EXPORT const char *zkit_spool_device_control(zkit_spool_device_t *self);

/*  Fills *stats with a consistent snapshot. Returns 0, or -1 with errno
    ECANCELED when the device's thread has stopped.                          */
ZKIT_EXPORT int zkit_spool_device_stats(zkit_spool_device_t *self,
                                        zkit_spool_device_stats_t *stats);

/*  The reason code as REJECTED spells it ("FULL"), or "?".                  */
ZKIT_EXPORT const char *zkit_spool_device_reject_name(zkit_spool_device_reject_t why);

/*  A short text for a drop reason ("wrong frame count"), or "?".            */
ZKIT_EXPORT const char *zkit_spool_device_bad_name(zkit_spool_device_bad_t why);

#ifdef __cplusplus
}
#endif

#endif
