/*  test_control: the control endpoint and the STATS builder.

    The STATS map is decoded with mpack.h's reader into a small tree and
    checked against the schema of docs/control-protocol.md; the endpoint is
    driven over TCP by DEALER and REQ clients, fed garbage, and run inside a
    component's zpoller (and a zloop) while that component does other work.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/control.h"
#include "core/mpack.h"
#include "core/traffic.h"
#include "zkit_library.h"

#define S_DEADLINE_MS 10000

/* ---- a tiny MessagePack tree, to check the schema --------------------------------- */

typedef struct s_node {
    mpack_type_t type;
    uint64_t u;
    int64_t i;
    char *str; /* STR, NUL-terminated copy */
    size_t count;
    struct s_node *items; /* ARRAY: count items; MAP: 2*count (key, value) */
} s_node_t;

static int s_decode(mpack_reader_t *r, s_node_t *node, unsigned depth)
{
    mpack_item_t it;
    memset(&it, 0, sizeof it);
    memset(node, 0, sizeof *node);
    if (depth > 16 || mpack_read(r, &it) != MPACK_OK)
        return -1;
    node->type = it.type;
    node->u = it.u;
    node->i = it.i;
    if (it.type == MPACK_STR) {
        node->str = malloc(it.count + 1);
        memcpy(node->str, it.data, it.count);
        node->str[it.count] = '\0';
    }
    if (it.type == MPACK_ARRAY || it.type == MPACK_MAP) {
        size_t n = it.type == MPACK_MAP ? 2 * (size_t) it.count : it.count;
        node->count = it.count;
        node->items = calloc(n ? n : 1, sizeof *node->items);
        for (size_t k = 0; k < n; k++)
            if (s_decode(r, &node->items[k], depth + 1) == -1)
                return -1;
    }
    return 0;
}

static void s_node_free(s_node_t *node)
{
    size_t n = node->type == MPACK_MAP ? 2 * node->count : node->count;
    if (node->items)
        for (size_t k = 0; k < n; k++)
            s_node_free(&node->items[k]);
    free(node->items);
    free(node->str);
}

/*  Decodes exactly one value from data (nothing may follow).               */
static s_node_t s_parse(const uint8_t *data, size_t size)
{
    mpack_reader_t r;
    mpack_reader_init(&r, data, size);
    s_node_t root;
    assert_int_equal(s_decode(&r, &root, 0), 0);
    assert_int_equal(mpack_remaining(&r), 0);
    return root;
}

/*  The value under key in a map whose keys are all strings, or NULL.       */
static s_node_t *s_get(s_node_t *map, const char *key)
{
    assert_int_equal(map->type, MPACK_MAP);
    for (size_t k = 0; k < map->count; k++) {
        assert_int_equal(map->items[2 * k].type, MPACK_STR);
        if (!strcmp(map->items[2 * k].str, key))
            return &map->items[2 * k + 1];
    }
    return NULL;
}

/*  Follows a path of keys: s_at(root, "counters", "x", NULL).              */
static s_node_t *s_at(s_node_t *node, ...)
{
    va_list args;
    va_start(args, node);
    for (const char *key = va_arg(args, const char *); key && node;
         key = va_arg(args, const char *))
        node = s_get(node, key);
    va_end(args);
    return node;
}

static uint64_t s_uint_at(s_node_t *node)
{
    assert_non_null(node);
    assert_int_equal(node->type, MPACK_UINT);
    return node->u;
}

/*  Every top-level key of schema 1 is present with its type.               */
static void s_check_schema(s_node_t *root)
{
    assert_int_equal(root->type, MPACK_MAP);
    assert_int_equal(s_uint_at(s_get(root, "schema")), ZKIT__STATS_SCHEMA);
    assert_int_equal(s_get(root, "component")->type, MPACK_STR);
    assert_int_equal(s_get(root, "name")->type, MPACK_STR);
    assert_int_equal(s_get(root, "time_us")->type, MPACK_UINT);
    assert_int_equal(s_get(root, "uptime_us")->type, MPACK_UINT);
    assert_int_equal(s_get(root, "counters")->type, MPACK_MAP);
    assert_int_equal(s_get(root, "gauges")->type, MPACK_MAP);
    assert_int_equal(s_get(root, "help")->type, MPACK_MAP);
    assert_int_equal(s_get(root, "peers")->type, MPACK_ARRAY);
    assert_int_equal(s_get(root, "peers_omitted")->type, MPACK_UINT);
}

/* ---- the builder ------------------------------------------------------------------ */

