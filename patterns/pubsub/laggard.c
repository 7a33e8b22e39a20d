/*  laggard.c: finding and disconnecting subscribers that stopped reading
    (see laggard.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "pubsub/laggard.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#if defined(__linux__)
#include <linux/sockios.h>
#endif

#include "core/socket.h"

typedef struct {
    int fd;
    struct sockaddr_storage peer;
    socklen_t peer_size;
    bool congested;
    int64_t since_ms;
} s_conn_t;

struct _zkit__laggard_t {
    zsock_t *monitor;
    s_conn_t *conns;
    size_t count;
    size_t capacity;
    uint32_t laggard_ms;
    size_t laggard_bytes;
};

bool zkit__laggard_supported(void)
{
#if defined(__linux__) && defined(SIOCOUTQ)
    return true;
#else
    return false;
#endif
}

zkit__laggard_t *zkit__laggard_new(zsock_t *socket, uint32_t laggard_ms, size_t laggard_bytes)
{
    zkit__laggard_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    self->laggard_ms = laggard_ms;
    self->laggard_bytes = laggard_bytes;
    char endpoint[64];
    zkit__socket_inproc_endpoint(endpoint, sizeof endpoint, "laggard");
    int events = ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED;
    zkit__socket_opts_t so = ZKIT__SOCKET_OPTS_DEFAULT;
    so.linger_ms = 0;
    so.rcvhwm = 0; /* a lost event would leave a descriptor unaccounted */
    if (zmq_socket_monitor(zsock_resolve(socket), endpoint, events) == -1 ||
        !(self->monitor = zkit__socket_new(ZMQ_PAIR, &so)) ||
        zkit__socket_attach(self->monitor, endpoint, false) == -1) {
        int err = errno;
        zkit__laggard_destroy(&self);
        errno = err;
        return NULL;
    }
    return self;
}

void zkit__laggard_destroy(zkit__laggard_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zkit__laggard_t *self = *self_p;
    zkit__socket_close(&self->monitor, 0);
    free(self->conns);
    free(self);
    *self_p = NULL;
}

zsock_t *zkit__laggard_monitor(zkit__laggard_t *self)
{
    return self->monitor;
}

size_t zkit__laggard_connections(const zkit__laggard_t *self)
{
    return self->count;
}

bool zkit__laggard_watching(const zkit__laggard_t *self)
{
    for (size_t i = 0; i < self->count; i++)
        if (self->conns[i].congested)
            return true;
    return false;
}

static void s_remove(zkit__laggard_t *self, size_t i)
{
    self->conns[i] = self->conns[--self->count];
}

static void s_forget_fd(zkit__laggard_t *self, int fd)
{
    for (size_t i = 0; i < self->count; i++)
        if (self->conns[i].fd == fd) {
            s_remove(self, i);
            return;
        }
}

static void s_add(zkit__laggard_t *self, int fd)
{
    /* A descriptor number seen again means the old one is gone. */
    s_forget_fd(self, fd);
    if (self->count == self->capacity) {
        size_t want = self->capacity ? self->capacity * 2 : 16;
        s_conn_t *grown = realloc(self->conns, want * sizeof *grown);
        if (!grown)
            return;
        self->conns = grown;
        self->capacity = want;
    }
    s_conn_t *c = &self->conns[self->count];
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->peer_size = sizeof c->peer;
    if (getpeername(fd, (struct sockaddr *) &c->peer, &c->peer_size) == -1)
        return; /* already closed: the DISCONNECTED event follows */
    self->count++;
}

void zkit__laggard_handle_events(zkit__laggard_t *self)
{
    void *handle = zsock_resolve(self->monitor);
    while (true) {
        zmq_msg_t head, address;
        zmq_msg_init(&head);
        if (zmq_msg_recv(&head, handle, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close(&head);
            return;
        }
        /* Every libzmq 4 event is [event:u16 value:u32][address]. */
        zmq_msg_init(&address);
        if (zmq_msg_more(&head))
            zmq_msg_recv(&address, handle, 0);
        if (zmq_msg_size(&head) == 6) {
            const uint8_t *p = zmq_msg_data(&head);
            uint16_t event;
            uint32_t value;
            memcpy(&event, p, 2);
            memcpy(&value, p + 2, 4);
            if (event == ZMQ_EVENT_ACCEPTED || event == ZMQ_EVENT_CONNECTED)
                s_add(self, (int) value);
            else if (event == ZMQ_EVENT_DISCONNECTED)
                s_forget_fd(self, (int) value);
        }
        zmq_msg_close(&head);
        zmq_msg_close(&address);
    }
}

/*  True when fd still is the connection recorded in c.                      */
static bool s_same_peer(const s_conn_t *c)
{
    struct sockaddr_storage now;
    socklen_t size = sizeof now;
    return getpeername(c->fd, (struct sockaddr *) &now, &size) == 0 && size == c->peer_size &&
           memcmp(&now, &c->peer, size) == 0;
}

int zkit__laggard_check(zkit__laggard_t *self)
{
#if defined(__linux__) && defined(SIOCOUTQ)
    int disconnected = 0;
    int64_t now = zclock_mono();
    for (size_t i = 0; i < self->count;) {
        s_conn_t *c = &self->conns[i];
        int unsent = 0;
        if (!s_same_peer(c) || ioctl(c->fd, SIOCOUTQ, &unsent) == -1) {
            s_remove(self, i);
            continue;
        }
        if ((size_t) unsent < self->laggard_bytes) {
            c->congested = false;
            i++;
            continue;
        }
        if (!c->congested) {
            c->congested = true;
            c->since_ms = now;
        }
        if (now - c->since_ms >= (int64_t) self->laggard_ms) {
            zsys_warning("ZKIT-FWD-LAGGARD: disconnecting a subscriber that has not read for "
                         "%u ms (%d bytes unsent)",
                         self->laggard_ms, unsent);
            shutdown(c->fd, SHUT_RDWR);
            s_remove(self, i);
            disconnected++;
            continue;
        }
        i++;
    }
    return disconnected;
#else
    (void) self;
    return 0;
#endif
}
