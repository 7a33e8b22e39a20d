/*  run_config.h (internal to the zkit program): `zkit run`'s topology file.

    A topology is a ZPL file (ZeroMQ RFC 4, read with czmq's zconfig): one
    top-level section per device kind (forwarder, balancer, spool, worker,
    sink), each holding one section per device, named; the device's keys are
    its command's long options with '-' spelled '_' (docs/operating.md has
    the schema). An optional top-level 'defaults' section holds keys that
    apply to every device whose kind knows them, unless the device sets
    them itself.

    Loading validates the whole file before anything runs: unknown sections
    and keys, missing required keys, bad numbers and names, duplicate device
    names, a key given twice, two spools on one directory, and operations
    settings that the process-wide ZAP handler cannot serve at once. The
    first error is reported as "FILE:LINE: PATH: what is wrong".

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_RUN_CONFIG_H_INCLUDED
#define ZKIT_RUN_CONFIG_H_INCLUDED

#include <czmq.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "zkit.h"
#include "zkit_balancer.h"
#include "zkit_forwarder.h"
#include "zkit_sink.h"
#include "zkit_spool_device.h"
#include "zkit_worker.h"
#include "exec_handler.h"

typedef enum {
    ZKIT__RUN_FORWARDER = 0,
    ZKIT__RUN_BALANCER,
    ZKIT__RUN_SPOOL,
    ZKIT__RUN_WORKER,
    ZKIT__RUN_SINK,
    ZKIT__RUN_KINDS_
} zkit__run_kind_t;

/*  One device of a topology: what the file says (kind, name, options) and,
    once started, the running instance. Every string the options point to
    is owned by the device, so a device outlives the file it came from (a
    reload keeps unchanged devices running).                                */
typedef struct {
    zkit__run_kind_t kind;
    char *name;       /* the section name, unique in the file               */
    char *signature;  /* every effective setting, canonical: equal
                         signatures = nothing to restart on reload       */
    int order;        /* position in the file                               */
    zlist_t *strings; /* values the options point to (owned)               */
    union {
        zkit_forwarder_opts_t forwarder;
        zkit_balancer_opts_t balancer;
        zkit_spool_device_opts_t spool;
        struct {
            zkit_worker_opts_t opts;
            zkit__exec_opts_t exec;
        } worker;
        struct {
            zkit_sink_opts_t opts;
            const char *output; /* results are appended here, one line each */
        } sink;
    } u;
    /* Running state (run_devices.c); all zero while not started.          */
    void *instance;
    atomic_int stop; /* a worker's running commands are killed when set  */
    void *output;    /* a sink's output file state                       */
} zkit__run_device_t;

/*  A topology: its devices in file order.                                  */
typedef struct {
    zkit__run_device_t **devices;
    size_t count;
} zkit__run_topology_t;

/*  Loads and validates path. Returns the topology, or NULL after writing
    one line "FILE:LINE: PATH: message" (or "FILE: message") into
    error[error_size].                                                     */
zkit__run_topology_t *zkit__run_load(const char *path, char *error, size_t error_size);

/*  Destroys a topology and every device still in it; safe on NULL. The
    devices must have been stopped (or moved out: set the slot to NULL).   */
void zkit__run_topology_destroy(zkit__run_topology_t **self_p);

/*  "forwarder", "balancer", ...                                           */
const char *zkit__run_kind_name(zkit__run_kind_t kind);

/*  The endpoints a device takes messages from (inputs) and hands them to
    (outputs), comma-separated lists in *list[0..n): what the start and
    stop order is derived from. Returns how many were written (at most 4).  */
size_t zkit__run_endpoints(const zkit__run_device_t *dev, bool outputs, const char *list[4]);

#endif
