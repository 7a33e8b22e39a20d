/*  protocol.c: the command messages of ZKIT-PIPELINE/1 (see protocol.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "pipeline/protocol.h"
#include "core/socket.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Frames after the command frame, per command. */
static const struct {
    const char *name;
    size_t frames;
} s_commands[ZKIT__PIPELINE_COMMANDS_] = {
    [ZKIT__PIPELINE_NONE] = {"", 0},
    [ZKIT__PIPELINE_READY] = {"READY", 1},
    [ZKIT__PIPELINE_HEARTBEAT] = {"HEARTBEAT", 0},
    [ZKIT__PIPELINE_DONE] = {"DONE", 1},
    [ZKIT__PIPELINE_FAIL] = {"FAIL", 2},
    [ZKIT__PIPELINE_TASK] = {"TASK", 1},
    [ZKIT__PIPELINE_DISCONNECT] = {"DISCONNECT", 0},
    [ZKIT__PIPELINE_RESULT] = {"RESULT", 1},
    [ZKIT__PIPELINE_ACK] = {"ACK", 1},
    [ZKIT__PIPELINE_BATCH] = {"BATCH", 2},
    [ZKIT__PIPELINE_DEAD] = {"DEAD", 5},
    [ZKIT__PIPELINE_OK] = {"OK", 1},
    [ZKIT__PIPELINE_COMPLETE] = {"COMPLETE", 2},
};

/* The dispatcher's reason names, the only words a DEAD reason may start with. */
static const char *const s_dead_reasons[] = {"NACKED", "PEER_DIED", "TIMED_OUT", "EXPIRED"};

const char *zkit__pipeline_cmd_name(zkit__pipeline_cmd_t cmd)
{
    if (cmd > ZKIT__PIPELINE_NONE && cmd < ZKIT__PIPELINE_COMMANDS_)
        return s_commands[cmd].name;
    return "?";
}

const char *zkit__pipeline_bad_name(zkit__pipeline_bad_reason_t why)
{
    switch (why) {
    case ZKIT__PIPELINE_BAD_FRAMES: return "wrong frame count";
    case ZKIT__PIPELINE_BAD_COMMAND: return "unknown command";
    case ZKIT__PIPELINE_BAD_FIELD: return "malformed field";
    case ZKIT__PIPELINE_BAD_ENVELOPE: return "bad envelope";
    case ZKIT__PIPELINE_BAD_META: return "envelope lacks required meta";
    case ZKIT__PIPELINE_BAD_UNEXPECTED: return "command not expected here";
    case ZKIT__PIPELINE_BAD_LIMIT: return "beyond a limit";
    default: return "?";
    }
}

/* ---- field checks ------------------------------------------------------------ */

bool zkit__pipeline_batch_valid(const void *data, size_t size)
{
    if (!data || size == 0 || size > ZKIT_BATCH_NAME_MAX)
        return false;
    const uint8_t *p = data;
    for (size_t i = 0; i < size; i++)
        if (p[i] < 0x21 || p[i] > 0x7e)
            return false;
    return true;
}

int zkit__pipeline_parse_uint(const void *data, size_t size, uint64_t max, uint64_t *value)
{
    const uint8_t *p = data;
    if (!p || size == 0 || size > ZKIT__PIPELINE_DIGITS_MAX || (size > 1 && p[0] == '0'))
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < size; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (uint64_t) (p[i] - '0'); /* 10 digits never overflow */
    }
    if (v > max)
        return -1;
    *value = v;
    return 0;
}

/* Printable ASCII without space: batch names and tokens. */
static bool s_token_valid(const uint8_t *p, size_t size, size_t max)
{
    if (size == 0 || size > max)
        return false;
    for (size_t i = 0; i < size; i++)
        if (p[i] < 0x21 || p[i] > 0x7e)
            return false;
    return true;
}

/* A reason is text: no NUL (it must survive as a C string), bounded. */
static bool s_reason_valid(const uint8_t *p, size_t size)
{
    return size <= ZKIT__PIPELINE_REASON_MAX && (size == 0 || !memchr(p, 0, size));
}

