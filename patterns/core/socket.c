/*  socket.c: the one place zkit creates ZeroMQ sockets (see socket.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "core/socket.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <string.h>

zsock_t *zkit__socket_new(int type, const zkit__socket_opts_t *opts)
{
    static const zkit__socket_opts_t defaults = ZKIT__SOCKET_OPTS_DEFAULT;
    if (!opts)
        opts = &defaults;
    zsock_t *sock = zsock_new(type);
    if (!sock) {
        if (!errno)
            errno = EINVAL;
        return NULL;
    }
    void *handle = zsock_resolve(sock);
    int linger = opts->linger_ms;
    int64_t maxmsg = opts->maxmsgsize;
    int on = 1;
    if (zmq_setsockopt(handle, ZMQ_LINGER, &linger, sizeof linger) ||
        zmq_setsockopt(handle, ZMQ_SNDHWM, &opts->sndhwm, sizeof opts->sndhwm) ||
        zmq_setsockopt(handle, ZMQ_RCVHWM, &opts->rcvhwm, sizeof opts->rcvhwm) ||
        zmq_setsockopt(handle, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) ||
        (opts->router_mandatory && zmq_setsockopt(handle, ZMQ_ROUTER_MANDATORY, &on, sizeof on)) ||
        (opts->router_handover && zmq_setsockopt(handle, ZMQ_ROUTER_HANDOVER, &on, sizeof on))) {
        int err = errno;
        zsock_destroy(&sock);
        errno = err;
        return NULL;
    }
    return sock;
}

int zkit__socket_attach(zsock_t *sock, const char *endpoints, bool bind)
{
    if (!endpoints || !*endpoints) {
        errno = EINVAL;
        return -1;
    }
    char *copy = strdup(endpoints);
    if (!copy) {
        errno = ENOMEM;
        return -1;
    }
    int rc = 0;
    char *save = NULL;
    for (char *ep = strtok_r(copy, ",", &save); ep; ep = strtok_r(NULL, ",", &save)) {
        void *handle = zsock_resolve(sock);
        int r = bind ? zmq_bind(handle, ep) : zmq_connect(handle, ep);
        if (r == -1) {
            int err = errno;
            zsys_error("ZKIT-ENDPOINT: cannot %s %s: %s", bind ? "bind" : "connect", ep,
                       zmq_strerror(err));
            errno = err;
            rc = -1;
            break;
        }
    }
    free(copy);
    return rc;
}

void zkit__socket_close(zsock_t **sock_p, int linger_ms)
{
    if (!sock_p || !*sock_p)
        return;
    if (linger_ms != ZKIT__LINGER_KEEP)
        zsock_set_linger(*sock_p, linger_ms < 0 ? -1 : linger_ms);
    zsock_destroy(sock_p);
}

int zkit__socket_last_endpoint(zsock_t *sock, char *buf, size_t size)
{
    size_t len = size;
    if (!buf || size == 0) {
        errno = EINVAL;
        return -1;
    }
    if (zmq_getsockopt(zsock_resolve(sock), ZMQ_LAST_ENDPOINT, buf, &len) == -1)
        return -1;
    buf[size - 1] = '\0';
    return 0;
}

int zkit__socket_bind(zsock_t *sock, const char *endpoints, char *resolved, size_t size)
{
    if (zkit__socket_attach(sock, endpoints, true))
        return -1;
    if (zkit__socket_last_endpoint(sock, resolved, size)) {
        /* Only a resolved endpoint longer than the buffer gets here; the
           caller could not tell its peers where it listens.                */
        int err = errno;
        zsys_error("ZKIT-ENDPOINT: cannot read the endpoint bound for %s: %s", endpoints,
                   zmq_strerror(err));
        errno = err;
        return -1;
    }
    return 0;
}

zsock_t *zkit__socket_new_bound(int type, const zkit__socket_opts_t *opts, const char *endpoints,
                                char *resolved, size_t size)
{
    zsock_t *sock = zkit__socket_new(type, opts);
    if (sock && zkit__socket_bind(sock, endpoints, resolved, size)) {
        int err = errno;
        zkit__socket_close(&sock, 0);
        errno = err;
    }
    return sock;
}

const char *zkit__socket_type_name(int type)
{
    switch (type) {
    case ZMQ_PAIR: return "PAIR";
    case ZMQ_PUB: return "PUB";
    case ZMQ_SUB: return "SUB";
    case ZMQ_REQ: return "REQ";
    case ZMQ_REP: return "REP";
    case ZMQ_DEALER: return "DEALER";
    case ZMQ_ROUTER: return "ROUTER";
    case ZMQ_PULL: return "PULL";
    case ZMQ_PUSH: return "PUSH";
    case ZMQ_XPUB: return "XPUB";
    case ZMQ_XSUB: return "XSUB";
    case ZMQ_STREAM: return "STREAM";
    default: return "?";
    }
}

void zkit__socket_inproc_endpoint(char *buf, size_t size, const char *kind)
{
    static atomic_uint_fast64_t next = 0;
    uint64_t n = atomic_fetch_add(&next, 1);
    snprintf(buf, size, "inproc://zkit-%s-%" PRIu64, kind, n);
}
