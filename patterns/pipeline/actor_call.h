/*  actor_call.h (internal): commands over a pipeline actor's pipe.

    The ventilator, the worker and the sink are czmq actors; their public
    functions talk to the actor thread over its pipe. A command is one frame
    with its name, optionally followed by one frame of argument bytes; a reply
    is one frame of bytes (a struct, in process). Every command that expects a
    reply gets exactly one, so the pipe never holds a stale reply.

    WAIT is the one command that may take long: the actor replies when the
    batch is complete or the wait's deadline passes. When a signal interrupts
    the caller, it sends UNWAIT, which makes the actor reply at once, collects
    that reply and returns EINTR, leaving the pipe in step.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_PIPELINE_ACTOR_CALL_H_INCLUDED
#define ZKIT_PIPELINE_ACTOR_CALL_H_INCLUDED

#include <czmq.h>

#include "zkit_batch.h"

/*  The reply to WAIT and REPORT.                                             */
typedef struct {
    int rc;  /* 0 or -1 */
    int err; /* errno when rc is -1 */
    zkit_batch_report_t report;
} zkit__pipeline_status_t;

/*  An actor's pending WAIT, if any.                                          */
typedef struct {
    bool active;
    int64_t deadline_ms; /* monotonic; INT64_MAX: none */
} zkit__pipeline_waiter_t;

/* ---- caller side ------------------------------------------------------------ */

/*  Sends cmd (and arg_size bytes of arg, when arg is not NULL) without waiting
    for a reply. Returns 0, or -1 with errno ECANCELED.                        */
int zkit__pipeline_tell(zactor_t *actor, const char *cmd, const void *arg, size_t arg_size);

/*  Sends cmd and waits for the one-frame reply, copied into reply[reply_size]
    (a shorter reply leaves the rest alone; a longer one is cut). Returns the
    reply's size, or -1 with errno ECANCELED.                                  */
ssize_t zkit__pipeline_call(zactor_t *actor, const char *cmd, const void *arg, size_t arg_size,
                            void *reply, size_t reply_size);

/*  As zkit__pipeline_call, but the reply's bytes are handed over in a fresh
    zmq_msg_t (initialised on success; the caller closes it).                  */
int zkit__pipeline_call_msg(zactor_t *actor, const char *cmd, const void *arg, size_t arg_size,
                            zmq_msg_t *reply);

/*  WAIT with timeout_ms (-1: no limit), with the UNWAIT dance on a signal.
    Fills *report (may be NULL). Returns 0, or -1 with errno ETIMEDOUT, EINTR,
    EINVAL (the actor has nothing to wait for) or ECANCELED.                   */
int zkit__pipeline_call_wait(zactor_t *actor, int timeout_ms, zkit_batch_report_t *report);

/*  REPORT. Returns 0, or -1 with errno ECANCELED.                            */
int zkit__pipeline_call_report(zactor_t *actor, zkit_batch_report_t *report);

/* ---- actor side ---------------------------------------------------------------- */

/*  Sends a reply of size bytes on the actor's pipe. Returns 0 or -1.         */
int zkit__pipeline_reply(zsock_t *pipe, const void *data, size_t size);

/*  Replies to the pending WAIT, if any, with rc/err and report; clears it.   */
void zkit__pipeline_waiter_reply(zkit__pipeline_waiter_t *waiter, zsock_t *pipe, int rc, int err,
                                 const zkit_batch_report_t *report);

/*  Starts a WAIT whose argument frame is arg (an int of ms, -1 no limit) at
    now_ms. Returns false when the argument is malformed.                     */
bool zkit__pipeline_waiter_start(zkit__pipeline_waiter_t *waiter, zmq_msg_t *arg, int64_t now_ms);

#endif