/* DEAD's reason: a dispatcher reason name, alone or followed by ": " and text. */
static bool s_dead_reason_valid(const uint8_t *p, size_t size)
{
    if (!s_reason_valid(p, size))
        return false;
    for (size_t i = 0; i < sizeof s_dead_reasons / sizeof *s_dead_reasons; i++) {
        size_t n = strlen(s_dead_reasons[i]);
        if (size >= n && memcmp(p, s_dead_reasons[i], n) == 0 &&
            (size == n || (size >= n + 2 && p[n] == ':' && p[n + 1] == ' ')))
            return true;
    }
    return false;
}

static void s_copy_string(char *dst, const uint8_t *src, size_t size)
{
    memcpy(dst, src, size);
    dst[size] = '\0';
}

void zkit__pipeline_batch_token(const char *batch, uint64_t total, char *out)
{
    snprintf(out, ZKIT__PIPELINE_TOKEN_MAX + 1, "%s:%" PRIu64, batch, total);
}

char *zkit__pipeline_copy_text(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n >= size) {
        n = size - 1;
        /* Step back over UTF-8 continuation bytes so no character is cut. */
        while (n > 0 && ((uint8_t) src[n] & 0xc0) == 0x80)
            n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
    return dst;
}

/* ---- frames -------------------------------------------------------------------- */

int zkit__pipeline_frames_add(zkit__pipeline_frames_t *frames, const void *data, size_t size)
{
    if (frames->count >= ZKIT__PIPELINE_FRAMES_MAX) {
        errno = ENOBUFS;
        return -1;
    }
    zmq_msg_t *part = &frames->part[frames->count];
    if (zmq_msg_init_size(part, size) == -1) {
        errno = ENOMEM;
        return -1;
    }
    if (size)
        memcpy(zmq_msg_data(part), data, size);
    frames->count++;
    return 0;
}

static int s_add_uint(zkit__pipeline_frames_t *frames, uint64_t v)
{
    char digits[24];
    int n = snprintf(digits, sizeof digits, "%" PRIu64, v);
    return zkit__pipeline_frames_add(frames, digits, (size_t) n);
}

static int s_add_str(zkit__pipeline_frames_t *frames, const char *s)
{
    return zkit__pipeline_frames_add(frames, s, strlen(s));
}

int zkit__pipeline_send(void *socket, zkit__pipeline_frames_t *frames, zkit__traffic_t *traffic)
{
    void *handle = zsock_resolve(socket);
    int rc = 0;
    size_t i = 0, bytes = 0;
    for (; i < frames->count; i++)
        bytes += zmq_msg_size(&frames->part[i]);
    for (i = 0; i < frames->count; i++) {
        int flags = ZMQ_DONTWAIT | (i + 1 < frames->count ? ZMQ_SNDMORE : 0);
        if (zmq_msg_send(&frames->part[i], handle, flags) == -1) {
            rc = -1;
            break;
        }
    }
    int err = errno;
    if (rc == 0 && traffic)
        zkit__traffic_out(traffic, bytes);
    /* A sent frame is empty again, so closing every one is always right. */
    zkit__pipeline_frames_close(frames);
    errno = err;
    return rc;
}

int zkit__pipeline_send_frame(void *socket, zmq_msg_t *frame, zkit__traffic_t *traffic)
{
    size_t bytes = zmq_msg_size(frame);
    if (zmq_msg_send(frame, zsock_resolve(socket), ZMQ_DONTWAIT) == -1)
        return -1;
    if (traffic)
        zkit__traffic_out(traffic, bytes);
    return 0;
}

void zkit__pipeline_unbind(zsock_t *sock)
{
    char endpoint[256];
    if (sock && zkit__socket_last_endpoint(sock, endpoint, sizeof endpoint) == 0 && endpoint[0])
        zmq_unbind(zsock_resolve(sock), endpoint);
}

/* ---- building ------------------------------------------------------------------ */

