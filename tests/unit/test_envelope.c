/*  test_envelope.c: the envelope v1 codec (zkit_envelope.h, docs/envelope.md).

    Frames are built byte by byte with core/mpack.h's writer (a frame builder
    below), so each test states exactly what a peer put on the wire.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <czmq.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/envelope_internal.h"
#include "core/mpack.h"

/* ---- a frame builder ------------------------------------------------------ */

typedef struct {
    uint8_t *data;
    size_t size;
    size_t cap;
} fb_t;

static void fb_need(fb_t *b, size_t n)
{
    if (b->size + n <= b->cap)
        return;
    b->cap = (b->size + n) * 2;
    b->data = realloc(b->data, b->cap);
    assert_non_null(b->data);
}

static void fb_raw(fb_t *b, const void *p, size_t n)
{
    fb_need(b, n);
    if (n)
        memcpy(b->data + b->size, p, n);
    b->size += n;
}

#define FB_BYTES(b, ...)                                                                           \
    do {                                                                                           \
        static const uint8_t bytes_[] = {__VA_ARGS__};                                             \
        fb_raw(b, bytes_, sizeof bytes_);                                                          \
    } while (0)

static void fb_uint(fb_t *b, uint64_t v)
{
    fb_need(b, 9);
    b->size = (size_t) (mpack_write_uint(b->data + b->size, v) - b->data);
}

static void fb_int(fb_t *b, int64_t v)
{
    fb_need(b, 9);
    b->size = (size_t) (mpack_write_int(b->data + b->size, v) - b->data);
}

static void fb_strn(fb_t *b, const void *s, size_t n)
{
    fb_need(b, 5);
    b->size = (size_t) (mpack_write_str_header(b->data + b->size, (uint32_t) n) - b->data);
    fb_raw(b, s, n);
}

static void fb_str(fb_t *b, const char *s)
{
    fb_strn(b, s, strlen(s));
}

static void fb_bin(fb_t *b, const void *p, size_t n)
{
    fb_need(b, 5);
    b->size = (size_t) (mpack_write_bin_header(b->data + b->size, (uint32_t) n) - b->data);
    fb_raw(b, p, n);
}

static void fb_array(fb_t *b, uint32_t n)
{
    fb_need(b, 5);
    b->size = (size_t) (mpack_write_array_header(b->data + b->size, n) - b->data);
}

static void fb_map(fb_t *b, uint32_t n)
{
    fb_need(b, 5);
    b->size = (size_t) (mpack_write_map_header(b->data + b->size, n) - b->data);
}

static void fb_free(fb_t *b)
{
    free(b->data);
    *b = (fb_t){0};
}

static const uint8_t s_id[ZKIT_ID_SIZE] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

/* The five fixed fields of a valid frame with count elements:
   [1, s_id, 7, 9, "body"...] */
static void fb_head(fb_t *b, uint32_t count)
{
    fb_array(b, count);
    fb_uint(b, 1);
    fb_bin(b, s_id, sizeof s_id);
    fb_uint(b, 7);
    fb_uint(b, 9);
    fb_bin(b, "body", 4);
}

/* A frame from a newer producer: known keys in canonical order, unknown keys
   in unusual encodings, and two array elements past index 5. */
static void s_build_future_frame(fb_t *b)
{
    fb_head(b, 8);
    fb_map(b, 5);
    fb_str(b, "src");
    fb_str(b, "svc");
    fb_str(b, "hdr");
    fb_map(b, 1);
    fb_str(b, "k");
    fb_int(b, -5);
    /* unknown 1: a str8 key (not the smallest form) with a nested value */
    FB_BYTES(b, 0xd9, 0x03, 'z', 'z', 'z', 0x92, 0x81, 0xa1, 'a', 0xc0, 0xcb, 0x40, 0x09, 0x21,
             0xfb, 0x54, 0x44, 0x2d, 0x18);
    /* unknown 2: a non-minimal uint16 value */
    FB_BYTES(b, 0xa5, 'p', 'r', 'i', 'o', 'x', 0xcd, 0x00, 0x05);
    /* unknown 3: an ext value */
    FB_BYTES(b, 0xa3, 'e', 'x', 't', 0xd5, 0x01, 0xaa, 0xbb);
    /* extras: "future" and [true, nil] */
    fb_str(b, "future");
    FB_BYTES(b, 0x92, 0xc3, 0xc0);
}

/* ---- helpers -------------------------------------------------------------- */

static zkit_envelope_t *s_new(void)
{
    zkit_envelope_t *env = zkit_envelope_new();
    assert_non_null(env);
    return env;
}

/* Encodes env into a fresh buffer (the caller frees it) and checks that the
   byte count matches encoded_size exactly. */
static uint8_t *s_encode(const zkit_envelope_t *env, size_t *size)
{
    size_t want = zkit_envelope_encoded_size(env);
    uint8_t *buf = malloc(want ? want : 1);
    assert_non_null(buf);
    ssize_t n = zkit_envelope_encode_to(env, buf, want);
    assert_int_equal(n, want);
    *size = want;
    return buf;
}

/* Encodes env and decodes the bytes into a new envelope. *wire keeps the
   bytes alive for the decoded envelope (free it after destroying that). */
static zkit_envelope_t *s_round_trip(const zkit_envelope_t *env, uint8_t **wire)
{
    size_t size;
    *wire = s_encode(env, &size);
    zkit_envelope_t *out = s_new();
    assert_int_equal(zkit_envelope_decode_bytes(out, *wire, size), 0);
    return out;
}

/* An envelope holding something in every field, so a reset is visible. */
static zkit_envelope_t *s_new_full(void)
{
    zkit_envelope_t *env = s_new();
    /* Warm up first (arena, header and unknown tables), as any envelope in
       use is: a failing decode must then allocate nothing at all. */
    fb_t b = {0};
    s_build_future_frame(&b);
    assert_int_equal(zkit_envelope_decode_bytes(env, b.data, b.size), 0);
    zkit_envelope_reset(env);
    fb_free(&b);
    uint8_t id[ZKIT_ID_SIZE];
    memset(id, 0xaa, sizeof id);
    zkit_envelope_set_id(env, id);
    zkit_envelope_set_seq(env, 42);
    zkit_envelope_set_ts(env, 1);
    assert_int_equal(zkit_envelope_set_body(env, "payload", 7), 0);
    assert_int_equal(zkit_envelope_set_src(env, "producer"), 0);
    zkit_envelope_set_ttl(env, 100);
    assert_int_equal(zkit_envelope_set_header_int(env, "n", 5), 0);
    return env;
}

/* What zkit_envelope_new would give: no field of the earlier content left. */
static void s_assert_reset(const zkit_envelope_t *env)
{
    for (int key = 0; key < ZKIT_META_COUNT_; key++)
        assert_false(zkit_envelope_has(env, (zkit_meta_key_t) key));
    assert_int_equal(zkit_envelope_seq(env), 0);
    size_t size = 99;
    assert_non_null(zkit_envelope_body(env, &size));
    assert_int_equal(size, 0);
    assert_null(zkit_envelope_src(env));
    assert_int_equal(zkit_envelope_header_count(env), 0);
    assert_int_equal(zkit_envelope_unknown_count(env), 0);
    assert_int_equal(zkit_envelope_extra_count(env), 0);
    /* A fresh UUIDv7 id: its version nibble is 7, never the 0xaa filler. */
    assert_int_equal(zkit_envelope_id(env)[6] >> 4, 7);
    uint64_t now = zkit_clock_usec();
    assert_true(zkit_envelope_ts(env) <= now && zkit_envelope_ts(env) + 60000000u > now);
    assert_int_equal(zkit_envelope_encoded_size(env), 1 + 1 + 18 + 1 + 9 + 2);
}

/* Asserts that decoding b fails with code, through both entry points: the
   envelope is reset, the detail names the problem, and a zmq_msg_t given to
   zkit_envelope_decode comes back byte for byte as it was. */
static void s_expect_error_with(fb_t *b, const zkit_envelope_limits_t *limits, int code,
                                const char *detail)
{
    zkit_envelope_t *env = s_new_full();
    if (limits)
        zkit_envelope_set_limits(env, limits);
    size_t allocs = zkit__envelope_allocs(env);
    errno = 0;
    assert_int_equal(zkit_envelope_decode_bytes(env, b->data, b->size), -1);
    assert_int_equal(errno, code);
    s_assert_reset(env);
    const char *text = zkit_envelope_error_detail(env);
    if (!strstr(text, detail))
        fail_msg("detail '%s' does not mention '%s'", text, detail);
    /* A failure allocates nothing here (no huge declared count can make it). */
    assert_int_equal(zkit__envelope_allocs(env), allocs);
    zkit_envelope_destroy(&env);

    env = s_new_full();
    if (limits)
        zkit_envelope_set_limits(env, limits);
    zmq_msg_t msg;
    assert_int_equal(zmq_msg_init_size(&msg, b->size), 0);
    if (b->size)
        memcpy(zmq_msg_data(&msg), b->data, b->size);
    const void *data_before = zmq_msg_data(&msg);
    errno = 0;
    assert_int_equal(zkit_envelope_decode(env, &msg), -1);
    assert_int_equal(errno, code);
    s_assert_reset(env);
    assert_int_equal(zmq_msg_size(&msg), b->size);
    if (b->size)
        assert_memory_equal(zmq_msg_data(&msg), b->data, b->size);
    if (b->size > 64) /* a large frame's bytes are not even moved */
        assert_ptr_equal(zmq_msg_data(&msg), data_before);
    zmq_msg_close(&msg);
    zkit_envelope_destroy(&env);
    b->size = 0;
}

