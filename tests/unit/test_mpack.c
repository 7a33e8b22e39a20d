/*  test_mpack.c: the hand-rolled MessagePack reader and writer (core/mpack.h).

    The envelope decoder trusts mpack_read to check that announced bytes are
    there; these tests hold it to that for every form and every cut point.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "core/mpack.h"

/* Reads exactly one item from buf[0..size) and asserts it consumed it all. */
static mpack_item_t s_read_all(const uint8_t *buf, size_t size)
{
    mpack_reader_t r;
    mpack_item_t it;
    mpack_reader_init(&r, buf, size);
    assert_int_equal(mpack_read(&r, &it), MPACK_OK);
    assert_int_equal(mpack_remaining(&r), 0);
    return it;
}

/* Every strict prefix of a complete value is truncated: for scalars and
   byte strings mpack_read says so; for anything mpack_skip does. */
static void s_assert_prefixes_truncated(const uint8_t *buf, size_t size, bool container)
{
    for (size_t cut = 0; cut < size; cut++) {
        /* A fresh copy of exactly cut bytes, so ASan sees any over-read. */
        uint8_t *part = malloc(cut ? cut : 1);
        assert_non_null(part);
        memcpy(part, buf, cut);
        mpack_reader_t r;
        mpack_item_t it;
        if (!container) {
            mpack_reader_init(&r, part, cut);
            assert_int_equal(mpack_read(&r, &it), MPACK_ERR_TRUNCATED);
        }
        mpack_reader_init(&r, part, cut);
        assert_int_equal(mpack_skip(&r, 1, 8), MPACK_ERR_TRUNCATED);
        free(part);
    }
}

static void test_uint_forms(void **state)
{
    (void) state;
    static const struct {
        uint64_t v;
        size_t size;
        uint8_t first;
    } cases[] = {
        {0, 1, 0x00},          {127, 1, 0x7f},        {128, 2, 0xcc},
        {255, 2, 0xcc},        {256, 3, 0xcd},        {65535, 3, 0xcd},
        {65536, 5, 0xce},      {UINT32_MAX, 5, 0xce}, {(uint64_t) UINT32_MAX + 1, 9, 0xcf},
        {UINT64_MAX, 9, 0xcf},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t buf[16];
        uint8_t *end = mpack_write_uint(buf, cases[i].v);
        assert_int_equal(end - buf, cases[i].size);
        assert_int_equal(mpack_size_uint(cases[i].v), cases[i].size);
        assert_int_equal(buf[0], cases[i].first);
        mpack_item_t it = s_read_all(buf, cases[i].size);
        assert_int_equal(it.type, MPACK_UINT);
        assert_true(it.u == cases[i].v);
        s_assert_prefixes_truncated(buf, cases[i].size, false);
    }
}

static void test_int_forms(void **state)
{
    (void) state;
    static const struct {
        int64_t v;
        size_t size;
        uint8_t first;
    } cases[] = {
        {-1, 1, 0xff},
        {-32, 1, 0xe0},
        {-33, 2, 0xd0},
        {INT8_MIN, 2, 0xd0},
        {INT8_MIN - 1, 3, 0xd1},
        {INT16_MIN, 3, 0xd1},
        {INT16_MIN - 1, 5, 0xd2},
        {INT32_MIN, 5, 0xd2},
        {(int64_t) INT32_MIN - 1, 9, 0xd3},
        {INT64_MIN, 9, 0xd3},
        {0, 1, 0x00},
        {INT64_MAX, 9, 0xcf},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t buf[16];
        uint8_t *end = mpack_write_int(buf, cases[i].v);
        assert_int_equal(end - buf, cases[i].size);
        assert_int_equal(mpack_size_int(cases[i].v), cases[i].size);
        assert_int_equal(buf[0], cases[i].first);
        mpack_item_t it = s_read_all(buf, cases[i].size);
        if (cases[i].v < 0) {
            assert_int_equal(it.type, MPACK_INT);
            assert_true(it.i == cases[i].v);
        }
        else {
            assert_int_equal(it.type, MPACK_UINT);
            assert_true(it.u == (uint64_t) cases[i].v);
        }
        s_assert_prefixes_truncated(buf, cases[i].size, false);
    }
}

/* A signed wire form of a non-negative value reads as that unsigned value:
   other encoders (Python's for one) may pick int8 for small numbers. */
