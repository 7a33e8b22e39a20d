/*  protocol.c: the frames of ZKIT-BALANCER/1 (see protocol.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "balancer/protocol.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* ---- receiving ---------------------------------------------------------------- */

size_t zkit__bal_msg_view(zkit__bal_msg_t *msg, size_t first, zkit__bal_frame_t *view)
{
    size_t n = 0;
    for (size_t i = first; i < msg->count; i++, n++) {
        view[n].data = zmq_msg_data(&msg->part[i]);
        view[n].size = zmq_msg_size(&msg->part[i]);
    }
    return n;
}

/* ---- parsing ----------------------------------------------------------------------- */

static int s_bad(zkit_balancer_bad_t *why, zkit_balancer_bad_t reason)
{
    if (why)
        *why = reason;
    return -1;
}

int zkit__bal_parse_credit(const void *data, size_t size, uint32_t *credit)
{
    const uint8_t *p = data;
    if (!p || size == 0 || size > ZKIT__BAL_DIGITS_MAX || p[0] == '0')
        return -1;
    uint32_t v = 0;
    for (size_t i = 0; i < size; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (uint32_t) (p[i] - '0');
    }
    if (v > ZKIT__BAL_CREDIT_MAX)
        return -1;
    *credit = v;
    return 0;
}

/* The shape requests and replies share: [handle][empty][content...].       */
static int s_parse_enveloped(const zkit__bal_frame_t *frames, size_t count,
                             zkit__bal_backend_msg_t *out, zkit_balancer_bad_t *why)
{
    if (frames[0].size != ZKIT_ID_SIZE)
        return s_bad(why, ZKIT_BALANCER_BAD_FIELD);
    if (frames[1].size != 0)
        return s_bad(why, ZKIT_BALANCER_BAD_ROUTE);
    if (count - 2 > ZKIT__BAL_PARTS_MAX)
        return s_bad(why, ZKIT_BALANCER_BAD_FRAMES);
    memcpy(out->id, frames[0].data, ZKIT_ID_SIZE);
    out->first_part = 2;
    out->parts = count - 2;
    return 0;
}

/* A command frame is exactly one byte.                                      */
static int s_command_byte(const zkit__bal_frame_t *frame)
{
    return frame->size == 1 ? *(const uint8_t *) frame->data : -1;
}

int zkit__bal_parse_worker(const zkit__bal_frame_t *frames, size_t count,
                           zkit__bal_backend_msg_t *out, zkit_balancer_bad_t *why)
{
    memset(out, 0, sizeof *out);
    if (count == 0)
        return s_bad(why, ZKIT_BALANCER_BAD_FRAMES);
    if (count >= 3) {
        out->cmd = ZKIT__BAL_REPLY;
        return s_parse_enveloped(frames, count, out, why);
    }
    int cmd = s_command_byte(&frames[0]);
    switch (cmd) {
    case ZKIT__BAL_CMD_READY:
        out->cmd = ZKIT__BAL_READY;
        if (count == 1) {
            out->credit = 1; /* RFC 6: one request at a time */
            return 0;
        }
        if (zkit__bal_parse_credit(frames[1].data, frames[1].size, &out->credit))
            return s_bad(why, ZKIT_BALANCER_BAD_FIELD);
        out->zkit = true;
        return 0;
    case ZKIT__BAL_CMD_HEARTBEAT:
        out->cmd = ZKIT__BAL_HEARTBEAT;
        return count == 1 ? 0 : s_bad(why, ZKIT_BALANCER_BAD_FRAMES);
    case ZKIT__BAL_CMD_DISCONNECT:
        out->cmd = ZKIT__BAL_DISCONNECT;
        return count == 1 ? 0 : s_bad(why, ZKIT_BALANCER_BAD_FRAMES);
    case ZKIT__BAL_CMD_NACK:
        out->cmd = ZKIT__BAL_NACK;
        if (count != 2)
            return s_bad(why, ZKIT_BALANCER_BAD_FRAMES);
        if (frames[1].size != ZKIT_ID_SIZE)
            return s_bad(why, ZKIT_BALANCER_BAD_FIELD);
        memcpy(out->id, frames[1].data, ZKIT_ID_SIZE);
        return 0;
    default: return s_bad(why, ZKIT_BALANCER_BAD_COMMAND);
    }
}

int zkit__bal_parse_balancer(const zkit__bal_frame_t *frames, size_t count,
                             zkit__bal_backend_msg_t *out, zkit_balancer_bad_t *why)
{
    memset(out, 0, sizeof *out);
    if (count == 0 || count == 2)
        return s_bad(why, ZKIT_BALANCER_BAD_FRAMES);
    if (count >= 3) {
        out->cmd = ZKIT__BAL_REQUEST;
        return s_parse_enveloped(frames, count, out, why);
    }
    if (s_command_byte(&frames[0]) != ZKIT__BAL_CMD_HEARTBEAT)
        return s_bad(why, ZKIT_BALANCER_BAD_COMMAND);
    out->cmd = ZKIT__BAL_HEARTBEAT;
    return 0;
}