static void s_expect_error(fb_t *b, int code, const char *detail)
{
    s_expect_error_with(b, NULL, code, detail);
}

static void s_expect_ok_with(fb_t *b, const zkit_envelope_limits_t *limits)
{
    zkit_envelope_t *env = s_new();
    if (limits)
        zkit_envelope_set_limits(env, limits);
    if (zkit_envelope_decode_bytes(env, b->data, b->size))
        fail_msg("decode failed: %s (%s)", zkit_strerror(errno), zkit_envelope_error_detail(env));
    zkit_envelope_destroy(&env);
    b->size = 0;
}

/* ---- new, reset, fixed fields --------------------------------------------- */

static void test_new_is_empty_with_fresh_id(void **state)
{
    (void) state;
    zkit_envelope_t *a = s_new();
    zkit_envelope_t *b = s_new();
    s_assert_reset(a);
    assert_int_equal(zkit_envelope_version(a), ZKIT_ENVELOPE_VERSION);
    assert_memory_not_equal(zkit_envelope_id(a), zkit_envelope_id(b), ZKIT_ID_SIZE);
    zkit_envelope_destroy(&a);
    zkit_envelope_destroy(&b);
    assert_null(a);
    zkit_envelope_destroy(&a); /* idempotent */
    zkit_envelope_destroy(NULL);
}

static void test_minimal_frame_bytes(void **state)
{
    (void) state;
    zkit_envelope_t *env = s_new();
    zkit_envelope_set_id(env, s_id);
    zkit_envelope_set_seq(env, 1);
    zkit_envelope_set_ts(env, 2);
    zkit_envelope_set_body_ref(env, "hi", 2);
    size_t size;
    uint8_t *wire = s_encode(env, &size);
    /* fixarray 5, version 1, bin8 16 id, seq, ts, bin8 body; no meta map */
    static const uint8_t expected[] = {0x95, 0x01, 0xc4, 0x10, 0,    1,    2,   3,  4,
                                       5,    6,    7,    8,    9,    10,   11,  12, 13,
                                       14,   15,   0x01, 0x02, 0xc4, 0x02, 'h', 'i'};
    assert_int_equal(size, sizeof expected);
    assert_memory_equal(wire, expected, sizeof expected);
    free(wire);
    zkit_envelope_destroy(&env);
}

static void test_fixed_fields_round_trip_edge_integers(void **state)
{
    (void) state;
    static const struct {
        uint64_t v;
        size_t size;
    } edges[] = {
        {0, 1},          {127, 1},        {128, 2},
        {255, 2},        {256, 3},        {65535, 3},
        {65536, 5},      {UINT32_MAX, 5}, {(uint64_t) UINT32_MAX + 1, 9},
        {UINT64_MAX, 9},
    };
    zkit_envelope_t *env = s_new();
    zkit_envelope_set_body_ref(env, NULL, 0);
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        zkit_envelope_set_seq(env, edges[i].v);
        zkit_envelope_set_ts(env, edges[(i + 3) % 10].v);
        /* smallest forms: 1 + 1 + 18 + seq + ts + 2 (empty bin8) */
        assert_int_equal(zkit_envelope_encoded_size(env),
                         22 + edges[i].size + edges[(i + 3) % 10].size);
        uint8_t *wire;
        zkit_envelope_t *out = s_round_trip(env, &wire);
        assert_true(zkit_envelope_seq(out) == edges[i].v);
        assert_true(zkit_envelope_ts(out) == edges[(i + 3) % 10].v);
        assert_memory_equal(zkit_envelope_id(out), zkit_envelope_id(env), ZKIT_ID_SIZE);
        zkit_envelope_destroy(&out);
        free(wire);
    }
    zkit_envelope_destroy(&env);
}

static void s_check_body(size_t n)
{
    zkit_envelope_t *env = s_new();
    uint8_t *body = malloc(n ? n : 1);
    assert_non_null(body);
    for (size_t i = 0; i < n; i++)
        body[i] = (uint8_t) (i * 7);
    assert_int_equal(zkit_envelope_set_body(env, body, n), 0);
    uint8_t *wire;
    zkit_envelope_t *out = s_round_trip(env, &wire);
    size_t size;
    const void *got = zkit_envelope_body(out, &size);
    assert_non_null(got);
    assert_int_equal(size, n);
    if (n)
        assert_memory_equal(got, body, n);
    zkit_envelope_destroy(&out);
    zkit_envelope_destroy(&env);
    free(wire);
    free(body);
}

static void test_body_sizes_round_trip(void **state)
{
    (void) state;
    s_check_body(0);
    s_check_body(1);
    s_check_body(255);
    s_check_body(256);
    s_check_body(65535);
    s_check_body(65536);
    s_check_body(1024 * 1024);
}

static void test_set_body_copies_and_set_body_ref_borrows(void **state)
{
    (void) state;
    zkit_envelope_t *env = s_new();
    char data[] = "original";
    assert_int_equal(zkit_envelope_set_body(env, data, 8), 0);
    data[0] = 'X';
    size_t size;
    const char *body = zkit_envelope_body(env, &size);
    assert_int_equal(size, 8);
    assert_memory_equal(body, "original", 8);
    assert_ptr_not_equal(body, data);

    /* A body set from the envelope's own body (overlapping) stays right. */
    assert_int_equal(zkit_envelope_set_body(env, body + 4, 4), 0);
    body = zkit_envelope_body(env, &size);
    assert_int_equal(size, 4);
    assert_memory_equal(body, "inal", 4);

    zkit_envelope_set_body_ref(env, data, sizeof data);
    assert_ptr_equal(zkit_envelope_body(env, &size), data);
    assert_int_equal(size, sizeof data);
    zkit_envelope_set_body_ref(env, NULL, 0);
    assert_non_null(zkit_envelope_body(env, NULL));
    zkit_envelope_destroy(&env);
}

static void test_reset_clears_fields_and_keeps_limits(void **state)
{
    (void) state;
    zkit_envelope_t *env = s_new_full();
    zkit_envelope_limits_t limits = ZKIT_ENVELOPE_LIMITS_DEFAULT;
    limits.max_frame = 20;
    zkit_envelope_set_limits(env, &limits);
    zkit_envelope_reset(env);
    s_assert_reset(env);
    /* The lowered frame limit survives the reset. */
    fb_t b = {0};
    fb_head(&b, 5);
    assert_true(b.size > 20);
    assert_int_equal(zkit_envelope_decode_bytes(env, b.data, b.size), -1);
    assert_int_equal(errno, ZKIT_ETOOBIG);
    fb_free(&b);
    zkit_envelope_destroy(&env);
}

/* ---- meta ----------------------------------------------------------------- */

/* Fills every meta key, headers of every value type included. */
static void s_fill_meta(zkit_envelope_t *env, bool batch_str)
{
    assert_int_equal(zkit_envelope_set_src(env, "sensor-a"), 0);
    zkit_envelope_set_ttl(env, 65536);
    zkit_envelope_set_att(env, 3);
    assert_int_equal(zkit_envelope_set_topic(env, "weather.eu"), 0);
    if (batch_str) {
        assert_int_equal(zkit_envelope_set_batch_str(env, "batch-7"), 0);
        assert_int_equal(zkit_envelope_set_corr(env, "\x00\x01\x02", 3), 0);
    }
    else {
        assert_int_equal(zkit_envelope_set_batch(env, "\xde\xad", 2), 0);
        assert_int_equal(zkit_envelope_set_corr_str(env, "req-1"), 0);
    }
    assert_int_equal(zkit_envelope_set_reply(env, "tcp://host:5555"), 0);
    assert_int_equal(zkit_envelope_set_ct(env, "application/json"), 0);
    assert_int_equal(zkit_envelope_set_header_str(env, "user", "alice"), 0);
    assert_int_equal(zkit_envelope_set_header_bin(env, "sig", "\x01\x00\x02", 3), 0);
    assert_int_equal(zkit_envelope_set_header_int(env, "neg", -129), 0);
    assert_int_equal(zkit_envelope_set_header_int(env, "min", INT64_MIN), 0);
    assert_int_equal(zkit_envelope_set_header_int(env, "max", INT64_MAX), 0);
    assert_int_equal(zkit_envelope_set_header_int(env, "zero", 0), 0);
    assert_int_equal(zkit_envelope_set_header_str(env, "empty", ""), 0);
}

static void s_assert_value(const zkit_value_t *v, zkit_value_type_t type, const void *data,
                           size_t size)
{
    assert_int_equal(v->type, type);
    assert_int_equal(v->size, size);
    if (size)
        assert_memory_equal(v->data, data, size);
}