static int s_check(const zkit__pipeline_msg_t *msg)
{
    switch (msg->cmd) {
    case ZKIT__PIPELINE_READY:
        return msg->window >= 1 && msg->window <= ZKIT__PIPELINE_WINDOW_MAX ? 0 : -1;
    case ZKIT__PIPELINE_FAIL: return strlen(msg->reason) <= ZKIT__PIPELINE_REASON_MAX ? 0 : -1;
    case ZKIT__PIPELINE_TASK:
    case ZKIT__PIPELINE_RESULT:
    case ZKIT__PIPELINE_NONE: return msg->envelope && zmq_msg_size(msg->envelope) > 0 ? 0 : -1;
    case ZKIT__PIPELINE_BATCH:
    case ZKIT__PIPELINE_COMPLETE:
        return zkit__pipeline_batch_valid(msg->batch, strlen(msg->batch)) &&
                       msg->total <= ZKIT_BATCH_TASKS_MAX
                   ? 0
                   : -1;
    case ZKIT__PIPELINE_DEAD:
        return zkit__pipeline_batch_valid(msg->batch, strlen(msg->batch)) && msg->task_seq >= 1 &&
                       msg->task_seq <= ZKIT_BATCH_TASKS_MAX &&
                       s_dead_reason_valid((const uint8_t *) msg->reason, strlen(msg->reason))
                   ? 0
                   : -1;
    case ZKIT__PIPELINE_OK:
        return s_token_valid((const uint8_t *) msg->token, strlen(msg->token),
                             ZKIT__PIPELINE_TOKEN_MAX)
                   ? 0
                   : -1;
    case ZKIT__PIPELINE_HEARTBEAT:
    case ZKIT__PIPELINE_DISCONNECT:
    case ZKIT__PIPELINE_DONE:
    case ZKIT__PIPELINE_ACK: return 0;
    default: return -1;
    }
}

int zkit__pipeline_build(const zkit__pipeline_msg_t *msg, zkit__pipeline_frames_t *frames)
{
    if (s_check(msg)) {
        errno = EINVAL;
        return -1;
    }
    size_t before = frames->count;
    int rc = 0;
    if (msg->cmd != ZKIT__PIPELINE_NONE)
        rc = s_add_str(frames, s_commands[msg->cmd].name);
    switch (msg->cmd) {
    case ZKIT__PIPELINE_READY: rc = rc ? rc : s_add_uint(frames, msg->window); break;
    case ZKIT__PIPELINE_DONE:
    case ZKIT__PIPELINE_ACK:
        rc = rc ? rc : zkit__pipeline_frames_add(frames, msg->task_id, ZKIT_ID_SIZE);
        break;
    case ZKIT__PIPELINE_FAIL:
        rc = rc ? rc : zkit__pipeline_frames_add(frames, msg->task_id, ZKIT_ID_SIZE);
        rc = rc ? rc : s_add_str(frames, msg->reason);
        break;
    case ZKIT__PIPELINE_TASK:
    case ZKIT__PIPELINE_RESULT:
    case ZKIT__PIPELINE_NONE:
        if (!rc && frames->count >= ZKIT__PIPELINE_FRAMES_MAX) {
            errno = ENOBUFS;
            rc = -1;
        }
        if (!rc) {
            zmq_msg_t *part = &frames->part[frames->count];
            zmq_msg_init(part);
            /* A reference, not a byte copy: libzmq shares the content. */
            if (zmq_msg_copy(part, msg->envelope) == -1) {
                zmq_msg_close(part);
                rc = -1;
            }
            else
                frames->count++;
        }
        break;
    case ZKIT__PIPELINE_BATCH:
    case ZKIT__PIPELINE_COMPLETE:
        rc = rc ? rc : s_add_str(frames, msg->batch);
        rc = rc ? rc : s_add_uint(frames, msg->total);
        break;
    case ZKIT__PIPELINE_DEAD:
        rc = rc ? rc : s_add_str(frames, msg->batch);
        rc = rc ? rc : zkit__pipeline_frames_add(frames, msg->task_id, ZKIT_ID_SIZE);
        rc = rc ? rc : s_add_uint(frames, msg->task_seq);
        rc = rc ? rc : s_add_uint(frames, msg->attempts);
        rc = rc ? rc : s_add_str(frames, msg->reason);
        break;
    case ZKIT__PIPELINE_OK: rc = rc ? rc : s_add_str(frames, msg->token); break;
    default: break;
    }
    if (rc) {
        int err = errno;
        while (frames->count > before)
            zmq_msg_close(&frames->part[--frames->count]);
        errno = err;
        return -1;
    }
    return 0;
}

