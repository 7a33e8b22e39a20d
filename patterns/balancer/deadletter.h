/*  deadletter.h (internal): where the balancer records the requests it gave
    up on.

    A record is one envelope frame: the request (its own envelope, or one
    wrapping a raw request) with headers zkit-error (the reason) and
    zkit-attempts. The store only appends and never interprets records.

    This is a small interface on purpose, so that the balancer does not
    depend on how the store keeps its records: a store is an ops table plus
    its state; zkit__deadletter_put and _close dispatch through it.

    The store is a zkit spool (include/zkit_spool.h, docs/spool-format.md)
    in the dead-letter directory, one record per dead letter, with fsync
    "always": put returns only once the record is on stable storage, so the
    client is never told of a failure that a crash could then erase. Using
    the spool rather than a private file format means the records can be
    read with the spool's tools (`zkit spool inspect DIR`, `zkit spool
    replay DIR --to EP`) and recovered after a crash by the spool's rules.
    Nothing acknowledges dead letters, so the spool keeps them until an
    operator removes the directory (or acknowledges them with the spool API).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_BALANCER_DEADLETTER_H_INCLUDED
#define ZKIT_BALANCER_DEADLETTER_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

/* The largest request envelope (16 MiB) plus room for the two headers.    */
#define ZKIT__DEADLETTER_RECORD_MAX (16u * 1024 * 1024 + 64 * 1024)

/* The file an older balancer wrote its dead letters to (a 4-byte big-endian
   length before each record). The spool store does not read it; open logs
   a warning when it finds one, so its records are not forgotten.          */
#define ZKIT__DEADLETTER_LEGACY_FILE "deadletters.zkdl"

typedef struct {
    const char *kind; /* "spool": for log lines */
    /* Appends one record durably. Returns 0, or -1 with errno set.          */
    int (*put)(void *state, const void *record, size_t size);
    /* Flushes and frees the state.                                          */
    void (*close)(void *state);
} zkit__deadletter_ops_t;

typedef struct {
    const zkit__deadletter_ops_t *ops;
    void *state;
    char *where; /* directory, for log lines */
} zkit__deadletter_t;

/*  Opens (creating the directory and its parents if needed) the spool store
    in directory dir. Returns NULL with errno set and a log line naming the
    directory: EBUSY when another process (or store) has that spool open,
    or the error of zkit_spool_new.                                          */
zkit__deadletter_t *zkit__deadletter_open_spool(const char *dir);

/*  Appends one record. Returns 0, or -1 with errno: EMSGSIZE (bigger than
    ZKIT__DEADLETTER_RECORD_MAX) or the store's error (ENOSPC, EIO,
    ZKIT_EFAILED after a failed fdatasync, ...).                            */
int zkit__deadletter_put(zkit__deadletter_t *self, const void *record, size_t size);

/*  Closes the store and nulls *self_p. Safe on NULL.                        */
void zkit__deadletter_close(zkit__deadletter_t **self_p);

#endif
