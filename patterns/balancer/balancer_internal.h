/*  balancer_internal.h (internal): the state of a balancer's actor, shared
    by balancer.c (the actor: sockets, workers, dispatch) and
    balancer_stats.c (what the control endpoint reports and PAUSE/RESUME).

    Everything here belongs to the actor thread once zactor_new returned:
    the control endpoint's callbacks run in that thread too (ops.h), so they
    read and write the state without locking.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_BALANCER_INTERNAL_H_INCLUDED
#define ZKIT_BALANCER_INTERNAL_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "balancer/deadletter.h"
#include "balancer/request.h"
#include "core/control.h"
#include "core/dlist.h"
#include "core/dispatcher.h"
#include "core/idtable.h"
#include "core/ops.h"
#include "core/ratelimit.h"
#include "core/traffic.h"
#include "zkit_balancer.h"

#define ZKIT__BAL_NAME_MAX 64

/*  One registered worker, on the actor's list and in its id table.         */
typedef struct zkit__bal_worker_t {
    zkit__dlink_t link; /* on zkit__bal_state_t.list, in arrival order */
    uint64_t hash;
    bool zkit;
    uint8_t size;
    uint8_t rid[];
} zkit__bal_worker_t;

typedef struct {
    /* options */
    char name[ZKIT__BAL_NAME_MAX + 1];
    uint32_t heartbeat_ms;
    uint32_t max_requests;
    uint32_t ttl_ms;
    bool verbose;
    /* sockets, made by the constructor and then owned by the actor */
    zsock_t *pipe;
    zsock_t *frontend;
    zsock_t *backend;
    void *fe;
    void *be;
    /* what crossed each socket (core/traffic.h), reported on STATS         */
    zkit__traffic_t fe_traffic;
    zkit__traffic_t be_traffic;
    /* security and the control endpoint; NULL only before the constructor
       made it. Destroyed after the actor closed the sockets it secured.    */
    zkit__ops_t *ops;
    /* state */
    zkit__dispatcher_t *dispatcher;
    zkit__deadletter_t *store;
    zkit__bal_codec_t codec;
    zkit_envelope_t *in; /* decodes what arrives */
    zkit__idtable_t workers;
    zkit__dlink_t list; /* sentinel of the worker list (dlist.h) */
    uint64_t hash_seed;
    int64_t next_heartbeat;
    zkit__ratelimit_t bad_log;
    zkit__ratelimit_t dead_log;
    zkit_balancer_stats_t stats;
    bool paused; /* PAUSE: nothing is dispatched until RESUME */
    bool terminated;
} zkit__bal_state_t;

/*  Copies the counters into *out, the dispatcher's included: what
    zkit_balancer_stats returns and the control endpoint reports.            */
void zkit__bal_snapshot(zkit__bal_state_t *self, zkit_balancer_stats_t *out);

/*  The control endpoint's callbacks (ops.h); arg is the zkit__bal_state_t.  */
zkit__control_stats_fn zkit__bal_stats_fn;
zkit__control_command_fn zkit__bal_command_fn;

#endif
