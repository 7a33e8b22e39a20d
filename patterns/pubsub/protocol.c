/*  protocol.c: the replay side channel of ZKIT-PUBSUB/1 (see protocol.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "pubsub/protocol.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/ratelimit.h"

static const struct {
    const char *name;
    size_t min_frames; /* after the command frame */
    size_t max_frames;
} s_commands[ZKIT__PUBSUB_COMMANDS_] = {
    [ZKIT__PUBSUB_NONE] = {"?", 0, 0},
    [ZKIT__PUBSUB_FETCH] = {"FETCH", 4, 4},
    [ZKIT__PUBSUB_SNAPSHOT] = {"SNAPSHOT", 1, ZKIT_SUBSCRIBE_MAX},
    [ZKIT__PUBSUB_REPLAY] = {"REPLAY", 2, 2},
    [ZKIT__PUBSUB_VALUE] = {"VALUE", 2, 2},
    [ZKIT__PUBSUB_END] = {"END", 7, 7},
    [ZKIT__PUBSUB_SNAPEND] = {"SNAPEND", 4, 4},
    [ZKIT__PUBSUB_ERROR] = {"ERROR", 1, 1},
    [ZKIT__PUBSUB_PROBE] = {"PROBE", 1, 1},
    [ZKIT__PUBSUB_STATUS] = {"STATUS", 4, 4},
};

static const char *const s_bad_names[ZKIT__PUBSUB_BAD_REASONS_] = {
    [ZKIT__PUBSUB_BAD_FRAMES] = "wrong frame count",
    [ZKIT__PUBSUB_BAD_COMMAND] = "unknown command",
    [ZKIT__PUBSUB_BAD_NUMBER] = "malformed number",
    [ZKIT__PUBSUB_BAD_RANGE] = "inconsistent range",
    [ZKIT__PUBSUB_BAD_SRC] = "malformed source name",
    [ZKIT__PUBSUB_BAD_TOPIC] = "malformed topic",
    [ZKIT__PUBSUB_BAD_ENVELOPE] = "empty envelope frame",
    [ZKIT__PUBSUB_BAD_TEXT] = "error text too long",
    [ZKIT__PUBSUB_BAD_UNEXPECTED] = "command not expected here",
};

const char *zkit__pubsub_cmd_name(zkit__pubsub_cmd_t cmd)
{
    return cmd > ZKIT__PUBSUB_NONE && cmd < ZKIT__PUBSUB_COMMANDS_ ? s_commands[cmd].name : "?";
}

const char *zkit__pubsub_bad_name(zkit__pubsub_bad_t why)
{
    return why < ZKIT__PUBSUB_BAD_REASONS_ ? s_bad_names[why] : "?";
}

const char *zkit__pubsub_bad_reason(zkit__pubsub_bad_t why)
{
    static const char *const ids[] = {"frames", "command",  "number", "range",     "src",
                                      "topic",  "envelope", "text",   "unexpected"};
    _Static_assert(sizeof ids / sizeof ids[0] == ZKIT__PUBSUB_BAD_REASONS_, "one id per reason");
    return why < ZKIT__PUBSUB_BAD_REASONS_ ? ids[why] : "?";
}

void zkit__pubsub_log_bad(zkit__ratelimit_t *log, const char *component, zkit__pubsub_bad_t why)
{
    if (!zkit__ratelimit(log, zclock_mono(), NULL))
        return;
    zsys_warning("ZKIT-PUBSUB-BADFRAME %s: dropped a message: %s (further ones this second "
                 "are only counted)",
                 component, zkit__pubsub_bad_name(why));
}

bool zkit__pubsub_topic_valid(const void *data, size_t size)
{
    return size <= ZKIT_TOPIC_MAX && (size == 0 || !memchr(data, 0, size));
}

bool zkit__pubsub_prefix_match(const void *prefix, size_t prefix_size, const void *topic,
                               size_t topic_size)
{
    return prefix_size <= topic_size && (prefix_size == 0 || !memcmp(prefix, topic, prefix_size));
}

int zkit__pubsub_parse_uint(const void *data, size_t size, uint64_t *value)
{
    const uint8_t *p = data;
    if (size == 0 || size > ZKIT__PUBSUB_DIGITS_MAX || (size > 1 && p[0] == '0'))
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < size; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        uint64_t digit = (uint64_t) (p[i] - '0');
        if (v > (UINT64_MAX - digit) / 10)
            return -1;
        v = v * 10 + digit;
    }
    *value = v;
    return 0;
}