int zkit__pipeline_send_msg(void *socket, const void *rid, size_t rid_size,
                            const zkit__pipeline_msg_t *msg, zkit__traffic_t *traffic)
{
    zkit__pipeline_frames_t frames = {.count = 0};
    if ((rid && zkit__pipeline_frames_add(&frames, rid, rid_size)) ||
        zkit__pipeline_build(msg, &frames)) {
        int err = errno;
        zkit__pipeline_frames_close(&frames);
        errno = err;
        return -1;
    }
    return zkit__pipeline_send(socket, &frames, traffic);
}

/* ---- parsing ------------------------------------------------------------------- */

static int s_fail(zkit__pipeline_bad_reason_t reason, zkit__pipeline_bad_reason_t *why)
{
    if (why)
        *why = reason;
    errno = reason == ZKIT__PIPELINE_BAD_FRAMES ? ZKIT_EFRAMES : ZKIT_ECOMMAND;
    return -1;
}

/* An envelope starts with a MessagePack array header; a command with A-Z. */
static bool s_looks_like_envelope(zmq_msg_t *frame)
{
    size_t size = zmq_msg_size(frame);
    const uint8_t *p = zmq_msg_data(frame);
    return size > 0 && ((p[0] & 0xf0) == 0x90 || p[0] == 0xdc || p[0] == 0xdd);
}

static zkit__pipeline_cmd_t s_command(zmq_msg_t *frame)
{
    size_t size = zmq_msg_size(frame);
    const char *p = zmq_msg_data(frame);
    for (int c = ZKIT__PIPELINE_READY; c < ZKIT__PIPELINE_COMMANDS_; c++)
        if (size == strlen(s_commands[c].name) && memcmp(p, s_commands[c].name, size) == 0)
            return (zkit__pipeline_cmd_t) c;
    return ZKIT__PIPELINE_NONE;
}

static int s_id(zmq_msg_t *frame, uint8_t id[ZKIT_ID_SIZE])
{
    if (zmq_msg_size(frame) != ZKIT_ID_SIZE)
        return -1;
    memcpy(id, zmq_msg_data(frame), ZKIT_ID_SIZE);
    return 0;
}

static int s_uint(zmq_msg_t *frame, uint64_t min, uint64_t max, uint64_t *value)
{
    if (zkit__pipeline_parse_uint(zmq_msg_data(frame), zmq_msg_size(frame), max, value))
        return -1;
    return *value >= min ? 0 : -1;
}

static int s_batch(zmq_msg_t *frame, char out[ZKIT_BATCH_NAME_MAX + 1])
{
    size_t size = zmq_msg_size(frame);
    if (!zkit__pipeline_batch_valid(zmq_msg_data(frame), size))
        return -1;
    s_copy_string(out, zmq_msg_data(frame), size);
    return 0;
}

static int s_reason(zmq_msg_t *frame, bool dead, char out[ZKIT__PIPELINE_REASON_MAX + 1])
{
    size_t size = zmq_msg_size(frame);
    const uint8_t *p = zmq_msg_data(frame);
    if (dead ? !s_dead_reason_valid(p, size) : !s_reason_valid(p, size))
        return -1;
    s_copy_string(out, p, size);
    return 0;
}