static void test_pause_resume_rule(void **state)
{
    (void) state;
    bool paused = false;
    char reply[64] = "";
    assert_int_equal(
        zkit__control_pause_resume("PAUSE", "", reply, sizeof reply, &paused, "unit one", "work"),
        ZKIT__CONTROL_OK);
    assert_true(paused);
    assert_string_equal(reply, "OK paused");
    /* a repeat is fine and changes nothing */
    assert_int_equal(
        zkit__control_pause_resume("PAUSE", "", reply, sizeof reply, &paused, "unit one", "work"),
        ZKIT__CONTROL_OK);
    assert_true(paused);
    assert_int_equal(zkit__control_pause_resume("RESUME", "now", reply, sizeof reply, &paused,
                                                "unit one", "work"),
                     ZKIT__CONTROL_ERROR);
    assert_string_equal(reply, "RESUME takes no argument");
    assert_true(paused);
    assert_int_equal(
        zkit__control_pause_resume("RESUME", "", reply, sizeof reply, &paused, "unit one", "work"),
        ZKIT__CONTROL_OK);
    assert_false(paused);
    assert_string_equal(reply, "OK resumed");
    assert_int_equal(
        zkit__control_pause_resume("DRAIN", "", reply, sizeof reply, &paused, "unit one", "work"),
        ZKIT__CONTROL_UNKNOWN);
    assert_false(paused);
}

static void test_traffic_report(void **state)
{
    (void) state;
    zkit__stats_t *s = zkit__stats_new("unit", NULL);
    zkit__traffic_t front = {0}, back = {0};
    zkit__traffic_in(&front, 10);
    zkit__traffic_in(&front, 5);
    zkit__traffic_out(&back, 7);
    zmsg_t *msg = zmsg_new();
    zmsg_addstr(msg, "abc");
    zmsg_addmem(msg, NULL, 0);
    zmsg_addstr(msg, "de");
    assert_int_equal(zkit__traffic_zmsg_size(msg), 5);
    assert_int_equal(zkit__traffic_zmsg_size(NULL), 0);
    zmsg_destroy(&msg);
    assert_int_equal(zkit__traffic_report(s, "frontend", &front), 0);
    assert_int_equal(zkit__traffic_report(s, "backend", &back), 0);

    uint8_t *data = NULL;
    size_t size = 0;
    assert_int_equal(zkit__stats_encode(s, &data, &size), 0);
    s_node_t root = s_parse(data, size);
    s_check_schema(&root);
    /* every sample is present, zeros included */
    assert_int_equal(
        s_uint_at(s_at(&root, "counters", "messages", "socket", "frontend", "dir", "in", NULL)), 2);
    assert_int_equal(
        s_uint_at(s_at(&root, "counters", "bytes", "socket", "frontend", "dir", "in", NULL)), 15);
    assert_int_equal(
        s_uint_at(s_at(&root, "counters", "messages", "socket", "frontend", "dir", "out", NULL)),
        0);
    assert_int_equal(
        s_uint_at(s_at(&root, "counters", "bytes", "socket", "backend", "dir", "out", NULL)), 7);
    assert_int_equal(
        s_uint_at(s_at(&root, "counters", "messages", "socket", "backend", "dir", "in", NULL)), 0);
    assert_non_null(s_at(&root, "help", "messages", NULL));
    assert_non_null(s_at(&root, "help", "bytes", NULL));
    s_node_free(&root);
    free(data);
    zkit__stats_destroy(&s);
}

