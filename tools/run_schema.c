/*  run_schema.c: the keys of `zkit run`'s topology file, per device kind.

    Each key is the device command's long option with '-' spelled '_', with
    the same range as the command checks, so a device behaves the same run
    from a topology or as its own command.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_schema.h"
#include "device_common.h"
#include "spool_cli.h"

#define S_OFF(field) offsetof(zkit__run_device_t, u.field)

/* A string key.                                                            */
#define S_STR_KEY(name, field, required, help)                                                     \
    {                                                                                              \
        name, ZKIT__RUN_STR, 0, 0, S_OFF(field), required, help                                    \
    }
#define S_NUM_KEY(name, type, min, max, field, help)                                               \
    {                                                                                              \
        name, type, min, max, S_OFF(field), false, help                                            \
    }

/* The operations keys every kind takes (zkit_ops_opts_t).                  */
#define S_OPS_KEYS(ops)                                                                            \
    S_STR_KEY("control", ops.control, false, "answer STATS, PING, PAUSE, RESUME here"),            \
        S_STR_KEY("curve_secret", ops.curve_secret, false, "this device's certificate"),           \
        S_STR_KEY("curve_server", ops.curve_server, false,                                         \
                  "connecting sockets: CURVE to this server certificate"),                         \
        S_STR_KEY("curve_allow", ops.curve_allow, false,                                           \
                  "bound sockets: CURVE, admitting the certificates in DIR ('*': any)"),           \
        S_STR_KEY("ip_allow", ops.ip_allow, false, "bound sockets: only these addresses"),         \
        S_STR_KEY("ip_deny", ops.ip_deny, false, "bound sockets: refuse these addresses")

/* The keys of the kinds that deliver with retries (the balancer and the
   spool): the same fields and ranges in both, the help in their words.    */
#define S_DELIVERY_KEYS(kind, heartbeat_help, peer, attempts_help, timeout_help)                   \
    S_NUM_KEY("heartbeat", ZKIT__RUN_U32, 1, 3600000, kind.heartbeat_ms, heartbeat_help),          \
        S_NUM_KEY("liveness", ZKIT__RUN_U32, 1, 100, kind.liveness,                                \
                  "missed heartbeats before " peer " is presumed dead"),                           \
        S_NUM_KEY("max_attempts", ZKIT__RUN_U32, 0, 1000000, kind.max_attempts, attempts_help),    \
        S_NUM_KEY("timeout", ZKIT__RUN_U32, 0, UINT32_MAX, kind.attempt_timeout_ms, timeout_help)

#define S_END                                                                                      \
    {                                                                                              \
        NULL, ZKIT__RUN_STR, 0, 0, 0, false, NULL                                                  \
    }

static const zkit__run_key_t s_forwarder_keys[] = {
    S_STR_KEY("frontend", forwarder.frontend, false, "bind the XSUB frontend (publishers)"),
    S_STR_KEY("frontend_connect", forwarder.frontend_connect, false,
              "connect the frontend (publishers that bind, upstream forwarder)"),
    S_STR_KEY("backend", forwarder.backend, false, "bind the XPUB backend (subscribers)"),
    S_STR_KEY("backend_connect", forwarder.backend_connect, false, "connect the backend"),
    S_NUM_KEY("policy", ZKIT__RUN_POLICY, 0, 0, forwarder.policy, "drop, disconnect, nodrop"),
    S_NUM_KEY("hwm", ZKIT__RUN_INT, 0, INT32_MAX, forwarder.hwm, "messages queued per subscriber"),
    S_NUM_KEY("laggard_ms", ZKIT__RUN_U32, 1, UINT32_MAX, forwarder.laggard_ms,
              "disconnect: how long a queue may stay full"),
    S_NUM_KEY("laggard_bytes", ZKIT__RUN_SIZE, 1, INT32_MAX, forwarder.laggard_bytes,
              "disconnect: unsent bytes that mark a connection as not reading"),
    S_STR_KEY("tap", forwarder.tap, false, "capture endpoint: a copy of every message"),
    S_NUM_KEY("tap_connect", ZKIT__RUN_BOOL, 0, 0, forwarder.tap_connect, "connect the tap"),
    S_NUM_KEY("tap_type", ZKIT__RUN_TAP_TYPE, 0, 0, forwarder.tap_type, "pub or push"),
    S_NUM_KEY("tap_hwm", ZKIT__RUN_INT, 0, INT32_MAX, forwarder.tap_hwm, "copies queued for tap"),
    S_NUM_KEY("linger", ZKIT__RUN_INT, 0, INT32_MAX, forwarder.linger_ms,
              "ms queued messages may take to leave at stop"),
    S_OPS_KEYS(forwarder.ops),
    S_END,
};

