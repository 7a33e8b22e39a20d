/*  ops.h (internal): what every device and component does alike with its
    zkit_ops_opts_t: secure each socket it binds or connects, and answer on
    its control endpoint.

    A component makes one zkit__ops_t in its constructor, before it starts
    its actor: the security configuration is loaded there (errors reach the
    caller of _new at once) and the control socket is bound there. Both are
    handed to the actor thread by zactor_new (a full memory barrier); from
    then on only the actor touches the control socket: it polls
    zkit__ops_pollitem() and calls zkit__ops_serve(), so the stats callback
    reads the counters in the thread that owns them. Destroy the ops after
    the actor is gone and after every socket it secured is closed.

    Every function takes a NULL ops as "no options": plaintext sockets and
    no control endpoint, so components need no special case.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_OPS_H_INCLUDED
#define ZKIT_OPS_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>

#include "core/control.h"
#include "core/socket.h"
#include "zkit_library.h"

typedef struct zkit__ops_t zkit__ops_t;

typedef struct {
    const zkit_ops_opts_t *opts; /* NULL: nothing configured               */
    const char *component;       /* "balancer": the STATS component name     */
    const char *name;            /* instance name; NULL = the component      */
    zkit__control_stats_fn *stats_fn;
    zkit__control_command_fn *command_fn; /* NULL: PAUSE/RESUME unsupported */
    void *arg;                            /* passed to both callbacks       */
} zkit__ops_config_t;

/*  Loads the security options and binds the control endpoint when one is
    set. Returns NULL with errno set and a log line naming the problem:
    EINVAL (options), ENOENT/EACCES (a certificate or the allow directory),
    EBUSY (another ZAP configuration is active in this process), ENOTSUP
    (libzmq without CURVE), or the control bind's error.                     */
zkit__ops_t *zkit__ops_new(const zkit__ops_config_t *config);

/*  Closes the control socket, releases the security configuration and
    nulls *self_p. Safe on NULL.                                             */
void zkit__ops_destroy(zkit__ops_t **self_p);

/*  Secures sock (not yet bound or connected) for one role: a CURVE/ZAP
    server when it will be bound, a CURVE client when it will connect. For
    callers that attach endpoints themselves; zkit__ops_attach does both.
    Returns 0, or -1 with errno as zkit__ops_attach.                         */
int zkit__ops_secure(zkit__ops_t *self, zsock_t *sock, bool bind);

/*  Binds (bind=true) or connects sock to each endpoint of a comma-separated
    list after securing it as a CURVE/ZAP server (bind) or client (connect).
    Returns 0, or -1 with errno set and a log line: EINVAL when the options
    give no configuration for that role (a bound socket needs --curve-allow
    when --curve-secret is set; a connecting one needs --curve-server).     */
int zkit__ops_attach(zkit__ops_t *self, zsock_t *sock, const char *endpoints, bool bind);

/*  zkit__ops_attach(bind=true) and the resolved last endpoint into
    resolved[size], as zkit__socket_bind.                                    */
int zkit__ops_bind(zkit__ops_t *self, zsock_t *sock, const char *endpoints, char *resolved,
                   size_t size);

/*  zkit__socket_new and zkit__ops_bind in one. Returns NULL with errno set
    (the half-made socket destroyed) on any failure.                         */
zsock_t *zkit__ops_socket_new_bound(zkit__ops_t *self, int type, const zkit__socket_opts_t *opts,
                                    const char *endpoints, char *resolved, size_t size);

/*  Fills *item with the control socket for zmq_poll and returns 1, or
    returns 0 (item untouched) when there is no control endpoint.           */
int zkit__ops_pollitem(zkit__ops_t *self, zmq_pollitem_t *item);

/*  Answers the control requests waiting now, at most a small batch so a
    flood of requests cannot starve the component's own sockets. Never
    blocks. Returns 0, or -1 with errno ETERM when the context is ending.   */
int zkit__ops_serve(zkit__ops_t *self);

/*  The control socket (for a zloop or zpoller), or NULL.                    */
zsock_t *zkit__ops_control_socket(zkit__ops_t *self);

/*  The control endpoint's resolved address, or NULL when there is none.
    Valid until destroy.                                                      */
const char *zkit__ops_control_endpoint(zkit__ops_t *self);

#endif