static void test_signed_forms_of_positive_values(void **state)
{
    (void) state;
    static const uint8_t i8[] = {0xd0, 0x05};
    static const uint8_t i16[] = {0xd1, 0x01, 0x00};
    static const uint8_t i32[] = {0xd2, 0x00, 0x01, 0x00, 0x00};
    static const uint8_t i64[] = {0xd3, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    mpack_item_t it = s_read_all(i8, sizeof i8);
    assert_int_equal(it.type, MPACK_UINT);
    assert_int_equal(it.u, 5);
    it = s_read_all(i16, sizeof i16);
    assert_int_equal(it.u, 256);
    it = s_read_all(i32, sizeof i32);
    assert_int_equal(it.u, 65536);
    it = s_read_all(i64, sizeof i64);
    assert_true(it.u == (uint64_t) INT64_MAX);
}

static void s_check_bytes_form(bool str, size_t n, size_t header, uint8_t first)
{
    uint8_t *buf = malloc(n + 8);
    assert_non_null(buf);
    uint8_t *p =
        str ? mpack_write_str_header(buf, (uint32_t) n) : mpack_write_bin_header(buf, (uint32_t) n);
    assert_int_equal(p - buf, header);
    assert_int_equal(str ? mpack_size_str_header(n) : mpack_size_bin_header(n), header);
    assert_int_equal(buf[0], first);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t) i;
    mpack_item_t it = s_read_all(buf, header + n);
    assert_int_equal(it.type, str ? MPACK_STR : MPACK_BIN);
    assert_int_equal(it.count, n);
    assert_ptr_equal(it.data, p);
    /* Cutting inside a 64 KiB payload at every byte would be slow and prove
       nothing more: cut everywhere in the header, then around the payload. */
    if (n < 300)
        s_assert_prefixes_truncated(buf, header + n, false);
    else {
        s_assert_prefixes_truncated(buf, header + 1, false);
        mpack_reader_t r;
        mpack_reader_init(&r, buf, header + n - 1);
        assert_int_equal(mpack_read(&r, &it), MPACK_ERR_TRUNCATED);
    }
    free(buf);
}

static void test_str_and_bin_forms(void **state)
{
    (void) state;
    s_check_bytes_form(true, 0, 1, 0xa0);
    s_check_bytes_form(true, 31, 1, 0xbf);
    s_check_bytes_form(true, 32, 2, 0xd9);
    s_check_bytes_form(true, 255, 2, 0xd9);
    s_check_bytes_form(true, 256, 3, 0xda);
    s_check_bytes_form(true, 65535, 3, 0xda);
    s_check_bytes_form(true, 65536, 5, 0xdb);
    s_check_bytes_form(false, 0, 2, 0xc4);
    s_check_bytes_form(false, 255, 2, 0xc4);
    s_check_bytes_form(false, 256, 3, 0xc5);
    s_check_bytes_form(false, 65535, 3, 0xc5);
    s_check_bytes_form(false, 65536, 5, 0xc6);
}

static void s_check_container_form(bool map, uint32_t n, size_t header, uint8_t first)
{
    size_t elements = (size_t) n * (map ? 2 : 1);
    uint8_t *buf = malloc(header + elements + 1);
    assert_non_null(buf);
    uint8_t *p = map ? mpack_write_map_header(buf, n) : mpack_write_array_header(buf, n);
    assert_int_equal(p - buf, header);
    assert_int_equal(mpack_size_container_header(n), header);
    assert_int_equal(buf[0], first);
    memset(p, 0x01, elements); /* positive fixints */
    mpack_reader_t r;
    mpack_item_t it;
    mpack_reader_init(&r, buf, header + elements);
    assert_int_equal(mpack_read(&r, &it), MPACK_OK);
    assert_int_equal(it.type, map ? MPACK_MAP : MPACK_ARRAY);
    assert_int_equal(it.count, n);
    assert_ptr_equal(it.data, p);
    assert_int_equal(mpack_remaining(&r), elements);
    mpack_reader_init(&r, buf, header + elements);
    assert_int_equal(mpack_skip(&r, 1, 1), MPACK_OK);
    assert_int_equal(mpack_remaining(&r), 0);
    if (elements < 300)
        s_assert_prefixes_truncated(buf, header + elements, true);
    else {
        /* The plausibility check: one element short is already refused by
           mpack_read, before any caller sees the count. */
        mpack_reader_init(&r, buf, header + elements - 1);
        assert_int_equal(mpack_read(&r, &it), MPACK_ERR_TRUNCATED);
    }
    free(buf);
}