int zkit__pipeline_parse(zkit__pipeline_frames_t *frames, size_t first, zkit__pipeline_msg_t *msg,
                         zkit__pipeline_bad_reason_t *why)
{
    msg->cmd = ZKIT__PIPELINE_NONE;
    msg->envelope = NULL;
    if (frames->dropped || first >= frames->count)
        return s_fail(ZKIT__PIPELINE_BAD_FRAMES, why);
    zmq_msg_t *f = &frames->part[first];
    size_t after = frames->count - first - 1;
    if (s_looks_like_envelope(f)) {
        if (after)
            return s_fail(ZKIT__PIPELINE_BAD_FRAMES, why);
        msg->envelope = f;
        return 0;
    }
    zkit__pipeline_cmd_t cmd = s_command(f);
    if (cmd == ZKIT__PIPELINE_NONE)
        return s_fail(ZKIT__PIPELINE_BAD_COMMAND, why);
    if (after != s_commands[cmd].frames)
        return s_fail(ZKIT__PIPELINE_BAD_FRAMES, why);
    f++;
    uint64_t v = 0;
    int rc = 0;
    switch (cmd) {
    case ZKIT__PIPELINE_READY:
        rc = s_uint(f, 1, ZKIT__PIPELINE_WINDOW_MAX, &v);
        msg->window = (uint32_t) v;
        break;
    case ZKIT__PIPELINE_DONE:
    case ZKIT__PIPELINE_ACK: rc = s_id(f, msg->task_id); break;
    case ZKIT__PIPELINE_FAIL:
        rc = s_id(f, msg->task_id) || s_reason(f + 1, false, msg->reason);
        break;
    case ZKIT__PIPELINE_TASK:
    case ZKIT__PIPELINE_RESULT:
        rc = s_looks_like_envelope(f) ? 0 : -1;
        msg->envelope = f;
        break;
    case ZKIT__PIPELINE_BATCH:
    case ZKIT__PIPELINE_COMPLETE:
        rc = s_batch(f, msg->batch) || s_uint(f + 1, 0, ZKIT_BATCH_TASKS_MAX, &msg->total);
        break;
    case ZKIT__PIPELINE_DEAD:
        rc = s_batch(f, msg->batch) || s_id(f + 1, msg->task_id) ||
             s_uint(f + 2, 1, ZKIT_BATCH_TASKS_MAX, &msg->task_seq) ||
             s_uint(f + 3, 0, ZKIT__PIPELINE_ATTEMPTS_MAX, &v) ||
             s_reason(f + 4, true, msg->reason);
        msg->attempts = (uint32_t) v;
        break;
    case ZKIT__PIPELINE_OK: {
        size_t size = zmq_msg_size(f);
        rc = s_token_valid(zmq_msg_data(f), size, ZKIT__PIPELINE_TOKEN_MAX) ? 0 : -1;
        if (!rc)
            s_copy_string(msg->token, zmq_msg_data(f), size);
        break;
    }
    default: break; /* HEARTBEAT, DISCONNECT: nothing follows */
    }
    if (rc) {
        msg->envelope = NULL;
        return s_fail(cmd == ZKIT__PIPELINE_TASK || cmd == ZKIT__PIPELINE_RESULT
                          ? ZKIT__PIPELINE_BAD_ENVELOPE
                          : ZKIT__PIPELINE_BAD_FIELD,
                      why);
    }
    msg->cmd = cmd;
    return 0;
}

/* ---- dropped input --------------------------------------------------------------- */

void zkit__pipeline_bad(zkit__pipeline_bad_t *bad, zkit__pipeline_bad_reason_t why,
                        const char *component, const char *detail)
{
    if ((unsigned) why >= ZKIT__PIPELINE_BAD_REASONS_)
        why = ZKIT__PIPELINE_BAD_COMMAND;
    bad->count[why]++;
    bad->total++;
    uint64_t suppressed;
    bool due = zkit__ratelimit(&bad->log, zclock_mono(), &suppressed);
    if (due)
        zsys_warning("ZKIT-PIPE-BADFRAME %s: dropped %" PRIu64 " message(s), last: %s%s%s "
                     "(%" PRIu64 " dropped in all)",
                     component, suppressed + 1, zkit__pipeline_bad_name(why), detail ? ": " : "",
                     detail ? detail : "", bad->total);
}
