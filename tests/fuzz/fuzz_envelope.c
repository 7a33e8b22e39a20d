/*  fuzz_envelope: libFuzzer target for the envelope decoder.

    Any input: decoding must not crash, leak or read out of bounds (ASan and
    UBSan watch), and a failure must leave the envelope reset. A decoded
    input is also a differential round trip: encode it, decode the encoding,
    and every field must match; encoding that again must give the same bytes
    (the encoder's output is a fixed point); a deep copy must match too. Any
    mismatch aborts, which libFuzzer reports as a crash.

    Seeds: tests/fuzz/corpus/envelope/; dictionary: tests/fuzz/msgpack.dict.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zkit_envelope.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define S_CHECK(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_envelope: check failed: %s (line %d)\n", #cond, __LINE__);       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static bool s_same_bytes(const void *a, size_t a_size, const void *b, size_t b_size)
{
    return a_size == b_size && (a_size == 0 || !memcmp(a, b, a_size));
}

static bool s_same_value(const zkit_value_t *a, const zkit_value_t *b)
{
    if (a->type != b->type)
        return false;
    if (a->type == ZKIT_VALUE_INT)
        return a->i == b->i;
    return s_same_bytes(a->data, a->size, b->data, b->size);
}

static bool s_same_text(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

static void s_assert_equal(const zkit_envelope_t *a, const zkit_envelope_t *b)
{
    S_CHECK(!memcmp(zkit_envelope_id(a), zkit_envelope_id(b), ZKIT_ID_SIZE));
    S_CHECK(zkit_envelope_seq(a) == zkit_envelope_seq(b));
    S_CHECK(zkit_envelope_ts(a) == zkit_envelope_ts(b));
    size_t a_size, b_size;
    const void *a_body = zkit_envelope_body(a, &a_size);
    const void *b_body = zkit_envelope_body(b, &b_size);
    S_CHECK(a_body && b_body);
    S_CHECK(s_same_bytes(a_body, a_size, b_body, b_size));
    for (int key = 0; key < ZKIT_META_COUNT_; key++)
        S_CHECK(zkit_envelope_has(a, (zkit_meta_key_t) key) ==
                zkit_envelope_has(b, (zkit_meta_key_t) key));
    S_CHECK(s_same_text(zkit_envelope_src(a), zkit_envelope_src(b)));
    S_CHECK(s_same_text(zkit_envelope_topic(a), zkit_envelope_topic(b)));
    S_CHECK(s_same_text(zkit_envelope_reply(a), zkit_envelope_reply(b)));
    S_CHECK(s_same_text(zkit_envelope_ct(a), zkit_envelope_ct(b)));
    S_CHECK(zkit_envelope_ttl(a) == zkit_envelope_ttl(b));
    S_CHECK(zkit_envelope_att(a) == zkit_envelope_att(b));
    zkit_value_t av, bv;
    int ra = zkit_envelope_batch(a, &av), rb = zkit_envelope_batch(b, &bv);
    S_CHECK(ra == rb && (ra || s_same_value(&av, &bv)));
    ra = zkit_envelope_corr(a, &av);
    rb = zkit_envelope_corr(b, &bv);
    S_CHECK(ra == rb && (ra || s_same_value(&av, &bv)));

    S_CHECK(zkit_envelope_header_count(a) == zkit_envelope_header_count(b));
    for (size_t i = 0; i < zkit_envelope_header_count(a); i++) {
        const char *ak, *bk;
        size_t ak_size, bk_size;
        S_CHECK(zkit_envelope_header_at(a, i, &ak, &ak_size, &av) == 0);
        S_CHECK(zkit_envelope_header_at(b, i, &bk, &bk_size, &bv) == 0);
        S_CHECK(s_same_bytes(ak, ak_size, bk, bk_size));
        S_CHECK(s_same_value(&av, &bv));
    }
    S_CHECK(zkit_envelope_unknown_count(a) == zkit_envelope_unknown_count(b));
    for (size_t i = 0; i < zkit_envelope_unknown_count(a); i++) {
        const char *ak, *bk;
        size_t ak_size, bk_size, ar_size, br_size;
        const void *ar, *br;
        S_CHECK(zkit_envelope_unknown_at(a, i, &ak, &ak_size, &ar, &ar_size) == 0);
        S_CHECK(zkit_envelope_unknown_at(b, i, &bk, &bk_size, &br, &br_size) == 0);
        S_CHECK(s_same_bytes(ak, ak_size, bk, bk_size));
        S_CHECK(s_same_bytes(ar, ar_size, br, br_size));
    }
    S_CHECK(zkit_envelope_extra_count(a) == zkit_envelope_extra_count(b));
    size_t ae_size, be_size;
    const void *ae = zkit_envelope_extra_raw(a, &ae_size);
    const void *be = zkit_envelope_extra_raw(b, &be_size);
    S_CHECK(s_same_bytes(ae, ae_size, be, be_size));
}

static void s_assert_reset(const zkit_envelope_t *env)
{
    for (int key = 0; key < ZKIT_META_COUNT_; key++)
        S_CHECK(!zkit_envelope_has(env, (zkit_meta_key_t) key));
    size_t size;
    S_CHECK(zkit_envelope_body(env, &size) && size == 0);
    S_CHECK(zkit_envelope_seq(env) == 0);
    S_CHECK(zkit_envelope_header_count(env) == 0);
    S_CHECK(zkit_envelope_unknown_count(env) == 0);
    S_CHECK(zkit_envelope_extra_count(env) == 0);
    S_CHECK(zkit_envelope_error_detail(env) != NULL);
}

static uint8_t *s_encode(const zkit_envelope_t *env, size_t *size)
{
    *size = zkit_envelope_encoded_size(env);
    uint8_t *buf = malloc(*size);
    S_CHECK(buf);
    S_CHECK(zkit_envelope_encode_to(env, buf, *size) == (ssize_t) *size);
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Kept across inputs, as a receiver keeps one envelope: reuse of the
       arena and tables after every kind of success and failure is fuzzed too. */
    static zkit_envelope_t *first, *second, *tight;
    if (!first) {
        first = zkit_envelope_new();
        second = zkit_envelope_new();
        tight = zkit_envelope_new();
        S_CHECK(first && second && tight);
        zkit_envelope_limits_t limits = {.max_frame = 4096,
                                         .max_meta_entries = 4,
                                         .max_headers = 2,
                                         .max_string = 8,
                                         .max_depth = 2};
        zkit_envelope_set_limits(tight, &limits);
    }

    /* Tight limits: only that it fails or succeeds cleanly. */
    if (zkit_envelope_decode_bytes(tight, data, size))
        s_assert_reset(tight);

    if (zkit_envelope_decode_bytes(first, data, size)) {
        s_assert_reset(first);
        return 0;
    }
    size_t wire_size;
    uint8_t *wire = s_encode(first, &wire_size);
    S_CHECK(wire_size <= size); /* never longer than its input: smallest forms */
    S_CHECK(zkit_envelope_decode_bytes(second, wire, wire_size) == 0);
    s_assert_equal(first, second);

    size_t again_size;
    uint8_t *again = s_encode(second, &again_size);
    S_CHECK(s_same_bytes(wire, wire_size, again, again_size));
    free(again);

    zkit_envelope_t *copy = zkit_envelope_dup(first);
    S_CHECK(copy);
    s_assert_equal(first, copy);
    /* The copy owns its bytes: it outlives what first pointed into. */
    zkit_envelope_reset(first);
    again = s_encode(copy, &again_size);
    S_CHECK(s_same_bytes(wire, wire_size, again, again_size));
    free(again);
    zkit_envelope_destroy(&copy);

    /* Through a zmq_msg_t: the frame moves into the envelope. */
    zmq_msg_t msg;
    S_CHECK(zmq_msg_init_size(&msg, wire_size) == 0);
    memcpy(zmq_msg_data(&msg), wire, wire_size);
    S_CHECK(zkit_envelope_decode(first, &msg) == 0);
    zmq_msg_close(&msg);
    s_assert_equal(first, second);

    free(wire);
    return 0;
}
