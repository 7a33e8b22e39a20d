/*  recv.c: one whole multipart message, bounded (see recv.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "core/recv.h"

#include <errno.h>
#include <stdbool.h>

int zkit__recv(void *handle, zkit__recv_t *msg, size_t max, int flags)
{
    if (max == 0)
        max = 1;
    else if (max > ZKIT__RECV_PARTS_MAX)
        max = ZKIT__RECV_PARTS_MAX;
    msg->count = 0;
    msg->dropped = 0;
    msg->bytes = 0;
    zmq_msg_t spare; /* where a frame past max goes, to be closed at once */
    for (;;) {
        zmq_msg_t *frame = msg->count < max ? &msg->part[msg->count] : &spare;
        zmq_msg_init(frame);
        if (zmq_msg_recv(frame, handle, flags) == -1) {
            int err = errno;
            zmq_msg_close(frame);
            if (msg->count + msg->dropped == 0) {
                errno = err;
                return -1;
            }
            /* libzmq delivers a message whole, so the rest is already
               here: only a signal stops the read part way. Giving up then
               would leave the rest to be taken for a message of its own.  */
            if (err == EINTR) {
                flags = 0;
                continue;
            }
            zkit__recv_close(msg);
            errno = err;
            return -1;
        }
        flags = 0;
        bool more = zmq_msg_more(frame);
        msg->bytes += zmq_msg_size(frame);
        if (frame == &spare) {
            zmq_msg_close(&spare);
            msg->dropped++;
        }
        else
            msg->count++;
        if (!more)
            return 0;
    }
}

void zkit__recv_close(zkit__recv_t *msg)
{
    for (size_t i = 0; i < msg->count; i++)
        zmq_msg_close(&msg->part[i]);
    msg->count = 0;
    msg->dropped = 0;
}
