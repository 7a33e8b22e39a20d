/*  laggard.h (internal): finds the subscriber connections of a forwarder's
    backend that have stopped reading, for the DISCONNECT policy.

    libzmq does not say which subscriber's queue is full: an XPUB only
    refuses a message (with ZMQ_XPUB_NODROP) when some matching queue is. But
    a queue fills only once the connection's kernel send buffer is full, and
    that is visible: a socket monitor reports each connection's file
    descriptor, and ioctl(SIOCOUTQ) gives the bytes the kernel still holds
    for it. A connection that keeps at least laggard_bytes unsent for
    laggard_ms is a laggard; shutdown(2) on its descriptor makes libzmq drop
    it as if the peer had gone, and the subscriber reconnects.

    The descriptor belongs to libzmq; the monitor's events arrive after the
    fact, so a descriptor could have been closed and reused meanwhile. Each
    one is checked against the peer address recorded when it was accepted
    before anything is done to it.

    Owned by the forwarder's thread. Linux only (zkit__laggard_supported).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_PUBSUB_LAGGARD_H_INCLUDED
#define ZKIT_PUBSUB_LAGGARD_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct _zkit__laggard_t zkit__laggard_t;

/*  True when this platform can find laggards (SIOCOUTQ).                    */
bool zkit__laggard_supported(void);

/*  Starts monitoring socket's connections. Returns NULL with errno set.     */
zkit__laggard_t *zkit__laggard_new(zsock_t *socket, uint32_t laggard_ms, size_t laggard_bytes);

void zkit__laggard_destroy(zkit__laggard_t **self_p);

/*  The monitor's socket, to poll for events.                                */
zsock_t *zkit__laggard_monitor(zkit__laggard_t *self);

/*  Reads every waiting monitor event (connections opened and closed).      */
void zkit__laggard_handle_events(zkit__laggard_t *self);

/*  Looks at every connection's unsent bytes now; disconnects those that
    have been congested for laggard_ms. Returns how many it disconnected.   */
int zkit__laggard_check(zkit__laggard_t *self);

/*  True when some connection is congested (check again soon).               */
bool zkit__laggard_watching(const zkit__laggard_t *self);

/*  Connections known open now.                                              */
size_t zkit__laggard_connections(const zkit__laggard_t *self);

#endif
