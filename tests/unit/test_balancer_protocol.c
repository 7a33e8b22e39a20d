/*  test_balancer_protocol: the balancer's frame parsing, the dialect
    translation and the dead-letter store, without sockets.

    Every rejection the protocol document lists is fed to the parsers: wrong
    frame counts, unknown commands, bad credits and handles, missing
    delimiters, too many addresses or parts. Then random garbage, to show the
    parsers never crash and never accept something inconsistent.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

/* First: it defines _GNU_SOURCE (nftw) for everything after it. */
#include "test_spool_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "balancer/deadletter.h"
#include "balancer/protocol.h"
#include "balancer/request.h"

/* A frame view from a string literal: F("abc"); E is the empty frame.      */
#define F(s)                                                                                       \
    {                                                                                              \
        (s), sizeof(s) - 1                                                                         \
    }
#define E                                                                                          \
    {                                                                                              \
        "", 0                                                                                      \
    }
#define N(a) (sizeof(a) / sizeof(a)[0])

static const char s_handle[] = "0123456789abcdef"; /* 16 bytes */

static int s_worker(const zkit__bal_frame_t *f, size_t n, zkit__bal_backend_msg_t *m,
                    zkit_balancer_bad_t *why)
{
    *why = (zkit_balancer_bad_t) -1;
    return zkit__bal_parse_worker(f, n, m, why);
}

static void s_worker_rejects(const zkit__bal_frame_t *f, size_t n, zkit_balancer_bad_t expected)
{
    zkit__bal_backend_msg_t m;
    zkit_balancer_bad_t why;
    assert_int_equal(s_worker(f, n, &m, &why), -1);
    assert_int_equal(why, expected);
}

/* ---- worker messages --------------------------------------------------------- */

static void test_rfc6_ready_and_heartbeat(void **state)
{
    (void) state;
    zkit__bal_backend_msg_t m;
    zkit_balancer_bad_t why;
    zkit__bal_frame_t ready[] = {F("\x01")};
    assert_int_equal(s_worker(ready, 1, &m, &why), 0);
    assert_int_equal(m.cmd, ZKIT__BAL_READY);
    assert_false(m.zkit);
    assert_int_equal(m.credit, 1);

    zkit__bal_frame_t hb[] = {F("\x02")};
    assert_int_equal(s_worker(hb, 1, &m, &why), 0);
    assert_int_equal(m.cmd, ZKIT__BAL_HEARTBEAT);

    zkit__bal_frame_t bye[] = {F("\x04")};
    assert_int_equal(s_worker(bye, 1, &m, &why), 0);
    assert_int_equal(m.cmd, ZKIT__BAL_DISCONNECT);
}

static void test_zkit_ready_with_credit(void **state)
{
    (void) state;
    zkit__bal_backend_msg_t m;
    zkit_balancer_bad_t why;
    zkit__bal_frame_t ready[] = {F("\x01"), F("25")};
    assert_int_equal(s_worker(ready, 2, &m, &why), 0);
    assert_int_equal(m.cmd, ZKIT__BAL_READY);
    assert_true(m.zkit);
    assert_int_equal(m.credit, 25);
    zkit__bal_frame_t max[] = {F("\x01"), F("1000")};
    assert_int_equal(s_worker(max, 2, &m, &why), 0);
    assert_int_equal(m.credit, 1000);

    /* Every malformed credit: zero, leading zero, sign, space, letters,
       too many digits, above the limit, empty.                              */
    static const char *const bad[] = {"0",  "01",  "+5",    "-1",   " 5",
                                      "5 ", "abc", "10000", "1001", ""};
    for (size_t i = 0; i < N(bad); i++) {
        zkit__bal_frame_t f[] = {F("\x01"), {bad[i], strlen(bad[i])}};
        s_worker_rejects(f, 2, ZKIT_BALANCER_BAD_FIELD);
    }
}