static void s_assert_meta(const zkit_envelope_t *env, bool batch_str)
{
    for (int key = 0; key < ZKIT_META_COUNT_; key++)
        assert_true(zkit_envelope_has(env, (zkit_meta_key_t) key));
    assert_string_equal(zkit_envelope_src(env), "sensor-a");
    assert_int_equal(zkit_envelope_ttl(env), 65536);
    assert_int_equal(zkit_envelope_att(env), 3);
    assert_string_equal(zkit_envelope_topic(env), "weather.eu");
    assert_string_equal(zkit_envelope_reply(env), "tcp://host:5555");
    assert_string_equal(zkit_envelope_ct(env), "application/json");
    zkit_value_t v;
    assert_int_equal(zkit_envelope_batch(env, &v), 0);
    if (batch_str)
        s_assert_value(&v, ZKIT_VALUE_STR, "batch-7", 7);
    else
        s_assert_value(&v, ZKIT_VALUE_BIN, "\xde\xad", 2);
    assert_int_equal(zkit_envelope_corr(env, &v), 0);
    if (batch_str)
        s_assert_value(&v, ZKIT_VALUE_BIN, "\x00\x01\x02", 3);
    else
        s_assert_value(&v, ZKIT_VALUE_STR, "req-1", 5);

    assert_int_equal(zkit_envelope_header_count(env), 7);
    static const char *const keys[] = {"user", "sig", "neg", "min", "max", "zero", "empty"};
    for (size_t i = 0; i < 7; i++) {
        const char *key;
        size_t key_size;
        assert_int_equal(zkit_envelope_header_at(env, i, &key, &key_size, &v), 0);
        assert_int_equal(key_size, strlen(keys[i]));
        assert_memory_equal(key, keys[i], key_size);
    }
    assert_int_equal(zkit_envelope_header(env, "user", &v), 0);
    s_assert_value(&v, ZKIT_VALUE_STR, "alice", 5);
    assert_int_equal(zkit_envelope_header(env, "sig", &v), 0);
    s_assert_value(&v, ZKIT_VALUE_BIN, "\x01\x00\x02", 3);
    assert_int_equal(zkit_envelope_header(env, "neg", &v), 0);
    assert_int_equal(v.type, ZKIT_VALUE_INT);
    assert_true(v.i == -129);
    assert_int_equal(zkit_envelope_header(env, "min", &v), 0);
    assert_true(v.i == INT64_MIN);
    assert_int_equal(zkit_envelope_header(env, "max", &v), 0);
    assert_true(v.i == INT64_MAX);
    assert_int_equal(zkit_envelope_header(env, "zero", &v), 0);
    assert_int_equal(v.type, ZKIT_VALUE_INT);
    assert_true(v.i == 0);
    assert_int_equal(zkit_envelope_header(env, "empty", &v), 0);
    s_assert_value(&v, ZKIT_VALUE_STR, "", 0);
}

static void test_every_meta_key_round_trips(void **state)
{
    (void) state;
    for (int form = 0; form < 2; form++) {
        zkit_envelope_t *env = s_new();
        zkit_envelope_set_body_ref(env, "x", 1);
        s_fill_meta(env, form);
        s_assert_meta(env, form);
        uint8_t *wire;
        zkit_envelope_t *out = s_round_trip(env, &wire);
        s_assert_meta(out, form);
        assert_int_equal(zkit_envelope_unknown_count(out), 0);
        assert_int_equal(zkit_envelope_extra_count(out), 0);
        /* Re-encoding the decoded envelope gives the same bytes. */
        size_t size, size2;
        uint8_t *again = s_encode(out, &size2);
        free(s_encode(env, &size));
        assert_int_equal(size, size2);
        assert_memory_equal(again, wire, size);
        free(again);
        zkit_envelope_destroy(&out);
        zkit_envelope_destroy(&env);
        free(wire);
    }
}

/* Known keys leave in one fixed order, whatever order they were set in, each
   in its smallest form. */
static void test_meta_wire_order_and_forms(void **state)
{
    (void) state;
    zkit_envelope_t *env = s_new();
    zkit_envelope_set_id(env, s_id);
    zkit_envelope_set_seq(env, 1);
    zkit_envelope_set_ts(env, 2);
    assert_int_equal(zkit_envelope_set_header_int(env, "k", -1), 0);
    assert_int_equal(zkit_envelope_set_ct(env, "a"), 0);
    assert_int_equal(zkit_envelope_set_corr(env, "c", 1), 0);
    assert_int_equal(zkit_envelope_set_batch_str(env, "b"), 0);
    zkit_envelope_set_att(env, 1);
    zkit_envelope_set_ttl(env, 300);
    assert_int_equal(zkit_envelope_set_src(env, "s"), 0);
    size_t size;
    uint8_t *wire = s_encode(env, &size);
    fb_t b = {0};
    fb_array(&b, 6);
    fb_uint(&b, 1);
    fb_bin(&b, s_id, 16);
    fb_uint(&b, 1);
    fb_uint(&b, 2);
    fb_bin(&b, "", 0);
    FB_BYTES(&b, 0x87, 0xa3, 's', 'r', 'c', 0xa1, 's',    /* src "s" */
             0xa3, 't', 't', 'l', 0xcd, 0x01, 0x2c,       /* ttl 300 */
             0xa3, 'a', 't', 't', 0x01,                   /* att 1 */
             0xa5, 'b', 'a', 't', 'c', 'h', 0xa1, 'b',    /* batch str */
             0xa4, 'c', 'o', 'r', 'r', 0xc4, 0x01, 'c',   /* corr bin */
             0xa2, 'c', 't', 0xa1, 'a',                   /* ct */
             0xa3, 'h', 'd', 'r', 0x81, 0xa1, 'k', 0xff); /* hdr {k: -1} */
    assert_int_equal(size, b.size);
    assert_memory_equal(wire, b.data, b.size);
    free(wire);
    fb_free(&b);
    zkit_envelope_destroy(&env);
}

static void s_check_string_size(size_t n, size_t str_header)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++)
        s[i] = (char) ('a' + i % 26);
    s[n] = '\0';
    zkit_envelope_t *env = s_new();
    size_t before = zkit_envelope_encoded_size(env);
    assert_int_equal(zkit_envelope_set_topic(env, s), 0);
    /* map header, key "topic" (6), then the string in its smallest form;
       the array grows from 5 to 6 elements (same 1-byte header) */
    assert_int_equal(zkit_envelope_encoded_size(env), before + 1 + 6 + str_header + n);
    assert_int_equal(zkit_envelope_set_header_str(env, s, s), 0);
    assert_int_equal(zkit_envelope_set_batch_str(env, s), 0);
    assert_int_equal(zkit_envelope_set_corr(env, s, n), 0);
    uint8_t *wire;
    zkit_envelope_t *out = s_round_trip(env, &wire);
    assert_string_equal(zkit_envelope_topic(out), s);
    zkit_value_t v;
    assert_int_equal(zkit_envelope_header(out, s, &v), 0);
    s_assert_value(&v, ZKIT_VALUE_STR, s, n);
    assert_int_equal(zkit_envelope_batch(out, &v), 0);
    s_assert_value(&v, ZKIT_VALUE_STR, s, n);
    assert_int_equal(zkit_envelope_corr(out, &v), 0);
    s_assert_value(&v, ZKIT_VALUE_BIN, s, n);
    zkit_envelope_destroy(&out);
    zkit_envelope_destroy(&env);
    free(wire);
    free(s);
}

static void test_string_sizes_round_trip(void **state)
{
    (void) state;
    s_check_string_size(0, 1);
    s_check_string_size(31, 1);
    s_check_string_size(32, 2);
    s_check_string_size(255, 2);
    s_check_string_size(256, 3);
    s_check_string_size(65535, 3);
    s_check_string_size(65536, 5); /* at the default max_string: still accepted */
}

