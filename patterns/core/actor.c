/*  actor.c: asking a czmq actor for a fixed-size struct (see actor.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "core/actor.h"

#include <errno.h>
#include <string.h>

/* A single-frame send that a signal does not cut short: nothing was queued
   when it fails with EINTR, so trying again cannot send it twice.          */
static int s_send(void *handle, const void *data, size_t size)
{
    while (zmq_send(handle, data, size, 0) == -1)
        if (errno != EINTR)
            return -1;
    return 0;
}

int zkit__actor_query(zactor_t *actor, const char *command, void *out, size_t size)
{
    void *pipe = zsock_resolve(actor);
    if (s_send(pipe, command, strlen(command))) {
        errno = ECANCELED;
        return -1;
    }
    zmq_msg_t reply;
    zmq_msg_init(&reply);
    int rc;
    while ((rc = zmq_msg_recv(&reply, pipe, 0)) == -1 && errno == EINTR)
        ;
    if (rc == -1 || zmq_msg_size(&reply) != size) {
        zmq_msg_close(&reply);
        errno = ECANCELED;
        return -1;
    }
    memcpy(out, zmq_msg_data(&reply), size);
    zmq_msg_close(&reply);
    return 0;
}

int zkit__actor_reply(zsock_t *pipe, const void *data, size_t size)
{
    return s_send(zsock_resolve(pipe), data, size);
}

void zkit__actor_wait_term(zsock_t *pipe)
{
    char *command;
    while ((command = zstr_recv(pipe)) && !streq(command, "$TERM"))
        free(command);
    free(command);
}