zkit__pubsub_sub_t zkit__pubsub_recv_subscription(void *xpub, zmq_msg_t *frame,
                                                  zkit__traffic_t *traffic)
{
    zmq_msg_init(frame);
    if (zmq_msg_recv(frame, xpub, ZMQ_DONTWAIT) == -1) {
        zmq_msg_close(frame);
        return ZKIT__PUBSUB_SUB_NONE;
    }
    size_t bytes = zmq_msg_size(frame);
    if (zmq_msg_more(frame)) {
        /* Discard the rest: libzmq holds the whole message already. */
        do {
            while (zmq_msg_recv(frame, xpub, 0) == -1 && errno == EINTR)
                ;
            bytes += zmq_msg_size(frame);
        } while (zmq_msg_more(frame));
        zmq_msg_close(frame);
        zkit__traffic_in(traffic, bytes);
        return ZKIT__PUBSUB_SUB_MULTIPART;
    }
    zkit__traffic_in(traffic, bytes);
    const uint8_t *data = zmq_msg_data(frame);
    if (bytes == 0 || data[0] > 1) {
        zmq_msg_close(frame);
        return ZKIT__PUBSUB_SUB_NOT_SUBSCRIPTION;
    }
    return ZKIT__PUBSUB_SUB_OK;
}

int zkit__pubsub_start(const zkit__ops_config_t *config, zkit__ops_t **ops, zactor_t **actor,
                       zactor_fn *handler, void *args, const int *rc, const int *err)
{
    if ((*ops = zkit__ops_new(config)) && (*actor = zactor_new(handler, args)) && !*rc)
        return 0;
    int saved = !*ops ? errno : *actor ? *err : ENOMEM;
    /* A failed setup still waits for $TERM, as every actor must. */
    zactor_destroy(actor);
    zkit__ops_destroy(ops);
    errno = saved;
    return -1;
}

void zkit__pubsub_metrics(zkit__stats_t *stats, const zkit__pubsub_metric_t *metrics, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const zkit__pubsub_metric_t *m = &metrics[i];
        if (m->gauge)
            zkit__stats_gauge(stats, m->name, (int64_t) m->value);
        else
            zkit__stats_counter(stats, m->name, m->value);
        zkit__stats_help(stats, m->name, m->help);
    }
}

const char *zkit__pubsub_sub_reason(zkit__pubsub_sub_t why)
{
    return why == ZKIT__PUBSUB_SUB_MULTIPART ? "multipart" : "not_subscription";
}

static int s_fail(zkit__pubsub_bad_t reason, zkit__pubsub_bad_t *why)
{
    if (why)
        *why = reason;
    return -1;
}

static zkit__pubsub_cmd_t s_command(zmq_msg_t *frame)
{
    size_t size = zmq_msg_size(frame);
    const char *data = zmq_msg_data(frame);
    for (int c = ZKIT__PUBSUB_FETCH; c < ZKIT__PUBSUB_COMMANDS_; c++)
        if (strlen(s_commands[c].name) == size && !memcmp(s_commands[c].name, data, size))
            return (zkit__pubsub_cmd_t) c;
    return ZKIT__PUBSUB_NONE;
}

static int s_uint(zmq_msg_t *frame, uint64_t *value)
{
    return zkit__pubsub_parse_uint(zmq_msg_data(frame), zmq_msg_size(frame), value);
}

static int s_src(zmq_msg_t *frame, char out[ZKIT_SRC_MAX + 1])
{
    size_t size = zmq_msg_size(frame);
    const char *data = zmq_msg_data(frame);
    if (size == 0 || size > ZKIT_SRC_MAX || memchr(data, 0, size))
        return -1;
    memcpy(out, data, size);
    out[size] = '\0';
    return 0;
}

/*  STATUS: 1 <= first <= last + 1 (first = last + 1: nothing held).      */
static bool s_status_ok(const zkit__pubsub_msg_t *msg)
{
    return msg->first >= 1 && (msg->last == UINT64_MAX || msg->first <= msg->last + 1);
}