static void test_string_setters_replace_and_unset(void **state)
{
    (void) state;
    zkit_envelope_t *env = s_new();
    assert_int_equal(zkit_envelope_set_src(env, "first"), 0);
    assert_int_equal(zkit_envelope_set_src(env, "second-longer"), 0);
    assert_string_equal(zkit_envelope_src(env), "second-longer");
    /* A value taken from the envelope itself can be set back. */
    assert_int_equal(zkit_envelope_set_src(env, zkit_envelope_src(env) + 7), 0);
    assert_string_equal(zkit_envelope_src(env), "longer");
    assert_int_equal(zkit_envelope_set_src(env, NULL), 0);
    assert_null(zkit_envelope_src(env));
    assert_false(zkit_envelope_has(env, ZKIT_META_SRC));

    zkit_value_t v;
    errno = 0;
    assert_int_equal(zkit_envelope_batch(env, &v), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(zkit_envelope_ttl(env), 0);
    zkit_envelope_set_ttl(env, 0);
    assert_true(zkit_envelope_has(env, ZKIT_META_TTL));
    zkit_envelope_unset(env, ZKIT_META_TTL);
    assert_false(zkit_envelope_has(env, ZKIT_META_TTL));
    assert_false(zkit_envelope_has(env, ZKIT_META_COUNT_));
    zkit_envelope_unset(env, ZKIT_META_COUNT_); /* out of range: ignored */

    /* Replacing a value with one of the same length reuses its bytes: a
       producer setting src on every message does not grow the envelope. */
    assert_int_equal(zkit_envelope_set_src(env, "abc"), 0);
    assert_int_equal(zkit_envelope_set_header_str(env, "h", "22"), 0);
    size_t allocs = zkit__envelope_allocs(env);
    for (int i = 0; i < 10000; i++) {
        assert_int_equal(zkit_envelope_set_src(env, i % 2 ? "xyz" : "ab"), 0);
        assert_int_equal(zkit_envelope_set_batch(env, "bb", 2), 0);
        assert_int_equal(zkit_envelope_set_header_str(env, "h", i % 2 ? "1" : "22"), 0);
    }
    assert_int_equal(zkit__envelope_allocs(env), allocs);
    assert_string_equal(zkit_envelope_src(env), "xyz");
    zkit_envelope_destroy(&env);
}

static void test_headers_api(void **state)
{
    (void) state;
    zkit_envelope_t *env = s_new();
    zkit_value_t v;
    errno = 0;
    assert_int_equal(zkit_envelope_header(env, "a", &v), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(zkit_envelope_header_at(env, 0, NULL, NULL, &v), -1);
    assert_int_equal(errno, EINVAL);

    assert_int_equal(zkit_envelope_set_header_str(env, "a", "1"), 0);
    assert_int_equal(zkit_envelope_set_header_int(env, "b", 2), 0);
    assert_int_equal(zkit_envelope_set_header_bin(env, "c", "3", 1), 0);
    assert_true(zkit_envelope_has(env, ZKIT_META_HDR));
    /* Replacing keeps the position and may change the type. */
    assert_int_equal(zkit_envelope_set_header_str(env, "b", "two"), 0);
    assert_int_equal(zkit_envelope_set_header_int(env, "a", -1), 0);
    assert_int_equal(zkit_envelope_header_count(env), 3);
    const char *key;
    size_t key_size;
    assert_int_equal(zkit_envelope_header_at(env, 0, &key, &key_size, &v), 0);
    assert_memory_equal(key, "a", 1);
    assert_int_equal(v.type, ZKIT_VALUE_INT);
    assert_true(v.i == -1);
    assert_int_equal(zkit_envelope_header_at(env, 1, &key, &key_size, &v), 0);
    assert_memory_equal(key, "b", 1);
    s_assert_value(&v, ZKIT_VALUE_STR, "two", 3);
    assert_int_equal(zkit_envelope_header_at(env, 3, &key, &key_size, &v), -1);
    assert_int_equal(errno, EINVAL);

    assert_int_equal(zkit_envelope_remove_header(env, "a"), 0);
    assert_int_equal(zkit_envelope_header_count(env), 2);
    assert_int_equal(zkit_envelope_header_at(env, 0, &key, &key_size, &v), 0);
    assert_memory_equal(key, "b", 1);
    assert_int_equal(zkit_envelope_remove_header(env, "a"), -1);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(zkit_envelope_remove_header(env, "b"), 0);
    assert_int_equal(zkit_envelope_remove_header(env, "c"), 0);
    /* No headers left: no hdr key on the wire. */
    assert_false(zkit_envelope_has(env, ZKIT_META_HDR));
    assert_int_equal(zkit_envelope_encoded_size(env), 1 + 1 + 18 + 1 + 9 + 2);

    assert_int_equal(zkit_envelope_set_header_str(env, "x", "y"), 0);
    zkit_envelope_unset(env, ZKIT_META_HDR);
    assert_int_equal(zkit_envelope_header_count(env), 0);
    assert_int_equal(zkit_envelope_header(env, "x", &v), -1);
    zkit_envelope_destroy(&env);
}

/* An empty hdr map is a present hdr key, and survives a round trip. */
static void test_empty_hdr_map_round_trips(void **state)
{
    (void) state;
    fb_t b = {0};
    fb_head(&b, 6);
    FB_BYTES(&b, 0x81, 0xa3, 'h', 'd', 'r', 0x80);
    zkit_envelope_t *env = s_new();
    assert_int_equal(zkit_envelope_decode_bytes(env, b.data, b.size), 0);
    assert_true(zkit_envelope_has(env, ZKIT_META_HDR));
    assert_int_equal(zkit_envelope_header_count(env), 0);
    size_t size;
    uint8_t *wire = s_encode(env, &size);
    assert_int_equal(size, b.size);
    assert_memory_equal(wire, b.data, size);
    free(wire);
    fb_free(&b);
    zkit_envelope_destroy(&env);
}

static void test_expired(void **state)
{
    (void) state;
    zkit_envelope_t *env = s_new();
    zkit_envelope_set_ts(env, 1000000);
    assert_false(zkit_envelope_expired(env, UINT64_MAX)); /* no ttl: never */
    zkit_envelope_set_ttl(env, 10);                       /* 10 ms = 10000 us */
    assert_false(zkit_envelope_expired(env, 1010000));
    assert_true(zkit_envelope_expired(env, 1010001));
    /* A deadline beyond the 64-bit clock never comes (no wrap-around). */
    zkit_envelope_set_ttl(env, UINT64_MAX / 1000 + 1);
    assert_false(zkit_envelope_expired(env, UINT64_MAX));
    zkit_envelope_set_ts(env, UINT64_MAX - 5);
    zkit_envelope_set_ttl(env, 1);
    assert_false(zkit_envelope_expired(env, UINT64_MAX));
    zkit_envelope_destroy(&env);
}

/* A str with an embedded NUL reads truncated but travels whole. */
static void test_embedded_nul_string_kept(void **state)
{
    (void) state;
    fb_t b = {0};
    fb_head(&b, 6);
    fb_map(&b, 1);
    fb_str(&b, "src");
    fb_strn(&b, "ab\0cd", 5);
    zkit_envelope_t *env = s_new();
    assert_int_equal(zkit_envelope_decode_bytes(env, b.data, b.size), 0);
    assert_string_equal(zkit_envelope_src(env), "ab");
    size_t size;
    uint8_t *wire = s_encode(env, &size);
    assert_int_equal(size, b.size);
    assert_memory_equal(wire, b.data, size);
    free(wire);
    fb_free(&b);
    zkit_envelope_destroy(&env);
}

/* ---- forward compatibility ------------------------------------------------ */

static void test_unknown_keys_and_extras_preserved(void **state)
{
    (void) state;
    fb_t b = {0};
    s_build_future_frame(&b);
    zkit_envelope_t *env = s_new();
    assert_int_equal(zkit_envelope_decode_bytes(env, b.data, b.size), 0);
    assert_string_equal(zkit_envelope_src(env), "svc");
    assert_int_equal(zkit_envelope_header_count(env), 1);
    assert_int_equal(zkit_envelope_unknown_count(env), 3);
    const char *key;
    size_t key_size, raw_size;
    const void *raw;
    assert_int_equal(zkit_envelope_unknown_at(env, 0, &key, &key_size, &raw, &raw_size), 0);
    assert_int_equal(key_size, 3);
    assert_memory_equal(key, "zzz", 3);
    assert_int_equal(raw_size, 14);
    assert_int_equal(((const uint8_t *) raw)[0], 0x92);
    assert_int_equal(zkit_envelope_unknown_at(env, 1, &key, &key_size, &raw, &raw_size), 0);
    assert_memory_equal(key, "priox", 5);
    assert_int_equal(raw_size, 3);
    assert_memory_equal(raw, "\xcd\x00\x05", 3);
    assert_int_equal(zkit_envelope_unknown_at(env, 3, &key, &key_size, &raw, &raw_size), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(zkit_envelope_extra_count(env), 2);
    size_t extra_size;
    const uint8_t *extra = zkit_envelope_extra_raw(env, &extra_size);
    assert_int_equal(extra_size, 7 + 3);
    assert_memory_equal(extra,
                        "\xa6"
                        "future\x92\xc3\xc0",
                        extra_size);

    /* decode -> encode is byte-exact, and so is a deep copy's encoding. */
    size_t size;
    uint8_t *wire = s_encode(env, &size);
    assert_int_equal(size, b.size);
    assert_memory_equal(wire, b.data, size);
    free(wire);
    zkit_envelope_t *copy = zkit_envelope_dup(env);
    assert_non_null(copy);
    zkit_envelope_destroy(&env);
    memset(b.data, 0, b.size); /* the copy must not refer to the frame */
    wire = s_encode(copy, &size);
    fb_t again = {0};
    s_build_future_frame(&again);
    assert_int_equal(size, again.size);
    assert_memory_equal(wire, again.data, size);
    free(wire);
    zkit_envelope_destroy(&copy);
    fb_free(&again);

    /* Changing a known field keeps the unknown ones, after the known keys. */
    b.size = 0;
    s_build_future_frame(&b);
    env = s_new();
    assert_int_equal(zkit_envelope_decode_bytes(env, b.data, b.size), 0);
    zkit_envelope_set_ttl(env, 5);
    uint8_t *wire2;
    zkit_envelope_t *out = s_round_trip(env, &wire2);
    assert_int_equal(zkit_envelope_ttl(out), 5);
    assert_int_equal(zkit_envelope_unknown_count(out), 3);
    assert_int_equal(zkit_envelope_extra_count(out), 2);
    assert_int_equal(zkit_envelope_unknown_at(out, 2, &key, &key_size, &raw, &raw_size), 0);
    assert_memory_equal(key, "ext", 3);
    assert_memory_equal(raw, "\xd5\x01\xaa\xbb", 4);
    zkit_envelope_destroy(&out);
    zkit_envelope_destroy(&env);
    free(wire2);
    fb_free(&b);
}

/* Extra elements with no meta: index 5 must still be there, as an empty map. */
static void test_extras_without_meta_encode_empty_map(void **state)
{
    (void) state;
    fb_t b = {0};
    fb_head(&b, 7);
    fb_map(&b, 1);
    fb_str(&b, "ct");
    fb_str(&b, "x");
    fb_uint(&b, 99);
    zkit_envelope_t *env = s_new();
    assert_int_equal(zkit_envelope_decode_bytes(env, b.data, b.size), 0);
    zkit_envelope_unset(env, ZKIT_META_CT);
    size_t size;
    uint8_t *wire = s_encode(env, &size);
    fb_t want = {0};
    fb_head(&want, 7);
    FB_BYTES(&want, 0x80, 99);
    assert_int_equal(size, want.size);
    assert_memory_equal(wire, want.data, size);
    /* And that frame round-trips unchanged. */
    assert_int_equal(zkit_envelope_decode_bytes(env, want.data, want.size), 0);
    assert_int_equal(zkit_envelope_extra_count(env), 1);
    free(wire);
    wire = s_encode(env, &size);
    assert_int_equal(size, want.size);
    assert_memory_equal(wire, want.data, size);
    free(wire);
    fb_free(&want);
    fb_free(&b);
    zkit_envelope_destroy(&env);
}

/* A 6-element frame with an empty meta map decodes; re-encoded, the map is
   omitted (5 elements): empty meta and no meta mean the same. */
static void test_empty_meta_map_is_omitted(void **state)
{
    (void) state;
    fb_t b = {0};
    fb_head(&b, 6);
    fb_map(&b, 0);
    zkit_envelope_t *env = s_new();
    assert_int_equal(zkit_envelope_decode_bytes(env, b.data, b.size), 0);
    size_t size;
    uint8_t *wire = s_encode(env, &size);
    assert_int_equal(size, b.size - 1);
    assert_int_equal(wire[0], 0x95);
    free(wire);
    fb_free(&b);
    zkit_envelope_destroy(&env);
}

/* ---- zero copy, dup, steady state ----------------------------------------- */

static void test_decode_body_is_zero_copy(void **state)
{
    (void) state;
    zkit_envelope_t *env = s_new();
    char body[256];
    memset(body, 'b', sizeof body);
    zkit_envelope_set_body_ref(env, body, sizeof body);
    assert_int_equal(zkit_envelope_set_batch(env, "B", 1), 0);
    zmq_msg_t msg;
    assert_int_equal(zkit_envelope_encode(env, &msg), 0);
    const uint8_t *frame = zmq_msg_data(&msg);
    size_t frame_size = zmq_msg_size(&msg);

    zkit_envelope_t *out = s_new();
    assert_int_equal(zkit_envelope_decode(out, &msg), 0);
    assert_int_equal(zmq_msg_size(&msg), 0); /* the frame moved into out */
    size_t size;
    const uint8_t *got = zkit_envelope_body(out, &size);
    assert_int_equal(size, sizeof body);
    assert_true(got > frame && got + size <= frame + frame_size);
    zkit_value_t v;
    assert_int_equal(zkit_envelope_batch(out, &v), 0);
    assert_true((const uint8_t *) v.data > frame && (const uint8_t *) v.data < frame + frame_size);
    zmq_msg_close(&msg);
    assert_memory_equal(got, body, size); /* the envelope keeps the frame alive */
    zkit_envelope_destroy(&out);
    zkit_envelope_destroy(&env);
}

/* A frame of up to 33 bytes lives inside the zmq_msg_t itself; the decoded
   envelope must not point into the caller's message afterwards. */
static void test_decode_small_frame_survives_caller_message(void **state)
{
    (void) state;
    zkit_envelope_t *env = s_new();
    zkit_envelope_set_seq(env, 1);
    zkit_envelope_set_ts(env, 1);
    zkit_envelope_set_body_ref(env, "tiny", 4);
    zmq_msg_t msg;
    assert_int_equal(zkit_envelope_encode(env, &msg), 0);
    assert_true(zmq_msg_size(&msg) <= 33);
    zkit_envelope_t *out = s_new();
    assert_int_equal(zkit_envelope_decode(out, &msg), 0);
    /* Reuse the caller's message for something else entirely. */
    zmq_msg_close(&msg);
    assert_int_equal(zmq_msg_init_size(&msg, 30), 0);
    memset(zmq_msg_data(&msg), 0xee, 30);
    size_t size;
    assert_memory_equal(zkit_envelope_body(out, &size), "tiny", 4);
    assert_memory_equal(zkit_envelope_id(out), zkit_envelope_id(env), ZKIT_ID_SIZE);
    zmq_msg_close(&msg);
    zkit_envelope_destroy(&out);
    zkit_envelope_destroy(&env);
}

static void test_dup_owns_everything(void **state)
{
    (void) state;
    zkit_envelope_t *env = s_new();
    zkit_envelope_set_body_ref(env, "body bytes", 10);
    s_fill_meta(env, false);
    zmq_msg_t msg;
    assert_int_equal(zkit_envelope_encode(env, &msg), 0);
    zkit_envelope_t *decoded = s_new();
    assert_int_equal(zkit_envelope_decode(decoded, &msg), 0);
    zmq_msg_close(&msg);
    zkit_envelope_t *copy = zkit_envelope_dup(decoded);
    assert_non_null(copy);
    size_t size_a;
    uint8_t *a = s_encode(decoded, &size_a);
    zkit_envelope_destroy(&decoded); /* frees the frame the original pointed into */
    s_assert_meta(copy, false);
    size_t size;
    assert_memory_equal(zkit_envelope_body(copy, &size), "body bytes", 10);
    size_t size_b;
    uint8_t *b = s_encode(copy, &size_b);
    assert_int_equal(size_a, size_b);
    assert_memory_equal(a, b, size_a);
    free(a);
    free(b);
    zkit_envelope_destroy(&copy);
    zkit_envelope_destroy(&env);
}

/* The contract's steady state: once warm, reset + set + encode_to + decode
   allocate nothing, however many messages go through. */
static void test_steady_state_allocates_nothing(void **state)
{
    (void) state;
    zkit_envelope_t *tx = s_new();
    zkit_envelope_t *rx = s_new();
    uint8_t buf[4096];
    char body[64];
    memset(body, 'x', sizeof body);
    size_t tx_allocs = 0, rx_allocs = 0, rx_blocks = 0;
    for (int i = 0; i < 10010; i++) {
        if (i == 10) { /* warm: record what exists */
            tx_allocs = zkit__envelope_allocs(tx);
            rx_allocs = zkit__envelope_allocs(rx);
            rx_blocks = zkit__envelope_arena_blocks(rx);
        }
        zkit_envelope_reset(tx);
        zkit_envelope_set_seq(tx, (uint64_t) i);
        zkit_envelope_set_body_ref(tx, body, (size_t) (i % 64));
        if (i % 2) {
            assert_int_equal(zkit_envelope_set_src(tx, "producer-1"), 0);
            assert_int_equal(zkit_envelope_set_topic(tx, i % 3 ? "a.b" : "a.b.c.d"), 0);
            assert_int_equal(zkit_envelope_set_header_int(tx, "n", i), 0);
            assert_int_equal(zkit_envelope_set_header_str(tx, "who", "me"), 0);
        }
        ssize_t n = zkit_envelope_encode_to(tx, buf, sizeof buf);
        assert_true(n > 0);
        assert_int_equal(zkit_envelope_decode_bytes(rx, buf, (size_t) n), 0);
        assert_int_equal(zkit_envelope_seq(rx), (uint64_t) i);
    }
    assert_int_equal(zkit__envelope_allocs(tx), tx_allocs);
    assert_int_equal(zkit__envelope_allocs(rx), rx_allocs);
    assert_int_equal(zkit__envelope_arena_blocks(rx), rx_blocks);
    assert_true(rx_blocks >= 1); /* the meta strings did use the arena */

    /* Through zmq_msg_t too (libzmq allocates the frame; the envelope not). */
    rx_allocs = zkit__envelope_allocs(rx);
    for (int i = 0; i < 1000; i++) {
        zmq_msg_t msg;
        assert_int_equal(zkit_envelope_encode(tx, &msg), 0);
        assert_int_equal(zkit_envelope_decode(rx, &msg), 0);
        zmq_msg_close(&msg);
    }
    assert_int_equal(zkit__envelope_allocs(rx), rx_allocs);
    zkit_envelope_destroy(&tx);
    zkit_envelope_destroy(&rx);
}

static void test_encode_to_capacity(void **state)
{
    (void) state;
    zkit_envelope_t *env = s_new_full();
    size_t size = zkit_envelope_encoded_size(env);
    uint8_t *buf = malloc(size);
    assert_non_null(buf);
    errno = 0;
    assert_int_equal(zkit_envelope_encode_to(env, buf, size - 1), -1);
    assert_int_equal(errno, ENOBUFS);
    assert_int_equal(zkit_envelope_encode_to(env, buf, size), size);
    free(buf);
    zkit_envelope_destroy(&env);
}

/* ---- errors --------------------------------------------------------------- */

static void test_error_empty_too_big_not_array(void **state)
{
    (void) state;
    fb_t b = {0};
    fb_need(&b, 1);
    s_expect_error(&b, ZKIT_EEMPTY, "empty");

    zkit_envelope_limits_t limits = ZKIT_ENVELOPE_LIMITS_DEFAULT;
    fb_head(&b, 5);
    limits.max_frame = b.size;
    s_expect_ok_with(&b, &limits);
    fb_head(&b, 5);
    limits.max_frame = b.size - 1;
    s_expect_error_with(&b, &limits, ZKIT_ETOOBIG, "max_frame");

    FB_BYTES(&b, 0x80);
    s_expect_error(&b, ZKIT_ENOTARRAY, "not a MessagePack array");
    FB_BYTES(&b, 0xa3, 'a', 'b', 'c');
    s_expect_error(&b, ZKIT_ENOTARRAY, "not a MessagePack array");
    FB_BYTES(&b, 0x01);
    s_expect_error(&b, ZKIT_ENOTARRAY, "not a MessagePack array");
    FB_BYTES(&b, 0xc1, 0x95);
    s_expect_error(&b, ZKIT_ENOTARRAY, "not a MessagePack array");
    FB_BYTES(&b, 0xdb, 0xff, 0xff, 0xff, 0xff); /* a 4 GiB str: still "not an array" */
    s_expect_error(&b, ZKIT_ENOTARRAY, "not a MessagePack array");
    fb_free(&b);
}

/* Huge declared counts in a few bytes: refused as truncated, at once, with no
   allocation (s_expect_error checks the envelope's allocation count; ASan
   would catch anything larger elsewhere). */
static void test_error_huge_declared_counts(void **state)
{
    (void) state;
    fb_t b = {0};
    FB_BYTES(&b, 0xdd, 0xff, 0xff, 0xff, 0xff);
    s_expect_error(&b, ZKIT_ETRUNCATED, "envelope");
    FB_BYTES(&b, 0xdc, 0xff, 0xff);
    s_expect_error(&b, ZKIT_ETRUNCATED, "envelope");
    FB_BYTES(&b, 0xdc, 0xff, 0xff, 0x01, 0xc4, 0x10);
    s_expect_error(&b, ZKIT_ETRUNCATED, "envelope");
    /* a plausible array, then a map32 declaring 4G pairs at meta */
    fb_head(&b, 6);
    FB_BYTES(&b, 0xdf, 0xff, 0xff, 0xff, 0xff);
    s_expect_error(&b, ZKIT_ETRUNCATED, "meta");
    /* hdr declaring 65535 entries */
    fb_head(&b, 6);
    FB_BYTES(&b, 0x81, 0xa3, 'h', 'd', 'r', 0xde, 0xff, 0xff);
    s_expect_error(&b, ZKIT_ETRUNCATED, "hdr");
    /* a body declaring 4 GiB */
    fb_array(&b, 5);
    fb_uint(&b, 1);
    fb_bin(&b, s_id, 16);
    fb_uint(&b, 1);
    fb_uint(&b, 1);
    FB_BYTES(&b, 0xc6, 0xff, 0xff, 0xff, 0xff, 0x00);
    s_expect_error(&b, ZKIT_ETRUNCATED, "body");
    /* an unknown key's value declaring 4G elements */
    fb_head(&b, 6);
    fb_map(&b, 1);
    fb_str(&b, "new");
    FB_BYTES(&b, 0xdd, 0xff, 0xff, 0xff, 0xff);
    s_expect_error(&b, ZKIT_ETRUNCATED, "unknown key");
    fb_free(&b);
}

static void test_error_fields_and_version(void **state)
{
    (void) state;
    fb_t b = {0};
    FB_BYTES(&b, 0x90);
    s_expect_error(&b, ZKIT_EFIELDS, "empty");
    fb_array(&b, 4);
    fb_uint(&b, 1);
    fb_bin(&b, s_id, 16);
    fb_uint(&b, 1);
    fb_uint(&b, 1);
    s_expect_error(&b, ZKIT_EFIELDS, "fewer than 5");
    FB_BYTES(&b, 0x91, 0x01);
    s_expect_error(&b, ZKIT_EFIELDS, "fewer than 5");

    fb_array(&b, 5);
    fb_uint(&b, 0);
    fb_bin(&b, s_id, 16);
    fb_uint(&b, 1);
    fb_uint(&b, 1);
    fb_bin(&b, "", 0);
    s_expect_error(&b, ZKIT_EVERSION, "version");
    fb_array(&b, 5);
    fb_uint(&b, 2);
    fb_bin(&b, s_id, 16);
    fb_uint(&b, 1);
    fb_uint(&b, 1);
    fb_bin(&b, "", 0);
    s_expect_error(&b, ZKIT_EVERSION, "version");
    /* A newer version is reported as such even when its layout differs. */
    FB_BYTES(&b, 0x92, 0xcd, 0x01, 0x00, 0xa1, 'x');
    s_expect_error(&b, ZKIT_EVERSION, "newer");
    FB_BYTES(&b, 0x95, 0xff, 0, 0, 0, 0);
    s_expect_error(&b, ZKIT_ETYPE, "version");
    FB_BYTES(&b, 0x95, 0xa1, '1', 0, 0, 0, 0);
    s_expect_error(&b, ZKIT_ETYPE, "version");
    FB_BYTES(&b, 0x95, 0xc1, 0, 0, 0, 0);
    s_expect_error(&b, ZKIT_ETYPE, "version");
    fb_free(&b);
}

static void test_error_fixed_field_types(void **state)
{
    (void) state;
    fb_t b = {0};
    uint8_t id17[17] = {0};

    fb_array(&b, 5);
    fb_uint(&b, 1);
    fb_strn(&b, s_id, 16); /* id as str */
    fb_uint(&b, 1);
    fb_uint(&b, 1);
    fb_bin(&b, "", 0);
    s_expect_error(&b, ZKIT_ETYPE, "id");
    fb_array(&b, 5);
    fb_uint(&b, 1);
    fb_bin(&b, s_id, 15);
    fb_uint(&b, 1);
    fb_uint(&b, 1);
    fb_bin(&b, "", 0);
    s_expect_error(&b, ZKIT_EIDSIZE, "id");
    fb_array(&b, 5);
    fb_uint(&b, 1);
    fb_bin(&b, id17, 17);
    fb_uint(&b, 1);
    fb_uint(&b, 1);
    fb_bin(&b, "", 0);
    s_expect_error(&b, ZKIT_EIDSIZE, "id");
    fb_array(&b, 5);
    fb_uint(&b, 1);
    fb_bin(&b, s_id, 0);
    fb_uint(&b, 1);
    fb_uint(&b, 1);
    fb_bin(&b, "", 0);
    s_expect_error(&b, ZKIT_EIDSIZE, "id");

    fb_array(&b, 5);
    fb_uint(&b, 1);
    fb_bin(&b, s_id, 16);
    fb_int(&b, -1);
    fb_uint(&b, 1);
    fb_bin(&b, "", 0);
    s_expect_error(&b, ZKIT_ETYPE, "seq");
    fb_array(&b, 5);
    fb_uint(&b, 1);
    fb_bin(&b, s_id, 16);
    FB_BYTES(&b, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0);
    fb_uint(&b, 1);
    fb_bin(&b, "", 0);
    s_expect_error(&b, ZKIT_ETYPE, "seq");
    fb_array(&b, 5);
    fb_uint(&b, 1);
    fb_bin(&b, s_id, 16);
    fb_uint(&b, 1);
    FB_BYTES(&b, 0xc0);
    fb_bin(&b, "", 0);
    s_expect_error(&b, ZKIT_ETYPE, "ts");
    fb_array(&b, 5);
    fb_uint(&b, 1);
    fb_bin(&b, s_id, 16);
    fb_uint(&b, 1);
    fb_uint(&b, 1);
    fb_str(&b, "text body");
    s_expect_error(&b, ZKIT_ETYPE, "body");
    fb_array(&b, 5);
    fb_uint(&b, 1);
    fb_bin(&b, s_id, 16);
    fb_uint(&b, 1);
    fb_uint(&b, 1);
    FB_BYTES(&b, 0xc0);
    s_expect_error(&b, ZKIT_ETYPE, "body");
    fb_free(&b);
}

/* One meta entry key: value (value as raw bytes) after valid fixed fields. */
#define S_META_ONE(b, key, ...)                                                                    \
    do {                                                                                           \
        fb_head(b, 6);                                                                             \
        fb_map(b, 1);                                                                              \
        fb_str(b, key);                                                                            \
        FB_BYTES(b, __VA_ARGS__);                                                                  \
    } while (0)

static void test_error_meta_types(void **state)
{
    (void) state;
    fb_t b = {0};
    fb_head(&b, 6);
    FB_BYTES(&b, 0xc0); /* nil is not an empty meta */
    s_expect_error(&b, ZKIT_ETYPE, "meta: expected a map");
    fb_head(&b, 6);
    FB_BYTES(&b, 0x90);
    s_expect_error(&b, ZKIT_ETYPE, "meta: expected a map");

    S_META_ONE(&b, "src", 0xc4, 0x01, 'x');
    s_expect_error(&b, ZKIT_ETYPE, "'src'");
    S_META_ONE(&b, "ttl", 0xff);
    s_expect_error(&b, ZKIT_ETYPE, "'ttl': expected an unsigned integer");
    S_META_ONE(&b, "ttl", 0xa1, '5');
    s_expect_error(&b, ZKIT_ETYPE, "'ttl'");
    S_META_ONE(&b, "att", 0xca, 0, 0, 0, 0);
    s_expect_error(&b, ZKIT_ETYPE, "'att'");
    S_META_ONE(&b, "topic", 0x05);
    s_expect_error(&b, ZKIT_ETYPE, "'topic'");
    S_META_ONE(&b, "batch", 0x05);
    s_expect_error(&b, ZKIT_ETYPE, "'batch'");
    S_META_ONE(&b, "reply", 0xc0);
    s_expect_error(&b, ZKIT_ETYPE, "'reply'");
    S_META_ONE(&b, "corr", 0x90);
    s_expect_error(&b, ZKIT_ETYPE, "'corr'");
    S_META_ONE(&b, "ct", 0x80);
    s_expect_error(&b, ZKIT_ETYPE, "'ct'");
    S_META_ONE(&b, "hdr", 0x91, 0x01);
    s_expect_error(&b, ZKIT_ETYPE, "'hdr': expected a map");
    S_META_ONE(&b, "src", 0xc1);
    s_expect_error(&b, ZKIT_ETYPE, "'src'");

    /* header values: str, bin or an int within int64 */
    S_META_ONE(&b, "hdr", 0x81, 0xa1, 'k', 0xc0);
    s_expect_error(&b, ZKIT_ETYPE, "header value");
    S_META_ONE(&b, "hdr", 0x81, 0xa1, 'k', 0x91, 0x01);
    s_expect_error(&b, ZKIT_ETYPE, "header value");
    S_META_ONE(&b, "hdr", 0x81, 0xa1, 'k', 0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0); /* 2^63 */
    s_expect_error(&b, ZKIT_ETYPE, "header value");
    S_META_ONE(&b, "hdr", 0x81, 0xa1, 'k', 0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
               0xff); /* 2^63 - 1 fits */
    s_expect_ok_with(&b, NULL);
    S_META_ONE(&b, "hdr", 0x81, 0xa1, 'k', 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0); /* INT64_MIN */
    s_expect_ok_with(&b, NULL);
    fb_free(&b);
}

static void test_error_meta_keys(void **state)
{
    (void) state;
    fb_t b = {0};
    fb_head(&b, 6);
    FB_BYTES(&b, 0x81, 0x01, 0x02);
    s_expect_error(&b, ZKIT_EMETAKEY, "meta: a key is not a str");
    fb_head(&b, 6);
    FB_BYTES(&b, 0x81, 0xc4, 0x03, 's', 'r', 'c', 0xa1, 'x'); /* "src" as bin */
    s_expect_error(&b, ZKIT_EMETAKEY, "meta: a key is not a str");
    fb_head(&b, 6);
    FB_BYTES(&b, 0x81, 0xc1, 0x01);
    s_expect_error(&b, ZKIT_EMETAKEY, "meta: a key is not a str");
    S_META_ONE(&b, "hdr", 0x81, 0x05, 0xa1, 'v');
    s_expect_error(&b, ZKIT_EMETAKEY, "header key");

    /* repeated keys: known, unknown (also in two encodings), header */
    fb_head(&b, 6);
    FB_BYTES(&b, 0x82, 0xa3, 's', 'r', 'c', 0xa1, 'a', 0xa3, 's', 'r', 'c', 0xa1, 'b');
    s_expect_error(&b, ZKIT_EDUPKEY, "'src': appears twice");
    fb_head(&b, 6);
    FB_BYTES(&b, 0x82, 0xa3, 't', 't', 'l', 0x01, 0xa3, 't', 't', 'l', 0x01);
    s_expect_error(&b, ZKIT_EDUPKEY, "'ttl'");
    fb_head(&b, 6);
    FB_BYTES(&b, 0x82, 0xa1, 'x', 0x01, 0xa1, 'x', 0x02);
    s_expect_error(&b, ZKIT_EDUPKEY, "unknown key appears twice");
    fb_head(&b, 6);
    FB_BYTES(&b, 0x82, 0xa1, 'x', 0x01, 0xd9, 0x01, 'x', 0x02);
    s_expect_error(&b, ZKIT_EDUPKEY, "unknown key appears twice");
    S_META_ONE(&b, "hdr", 0x82, 0xa1, 'k', 0x01, 0xa1, 'k', 0xa1, 'v');
    s_expect_error(&b, ZKIT_EDUPKEY, "header key appears twice");
    fb_free(&b);
}

static void test_error_trailing_and_truncated(void **state)
{
    (void) state;
    fb_t b = {0};
    fb_head(&b, 5);
    FB_BYTES(&b, 0x00);
    s_expect_error(&b, ZKIT_ETRAILING, "bytes follow");
    fb_head(&b, 5);
    FB_BYTES(&b, 0xc1);
    s_expect_error(&b, ZKIT_ETRAILING, "bytes follow");
    s_build_future_frame(&b);
    FB_BYTES(&b, 0x95);
    s_expect_error(&b, ZKIT_ETRAILING, "bytes follow");

    /* Every strict prefix of a rich valid frame is truncated, never anything
       else, and never a crash. */
    fb_t full = {0};
    s_build_future_frame(&full);
    for (size_t cut = 1; cut < full.size; cut++) {
        fb_raw(&b, full.data, cut);
        s_expect_error(&b, ZKIT_ETRUNCATED, "");
    }
    fb_free(&full);
    zkit_envelope_t *env = s_new();
    zkit_envelope_set_body_ref(env, "body", 4);
    s_fill_meta(env, true);
    size_t size;
    uint8_t *wire = s_encode(env, &size);
    for (size_t cut = 1; cut < size; cut++) {
        fb_raw(&b, wire, cut);
        s_expect_error(&b, ZKIT_ETRUNCATED, "");
    }
    free(wire);
    zkit_envelope_destroy(&env);

    /* 0xc1 where an unknown value or an extra element should be */
    fb_head(&b, 6);
    FB_BYTES(&b, 0x81, 0xa1, 'x', 0x91, 0xc1);
    s_expect_error(&b, ZKIT_ETYPE, "invalid byte 0xc1");
    fb_head(&b, 7);
    FB_BYTES(&b, 0x80, 0xc1);
    s_expect_error(&b, ZKIT_ETYPE, "invalid byte 0xc1");
    fb_free(&b);
}

static void test_limits_honoured(void **state)
{
    (void) state;
    fb_t b = {0};
    zkit_envelope_limits_t limits = ZKIT_ENVELOPE_LIMITS_DEFAULT;

    /* meta entries, unknown ones included */
    limits.max_meta_entries = 2;
    fb_head(&b, 6);
    FB_BYTES(&b, 0x82, 0xa3, 't', 't', 'l', 0x01, 0xa1, 'u', 0x02);
    s_expect_ok_with(&b, &limits);
    fb_head(&b, 6);
    FB_BYTES(&b, 0x83, 0xa3, 't', 't', 'l', 0x01, 0xa1, 'u', 0x02, 0xa1, 'v', 0x03);
    s_expect_error_with(&b, &limits, ZKIT_ELIMIT, "max_meta_entries");

    limits = (zkit_envelope_limits_t) ZKIT_ENVELOPE_LIMITS_DEFAULT;
    limits.max_headers = 1;
    S_META_ONE(&b, "hdr", 0x81, 0xa1, 'a', 0x01);
    s_expect_ok_with(&b, &limits);
    S_META_ONE(&b, "hdr", 0x82, 0xa1, 'a', 0x01, 0xa1, 'b', 0x02);
    s_expect_error_with(&b, &limits, ZKIT_ELIMIT, "max_headers");

    limits = (zkit_envelope_limits_t) ZKIT_ENVELOPE_LIMITS_DEFAULT;
    limits.max_string = 3;
    S_META_ONE(&b, "src", 0xa3, 'a', 'b', 'c');
    s_expect_ok_with(&b, &limits);
    S_META_ONE(&b, "src", 0xa4, 'a', 'b', 'c', 'd');
    s_expect_error_with(&b, &limits, ZKIT_ELIMIT, "'src': longer than max_string");
    S_META_ONE(&b, "batch", 0xc4, 0x04, 'a', 'b', 'c', 'd');
    s_expect_error_with(&b, &limits, ZKIT_ELIMIT, "'batch'");
    fb_head(&b, 6);
    FB_BYTES(&b, 0x81, 0xa4, 'l', 'o', 'n', 'g', 0x01); /* an unknown key of 4 */
    s_expect_error_with(&b, &limits, ZKIT_ELIMIT, "key is longer than max_string");
    S_META_ONE(&b, "hdr", 0x81, 0xa4, 'l', 'o', 'n', 'g', 0x01);
    s_expect_error_with(&b, &limits, ZKIT_ELIMIT, "header key is longer");
    S_META_ONE(&b, "hdr", 0x81, 0xa1, 'k', 0xc4, 0x04, 1, 2, 3, 4);
    s_expect_error_with(&b, &limits, ZKIT_ELIMIT, "header value is longer");
    /* The body is not a meta string: no limit but max_frame. */
    fb_array(&b, 5);
    fb_uint(&b, 1);
    fb_bin(&b, s_id, 16);
    fb_uint(&b, 1);
    fb_uint(&b, 1);
    fb_bin(&b, "a long body", 11);
    s_expect_ok_with(&b, &limits);

    /* Default max_string is 64 KiB: one byte more is refused. */
    limits = (zkit_envelope_limits_t) ZKIT_ENVELOPE_LIMITS_DEFAULT;
    char *big = calloc(1, limits.max_string + 1);
    assert_non_null(big);
    fb_head(&b, 6);
    fb_map(&b, 1);
    fb_str(&b, "topic");
    fb_strn(&b, big, limits.max_string + 1);
    s_expect_error(&b, ZKIT_ELIMIT, "'topic'");
    free(big);

    /* nesting of unknown values and extra elements */
    limits = (zkit_envelope_limits_t) ZKIT_ENVELOPE_LIMITS_DEFAULT;
    limits.max_depth = 2;
    fb_head(&b, 6);
    FB_BYTES(&b, 0x81, 0xa1, 'u', 0x91, 0x91, 0x01);
    s_expect_ok_with(&b, &limits);
    fb_head(&b, 6);
    FB_BYTES(&b, 0x81, 0xa1, 'u', 0x91, 0x91, 0x91, 0x01);
    s_expect_error_with(&b, &limits, ZKIT_ELIMIT, "unknown key nests deeper");
    fb_head(&b, 7);
    FB_BYTES(&b, 0x80, 0x91, 0x91, 0x01);
    s_expect_ok_with(&b, &limits);
    fb_head(&b, 7);
    FB_BYTES(&b, 0x80, 0x91, 0x91, 0x91, 0x01);
    s_expect_error_with(&b, &limits, ZKIT_ELIMIT, "index 5 nests deeper");
    /* the default (16) refuses a 17-deep value */
    fb_head(&b, 6);
    FB_BYTES(&b, 0x81, 0xa1, 'u');
    for (int i = 0; i < 17; i++)
        FB_BYTES(&b, 0x91);
    FB_BYTES(&b, 0x01);
    s_expect_error(&b, ZKIT_ELIMIT, "max_depth");
    fb_free(&b);
}

/* ---- sockets -------------------------------------------------------------- */

static void s_echo_actor(zsock_t *pipe, void *args)
{
    (void) args;
    zsock_signal(pipe, 0);
    while (true) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, zsock_resolve(pipe), 0) == -1)
            break;
        if (zmq_msg_size(&msg) == 5 && !memcmp(zmq_msg_data(&msg), "$TERM", 5)) {
            zmq_msg_close(&msg);
            break;
        }
        zmq_msg_send(&msg, zsock_resolve(pipe), 0);
    }
}