static void test_nack(void **state)
{
    (void) state;
    zkit__bal_backend_msg_t m;
    zkit_balancer_bad_t why;
    zkit__bal_frame_t nack[] = {F("\x03"), F(s_handle)};
    assert_int_equal(s_worker(nack, 2, &m, &why), 0);
    assert_int_equal(m.cmd, ZKIT__BAL_NACK);
    assert_memory_equal(m.id, s_handle, 16);

    zkit__bal_frame_t short_handle[] = {F("\x03"), F("0123456789abcde")};
    s_worker_rejects(short_handle, 2, ZKIT_BALANCER_BAD_FIELD);
    zkit__bal_frame_t long_handle[] = {F("\x03"), F("0123456789abcdef0")};
    s_worker_rejects(long_handle, 2, ZKIT_BALANCER_BAD_FIELD);
    zkit__bal_frame_t alone[] = {F("\x03")};
    s_worker_rejects(alone, 1, ZKIT_BALANCER_BAD_FRAMES);
}

static void test_wrong_frame_counts(void **state)
{
    (void) state;
    s_worker_rejects(NULL, 0, ZKIT_BALANCER_BAD_FRAMES);
    zkit__bal_frame_t hb2[] = {F("\x02"), F("x")};
    s_worker_rejects(hb2, 2, ZKIT_BALANCER_BAD_FRAMES);
    zkit__bal_frame_t bye2[] = {F("\x04"), F("x")};
    s_worker_rejects(bye2, 2, ZKIT_BALANCER_BAD_FRAMES);
    /* A reply with 17 content frames: one more than allowed.               */
    zkit__bal_frame_t many[2 + ZKIT__BAL_PARTS_MAX + 1];
    many[0] = (zkit__bal_frame_t) F(s_handle);
    many[1] = (zkit__bal_frame_t) E;
    for (size_t i = 2; i < N(many); i++)
        many[i] = (zkit__bal_frame_t) F("part");
    s_worker_rejects(many, N(many), ZKIT_BALANCER_BAD_FRAMES);
    zkit__bal_backend_msg_t m;
    zkit_balancer_bad_t why;
    assert_int_equal(s_worker(many, N(many) - 1, &m, &why), 0);
    assert_int_equal(m.parts, ZKIT__BAL_PARTS_MAX);
}

static void test_unknown_commands(void **state)
{
    (void) state;
    /* Unknown command bytes, alone and with an argument.                    */
    static const uint8_t bytes[] = {0x00, 0x05, 0x07, 0x41, 0x7f, 0xff};
    for (size_t i = 0; i < N(bytes); i++) {
        zkit__bal_frame_t one[] = {{&bytes[i], 1}};
        s_worker_rejects(one, 1, ZKIT_BALANCER_BAD_COMMAND);
        zkit__bal_frame_t two[] = {{&bytes[i], 1}, F("1")};
        s_worker_rejects(two, 2, ZKIT_BALANCER_BAD_COMMAND);
    }
    /* A command frame is exactly one byte: "READY" spelled out, an empty
       frame and a known byte with a tail are all unknown commands.          */
    zkit__bal_frame_t word[] = {F("READY")};
    s_worker_rejects(word, 1, ZKIT_BALANCER_BAD_COMMAND);
    zkit__bal_frame_t empty[] = {E};
    s_worker_rejects(empty, 1, ZKIT_BALANCER_BAD_COMMAND);
    zkit__bal_frame_t tail[] = {F("\x01\x01")};
    s_worker_rejects(tail, 1, ZKIT_BALANCER_BAD_COMMAND);
}

static void test_replies(void **state)
{
    (void) state;
    zkit__bal_backend_msg_t m;
    zkit_balancer_bad_t why;
    zkit__bal_frame_t reply[] = {F(s_handle), E, F("a"), F("b")};
    assert_int_equal(s_worker(reply, 4, &m, &why), 0);
    assert_int_equal(m.cmd, ZKIT__BAL_REPLY);
    assert_memory_equal(m.id, s_handle, 16);
    assert_int_equal(m.first_part, 2);
    assert_int_equal(m.parts, 2);

    zkit__bal_frame_t empty_body[] = {F(s_handle), E, E};
    assert_int_equal(s_worker(empty_body, 3, &m, &why), 0);
    assert_int_equal(m.parts, 1);

    zkit__bal_frame_t short_handle[] = {F("short"), E, F("a")};
    s_worker_rejects(short_handle, 3, ZKIT_BALANCER_BAD_FIELD);
    zkit__bal_frame_t no_delimiter[] = {F(s_handle), F("x"), F("a")};
    s_worker_rejects(no_delimiter, 3, ZKIT_BALANCER_BAD_ROUTE);
    /* Two address frames: the balancer only ever sends one.                 */
    zkit__bal_frame_t two_addresses[] = {F(s_handle), F(s_handle), E, F("a")};
    s_worker_rejects(two_addresses, 4, ZKIT_BALANCER_BAD_ROUTE);
}