static const zkit__run_key_t s_balancer_keys[] = {
    S_STR_KEY("frontend", balancer.frontend, true, "endpoint(s) clients connect to"),
    S_STR_KEY("backend", balancer.backend, true, "endpoint(s) workers connect to"),
    S_DELIVERY_KEYS(balancer, "heartbeat interval in ms, both ways", "a worker",
                    "attempts before a request is dead-lettered (0: no limit)",
                    "ms an attempt may stay unanswered (0: off)"),
    S_NUM_KEY("ttl", ZKIT__RUN_U32, 0, UINT32_MAX, balancer.ttl_ms,
              "ttl in ms of requests that carry none"),
    S_NUM_KEY("max_requests", ZKIT__RUN_U32, 1, 100000000, balancer.max_requests,
              "requests held at once"),
    S_STR_KEY("dead_letter", balancer.dead_letter_dir, false, "dead-letter spool directory"),
    S_NUM_KEY("verbose", ZKIT__RUN_BOOL, 0, 0, balancer.verbose, "log workers coming and going"),
    S_OPS_KEYS(balancer.ops),
    S_END,
};

static const zkit__run_key_t s_spool_keys[] = {
    S_STR_KEY("in", spool.in, true, "endpoint(s) producers connect to (PUT)"),
    S_STR_KEY("in_push", spool.in_push, false, "endpoint(s) for plain PUSH producers"),
    S_STR_KEY("out", spool.out, true, "endpoint(s) consumers connect to"),
    S_STR_KEY("dir", spool.dir, true, "the spool directory"),
    S_NUM_KEY("fsync", ZKIT__RUN_FSYNC, 0, 0, spool.spool, "always, never or interval:MS"),
    S_NUM_KEY("max_bytes", ZKIT__RUN_BYTES, 0, UINT64_MAX, spool.spool.max_bytes,
              "limit on the segment files' total size (0: none)"),
    S_NUM_KEY("full", ZKIT__RUN_FULL, 0, 0, spool.spool, "block, reject or drop-oldest"),
    S_NUM_KEY("block_timeout", ZKIT__RUN_INT, 0, INT32_MAX, spool.spool.block_timeout_ms,
              "longest a PUT is held under block, ms"),
    S_NUM_KEY("segment_size", ZKIT__RUN_BYTES, 0, (uint64_t) 1 << 40, spool.spool.segment_size,
              "segment rollover size"),
    S_NUM_KEY("max_record", ZKIT__RUN_BYTES32, 0, 1u << 30, spool.spool.max_record,
              "largest envelope stored"),
    S_NUM_KEY("retain_bytes", ZKIT__RUN_BYTES, 0, UINT64_MAX, spool.spool.retain_bytes,
              "acknowledged bytes kept for replay"),
    S_NUM_KEY("max_age", ZKIT__RUN_U64, 0, UINT64_MAX / 1000, spool.spool.max_age_ms,
              "ms after which segments are deleted, acknowledged or not"),
    S_DELIVERY_KEYS(spool, "heartbeat with consumers in ms", "a consumer",
                    "deliveries before a record is dead-lettered (0: no limit)",
                    "ms an unacknowledged delivery may take (0: off)"),
    S_STR_KEY("dead_letter", spool.dead_letter_dir, false, "dead-letter spool directory"),
    S_NUM_KEY("prefetch", ZKIT__RUN_U32, 1, 1000000, spool.prefetch,
              "records held in memory for delivery"),
    S_NUM_KEY("dedup_window", ZKIT__RUN_U32, 0, 100000000, spool.dedup_window,
              "ids of the newest records remembered"),
    S_NUM_KEY("burst", ZKIT__RUN_U32, 1, 65536, spool.burst, "producer messages per group commit"),
    S_NUM_KEY("verbose", ZKIT__RUN_BOOL, 0, 0, spool.verbose, "log consumers coming and going"),
    S_OPS_KEYS(spool.ops),
    S_END,
};