int zkit__pubsub_parse(zkit__pubsub_frames_t *frames, size_t first, zkit__pubsub_msg_t *msg,
                       zkit__pubsub_bad_t *why)
{
    memset(msg, 0, sizeof *msg);
    if (frames->count <= first || frames->dropped)
        return s_fail(ZKIT__PUBSUB_BAD_FRAMES, why);
    zmq_msg_t *f = &frames->part[first];
    size_t n = frames->count - first - 1; /* frames after the command */
    msg->cmd = s_command(&f[0]);
    if (msg->cmd == ZKIT__PUBSUB_NONE)
        return s_fail(ZKIT__PUBSUB_BAD_COMMAND, why);
    if (n < s_commands[msg->cmd].min_frames || n > s_commands[msg->cmd].max_frames)
        return s_fail(ZKIT__PUBSUB_BAD_FRAMES, why);

    switch (msg->cmd) {
    case ZKIT__PUBSUB_FETCH:
        if (s_src(&f[1], msg->src) == -1)
            return s_fail(ZKIT__PUBSUB_BAD_SRC, why);
        if (s_uint(&f[2], &msg->epoch) == -1 || s_uint(&f[3], &msg->from) == -1 ||
            s_uint(&f[4], &msg->to) == -1)
            return s_fail(ZKIT__PUBSUB_BAD_NUMBER, why);
        if (msg->from == 0 || msg->from > msg->to)
            return s_fail(ZKIT__PUBSUB_BAD_RANGE, why);
        return 0;
    case ZKIT__PUBSUB_SNAPSHOT:
        for (size_t i = 0; i < n; i++) {
            size_t size = zmq_msg_size(&f[1 + i]);
            const void *data = zmq_msg_data(&f[1 + i]);
            if (!zkit__pubsub_topic_valid(data, size))
                return s_fail(ZKIT__PUBSUB_BAD_TOPIC, why);
            if (size)
                memcpy(msg->prefix[i], data, size);
            msg->prefix[i][size] = '\0';
            msg->prefix_size[i] = size;
        }
        msg->prefix_count = n;
        return 0;
    case ZKIT__PUBSUB_REPLAY:
    case ZKIT__PUBSUB_VALUE:
        /* Live topics may be anything libzmq carries, but a replayed one
           was published by zkit, which bounds it. */
        if (!zkit__pubsub_topic_valid(zmq_msg_data(&f[1]), zmq_msg_size(&f[1])))
            return s_fail(ZKIT__PUBSUB_BAD_TOPIC, why);
        if (zmq_msg_size(&f[2]) == 0)
            return s_fail(ZKIT__PUBSUB_BAD_ENVELOPE, why);
        msg->topic = &f[1];
        msg->envelope = &f[2];
        return 0;
    case ZKIT__PUBSUB_END:
        if (s_src(&f[1], msg->src) == -1)
            return s_fail(ZKIT__PUBSUB_BAD_SRC, why);
        if (s_uint(&f[2], &msg->epoch) == -1 || s_uint(&f[3], &msg->from) == -1 ||
            s_uint(&f[4], &msg->to) == -1 || s_uint(&f[5], &msg->lost_to) == -1 ||
            s_uint(&f[6], &msg->served_to) == -1 || s_uint(&f[7], &msg->last) == -1)
            return s_fail(ZKIT__PUBSUB_BAD_NUMBER, why);
        if (msg->from == 0 || msg->from > msg->to)
            return s_fail(ZKIT__PUBSUB_BAD_RANGE, why);
        if (msg->lost_to && (msg->lost_to < msg->from || msg->lost_to > msg->to))
            return s_fail(ZKIT__PUBSUB_BAD_RANGE, why);
        if (msg->served_to && (msg->served_to <= msg->lost_to || msg->served_to < msg->from ||
                               msg->served_to > msg->to))
            return s_fail(ZKIT__PUBSUB_BAD_RANGE, why);
        return 0;
    case ZKIT__PUBSUB_SNAPEND:
        if (s_src(&f[1], msg->src) == -1)
            return s_fail(ZKIT__PUBSUB_BAD_SRC, why);
        if (s_uint(&f[2], &msg->epoch) == -1 || s_uint(&f[3], &msg->last) == -1 ||
            s_uint(&f[4], &msg->count) == -1)
            return s_fail(ZKIT__PUBSUB_BAD_NUMBER, why);
        return 0;
    case ZKIT__PUBSUB_PROBE:
        if (s_src(&f[1], msg->src) == -1)
            return s_fail(ZKIT__PUBSUB_BAD_SRC, why);
        return 0;
    case ZKIT__PUBSUB_STATUS:
        if (s_src(&f[1], msg->src) == -1)
            return s_fail(ZKIT__PUBSUB_BAD_SRC, why);
        if (s_uint(&f[2], &msg->epoch) == -1 || s_uint(&f[3], &msg->first) == -1 ||
            s_uint(&f[4], &msg->last) == -1)
            return s_fail(ZKIT__PUBSUB_BAD_NUMBER, why);
        if (!s_status_ok(msg))
            return s_fail(ZKIT__PUBSUB_BAD_RANGE, why);
        return 0;
    case ZKIT__PUBSUB_ERROR: {
        size_t size = zmq_msg_size(&f[1]);
        if (size > ZKIT__PUBSUB_ERROR_MAX)
            return s_fail(ZKIT__PUBSUB_BAD_TEXT, why);
        if (size)
            memcpy(msg->text, zmq_msg_data(&f[1]), size);
        msg->text[size] = '\0';
        return 0;
    }
    default: return s_fail(ZKIT__PUBSUB_BAD_COMMAND, why);
    }
}

