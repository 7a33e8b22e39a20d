/*  actor_call.c: commands over a pipeline actor's pipe (see actor_call.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "pipeline/actor_call.h"

#include <errno.h>
#include <string.h>

/* A blocking send that a signal does not cut short: giving up between the
   frames of a message would leave half a command in the pipe.             */
static int s_send(void *handle, const void *data, size_t size, int flags)
{
    while (zmq_send(handle, data, size, flags) == -1)
        if (errno != EINTR)
            return -1;
    return 0;
}

int zkit__pipeline_tell(zactor_t *actor, const char *cmd, const void *arg, size_t arg_size)
{
    void *handle = zsock_resolve(actor);
    int more = arg ? ZMQ_SNDMORE : 0;
    if (s_send(handle, cmd, strlen(cmd), more) || (arg && s_send(handle, arg, arg_size, 0))) {
        errno = ECANCELED;
        return -1;
    }
    return 0;
}

/* Receives the one-frame reply; a signal does not abandon it, since every
   command is answered and an unread reply would answer the next one.       */
static int s_recv_reply(void *handle, zmq_msg_t *reply)
{
    zmq_msg_init(reply);
    while (zmq_msg_recv(reply, handle, 0) == -1) {
        if (errno != EINTR) {
            zmq_msg_close(reply);
            errno = ECANCELED;
            return -1;
        }
    }
    return 0;
}

int zkit__pipeline_call_msg(zactor_t *actor, const char *cmd, const void *arg, size_t arg_size,
                            zmq_msg_t *reply)
{
    if (zkit__pipeline_tell(actor, cmd, arg, arg_size))
        return -1;
    return s_recv_reply(zsock_resolve(actor), reply);
}

ssize_t zkit__pipeline_call(zactor_t *actor, const char *cmd, const void *arg, size_t arg_size,
                            void *reply, size_t reply_size)
{
    zmq_msg_t msg;
    if (zkit__pipeline_call_msg(actor, cmd, arg, arg_size, &msg))
        return -1;
    size_t size = zmq_msg_size(&msg);
    if (reply)
        memcpy(reply, zmq_msg_data(&msg), size < reply_size ? size : reply_size);
    zmq_msg_close(&msg);
    return (ssize_t) size;
}

static int s_status(const zkit__pipeline_status_t *status, ssize_t size,
                    zkit_batch_report_t *report)
{
    if (size != (ssize_t) sizeof *status) {
        errno = ECANCELED;
        return -1;
    }
    if (report)
        *report = status->report;
    if (status->rc) {
        errno = status->err;
        return -1;
    }
    return 0;
}

int zkit__pipeline_call_wait(zactor_t *actor, int timeout_ms, zkit_batch_report_t *report)
{
    void *handle = zsock_resolve(actor);
    int32_t arg = timeout_ms < 0 ? -1 : timeout_ms;
    if (zkit__pipeline_tell(actor, "WAIT", &arg, sizeof arg))
        return -1;
    zkit__pipeline_status_t status;
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    bool interrupted = false;
    while (zmq_msg_recv(&msg, handle, 0) == -1) {
        if (errno != EINTR) {
            zmq_msg_close(&msg);
            errno = ECANCELED;
            return -1;
        }
        if (!interrupted) {
            /* The actor answers UNWAIT by answering the WAIT now.            */
            interrupted = true;
            if (zkit__pipeline_tell(actor, "UNWAIT", NULL, 0)) {
                zmq_msg_close(&msg);
                return -1;
            }
        }
    }
    ssize_t size = (ssize_t) zmq_msg_size(&msg);
    if (size == (ssize_t) sizeof status)
        memcpy(&status, zmq_msg_data(&msg), sizeof status);
    zmq_msg_close(&msg);
    return s_status(&status, size, report);
}

int zkit__pipeline_call_report(zactor_t *actor, zkit_batch_report_t *report)
{
    zkit__pipeline_status_t status;
    ssize_t size = zkit__pipeline_call(actor, "REPORT", NULL, 0, &status, sizeof status);
    if (size < 0)
        return -1;
    return s_status(&status, size, report);
}

int zkit__pipeline_reply(zsock_t *pipe, const void *data, size_t size)
{
    return s_send(zsock_resolve(pipe), data, size, 0);
}

void zkit__pipeline_waiter_reply(zkit__pipeline_waiter_t *waiter, zsock_t *pipe, int rc, int err,
                                 const zkit_batch_report_t *report)
{
    if (!waiter->active)
        return;
    zkit__pipeline_status_t status = {.rc = rc, .err = err};
    if (report)
        status.report = *report;
    zkit__pipeline_reply(pipe, &status, sizeof status);
    waiter->active = false;
}

bool zkit__pipeline_waiter_start(zkit__pipeline_waiter_t *waiter, zmq_msg_t *arg, int64_t now_ms)
{
    int32_t timeout;
    if (!arg || zmq_msg_size(arg) != sizeof timeout)
        return false;
    memcpy(&timeout, zmq_msg_data(arg), sizeof timeout);
    waiter->active = true;
    waiter->deadline_ms = timeout < 0 ? INT64_MAX : now_ms + timeout;
    return true;
}