static void test_stats_round_trip(void **state)
{
    (void) state;
    zkit__stats_t *s = zkit__stats_new("balancer", "lb-east \xc3\xa9");
    assert_non_null(s);
    zkit__stats_set_times(s, 1234, 1700000000000000ULL);
    assert_int_equal(zkit__stats_counter(s, "messages_in", 10), 0);
    assert_int_equal(zkit__stats_counter(s, "messages_in", 5), 0); /* counters add */
    /* Added out of order: the encoding sorts samples by label value. */
    assert_int_equal(zkit__stats_counter1(s, "frames_dropped", "reason", "oversize", 1), 0);
    assert_int_equal(zkit__stats_counter1(s, "frames_dropped", "reason", "bad_frame", 3), 0);
    zkit__stats_label_t two[2] = {{"socket", "frontend"}, {"dir", "in"}};
    assert_int_equal(zkit__stats_counter_labels(s, "bytes", two, 2, 100), 0);
    two[1].value = "out";
    assert_int_equal(zkit__stats_counter_labels(s, "bytes", two, 2, 40), 0);
    two[0].value = "backend";
    assert_int_equal(zkit__stats_counter_labels(s, "bytes", two, 2, 7), 0);
    assert_int_equal(zkit__stats_gauge(s, "queue_depth", 5), 0);
    assert_int_equal(zkit__stats_gauge(s, "queue_depth", -3), 0); /* gauges set */
    assert_int_equal(zkit__stats_gauge1(s, "in_flight", "socket", "backend", 1LL << 40), 0);
    assert_int_equal(zkit__stats_help(s, "messages_in", "Messages received"), 0);
    assert_int_equal(zkit__stats_peer(s, "worker-1", 8, 1699999999000000ULL), 0);
    const uint8_t binary[3] = {0x00, 0x01, 0xff};
    assert_int_equal(zkit__stats_peer(s, binary, 3, 42), 0);

    uint8_t *data = NULL;
    size_t size = 0;
    assert_int_equal(zkit__stats_encode(s, &data, &size), 0);
    s_node_t root = s_parse(data, size);
    s_check_schema(&root);
    assert_string_equal(s_get(&root, "component")->str, "balancer");
    assert_string_equal(s_get(&root, "name")->str, "lb-east \xc3\xa9");
    assert_int_equal(s_uint_at(s_get(&root, "uptime_us")), 1234);
    assert_int_equal(s_uint_at(s_get(&root, "time_us")), 1700000000000000ULL);

    s_node_t *counters = s_get(&root, "counters");
    assert_int_equal(counters->count, 3);
    assert_int_equal(s_uint_at(s_get(counters, "messages_in")), 15);
    s_node_t *dropped = s_get(counters, "frames_dropped");
    assert_int_equal(dropped->count, 1); /* exactly one key: the label name */
    assert_int_equal(s_at(dropped, "reason", NULL)->count, 2);
    assert_string_equal(s_at(dropped, "reason", NULL)->items[0].str, "bad_frame");
    assert_int_equal(s_uint_at(s_at(dropped, "reason", "bad_frame", NULL)), 3);
    assert_int_equal(s_uint_at(s_at(dropped, "reason", "oversize", NULL)), 1);
    s_node_t *bytes = s_get(counters, "bytes");
    assert_int_equal(s_uint_at(s_at(bytes, "socket", "frontend", "dir", "in", NULL)), 100);
    assert_int_equal(s_uint_at(s_at(bytes, "socket", "frontend", "dir", "out", NULL)), 40);
    assert_int_equal(s_uint_at(s_at(bytes, "socket", "backend", "dir", "out", NULL)), 7);
    assert_string_equal(s_at(bytes, "socket", NULL)->items[0].str, "backend");

    s_node_t *gauges = s_get(&root, "gauges");
    assert_int_equal(gauges->count, 2);
    assert_int_equal(s_get(gauges, "queue_depth")->type, MPACK_INT);
    assert_int_equal(s_get(gauges, "queue_depth")->i, -3);
    assert_int_equal(s_uint_at(s_at(gauges, "in_flight", "socket", "backend", NULL)), 1ULL << 40);

    s_node_t *help = s_get(&root, "help");
    assert_int_equal(help->count, 1);
    assert_string_equal(s_get(help, "messages_in")->str, "Messages received");

    s_node_t *peers = s_get(&root, "peers");
    assert_int_equal(peers->count, 2);
    assert_string_equal(s_get(&peers->items[0], "id")->str, "worker-1");
    assert_int_equal(s_uint_at(s_get(&peers->items[0], "last_seen_us")), 1699999999000000ULL);
    assert_string_equal(s_get(&peers->items[1], "id")->str, "0x0001ff");
    assert_int_equal(s_uint_at(s_get(&root, "peers_omitted")), 0);
    s_node_free(&root);

    /* Deterministic: the same stats give the same bytes. */
    uint8_t *again = NULL;
    size_t again_size = 0;
    assert_int_equal(zkit__stats_encode(s, &again, &again_size), 0);
    assert_int_equal(again_size, size);
    assert_memory_equal(again, data, size);
    free(again);
    free(data);

    /* Reset keeps the identity and drops everything else. */
    zkit__stats_reset(s);
    assert_int_equal(zkit__stats_encode(s, &data, &size), 0);
    root = s_parse(data, size);
    s_check_schema(&root);
    assert_int_equal(s_get(&root, "counters")->count, 0);
    assert_int_equal(s_get(&root, "peers")->count, 0);
    assert_string_equal(s_get(&root, "component")->str, "balancer");
    s_node_free(&root);
    free(data);
    zkit__stats_destroy(&s);
    assert_null(s);
    zkit__stats_destroy(&s);
}