/* ---- sending ----------------------------------------------------------------- */

typedef struct {
    zmq_msg_t part[ZKIT__PUBSUB_FRAMES_MAX];
    size_t count;
} s_out_t;

static void s_out_close(s_out_t *out)
{
    for (size_t i = 0; i < out->count; i++)
        zmq_msg_close(&out->part[i]);
    out->count = 0;
}

static int s_out_bytes(s_out_t *out, const void *data, size_t size)
{
    zmq_msg_t *m = &out->part[out->count];
    if (zmq_msg_init_size(m, size) == -1) {
        errno = ENOMEM;
        return -1;
    }
    if (size)
        memcpy(zmq_msg_data(m), data, size);
    out->count++;
    return 0;
}

static int s_out_str(s_out_t *out, const char *s)
{
    return s_out_bytes(out, s, strlen(s));
}

static int s_out_uint(s_out_t *out, uint64_t v)
{
    char text[ZKIT__PUBSUB_DIGITS_MAX + 1];
    int n = snprintf(text, sizeof text, "%" PRIu64, v);
    return s_out_bytes(out, text, (size_t) n);
}

static int s_out_ref(s_out_t *out, zmq_msg_t *frame)
{
    zmq_msg_t *m = &out->part[out->count];
    zmq_msg_init(m);
    if (zmq_msg_copy(m, frame) == -1) {
        zmq_msg_close(m);
        errno = ENOMEM;
        return -1;
    }
    out->count++;
    return 0;
}

static bool s_src_ok(const char *src)
{
    size_t n = strlen(src);
    return n > 0 && n <= ZKIT_SRC_MAX;
}

/*  Checks msg as parse would, so what is sent parses back equal.            */
static int s_check(const zkit__pubsub_msg_t *msg)
{
    switch (msg->cmd) {
    case ZKIT__PUBSUB_FETCH:
        return s_src_ok(msg->src) && msg->from && msg->from <= msg->to ? 0 : -1;
    case ZKIT__PUBSUB_SNAPSHOT:
        if (msg->prefix_count < 1 || msg->prefix_count > ZKIT_SUBSCRIBE_MAX)
            return -1;
        for (size_t i = 0; i < msg->prefix_count; i++)
            if (!zkit__pubsub_topic_valid(msg->prefix[i], msg->prefix_size[i]))
                return -1;
        return 0;
    case ZKIT__PUBSUB_REPLAY:
    case ZKIT__PUBSUB_VALUE:
        return msg->topic && msg->envelope && zmq_msg_size(msg->envelope) &&
                       zkit__pubsub_topic_valid(zmq_msg_data(msg->topic), zmq_msg_size(msg->topic))
                   ? 0
                   : -1;
    case ZKIT__PUBSUB_END:
        if (!s_src_ok(msg->src) || !msg->from || msg->from > msg->to)
            return -1;
        if (msg->lost_to && (msg->lost_to < msg->from || msg->lost_to > msg->to))
            return -1;
        if (msg->served_to && (msg->served_to <= msg->lost_to || msg->served_to < msg->from ||
                               msg->served_to > msg->to))
            return -1;
        return 0;
    case ZKIT__PUBSUB_SNAPEND:
    case ZKIT__PUBSUB_PROBE: return s_src_ok(msg->src) ? 0 : -1;
    case ZKIT__PUBSUB_STATUS: return s_src_ok(msg->src) && s_status_ok(msg) ? 0 : -1;
    case ZKIT__PUBSUB_ERROR: return strlen(msg->text) <= ZKIT__PUBSUB_ERROR_MAX ? 0 : -1;
    default: return -1;
    }
}