/* ---- balancer messages, as a worker parses them ---------------------------- */

static void test_balancer_messages(void **state)
{
    (void) state;
    zkit__bal_backend_msg_t m;
    zkit_balancer_bad_t why;
    zkit__bal_frame_t hb[] = {F("\x02")};
    assert_int_equal(zkit__bal_parse_balancer(hb, 1, &m, &why), 0);
    assert_int_equal(m.cmd, ZKIT__BAL_HEARTBEAT);
    zkit__bal_frame_t req[] = {F(s_handle), E, F("body")};
    assert_int_equal(zkit__bal_parse_balancer(req, 3, &m, &why), 0);
    assert_int_equal(m.cmd, ZKIT__BAL_REQUEST);
    assert_int_equal(m.parts, 1);

    zkit__bal_frame_t ready[] = {F("\x01")};
    assert_int_equal(zkit__bal_parse_balancer(ready, 1, &m, &why), -1);
    assert_int_equal(why, ZKIT_BALANCER_BAD_COMMAND);
    zkit__bal_frame_t two[] = {F("\x02"), F("x")};
    assert_int_equal(zkit__bal_parse_balancer(two, 2, &m, &why), -1);
    assert_int_equal(why, ZKIT_BALANCER_BAD_FRAMES);
    assert_int_equal(zkit__bal_parse_balancer(NULL, 0, &m, &why), -1);
    assert_int_equal(why, ZKIT_BALANCER_BAD_FRAMES);
    zkit__bal_frame_t bad_handle[] = {F("x"), E, F("body")};
    assert_int_equal(zkit__bal_parse_balancer(bad_handle, 3, &m, &why), -1);
    assert_int_equal(why, ZKIT_BALANCER_BAD_FIELD);
}

/* ---- client messages ---------------------------------------------------------- */

static void test_client_requests(void **state)
{
    (void) state;
    zkit__bal_client_msg_t cm;
    zkit_balancer_bad_t why;
    zkit__bal_frame_t req[] = {F("\x00rid1"), E, F("hello")};
    assert_int_equal(zkit__bal_parse_client(req, 3, &cm, &why), 0);
    assert_int_equal(cm.route, 1);
    assert_int_equal(cm.first_part, 2);
    assert_int_equal(cm.parts, 1);

    /* Through a proxy: two addresses, two parts, an empty part.            */
    zkit__bal_frame_t proxied[] = {F("rid"), F("inner"), E, F("a"), E};
    assert_int_equal(zkit__bal_parse_client(proxied, 5, &cm, &why), 0);
    assert_int_equal(cm.route, 2);
    assert_int_equal(cm.parts, 2);

    /* No delimiter: a DEALER sending a bare body.                          */
    zkit__bal_frame_t bare[] = {F("rid"), F("hello")};
    assert_int_equal(zkit__bal_parse_client(bare, 2, &cm, &why), -1);
    assert_int_equal(why, ZKIT_BALANCER_BAD_ROUTE);
    zkit__bal_frame_t rid_only[] = {F("rid")};
    assert_int_equal(zkit__bal_parse_client(rid_only, 1, &cm, &why), -1);
    assert_int_equal(why, ZKIT_BALANCER_BAD_ROUTE);
    /* A delimiter and nothing after it.                                     */
    zkit__bal_frame_t no_content[] = {F("rid"), E};
    assert_int_equal(zkit__bal_parse_client(no_content, 2, &cm, &why), -1);
    assert_int_equal(why, ZKIT_BALANCER_BAD_FRAMES);

    /* Addresses: 8 is the limit, 9 is refused.                               */
    zkit__bal_frame_t deep[ZKIT__BAL_ROUTE_MAX + 3];
    for (size_t i = 0; i < N(deep); i++)
        deep[i] = (zkit__bal_frame_t) F("a");
    deep[ZKIT__BAL_ROUTE_MAX] = (zkit__bal_frame_t) E;
    assert_int_equal(zkit__bal_parse_client(deep, ZKIT__BAL_ROUTE_MAX + 2, &cm, &why), 0);
    assert_int_equal(cm.route, ZKIT__BAL_ROUTE_MAX);
    deep[ZKIT__BAL_ROUTE_MAX] = (zkit__bal_frame_t) F("a");
    deep[ZKIT__BAL_ROUTE_MAX + 1] = (zkit__bal_frame_t) E;
    assert_int_equal(zkit__bal_parse_client(deep, N(deep), &cm, &why), -1);
    assert_int_equal(why, ZKIT_BALANCER_BAD_ROUTE);

    /* Parts: 16 is the limit, 17 is refused.                                 */
    zkit__bal_frame_t wide[2 + ZKIT__BAL_PARTS_MAX + 1];
    wide[0] = (zkit__bal_frame_t) F("rid");
    wide[1] = (zkit__bal_frame_t) E;
    for (size_t i = 2; i < N(wide); i++)
        wide[i] = (zkit__bal_frame_t) F("p");
    assert_int_equal(zkit__bal_parse_client(wide, N(wide) - 1, &cm, &why), 0);
    assert_int_equal(zkit__bal_parse_client(wide, N(wide), &cm, &why), -1);
    assert_int_equal(why, ZKIT_BALANCER_BAD_FRAMES);
}

