/*  run_schema.h (internal to the zkit program): the keys of `zkit run`'s
    topology file, per device kind, as tables that run_config.c validates
    the file against. One table entry per key: its name, how its value is
    parsed, its range, and where in zkit__run_device_t it goes.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_RUN_SCHEMA_H_INCLUDED
#define ZKIT_RUN_SCHEMA_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#include "run_config.h"

typedef enum {
    ZKIT__RUN_STR,      /* const char *, non-empty                            */
    ZKIT__RUN_BOOL,     /* bool: true/false, yes/no, on/off, 1/0              */
    ZKIT__RUN_U32,      /* uint32_t in [min, max]                             */
    ZKIT__RUN_INT,      /* int in [min, max]                                  */
    ZKIT__RUN_SIZE,     /* size_t in [min, max]                               */
    ZKIT__RUN_U64,      /* uint64_t in [min, max]                             */
    ZKIT__RUN_BYTES,    /* uint64_t, digits with suffix k, m, g; up to max    */
    ZKIT__RUN_BYTES32,  /* the same into a uint32_t                           */
    ZKIT__RUN_POLICY,   /* zkit_forwarder_policy_t: drop, disconnect, nodrop  */
    ZKIT__RUN_TAP_TYPE, /* int: pub (ZMQ_PUB) or push (ZMQ_PUSH)              */
    ZKIT__RUN_FSYNC,    /* zkit_spool_opts_t: always, never, interval:MS      */
    ZKIT__RUN_FULL,     /* zkit_spool_opts_t: block, reject, drop-oldest      */
} zkit__run_type_t;

typedef struct {
    const char *name;
    zkit__run_type_t type;
    uint64_t min, max;
    size_t offset;    /* in zkit__run_device_t                              */
    bool required;    /* the device must set it (directly or by defaults)  */
    const char *help; /* one line for 'zkit run --help' and the docs      */
} zkit__run_key_t;

typedef struct {
    const char *name;            /* the top-level section                  */
    const zkit__run_key_t *keys; /* ends with a NULL name                  */
} zkit__run_kind_schema_t;

/*  The schema of each kind, indexed by zkit__run_kind_t.                  */
extern const zkit__run_kind_schema_t zkit__run_schema[ZKIT__RUN_KINDS_];

/*  Puts the library defaults into dev->u for dev->kind.                   */
void zkit__run_schema_init(zkit__run_device_t *dev);

/*  Parses value as key says and stores it in dev (strings are copied into
    dev->strings). Returns 0, or -1 after writing what is wrong ("wants a
    number from 0 to 100, not 'x'") into error[error_size].               */
int zkit__run_schema_set(zkit__run_device_t *dev, const zkit__run_key_t *key, const char *value,
                         char *error, size_t error_size);

/*  Rules across keys of one device (one of two endpoints required, sizes
    that must fit together). Returns 0, or -1 with the key at fault in
    *key_name and the message in error[error_size].                        */
int zkit__run_schema_check(zkit__run_device_t *dev, const char **key_name, char *error,
                           size_t error_size);

#endif