static int s_build(s_out_t *out, const zkit__pubsub_msg_t *msg)
{
    if (s_out_str(out, s_commands[msg->cmd].name) == -1)
        return -1;
    switch (msg->cmd) {
    case ZKIT__PUBSUB_FETCH:
        return s_out_str(out, msg->src) || s_out_uint(out, msg->epoch) ||
                       s_out_uint(out, msg->from) || s_out_uint(out, msg->to)
                   ? -1
                   : 0;
    case ZKIT__PUBSUB_SNAPSHOT:
        for (size_t i = 0; i < msg->prefix_count; i++)
            if (s_out_bytes(out, msg->prefix[i], msg->prefix_size[i]) == -1)
                return -1;
        return 0;
    case ZKIT__PUBSUB_REPLAY:
    case ZKIT__PUBSUB_VALUE:
        return s_out_ref(out, msg->topic) || s_out_ref(out, msg->envelope) ? -1 : 0;
    case ZKIT__PUBSUB_END:
        return s_out_str(out, msg->src) || s_out_uint(out, msg->epoch) ||
                       s_out_uint(out, msg->from) || s_out_uint(out, msg->to) ||
                       s_out_uint(out, msg->lost_to) || s_out_uint(out, msg->served_to) ||
                       s_out_uint(out, msg->last)
                   ? -1
                   : 0;
    case ZKIT__PUBSUB_SNAPEND:
        return s_out_str(out, msg->src) || s_out_uint(out, msg->epoch) ||
                       s_out_uint(out, msg->last) || s_out_uint(out, msg->count)
                   ? -1
                   : 0;
    case ZKIT__PUBSUB_ERROR: return s_out_str(out, msg->text);
    case ZKIT__PUBSUB_PROBE: return s_out_str(out, msg->src);
    case ZKIT__PUBSUB_STATUS:
        return s_out_str(out, msg->src) || s_out_uint(out, msg->epoch) ||
                       s_out_uint(out, msg->first) || s_out_uint(out, msg->last)
                   ? -1
                   : 0;
    default: errno = EINVAL; return -1;
    }
}

int zkit__pubsub_send(void *socket, const void *rid, size_t rid_size, const zkit__pubsub_msg_t *msg)
{
    return zkit__pubsub_send_counted(socket, rid, rid_size, msg, NULL);
}

int zkit__pubsub_send_counted(void *socket, const void *rid, size_t rid_size,
                              const zkit__pubsub_msg_t *msg, zkit__traffic_t *traffic)
{
    if (msg->cmd <= ZKIT__PUBSUB_NONE || msg->cmd >= ZKIT__PUBSUB_COMMANDS_ || s_check(msg) == -1) {
        errno = EINVAL;
        return -1;
    }
    s_out_t out;
    out.count = 0;
    if ((rid && s_out_bytes(&out, rid, rid_size) == -1) || s_build(&out, msg) == -1) {
        s_out_close(&out);
        errno = ENOMEM;
        return -1;
    }
    void *handle = zsock_resolve(socket);
    size_t bytes = 0;
    for (size_t i = 0; i < out.count; i++)
        bytes += zmq_msg_size(&out.part[i]);
    for (size_t i = 0; i < out.count; i++) {
        int flags = ZMQ_DONTWAIT | (i + 1 < out.count ? ZMQ_SNDMORE : 0);
        if (zmq_msg_send(&out.part[i], handle, flags) == -1) {
            /* Only the first frame can fail (libzmq takes the rest of a
               message once it took its first); close what is left. */
            int err = errno;
            for (size_t k = i; k < out.count; k++)
                zmq_msg_close(&out.part[k]);
            errno = err;
            return -1;
        }
    }
    if (traffic)
        zkit__traffic_out(traffic, bytes);
    return 0;
}