/* ---- garbage -------------------------------------------------------------------- */

static uint64_t s_rng = 0x9e3779b97f4a7c15ull;

static uint64_t s_rand(void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return s_rng;
}

static void test_random_garbage(void **state)
{
    (void) state;
    static uint8_t pool[4096];
    for (size_t i = 0; i < sizeof pool; i++)
        pool[i] = (uint8_t) s_rand();
    for (int round = 0; round < 200000; round++) {
        zkit__bal_frame_t f[ZKIT__BAL_FRAMES_MAX];
        size_t n = s_rand() % (ZKIT__BAL_FRAMES_MAX + 1);
        for (size_t i = 0; i < n; i++) {
            /* Small frames mostly, so commands, handles and delimiters
               turn up often.                                                */
            size_t size = (s_rand() % 4 == 0) ? s_rand() % 64 : s_rand() % 3;
            if (s_rand() % 8 == 0)
                size = 16;
            f[i].data = pool + s_rand() % (sizeof pool - 64);
            f[i].size = size;
        }
        zkit__bal_backend_msg_t m;
        zkit__bal_client_msg_t cm;
        zkit_balancer_bad_t why;
        if (zkit__bal_parse_worker(f, n, &m, &why) == 0) {
            if (m.cmd == ZKIT__BAL_REPLY) {
                assert_true(m.parts >= 1 && m.parts <= ZKIT__BAL_PARTS_MAX);
                assert_int_equal(m.first_part + m.parts, n);
            }
            if (m.cmd == ZKIT__BAL_READY)
                assert_true(m.credit >= 1 && m.credit <= ZKIT__BAL_CREDIT_MAX);
        }
        else
            assert_true(why < ZKIT_BALANCER_BAD_REASONS_);
        if (n > 0 && zkit__bal_parse_client(f, n, &cm, &why) == 0) {
            assert_true(cm.route >= 1 && cm.route <= ZKIT__BAL_ROUTE_MAX);
            assert_int_equal(f[cm.route].size, 0);
            assert_int_equal(cm.first_part + cm.parts, n);
        }
        zkit__bal_parse_balancer(f, n, &m, &why);
    }
}

/* ---- dialects ----------------------------------------------------------------------- */

static void test_wrap_and_unwrap(void **state)
{
    (void) state;
    zkit_envelope_t *env = zkit_envelope_new();
    assert_non_null(env);
    zkit__bal_frame_t parts[] = {F("one"), E, F("three")};
    assert_int_equal(zkit__bal_wrap(env, parts, 3), 0);
    size_t size;
    const char *body = zkit_envelope_body(env, &size);
    assert_int_equal(size, 3);
    assert_memory_equal(body, "one", 3);
    zkit_value_t v;
    assert_int_equal(zkit_envelope_header(env, "zkit-part-3", &v), 0);
    assert_int_equal(v.type, ZKIT_VALUE_BIN);
    assert_memory_equal(v.data, "three", 5);

    zkit__bal_frame_t back[ZKIT__BAL_PARTS_MAX];
    assert_int_equal(zkit__bal_unwrap(env, back), 3);
    assert_int_equal(back[1].size, 0);
    assert_int_equal(back[2].size, 5);
    assert_memory_equal(back[2].data, "three", 5);

    /* An envelope without part headers unwraps to its body alone, even with
       other headers.                                                         */
    zkit_envelope_reset(env);
    assert_int_equal(zkit_envelope_set_body(env, "x", 1), 0);
    assert_int_equal(zkit_envelope_set_header_str(env, "other", "y"), 0);
    assert_int_equal(zkit__bal_unwrap(env, back), 1);
    zkit_envelope_destroy(&env);
}