static void test_stats_rejects_bad_names(void **state)
{
    (void) state;
    assert_null(zkit__stats_new("Balancer", NULL));
    assert_int_equal(errno, EINVAL);
    assert_null(zkit__stats_new("", NULL));
    assert_null(zkit__stats_new("ok", "bad\nname"));
    assert_null(zkit__stats_new("ok", "bad \xc0\xaf utf8"));
    zkit__stats_t *s = zkit__stats_new("spool", NULL);
    assert_non_null(s);
    const char *bad_names[] = {"Upper", "1digit", "has-dash", "ends_total", "", "x y", NULL};
    for (int i = 0; bad_names[i]; i++) {
        errno = 0;
        assert_int_equal(zkit__stats_counter(s, bad_names[i], 1), -1);
        assert_int_equal(errno, EINVAL);
    }
    assert_int_equal(zkit__stats_counter(s, NULL, 1), -1);
    assert_int_equal(zkit__stats_counter1(s, "x", "name", "v", 1), -1); /* reserved */
    assert_int_equal(zkit__stats_counter1(s, "x", "peer", "v", 1), -1);
    assert_int_equal(zkit__stats_counter1(s, "x", "Label", "v", 1), -1);
    assert_int_equal(zkit__stats_counter1(s, "x", "l", "\xff", 1), -1);
    zkit__stats_label_t dup[2] = {{"a", "1"}, {"a", "2"}};
    assert_int_equal(zkit__stats_counter_labels(s, "x", dup, 2, 1), -1);
    /* One metric, one label set and one kind. */
    assert_int_equal(zkit__stats_counter1(s, "x", "a", "1", 1), 0);
    assert_int_equal(zkit__stats_counter1(s, "x", "b", "1", 1), -1);
    assert_int_equal(zkit__stats_counter(s, "x", 1), -1);
    assert_int_equal(zkit__stats_gauge1(s, "x", "a", "1", 1), -1);
    assert_int_equal(zkit__stats_help(s, "missing", "text"), -1);
    assert_int_equal(zkit__stats_help(s, "x", "line\nbreak"), -1);
    /* A failed add of a new metric leaves nothing behind. */
    uint8_t *data;
    size_t size;
    assert_int_equal(zkit__stats_encode(s, &data, &size), 0);
    s_node_t root = s_parse(data, size);
    assert_int_equal(s_get(&root, "counters")->count, 1);
    s_node_free(&root);
    free(data);
    zkit__stats_destroy(&s);
}

static void test_stats_limits(void **state)
{
    (void) state;
    zkit__stats_t *s = zkit__stats_new("spool", NULL);
    char name[32];
    for (int i = 0; i < ZKIT__STATS_MAX_METRICS; i++) {
        snprintf(name, sizeof name, "m%d", i);
        assert_int_equal(zkit__stats_gauge(s, name, i), 0);
    }
    assert_int_equal(zkit__stats_gauge(s, "one_more", 1), -1);
    assert_int_equal(errno, ENOSPC);
    zkit__stats_reset(s);
    for (int i = 0; i < ZKIT__STATS_MAX_SAMPLES; i++) {
        snprintf(name, sizeof name, "%d", i);
        assert_int_equal(zkit__stats_counter1(s, "per_peer", "worker", name, 1), 0);
    }
    assert_int_equal(zkit__stats_counter1(s, "per_peer", "worker", "x", 1), -1);
    assert_int_equal(errno, ENOSPC);
    for (int i = 0; i < ZKIT__STATS_MAX_PEERS + 10; i++)
        zkit__stats_peer(s, "p", 1, (uint64_t) i);
    uint8_t *data;
    size_t size;
    assert_int_equal(zkit__stats_encode(s, &data, &size), 0);
    assert_true(size < 5 * 1024 * 1024);
    s_node_t root = s_parse(data, size);
    assert_int_equal(s_get(&root, "peers")->count, ZKIT__STATS_MAX_PEERS);
    assert_int_equal(s_uint_at(s_get(&root, "peers_omitted")), 10);
    assert_int_equal(s_at(&root, "counters", "per_peer", "worker", NULL)->count,
                     ZKIT__STATS_MAX_SAMPLES);
    s_node_free(&root);
    free(data);
    zkit__stats_destroy(&s);
}

/* ---- the endpoint ------------------------------------------------------------------ */

typedef struct {
    int pauses;
    int resumes;
    uint64_t work_done;
} s_component_t;

static void s_stats_fn(zkit__stats_t *stats, void *arg)
{
    s_component_t *c = arg;
    zkit__stats_counter(stats, "work_done", c->work_done);
    zkit__stats_gauge(stats, "paused", c->pauses > c->resumes);
}

static zkit__control_result_t s_command_fn(const char *command, const char *args, char *reply,
                                           size_t reply_size, void *arg)
{
    s_component_t *c = arg;
    if (!strcmp(command, "PAUSE")) {
        c->pauses++;
        return ZKIT__CONTROL_OK;
    }
    if (!strcmp(command, "RESUME")) {
        c->resumes++;
        snprintf(reply, reply_size, "OK resumed");
        return ZKIT__CONTROL_OK;
    }
    if (!strcmp(command, "FAIL")) {
        snprintf(reply, reply_size, "disk full (%s)\n", args);
        return ZKIT__CONTROL_ERROR;
    }
    if (!strcmp(command, "FLUSH"))
        return ZKIT__CONTROL_UNSUPPORTED;
    return ZKIT__CONTROL_UNKNOWN;
}

static zkit__control_t *s_control(s_component_t *c, bool with_callbacks)
{
    zkit__control_opts_t opts = ZKIT__CONTROL_OPTS_DEFAULT;
    opts.endpoint = "tcp://127.0.0.1:*";
    opts.component = "testcomp";
    opts.name = "unit";
    if (with_callbacks) {
        opts.stats_fn = s_stats_fn;
        opts.command_fn = s_command_fn;
        opts.arg = c;
    }
    zkit__control_t *control = zkit__control_new(&opts);
    assert_non_null(control);
    assert_non_null(strstr(zkit__control_endpoint(control), "tcp://127.0.0.1:"));
    return control;
}