static void test_send_and_recv(void **state)
{
    (void) state;
    zsock_t *push = zsock_new_pair("@inproc://test-envelope");
    zsock_t *pull = zsock_new_pair(">inproc://test-envelope");
    assert_non_null(push);
    assert_non_null(pull);
    zsock_set_rcvtimeo(pull, 5000);

    /* zsock_t in, raw libzmq handle out; the envelope then belongs to libzmq */
    zkit_envelope_t *env = s_new();
    zkit_envelope_set_seq(env, 11);
    zkit_envelope_set_body_ref(env, "over the wire", 13);
    assert_int_equal(zkit_envelope_set_src(env, "test"), 0);
    assert_int_equal(zkit_envelope_send(&env, push, 0), 0);
    assert_null(env);
    zkit_envelope_t *rx = s_new();
    assert_int_equal(zkit_envelope_recv(rx, zsock_resolve(pull), 0), 0);
    assert_int_equal(zkit_envelope_seq(rx), 11);
    assert_string_equal(zkit_envelope_src(rx), "test");
    size_t size;
    assert_memory_equal(zkit_envelope_body(rx, &size), "over the wire", 13);

    /* An envelope frame followed by more: the rest stays for the caller. */
    env = s_new();
    zkit_envelope_set_seq(env, 12);
    assert_int_equal(zkit_envelope_send(&env, push, ZMQ_SNDMORE), 0);
    zstr_send(push, "tail");
    assert_int_equal(zkit_envelope_recv(rx, pull, 0), 0);
    assert_int_equal(zkit_envelope_seq(rx), 12);
    assert_true(zsock_rcvmore(pull));
    char *tail = zstr_recv(pull);
    assert_string_equal(tail, "tail");
    zstr_free(&tail);

    /* A bad frame is consumed and reported; the next one is fine. */
    zstr_send(push, "not an envelope");
    env = s_new();
    zkit_envelope_set_seq(env, 13);
    assert_int_equal(zkit_envelope_send(&env, push, 0), 0);
    errno = 0;
    assert_int_equal(zkit_envelope_recv(rx, pull, 0), -1);
    assert_int_equal(errno, ZKIT_ENOTARRAY);
    s_assert_reset(rx);
    assert_int_equal(zkit_envelope_recv(rx, pull, 0), 0);
    assert_int_equal(zkit_envelope_seq(rx), 13);

    /* Nothing waiting: EAGAIN, and the envelope is left as it was. */
    errno = 0;
    assert_int_equal(zkit_envelope_recv(rx, pull, ZMQ_DONTWAIT), -1);
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(zkit_envelope_seq(rx), 13);

    /* A failed send leaves the envelope with the caller. */
    zsock_t *lonely = zsock_new(ZMQ_PUSH);
    assert_non_null(lonely);
    env = s_new();
    errno = 0;
    assert_int_equal(zkit_envelope_send(&env, lonely, ZMQ_DONTWAIT), -1);
    assert_int_equal(errno, EAGAIN);
    assert_non_null(env);
    zkit_envelope_destroy(&env);
    zsock_destroy(&lonely);

    /* A zactor works as the socket too. */
    zactor_t *echo = zactor_new(s_echo_actor, NULL);
    assert_non_null(echo);
    env = s_new();
    zkit_envelope_set_seq(env, 14);
    assert_int_equal(zkit_envelope_send(&env, echo, 0), 0);
    assert_int_equal(zkit_envelope_recv(rx, echo, 0), 0);
    assert_int_equal(zkit_envelope_seq(rx), 14);
    zactor_destroy(&echo);

    zkit_envelope_destroy(&rx);
    zsock_destroy(&pull);
    zsock_destroy(&push);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_is_empty_with_fresh_id),
        cmocka_unit_test(test_minimal_frame_bytes),
        cmocka_unit_test(test_fixed_fields_round_trip_edge_integers),
        cmocka_unit_test(test_body_sizes_round_trip),
        cmocka_unit_test(test_set_body_copies_and_set_body_ref_borrows),
        cmocka_unit_test(test_reset_clears_fields_and_keeps_limits),
        cmocka_unit_test(test_every_meta_key_round_trips),
        cmocka_unit_test(test_meta_wire_order_and_forms),
        cmocka_unit_test(test_string_sizes_round_trip),
        cmocka_unit_test(test_string_setters_replace_and_unset),
        cmocka_unit_test(test_headers_api),
        cmocka_unit_test(test_empty_hdr_map_round_trips),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_embedded_nul_string_kept),
        cmocka_unit_test(test_unknown_keys_and_extras_preserved),
        cmocka_unit_test(test_extras_without_meta_encode_empty_map),
        cmocka_unit_test(test_empty_meta_map_is_omitted),
        cmocka_unit_test(test_decode_body_is_zero_copy),
        cmocka_unit_test(test_decode_small_frame_survives_caller_message),
        cmocka_unit_test(test_dup_owns_everything),
        cmocka_unit_test(test_steady_state_allocates_nothing),
        cmocka_unit_test(test_encode_to_capacity),
        cmocka_unit_test(test_error_empty_too_big_not_array),
        cmocka_unit_test(test_error_huge_declared_counts),
        cmocka_unit_test(test_error_fields_and_version),
        cmocka_unit_test(test_error_fixed_field_types),
        cmocka_unit_test(test_error_meta_types),
        cmocka_unit_test(test_error_meta_keys),
        cmocka_unit_test(test_error_trailing_and_truncated),
        cmocka_unit_test(test_limits_honoured),
        cmocka_unit_test(test_send_and_recv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