static const zkit__run_key_t s_worker_keys[] = {
    S_STR_KEY("connect", worker.opts.connect, true, "the ventilator's endpoint(s)"),
    S_STR_KEY("sink", worker.opts.sink, true, "the sink's endpoint(s)"),
    S_STR_KEY("exec", worker.exec.command, true, "shell command run for each task"),
    S_NUM_KEY("window", ZKIT__RUN_U32, 1, 10000, worker.opts.window, "tasks run at once"),
    S_NUM_KEY("fast", ZKIT__RUN_BOOL, 0, 0, worker.opts.fast, "fast mode (at most once)"),
    S_NUM_KEY("heartbeat", ZKIT__RUN_U32, 1, 3600000, worker.opts.heartbeat_ms,
              "heartbeat interval in ms"),
    S_NUM_KEY("liveness", ZKIT__RUN_U32, 1, 1000, worker.opts.liveness,
              "missed heartbeats before the ventilator is presumed dead"),
    S_NUM_KEY("exec_timeout", ZKIT__RUN_U32, 1, UINT32_MAX, worker.exec.timeout_ms,
              "kill the command after this many ms"),
    S_OPS_KEYS(worker.opts.ops),
    S_END,
};

static const zkit__run_key_t s_sink_keys[] = {
    S_STR_KEY("bind", sink.opts.bind, true, "endpoint(s) workers and the ventilator connect to"),
    S_STR_KEY("output", sink.output, true, "file results are appended to, one line each"),
    S_NUM_KEY("fast", ZKIT__RUN_BOOL, 0, 0, sink.opts.fast, "fast mode (no acknowledgements)"),
    S_OPS_KEYS(sink.opts.ops),
    S_END,
};

const zkit__run_kind_schema_t zkit__run_schema[ZKIT__RUN_KINDS_] = {
    [ZKIT__RUN_FORWARDER] = {"forwarder", s_forwarder_keys},
    [ZKIT__RUN_BALANCER] = {"balancer", s_balancer_keys},
    [ZKIT__RUN_SPOOL] = {"spool", s_spool_keys},
    [ZKIT__RUN_WORKER] = {"worker", s_worker_keys},
    [ZKIT__RUN_SINK] = {"sink", s_sink_keys},
};

/* A result is one envelope frame of at most 16 MiB; leave room for meta
   (as `zkit worker` does).                                                 */
#define S_MAX_OUTPUT (16u * 1024 * 1024 - 64 * 1024)

void zkit__run_schema_init(zkit__run_device_t *dev)
{
    switch (dev->kind) {
    case ZKIT__RUN_FORWARDER: {
        zkit_forwarder_opts_t d = ZKIT_FORWARDER_OPTS_DEFAULT;
        dev->u.forwarder = d;
        break;
    }
    case ZKIT__RUN_BALANCER: {
        zkit_balancer_opts_t d = ZKIT_BALANCER_OPTS_DEFAULT;
        dev->u.balancer = d;
        break;
    }
    case ZKIT__RUN_SPOOL: {
        zkit_spool_device_opts_t d = ZKIT_SPOOL_DEVICE_OPTS_DEFAULT;
        d.spool.block_timeout_ms = 10000; /* as `zkit spool` */
        dev->u.spool = d;
        break;
    }
    case ZKIT__RUN_WORKER: {
        zkit_worker_opts_t d = ZKIT_WORKER_OPTS_DEFAULT;
        dev->u.worker.opts = d;
        memset(&dev->u.worker.exec, 0, sizeof dev->u.worker.exec);
        dev->u.worker.exec.max_output = S_MAX_OUTPUT;
        break;
    }
    case ZKIT__RUN_SINK: {
        zkit_sink_opts_t d = ZKIT_SINK_OPTS_DEFAULT;
        dev->u.sink.opts = d;
        dev->u.sink.output = NULL;
        break;
    }
    default: break;
    }
}

static bool s_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (!strcmp(v, yes[i]))
            return *out = true, true;
        if (!strcmp(v, no[i]))
            return *out = false, true;
    }
    return false;
}