/* ---- the dead-letter store ---------------------------------------------------------- */

/* Reads the dead-letter spool in dir back through a read-only spool, as
   `zkit spool inspect` and `replay` do, and checks it holds exactly the
   records expected[0..count), seqs from 1.                                 */
static void s_assert_spool(const char *dir, const char *const *expected, size_t count)
{
    zkit_spool_opts_t opts = ZKIT_SPOOL_OPTS_DEFAULT;
    opts.read_only = true;
    zkit_spool_t *spool = zkit_spool_new(dir, &opts);
    assert_non_null(spool);
    zkit_spool_reader_t *reader = zkit_spool_reader_new(spool, 1, 0);
    assert_non_null(reader);
    zkit_spool_record_t rec;
    for (size_t i = 0; i < count; i++) {
        assert_int_equal(zkit_spool_reader_next(reader, &rec), 1);
        assert_int_equal(rec.seq, i + 1);
        assert_int_equal(rec.size, strlen(expected[i]));
        if (rec.size)
            assert_memory_equal(rec.data, expected[i], rec.size);
    }
    assert_int_equal(zkit_spool_reader_next(reader, &rec), 0);
    zkit_spool_reader_destroy(&reader);
    zkit_spool_destroy(&spool);
}

static void test_deadletter_spool(void **state)
{
    (void) state;
    char dir[128];
    tu_tmpdir(dir, sizeof dir, "deadletter");
    char sub[160];
    snprintf(sub, sizeof sub, "%s/a/store", dir); /* created by open, parents too */
    zkit__deadletter_t *store = zkit__deadletter_open_spool(sub);
    assert_non_null(store);
    assert_string_equal(store->ops->kind, "spool");
    assert_int_equal(zkit__deadletter_put(store, "first", 5), 0);
    assert_int_equal(zkit__deadletter_put(store, "", 0), 0);
    /* fsync always: what put returned for is readable (and durable) now,
       while the store is still open.                                        */
    static const char *const two[] = {"first", ""};
    s_assert_spool(sub, two, 2);
    /* One writer per directory: a second balancer on it is refused.         */
    errno = 0;
    assert_null(zkit__deadletter_open_spool(sub));
    assert_int_equal(errno, EBUSY);
    /* Too big is refused before the store sees it (size checked only).      */
    errno = 0;
    assert_int_equal(zkit__deadletter_put(store, "x", ZKIT__DEADLETTER_RECORD_MAX + 1), -1);
    assert_int_equal(errno, EMSGSIZE);
    zkit__deadletter_close(&store);
    assert_null(store);
    zkit__deadletter_close(&store);

    /* Reopening appends after what is there, seqs continuing.               */
    store = zkit__deadletter_open_spool(sub);
    assert_non_null(store);
    assert_int_equal(zkit__deadletter_put(store, "third", 5), 0);
    zkit__deadletter_close(&store);
    static const char *const three[] = {"first", "", "third"};
    s_assert_spool(sub, three, 3);

    /* A directory that cannot be made fails with a log line, not a crash.  */
    errno = 0;
    assert_null(zkit__deadletter_open_spool("/proc/self/zkit-no/such/dir"));
    assert_int_not_equal(errno, 0);
    errno = 0;
    assert_null(zkit__deadletter_open_spool(""));
    assert_int_equal(errno, EINVAL);
    tu_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc6_ready_and_heartbeat),
        cmocka_unit_test(test_zkit_ready_with_credit),
        cmocka_unit_test(test_nack),
        cmocka_unit_test(test_wrong_frame_counts),
        cmocka_unit_test(test_unknown_commands),
        cmocka_unit_test(test_replies),
        cmocka_unit_test(test_balancer_messages),
        cmocka_unit_test(test_client_requests),
        cmocka_unit_test(test_random_garbage),
        cmocka_unit_test(test_wrap_and_unwrap),
        cmocka_unit_test(test_deadletter_spool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