int zkit__bal_parse_client(const zkit__bal_frame_t *frames, size_t count,
                           zkit__bal_client_msg_t *out, zkit_balancer_bad_t *why)
{
    memset(out, 0, sizeof *out);
    /* Frame 0 is the routing id the ROUTER added; the delimiter follows the
       addresses. libzmq never delivers an empty routing id.                 */
    size_t delim = 1;
    while (delim < count && frames[delim].size != 0)
        delim++;
    if (delim >= count)
        return s_bad(why, ZKIT_BALANCER_BAD_ROUTE);
    if (delim > ZKIT__BAL_ROUTE_MAX)
        return s_bad(why, ZKIT_BALANCER_BAD_ROUTE);
    size_t parts = count - delim - 1;
    if (parts == 0 || parts > ZKIT__BAL_PARTS_MAX)
        return s_bad(why, ZKIT_BALANCER_BAD_FRAMES);
    out->route = delim;
    out->first_part = delim + 1;
    out->parts = parts;
    return 0;
}

/* ---- sending -------------------------------------------------------------------------- */

int zkit__bal_send(void *handle, zmq_msg_t *frames, size_t count, zkit__traffic_t *traffic)
{
    int rc = 0, err = 0;
    size_t i = 0, bytes = 0;
    /* Before sending: a frame sent is left empty.                          */
    for (size_t j = 0; j < count; j++)
        bytes += zmq_msg_size(&frames[j]);
    for (; i < count; i++) {
        int flags = ZMQ_DONTWAIT | (i + 1 < count ? ZMQ_SNDMORE : 0);
        if (zmq_msg_send(&frames[i], handle, flags) == -1) {
            /* Only the first frame can fail for want of room or a peer: once
               it is accepted, libzmq accepts the rest of the message.       */
            err = errno;
            rc = -1;
            break;
        }
    }
    for (; i < count; i++)
        zmq_msg_close(&frames[i]);
    if (rc)
        errno = err;
    else if (traffic)
        zkit__traffic_out(traffic, bytes);
    return rc;
}

int zkit__bal_frame_set(zmq_msg_t *frame, const void *data, size_t size)
{
    if (zmq_msg_init_size(frame, size) == -1) {
        errno = ENOMEM;
        return -1;
    }
    if (size)
        memcpy(zmq_msg_data(frame), data, size);
    return 0;
}

int zkit__bal_send_command(void *handle, const void *rid, size_t rid_size, uint8_t cmd,
                           uint32_t credit, const uint8_t *id, zkit__traffic_t *traffic)
{
    zmq_msg_t frames[3];
    size_t n = 0;
    char digits[16];
    const void *arg = NULL;
    size_t arg_size = 0;
    if (cmd == ZKIT__BAL_CMD_READY && credit > 0) {
        arg_size = (size_t) snprintf(digits, sizeof digits, "%u", credit);
        arg = digits;
    }
    else if (cmd == ZKIT__BAL_CMD_NACK && id) {
        arg = id;
        arg_size = ZKIT_ID_SIZE;
    }
    if (rid && zkit__bal_frame_set(&frames[n++], rid, rid_size))
        return -1;
    if (zkit__bal_frame_set(&frames[n++], &cmd, 1) ||
        (arg && zkit__bal_frame_set(&frames[n++], arg, arg_size))) {
        for (size_t i = 0; i + 1 < n; i++)
            zmq_msg_close(&frames[i]);
        errno = ENOMEM;
        return -1;
    }
    return zkit__bal_send(handle, frames, n, traffic);
}

const char *zkit__bal_cmd_name(zkit__bal_cmd_t cmd)
{
    switch (cmd) {
    case ZKIT__BAL_READY: return "READY";
    case ZKIT__BAL_HEARTBEAT: return "HEARTBEAT";
    case ZKIT__BAL_NACK: return "NACK";
    case ZKIT__BAL_DISCONNECT: return "DISCONNECT";
    case ZKIT__BAL_REQUEST: return "REQUEST";
    case ZKIT__BAL_REPLY: return "REPLY";
    default: return "?";
    }
}

ZKIT_EXPORT const char *zkit_balancer_bad_name(zkit_balancer_bad_t why)
{
    switch (why) {
    case ZKIT_BALANCER_BAD_FRAMES: return "wrong frame count";
    case ZKIT_BALANCER_BAD_COMMAND: return "unknown command";
    case ZKIT_BALANCER_BAD_FIELD: return "malformed field";
    case ZKIT_BALANCER_BAD_ROUTE: return "bad address envelope";
    case ZKIT_BALANCER_BAD_ENVELOPE: return "bad envelope";
    default: return "?";
    }
}