static zsock_t *s_client(zkit__control_t *control, int type)
{
    zsock_t *client = zsock_new(type);
    assert_non_null(client);
    zsock_set_linger(client, 0);
    assert_int_equal(zsock_connect(client, "%s", zkit__control_endpoint(control)), 0);
    return client;
}

/*  Serves the control socket until client has a message; returns it.      */
static zmsg_t *s_serve_until_reply(zkit__control_t *control, zsock_t *client)
{
    zpoller_t *poller = zpoller_new(zkit__control_socket(control), client, NULL);
    int64_t deadline = zclock_mono() + S_DEADLINE_MS;
    zmsg_t *reply = NULL;
    while (!reply && zclock_mono() < deadline) {
        void *which = zpoller_wait(poller, 100);
        if (which == zkit__control_socket(control))
            while (zkit__control_handle(control) == 1)
                ;
        else if (which == client)
            reply = zmsg_recv(client);
    }
    zpoller_destroy(&poller);
    assert_non_null(reply);
    return reply;
}

/*  Sends text (after an empty delimiter) from a DEALER; returns the reply
    body, which must come after a delimiter.                                 */
static char *s_request(zkit__control_t *control, zsock_t *dealer, const char *text)
{
    assert_int_equal(zstr_sendx(dealer, "", text, NULL), 0);
    zmsg_t *reply = s_serve_until_reply(control, dealer);
    assert_int_equal(zmsg_size(reply), 2);
    char *delimiter = zmsg_popstr(reply);
    assert_string_equal(delimiter, "");
    zstr_free(&delimiter);
    char *body = zmsg_popstr(reply);
    zmsg_destroy(&reply);
    return body;
}

static void s_expect(zkit__control_t *control, zsock_t *dealer, const char *text, const char *want)
{
    char *got = s_request(control, dealer, text);
    assert_string_equal(got, want);
    zstr_free(&got);
}

static s_node_t s_stats_request(zkit__control_t *control, zsock_t *dealer)
{
    assert_int_equal(zstr_sendx(dealer, "", "STATS", NULL), 0);
    zmsg_t *reply = s_serve_until_reply(control, dealer);
    assert_int_equal(zmsg_size(reply), 2);
    zframe_t *body = zmsg_last(reply);
    s_node_t root = s_parse(zframe_data(body), zframe_size(body));
    zmsg_destroy(&reply);
    s_check_schema(&root);
    return root;
}

static void test_commands(void **state)
{
    (void) state;
    s_component_t c = {0, 0, 77};
    zkit__control_t *control = s_control(&c, true);
    zsock_t *dealer = s_client(control, ZMQ_DEALER);

    s_expect(control, dealer, "PING", "PONG");
    s_expect(control, dealer, "PAUSE", "OK");
    s_expect(control, dealer, "RESUME", "OK resumed");
    assert_int_equal(c.pauses, 1);
    assert_int_equal(c.resumes, 1);
    s_expect(control, dealer, "FAIL now", "ERROR disk full (now)?");
    s_expect(control, dealer, "FLUSH", "ERROR not supported");
    s_expect(control, dealer, "NOPE", "ERROR unknown command");
    s_expect(control, dealer, "ping", "ERROR unknown command");
    s_expect(control, dealer, "PING extra", "ERROR unknown command");

    s_node_t root = s_stats_request(control, dealer);
    assert_string_equal(s_get(&root, "component")->str, "testcomp");
    assert_string_equal(s_get(&root, "name")->str, "unit");
    assert_int_equal(s_uint_at(s_at(&root, "counters", "work_done", NULL)), 77);
    assert_int_equal(s_at(&root, "gauges", "paused", NULL)->u, 0);
    s_node_t *requests = s_at(&root, "counters", "control_requests", "command", NULL);
    assert_non_null(requests);
    assert_int_equal(s_uint_at(s_get(requests, "ping")), 1);
    assert_int_equal(s_uint_at(s_get(requests, "pause")), 1);
    assert_int_equal(s_uint_at(s_get(requests, "resume")), 1);
    assert_int_equal(s_uint_at(s_get(requests, "stats")), 1); /* this one */
    assert_int_equal(s_uint_at(s_get(requests, "other")), 5);
    assert_int_equal(s_uint_at(s_get(requests, "malformed")), 0);
    s_node_free(&root);

    /* A REQ client gets the same answers. */
    zsock_t *req = s_client(control, ZMQ_REQ);
    assert_int_equal(zstr_send(req, "PING"), 0);
    zmsg_t *reply = s_serve_until_reply(control, req);
    assert_int_equal(zmsg_size(reply), 1);
    char *pong = zmsg_popstr(reply);
    assert_string_equal(pong, "PONG");
    zstr_free(&pong);
    zmsg_destroy(&reply);

    /* A DEALER that sends no delimiter gets a reply without one. */
    assert_int_equal(zstr_send(dealer, "PING"), 0);
    reply = s_serve_until_reply(control, dealer);
    assert_int_equal(zmsg_size(reply), 1);
    pong = zmsg_popstr(reply);
    assert_string_equal(pong, "PONG");
    zstr_free(&pong);
    zmsg_destroy(&reply);
    assert_int_equal(zkit__control_bad_requests(control), 0);
    assert_int_equal(zkit__control_requests(control), 11);

    zsock_destroy(&req);
    zsock_destroy(&dealer);
    zkit__control_destroy(&control);
    assert_null(control);
    zkit__control_destroy(&control);
}

