/*  traffic.h (internal): messages and bytes in and out of one socket, the
    counters every component reports on its control endpoint.

    A component keeps one zkit__traffic_t per socket it owns, counts each
    whole message (every frame, as libzmq delivered it, malformed ones
    included: that is what the wire carried) where it receives or sends it,
    and reports them all from its stats callback, so every component's
    STATS map has the same two metrics:

        messages{socket="frontend",dir="in"}   counter
        bytes{socket="frontend",dir="in"}      counter

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_TRAFFIC_H_INCLUDED
#define ZKIT_TRAFFIC_H_INCLUDED

#include <czmq.h>
#include <stddef.h>
#include <stdint.h>

#include "core/control.h"

typedef struct {
    uint64_t msgs_in;
    uint64_t bytes_in;
    uint64_t msgs_out;
    uint64_t bytes_out;
} zkit__traffic_t;

/*  One message of bytes (all frames together) received, or sent.           */
static inline void zkit__traffic_in(zkit__traffic_t *t, size_t bytes)
{
    t->msgs_in++;
    t->bytes_in += bytes;
}

static inline void zkit__traffic_out(zkit__traffic_t *t, size_t bytes)
{
    t->msgs_out++;
    t->bytes_out += bytes;
}

/*  The bytes of all frames of msg (a zmsg_t about to be sent or just
    received).                                                               */
size_t zkit__traffic_zmsg_size(zmsg_t *msg);

/*  Adds messages{socket,dir} and bytes{socket,dir} for the socket named
    socket (a label value: "frontend"), both directions, zeros included, so
    a reader always finds every sample. The help texts are added once.
    Returns 0, or -1 with errno as zkit__stats_counter_labels.              */
int zkit__traffic_report(zkit__stats_t *stats, const char *socket, const zkit__traffic_t *t);

#endif