static void test_array_and_map_forms(void **state)
{
    (void) state;
    s_check_container_form(false, 0, 1, 0x90);
    s_check_container_form(false, 15, 1, 0x9f);
    s_check_container_form(false, 16, 3, 0xdc);
    s_check_container_form(false, 65535, 3, 0xdc);
    s_check_container_form(false, 65536, 5, 0xdd);
    s_check_container_form(true, 0, 1, 0x80);
    s_check_container_form(true, 15, 1, 0x8f);
    s_check_container_form(true, 16, 3, 0xde);
    s_check_container_form(true, 65535, 3, 0xde);
    s_check_container_form(true, 65536, 5, 0xdf);
}

/* Forms the writer never produces but a peer may send. */
static void test_reader_only_forms(void **state)
{
    (void) state;
    static const uint8_t nil[] = {0xc0};
    static const uint8_t f[] = {0xc2};
    static const uint8_t t[] = {0xc3};
    static const uint8_t f32[] = {0xca, 0x3f, 0xc0, 0x00, 0x00};                         /* 1.5 */
    static const uint8_t f64[] = {0xcb, 0xc0, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}; /* -2.5 */
    mpack_item_t it = s_read_all(nil, sizeof nil);
    assert_int_equal(it.type, MPACK_NIL);
    it = s_read_all(f, sizeof f);
    assert_int_equal(it.type, MPACK_BOOL);
    assert_int_equal(it.u, 0);
    it = s_read_all(t, sizeof t);
    assert_int_equal(it.u, 1);
    it = s_read_all(f32, sizeof f32);
    assert_int_equal(it.type, MPACK_FLOAT);
    assert_true(it.f == 1.5);
    s_assert_prefixes_truncated(f32, sizeof f32, false);
    it = s_read_all(f64, sizeof f64);
    assert_true(it.f == -2.5);
    s_assert_prefixes_truncated(f64, sizeof f64, false);

    /* fixext 1, 2, 4, 8, 16 */
    for (unsigned k = 0; k < 5; k++) {
        uint8_t buf[2 + 16];
        size_t n = (size_t) 1 << k;
        buf[0] = (uint8_t) (0xd4 + k);
        buf[1] = 0xfe; /* type -2 */
        memset(buf + 2, 0x55, n);
        it = s_read_all(buf, 2 + n);
        assert_int_equal(it.type, MPACK_EXT);
        assert_int_equal(it.ext, -2);
        assert_int_equal(it.count, n);
        assert_ptr_equal(it.data, buf + 2);
        s_assert_prefixes_truncated(buf, 2 + n, false);
    }
    /* ext 8, 16, 32 with a 3-byte payload */
    static const uint8_t e8[] = {0xc7, 0x03, 0x07, 'a', 'b', 'c'};
    static const uint8_t e16[] = {0xc8, 0x00, 0x03, 0x07, 'a', 'b', 'c'};
    static const uint8_t e32[] = {0xc9, 0x00, 0x00, 0x00, 0x03, 0x07, 'a', 'b', 'c'};
    const uint8_t *ext[] = {e8, e16, e32};
    size_t ext_size[] = {sizeof e8, sizeof e16, sizeof e32};
    for (int i = 0; i < 3; i++) {
        it = s_read_all(ext[i], ext_size[i]);
        assert_int_equal(it.type, MPACK_EXT);
        assert_int_equal(it.ext, 7);
        assert_int_equal(it.count, 3);
        assert_memory_equal(it.data, "abc", 3);
        s_assert_prefixes_truncated(ext[i], ext_size[i], false);
    }
}

static void test_invalid_byte(void **state)
{
    (void) state;
    static const uint8_t c1[] = {0xc1};
    static const uint8_t nested[] = {0x92, 0x01, 0xc1};
    mpack_reader_t r;
    mpack_item_t it;
    mpack_reader_init(&r, c1, sizeof c1);
    assert_int_equal(mpack_read(&r, &it), MPACK_ERR_INVALID);
    mpack_reader_init(&r, nested, sizeof nested);
    assert_int_equal(mpack_skip(&r, 1, 4), MPACK_ERR_INVALID);
}

/* A few bytes declaring billions of elements are refused by mpack_read
   itself, so no caller can be tricked into sizing anything from them. */