static void test_without_callbacks(void **state)
{
    (void) state;
    zkit__control_t *control = s_control(NULL, false);
    zsock_t *dealer = s_client(control, ZMQ_DEALER);
    s_expect(control, dealer, "PAUSE", "ERROR not supported");
    s_expect(control, dealer, "RESUME", "ERROR not supported");
    s_expect(control, dealer, "OTHER", "ERROR unknown command");
    s_node_t root = s_stats_request(control, dealer);
    assert_non_null(s_at(&root, "counters", "control_requests", NULL));
    assert_null(s_at(&root, "counters", "work_done", NULL));
    s_node_free(&root);
    zsock_destroy(&dealer);
    zkit__control_destroy(&control);
}

static void test_rejects_bad_options(void **state)
{
    (void) state;
    zkit__control_opts_t opts = ZKIT__CONTROL_OPTS_DEFAULT;
    assert_null(zkit__control_new(NULL));
    assert_null(zkit__control_new(&opts));
    assert_int_equal(errno, EINVAL);
    opts.endpoint = "tcp://127.0.0.1:*";
    assert_null(zkit__control_new(&opts)); /* no component */
    opts.component = "Bad Name";
    assert_null(zkit__control_new(&opts));
    opts.component = "ok";
    opts.endpoint = "nonsense://x";
    assert_null(zkit__control_new(&opts));
    assert_int_not_equal(errno, 0);
}

/*  Sends frames raw from dealer, then ["", "PING"]; serves until PONG and
    returns the replies that came before it (each must be an ERROR).        */
static int s_garbage_then_ping(zkit__control_t *control, zsock_t *dealer, zmsg_t *garbage)
{
    assert_int_equal(zmsg_send(&garbage, dealer), 0);
    assert_int_equal(zstr_sendx(dealer, "", "PING", NULL), 0);
    int errors = 0;
    while (true) {
        zmsg_t *reply = s_serve_until_reply(control, dealer);
        char *last = zframe_strdup(zmsg_last(reply));
        zmsg_destroy(&reply);
        bool pong = !strcmp(last, "PONG");
        if (!pong) {
            if (strncmp(last, "ERROR ", 6))
                fprintf(stderr, "unexpected reply: %s\n", last);
            assert_true(!strncmp(last, "ERROR ", 6));
            errors++;
        }
        zstr_free(&last);
        if (pong)
            return errors;
    }
}

static zmsg_t *s_msg(int frames, ...)
{
    zmsg_t *msg = zmsg_new();
    va_list args;
    va_start(args, frames);
    for (int i = 0; i < frames; i++) {
        const char *data = va_arg(args, const char *);
        size_t size = va_arg(args, size_t);
        zmsg_addmem(msg, data, size);
    }
    va_end(args);
    return msg;
}

static void test_garbage(void **state)
{
    (void) state;
    s_component_t c = {0, 0, 0};
    zkit__control_t *control = s_control(&c, true);
    zsock_t *dealer = s_client(control, ZMQ_DEALER);
    char big[300];
    memset(big, 'A', sizeof big);

    /* Each is answered with an ERROR (or dropped), never crashes, and the
       PING behind it is still answered. */
    assert_int_equal(s_garbage_then_ping(control, dealer, s_msg(1, "", (size_t) 0)), 1);
    assert_int_equal(s_garbage_then_ping(control, dealer, s_msg(2, "", (size_t) 0, "", (size_t) 0)),
                     1);
    assert_int_equal(s_garbage_then_ping(control, dealer, s_msg(2, "", (size_t) 0, "\x00\xff", 2)),
                     1);
    assert_int_equal(
        s_garbage_then_ping(control, dealer, s_msg(2, "", (size_t) 0, big, sizeof big)), 1);
    assert_int_equal(s_garbage_then_ping(control, dealer, s_msg(3, "a", 1, "b", 1, "c", 1)), 1);
    assert_int_equal(
        s_garbage_then_ping(control, dealer, s_msg(3, "", (size_t) 0, "PING", 4, "x", 1)), 1);
    assert_int_equal(s_garbage_then_ping(control, dealer, s_msg(2, "", (size_t) 0, "STATS ", 6)),
                     1);
    /* Too many frames: dropped without a reply, a batch per call. */
    zmsg_t *many = zmsg_new();
    for (int i = 0; i < 2000; i++)
        zmsg_addmem(many, "x", 1);
    assert_int_equal(s_garbage_then_ping(control, dealer, many), 0);

    /* Random messages: any frame count, sizes and bytes. */
    uint32_t seed = 12345;
    for (int n = 0; n < 500; n++) {
        zmsg_t *msg = zmsg_new();
        seed = seed * 1103515245u + 12345u;
        int frames = 1 + (int) ((seed >> 16) % 12);
        for (int f = 0; f < frames; f++) {
            uint8_t buf[64];
            seed = seed * 1103515245u + 12345u;
            size_t size = (seed >> 16) % sizeof buf;
            for (size_t k = 0; k < size; k++) {
                seed = seed * 1103515245u + 12345u;
                buf[k] = (uint8_t) (seed >> 16);
            }
            zmsg_addmem(msg, buf, size);
        }
        s_garbage_then_ping(control, dealer, msg);
    }
    uint64_t bad = zkit__control_bad_requests(control);
    assert_true(bad >= 8);

    /* A frame above the size limit: libzmq drops that peer's connection,
       and nothing reaches the component; other peers are still served. */
    zsock_t *hostile = s_client(control, ZMQ_DEALER);
    char *huge = calloc(1, 5000);
    assert_int_equal(zmq_send(zsock_resolve(hostile), huge, 5000, 0), 5000);
    free(huge);
    s_expect(control, dealer, "PING", "PONG");
    zpoller_t *quiet = zpoller_new(hostile, NULL);
    assert_null(zpoller_wait(quiet, 200));
    zpoller_destroy(&quiet);
    zsock_destroy(&hostile);
    s_expect(control, dealer, "PING", "PONG");
    zsock_destroy(&dealer);
    zkit__control_destroy(&control);
}

