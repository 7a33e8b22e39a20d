/*  socket.h (internal): the one place zkit creates ZeroMQ sockets.

    czmq gives every new zsock LINGER=0, so a socket destroyed with messages
    still queued drops them silently, and zsys_shutdown does the same at exit.
    zkit never wants that for a message it has accepted: every socket is made
    here, with LINGER and the other options that matter set explicitly.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_SOCKET_H_INCLUDED
#define ZKIT_SOCKET_H_INCLUDED

#include <czmq.h>
#include <stdint.h>

typedef struct {
    int linger_ms; /* -1 waits for delivery forever; 0 drops (never the default) */
    int sndhwm;    /* 0 = unlimited                                            */
    int rcvhwm;
    int64_t maxmsgsize; /* -1 = unlimited; bound sockets get a limit by default    */
    /* ROUTER only, set before any peer can connect. MANDATORY: a message to a
       peer that is gone fails (EHOSTUNREACH) instead of vanishing. HANDOVER: a
       peer reconnecting with a fixed identity takes the identity over.     */
    bool router_mandatory;
    bool router_handover;
} zkit__socket_opts_t;

/* Linger 30 s: long enough to flush to a live peer, bounded when the peer is
   gone. Receive limit 16 MiB plus room for a topic: the envelope's own limit. */
#define ZKIT__SOCKET_OPTS_DEFAULT                                                                  \
    {                                                                                              \
        .linger_ms = 30000, .sndhwm = 1000, .rcvhwm = 1000,                                        \
        .maxmsgsize = 16 * 1024 * 1024 + 64 * 1024                                                 \
    }

/*  Creates a socket of a libzmq type (ZMQ_PUSH, ...) with opts applied (NULL =
    defaults). Returns NULL with errno set when libzmq refuses.                */
zsock_t *zkit__socket_new(int type, const zkit__socket_opts_t *opts);

/*  Binds (bind=true) or connects to each endpoint in a comma-separated list.
    Binds go straight to zmq_bind: czmq's zsock_bind resolves ':*' by scanning
    upwards from port 49152 itself, so two processes binding at once race for
    the same port; libzmq lets the kernel choose. Returns 0, or -1 with errno
    set and a log line naming the endpoint.                                   */
int zkit__socket_attach(zsock_t *sock, const char *endpoints, bool bind);

/*  The socket's last bound endpoint, resolved ("tcp://127.0.0.1:41234" for a
    ':*' bind), copied into buf. Returns 0, or -1 with errno set.             */
int zkit__socket_last_endpoint(zsock_t *sock, char *buf, size_t size);

/*  Binds to each endpoint of a comma-separated list (as zkit__socket_attach)
    and copies the resolved last one into resolved[size], as
    zkit__socket_last_endpoint. Returns 0, or -1 with errno set and a log line
    naming the endpoint.                                                      */
int zkit__socket_bind(zsock_t *sock, const char *endpoints, char *resolved, size_t size);

/*  zkit__socket_new and zkit__socket_bind in one: the socket of a device that
    binds its endpoints in the constructor. Returns NULL with errno set (the
    half-made socket destroyed) on any failure.                               */
zsock_t *zkit__socket_new_bound(int type, const zkit__socket_opts_t *opts, const char *endpoints,
                                char *resolved, size_t size);

/*  Writes a fresh in-process endpoint "inproc://zkit-KIND-N" into buf[size]
    (64 bytes are enough for a short kind), N from a process-wide counter.
    An inproc name must never be reused while an earlier socket with it may
    still be unbinding: one named after an object's address collides when a
    new object is allocated where a destroyed one was (EADDRINUSE). Can't
    fail (a long kind is cut).                                               */
void zkit__socket_inproc_endpoint(char *buf, size_t size, const char *kind);

/*  For zkit__socket_close: keep the linger the socket already has.           */
#define ZKIT__LINGER_KEEP INT32_MIN

/*  Destroys *sock_p after giving queued messages up to linger_ms to leave
    (-1: until delivered; ZKIT__LINGER_KEEP: the socket's own setting).
    Safe on NULL.                                                             */
void zkit__socket_close(zsock_t **sock_p, int linger_ms);

/*  The socket type's name as libzmq spells it ("PUSH"), or "?".              */
const char *zkit__socket_type_name(int type);

#endif