static void test_implausible_counts(void **state)
{
    (void) state;
    static const uint8_t arr32[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    static const uint8_t map32[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02};
    static const uint8_t arr16[] = {0xdc, 0xff, 0xff};
    static const uint8_t bin32[] = {0xc6, 0xff, 0xff, 0xff, 0xff, 0x00};
    static const uint8_t str32[] = {0xdb, 0x80, 0x00, 0x00, 0x00};
    /* A map of 2 pairs needs 4 bytes: 3 are not enough. */
    static const uint8_t map_short[] = {0x82, 0x01, 0x02, 0x03};
    const uint8_t *cases[] = {arr32, map32, arr16, bin32, str32, map_short};
    size_t sizes[] = {sizeof arr32, sizeof map32, sizeof arr16,
                      sizeof bin32, sizeof str32, sizeof map_short};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mpack_reader_t r;
        mpack_item_t it;
        mpack_reader_init(&r, cases[i], sizes[i]);
        assert_int_equal(mpack_read(&r, &it), MPACK_ERR_TRUNCATED);
    }
}

/* Nested non-empty arrays: depth levels deep, innermost holding one fixint. */
static size_t s_nest(uint8_t *buf, unsigned depth, bool map)
{
    size_t n = 0;
    for (unsigned i = 0; i < depth; i++) {
        if (map) {
            buf[n++] = 0x81;
            buf[n++] = 0x00; /* key */
        }
        else
            buf[n++] = 0x91;
    }
    buf[n++] = 0x2a;
    return n;
}

static void test_skip_depth(void **state)
{
    (void) state;
    uint8_t buf[256];
    mpack_reader_t r;
    for (int map = 0; map < 2; map++) {
        size_t n = s_nest(buf, 5, map);
        mpack_reader_init(&r, buf, n);
        assert_int_equal(mpack_skip(&r, 1, 5), MPACK_OK);
        assert_int_equal(mpack_remaining(&r), 0);
        mpack_reader_init(&r, buf, n);
        assert_int_equal(mpack_skip(&r, 1, 4), MPACK_ERR_DEPTH);
    }
    /* A scalar needs no depth; empty containers do not nest. */
    static const uint8_t empties[] = {0x92, 0x90, 0x80};
    mpack_reader_init(&r, buf, s_nest(buf, 0, false));
    assert_int_equal(mpack_skip(&r, 1, 0), MPACK_OK);
    mpack_reader_init(&r, empties, sizeof empties);
    assert_int_equal(mpack_skip(&r, 1, 1), MPACK_OK);

    /* The limit is capped at 63 whatever the caller asks: 63 levels pass,
       64 do not, and nothing overflows the fixed stack. */
    size_t n = s_nest(buf, 63, false);
    mpack_reader_init(&r, buf, n);
    assert_int_equal(mpack_skip(&r, 1, 1000), MPACK_OK);
    n = s_nest(buf, 64, false);
    mpack_reader_init(&r, buf, n);
    assert_int_equal(mpack_skip(&r, 1, 1000), MPACK_ERR_DEPTH);
}

static void test_skip_several_items(void **state)
{
    (void) state;
    /* [1, {"a": [2, 3]}], "xy", 7 then a trailing byte */
    static const uint8_t buf[] = {0x92, 0x01, 0x81, 0xa1, 'a',  0x92, 0x02,
                                  0x03, 0xa2, 'x',  'y',  0x07, 0xc0};
    mpack_reader_t r;
    mpack_reader_init(&r, buf, sizeof buf);
    assert_int_equal(mpack_skip(&r, 3, 4), MPACK_OK);
    assert_int_equal(mpack_remaining(&r), 1);
    mpack_reader_init(&r, buf, sizeof buf);
    assert_int_equal(mpack_skip(&r, 0, 4), MPACK_OK);
    assert_int_equal(mpack_remaining(&r), sizeof buf);
    mpack_reader_init(&r, buf, sizeof buf);
    assert_int_equal(mpack_skip(&r, 5, 4), MPACK_ERR_TRUNCATED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uint_forms),
        cmocka_unit_test(test_int_forms),
        cmocka_unit_test(test_signed_forms_of_positive_values),
        cmocka_unit_test(test_str_and_bin_forms),
        cmocka_unit_test(test_array_and_map_forms),
        cmocka_unit_test(test_reader_only_forms),
        cmocka_unit_test(test_invalid_byte),
        cmocka_unit_test(test_implausible_counts),
        cmocka_unit_test(test_skip_depth),
        cmocka_unit_test(test_skip_several_items),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