/*  Sums the "(N since the last report, T in all)" of every bad-request line
    in log; *lines gets how many there were, *last_total the last T.         */
static uint64_t s_bad_request_lines(FILE *log, int *lines, uint64_t *last_total)
{
    char line[512];
    uint64_t sum = 0;
    *lines = 0;
    rewind(log);
    while (fgets(line, sizeof line, log)) {
        const char *at = strstr(line, "ZKIT-CONTROL-BAD-REQUEST: ");
        if (!at)
            continue;
        unsigned long long since, total;
        const char *counts = strrchr(at, '(');
        assert_non_null(counts);
        assert_int_equal(
            sscanf(counts, "(%llu since the last report, %llu in all)", &since, &total), 2);
        sum += since;
        *last_total = total;
        (*lines)++;
    }
    return sum;
}

/*  A flood of bad requests logs one line a second at most, and the lines
    account for every request: the first says 1, a later one how many were
    left out since, so their sum is the count of bad requests.              */
static void test_bad_request_log_is_rate_limited(void **state)
{
    (void) state;
    FILE *log = tmpfile();
    assert_non_null(log);
    zsys_set_logstream(log);
    s_component_t c = {0, 0, 0};
    zkit__control_t *control = s_control(&c, true);
    zsock_t *dealer = s_client(control, ZMQ_DEALER);
    int64_t started = zclock_mono();
    for (int n = 0; n < 50; n++)
        s_garbage_then_ping(control, dealer, s_msg(2, "", (size_t) 0, "\x01", 1));
    int64_t elapsed = zclock_mono() - started;
    int lines;
    uint64_t total = 0;
    uint64_t sum = s_bad_request_lines(log, &lines, &total);
    assert_int_equal(zkit__control_bad_requests(control), 50);
    assert_true(lines >= 1);
    assert_true(lines <= 1 + elapsed / 1000); /* however slow the machine */
    assert_true(sum <= 50);
    /* Past the interval, the next one is logged with all that were not.   */
    zclock_sleep(1100);
    s_garbage_then_ping(control, dealer, s_msg(2, "", (size_t) 0, "\x01", 1));
    sum = s_bad_request_lines(log, &lines, &total);
    assert_int_equal(sum, 51);
    assert_int_equal(total, 51);
    zsys_set_logstream(NULL);
    fclose(log);
    zsock_destroy(&dealer);
    zkit__control_destroy(&control);
}

/* ---- in a component's poller ------------------------------------------------------ */

/*  A component: pulls work items and "works" on each, while answering its
    control endpoint from the same zpoller.                                  */
static void s_component_actor(zsock_t *pipe, void *arg)
{
    (void) arg;
    s_component_t c = {0, 0, 0};
    zkit__control_t *control = s_control(&c, true);
    zsock_t *work = zsock_new_pull("tcp://127.0.0.1:*");
    assert_non_null(work);
    zsock_signal(pipe, 0);
    zstr_sendx(pipe, zkit__control_endpoint(control), zsock_endpoint(work), NULL);
    zpoller_t *poller = zpoller_new(pipe, work, zkit__control_socket(control), NULL);
    volatile uint64_t sink = 0;
    while (true) {
        void *which = zpoller_wait(poller, -1);
        if (which == pipe)
            break; /* $TERM */
        if (which == work) {
            char *item = zstr_recv(work);
            for (int k = 0; k < 2000; k++) /* the "work" */
                sink += (uint64_t) k;
            zstr_free(&item);
            if (!c.pauses || c.resumes)
                c.work_done++;
        }
        else if (which == zkit__control_socket(control))
            zkit__control_handle(control);
        else
            break;
    }
    (void) sink; /* only there so the "work" is not optimised away */
    zpoller_destroy(&poller);
    zsock_destroy(&work);
    zkit__control_destroy(&control);
}