int zkit__run_schema_set(zkit__run_device_t *dev, const zkit__run_key_t *key, const char *value,
                         char *error, size_t error_size)
{
    char *at = (char *) dev + key->offset;
    uint64_t v = 0;
    switch (key->type) {
    case ZKIT__RUN_STR: {
        if (!*value) {
            snprintf(error, error_size, "empty value");
            return -1;
        }
        char *copy = strdup(value);
        if (!copy || zlist_append(dev->strings, copy) == -1) {
            free(copy);
            snprintf(error, error_size, "out of memory");
            return -1;
        }
        *(const char **) at = copy;
        return 0;
    }
    case ZKIT__RUN_BOOL:
        if (!s_bool(value, (bool *) at)) {
            snprintf(error, error_size, "wants true or false, not '%s'", value);
            return -1;
        }
        return 0;
    case ZKIT__RUN_U32:
    case ZKIT__RUN_INT:
    case ZKIT__RUN_SIZE:
    case ZKIT__RUN_U64:
        if (zkit__device_parse_uint(value, key->min, key->max, &v) == -1) {
            snprintf(error, error_size, "wants a number from %" PRIu64 " to %" PRIu64 ", not '%s'",
                     key->min, key->max, value);
            return -1;
        }
        if (key->type == ZKIT__RUN_U32)
            *(uint32_t *) at = (uint32_t) v;
        else if (key->type == ZKIT__RUN_INT)
            *(int *) at = (int) v;
        else if (key->type == ZKIT__RUN_SIZE)
            *(size_t *) at = (size_t) v;
        else
            *(uint64_t *) at = v;
        return 0;
    case ZKIT__RUN_BYTES:
    case ZKIT__RUN_BYTES32:
        if (zkit__spool_parse_bytes(value, key->max, &v) == -1) {
            snprintf(error, error_size,
                     "wants a byte count up to %" PRIu64 " (suffix k, m, g), not '%s'", key->max,
                     value);
            return -1;
        }
        if (key->type == ZKIT__RUN_BYTES32)
            *(uint32_t *) at = (uint32_t) v;
        else
            *(uint64_t *) at = v;
        return 0;
    case ZKIT__RUN_POLICY:
        if (zkit_forwarder_policy_parse(value, (zkit_forwarder_policy_t *) at) == -1) {
            snprintf(error, error_size, "is drop, disconnect or nodrop, not '%s'", value);
            return -1;
        }
        return 0;
    case ZKIT__RUN_TAP_TYPE:
        if (!strcmp(value, "pub"))
            *(int *) at = ZMQ_PUB;
        else if (!strcmp(value, "push"))
            *(int *) at = ZMQ_PUSH;
        else {
            snprintf(error, error_size, "is pub or push, not '%s'", value);
            return -1;
        }
        return 0;
    case ZKIT__RUN_FSYNC:
        if (zkit_spool_parse_fsync(value, (zkit_spool_opts_t *) at) == -1) {
            snprintf(error, error_size, "is always, never or interval:MS (1-3600000), not '%s'",
                     value);
            return -1;
        }
        return 0;
    case ZKIT__RUN_FULL:
        if (zkit_spool_parse_full(value, (zkit_spool_opts_t *) at) == -1) {
            snprintf(error, error_size, "is block, reject or drop-oldest, not '%s'", value);
            return -1;
        }
        return 0;
    }
    snprintf(error, error_size, "unsupported key type");
    return -1;
}

int zkit__run_schema_check(zkit__run_device_t *dev, const char **key_name, char *error,
                           size_t error_size)
{
    if (dev->kind == ZKIT__RUN_FORWARDER) {
        const zkit_forwarder_opts_t *o = &dev->u.forwarder;
        if (!o->frontend && !o->frontend_connect) {
            *key_name = "frontend";
            snprintf(error, error_size, "missing required key: frontend or frontend_connect");
            return -1;
        }
        if (!o->backend && !o->backend_connect) {
            *key_name = "backend";
            snprintf(error, error_size, "missing required key: backend or backend_connect");
            return -1;
        }
    }
    if (dev->kind == ZKIT__RUN_SPOOL) {
        /* The rules `zkit spool` applies: a small max_bytes gets segments
           small enough that two fit, unless the size was given.            */
        zkit_spool_opts_t *s = &dev->u.spool.spool;
        bool segment_given = strstr(dev->signature, "\nsegment_size=") != NULL;
        if (s->max_bytes && !segment_given && s->segment_size > s->max_bytes / 4)
            s->segment_size = s->max_bytes / 4 < 4096 ? 4096 : s->max_bytes / 4;
        if (s->segment_size < 512) {
            *key_name = "segment_size";
            snprintf(error, error_size, "must be at least 512 bytes");
            return -1;
        }
        if (s->max_bytes && s->max_bytes / 2 < s->segment_size) {
            *key_name = "max_bytes";
            snprintf(error, error_size,
                     "must hold at least two segments (%" PRIu64 " bytes with this segment size)",
                     2 * s->segment_size);
            return -1;
        }
    }
    return 0;
}