static uint64_t s_remote_work_done(zsock_t *dealer)
{
    assert_int_equal(zstr_sendx(dealer, "", "STATS", NULL), 0);
    zpoller_t *poller = zpoller_new(dealer, NULL);
    assert_ptr_equal(zpoller_wait(poller, S_DEADLINE_MS), dealer);
    zpoller_destroy(&poller);
    zmsg_t *reply = zmsg_recv(dealer);
    zframe_t *body = zmsg_last(reply);
    s_node_t root = s_parse(zframe_data(body), zframe_size(body));
    s_check_schema(&root);
    uint64_t done = s_uint_at(s_at(&root, "counters", "work_done", NULL));
    s_node_free(&root);
    zmsg_destroy(&reply);
    return done;
}

static void test_in_component_poller(void **state)
{
    (void) state;
    zactor_t *component = zactor_new(s_component_actor, NULL);
    char *control_ep = NULL, *work_ep = NULL;
    assert_int_equal(zstr_recvx(component, &control_ep, &work_ep, NULL), 2);
    zsock_t *push = zsock_new_push(work_ep);
    zsock_t *dealer = zsock_new_dealer(control_ep);
    zsock_set_linger(push, 0);
    zsock_set_linger(dealer, 0);

    /* Work keeps flowing while STATS is asked many times: every STATS is
       answered, and the counter only grows until it reaches the total. */
    const uint64_t total = 20000;
    uint64_t last = 0, replies = 0;
    for (uint64_t i = 0; i < total; i++) {
        assert_int_equal(zstr_send(push, "item"), 0);
        if (i % 1000 == 0) {
            uint64_t done = s_remote_work_done(dealer);
            assert_true(done >= last);
            last = done;
            replies++;
        }
    }
    int64_t deadline = zclock_mono() + S_DEADLINE_MS;
    while (last < total && zclock_mono() < deadline) {
        uint64_t done = s_remote_work_done(dealer);
        assert_true(done >= last);
        last = done;
        replies++;
    }
    assert_int_equal(last, total);
    assert_true(replies >= 20);
    zstr_free(&control_ep);
    zstr_free(&work_ep);
    zsock_destroy(&push);
    zsock_destroy(&dealer);
    zactor_destroy(&component);
}

/*  The same endpoint in a zloop, through zkit__control_zloop_reader.       */
static int s_on_pipe(zloop_t *loop, zsock_t *pipe, void *arg)
{
    (void) loop;
    (void) arg;
    char *command = zstr_recv(pipe);
    zstr_free(&command);
    return -1;
}

static void s_zloop_actor(zsock_t *pipe, void *arg)
{
    (void) arg;
    zkit__control_t *control = s_control(NULL, false);
    zloop_t *loop = zloop_new();
    zloop_reader(loop, pipe, s_on_pipe, NULL);
    zloop_reader(loop, zkit__control_socket(control), zkit__control_zloop_reader, control);
    zsock_signal(pipe, 0);
    zstr_send(pipe, zkit__control_endpoint(control));
    zloop_start(loop);
    zloop_destroy(&loop);
    zkit__control_destroy(&control);
}

static void test_in_zloop(void **state)
{
    (void) state;
    zactor_t *actor = zactor_new(s_zloop_actor, NULL);
    char *endpoint = zstr_recv(actor);
    zsock_t *dealer = zsock_new_dealer(endpoint);
    zsock_set_linger(dealer, 0);
    zsock_set_rcvtimeo(dealer, S_DEADLINE_MS);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(zstr_sendx(dealer, "", "PING", NULL), 0);
        char *delimiter = NULL, *pong = NULL;
        assert_int_equal(zstr_recvx(dealer, &delimiter, &pong, NULL), 2);
        assert_string_equal(pong, "PONG");
        zstr_free(&delimiter);
        zstr_free(&pong);
    }
    zstr_free(&endpoint);
    zsock_destroy(&dealer);
    zactor_destroy(&actor);
}

int main(void)
{
    zsys_init();
    zsys_set_logstream(NULL); /* the bad-request warnings are expected */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats_round_trip),
        cmocka_unit_test(test_stats_rejects_bad_names),
        cmocka_unit_test(test_stats_limits),
        cmocka_unit_test(test_commands),
        cmocka_unit_test(test_without_callbacks),
        cmocka_unit_test(test_rejects_bad_options),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_in_component_poller),
        cmocka_unit_test(test_in_zloop),
        cmocka_unit_test(test_traffic_report),
        cmocka_unit_test(test_pause_resume_rule),
        cmocka_unit_test(test_bad_request_log_is_rate_limited),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
