/*  test_pubsub_protocol: the replay side channel's messages. Every command
    round-trips through a real socket pair; every malformed message is
    rejected with its reason, without reading past what a frame holds.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "pubsub/protocol.h"

/* ---- helpers ------------------------------------------------------------------ */

/*  Fills frames from strings; NULL ends the list (s_frame_bytes then puts
    bytes with NULs in a frame).                                           */
static void s_frames(zkit__pubsub_frames_t *f, const char *first, ...)
{
    f->count = 0;
    f->dropped = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *)) {
        size_t n = strlen(s);
        zmq_msg_init_size(&f->part[f->count], n);
        memcpy(zmq_msg_data(&f->part[f->count]), s, n);
        f->count++;
    }
    va_end(ap);
}

static void s_frame_bytes(zkit__pubsub_frames_t *f, size_t index, const void *data, size_t n)
{
    zmq_msg_close(&f->part[index]);
    zmq_msg_init_size(&f->part[index], n);
    if (n)
        memcpy(zmq_msg_data(&f->part[index]), data, n);
}

static void s_expect_bad(zkit__pubsub_frames_t *f, zkit__pubsub_bad_t reason)
{
    zkit__pubsub_msg_t msg;
    zkit__pubsub_bad_t why = ZKIT__PUBSUB_BAD_REASONS_;
    assert_int_equal(zkit__pubsub_parse(f, 0, &msg, &why), -1);
    assert_int_equal(why, reason);
    assert_string_not_equal(zkit__pubsub_bad_name(why), "?");
    zkit__pubsub_frames_close(f);
}

static void s_expect_ok(zkit__pubsub_frames_t *f, zkit__pubsub_msg_t *msg)
{
    zkit__pubsub_bad_t why = ZKIT__PUBSUB_BAD_REASONS_;
    assert_int_equal(zkit__pubsub_parse(f, 0, msg, &why), 0);
}

/* ---- numbers ------------------------------------------------------------------- */

static void test_parse_uint(void **state)
{
    (void) state;
    uint64_t v = 99;
    assert_int_equal(zkit__pubsub_parse_uint("0", 1, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(zkit__pubsub_parse_uint("1234", 4, &v), 0);
    assert_int_equal(v, 1234);
    assert_int_equal(zkit__pubsub_parse_uint("18446744073709551615", 20, &v), 0);
    assert_true(v == UINT64_MAX);
    const char *bad[] = {"",
                         "01",
                         "-1",
                         "+1",
                         " 1",
                         "1 ",
                         "1a",
                         "0x1",
                         "18446744073709551616",
                         "99999999999999999999",
                         "123456789012345678901"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(zkit__pubsub_parse_uint(bad[i], strlen(bad[i]), &v), -1);
    /* the size given is what counts, not a NUL */
    assert_int_equal(zkit__pubsub_parse_uint("12x", 2, &v), 0);
    assert_int_equal(v, 12);
}

/* ---- rejections ---------------------------------------------------------------- */

static void test_rejects_frames(void **state)
{
    (void) state;
    zkit__pubsub_frames_t f;
    zkit__pubsub_msg_t msg;
    f.count = 0;
    f.dropped = 0;
    assert_int_equal(zkit__pubsub_parse(&f, 0, &msg, NULL), -1); /* no frame at all */
    s_frames(&f, "rid", NULL); /* a routing id and nothing after it */
    zkit__pubsub_bad_t why;
    assert_int_equal(zkit__pubsub_parse(&f, 1, &msg, &why), -1);
    assert_int_equal(why, ZKIT__PUBSUB_BAD_FRAMES);
    zkit__pubsub_frames_close(&f);
    s_frames(&f, "FETCH", "a", "1", "1", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_FRAMES);
    s_frames(&f, "FETCH", "a", "1", "1", "2", "3", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_FRAMES);
    s_frames(&f, "SNAPSHOT", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_FRAMES);
    s_frames(&f, "SNAPSHOT", "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n",
             "o", "p", "q", NULL); /* 17 prefixes */
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_FRAMES);
    s_frames(&f, "REPLAY", "t", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_FRAMES);
    s_frames(&f, "VALUE", "t", "e", "x", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_FRAMES);
    s_frames(&f, "END", "a", "1", "1", "2", "0", "0", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_FRAMES);
    s_frames(&f, "SNAPEND", "a", "1", "0", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_FRAMES);
    s_frames(&f, "ERROR", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_FRAMES);
    s_frames(&f, "ERROR", "a", "b", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_FRAMES);
    s_frames(&f, "PROBE", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_FRAMES);
    s_frames(&f, "PROBE", "a", "1", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_FRAMES);
    s_frames(&f, "STATUS", "a", "1", "1", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_FRAMES);
    /* more frames than the receiver keeps */
    s_frames(&f, "FETCH", "a", "1", "1", "2", NULL);
    f.dropped = 3;
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_FRAMES);
}

static void test_rejects_commands(void **state)
{
    (void) state;
    zkit__pubsub_frames_t f;
    const char *bad[] = {"FOO", "fetch", "FETCH ", "FETC", "", "\x95"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        s_frames(&f, bad[i], "a", "1", "1", "2", NULL);
        s_expect_bad(&f, ZKIT__PUBSUB_BAD_COMMAND);
    }
}

static void test_rejects_numbers_and_ranges(void **state)
{
    (void) state;
    zkit__pubsub_frames_t f;
    s_frames(&f, "FETCH", "a", "x", "1", "2", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_NUMBER);
    s_frames(&f, "FETCH", "a", "1", "01", "2", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_NUMBER);
    s_frames(&f, "FETCH", "a", "1", "1", "18446744073709551616", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_NUMBER);
    s_frames(&f, "FETCH", "a", "1", "0", "2", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_RANGE);
    s_frames(&f, "FETCH", "a", "1", "5", "4", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_RANGE);
    /* END: src epoch from to lost_to served_to last */
    s_frames(&f, "END", "a", "1", "5", "9", "0", "0", "-", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_NUMBER);
    s_frames(&f, "END", "a", "1", "9", "5", "0", "0", "9", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_RANGE);
    s_frames(&f, "END", "a", "1", "5", "9", "4", "0", "9", NULL); /* lost_to < from */
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_RANGE);
    s_frames(&f, "END", "a", "1", "5", "9", "10", "0", "9", NULL); /* lost_to > to */
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_RANGE);
    s_frames(&f, "END", "a", "1", "5", "9", "6", "6", "9", NULL); /* served <= lost */
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_RANGE);
    s_frames(&f, "END", "a", "1", "5", "9", "0", "10", "9", NULL); /* served > to */
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_RANGE);
    s_frames(&f, "END", "a", "1", "5", "9", "0", "4", "9", NULL); /* served < from */
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_RANGE);
    s_frames(&f, "SNAPEND", "a", "1", "1x", "0", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_NUMBER);
    /* STATUS: src epoch first last, 1 <= first <= last + 1 */
    s_frames(&f, "STATUS", "a", "1", "", "5", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_NUMBER);
    s_frames(&f, "STATUS", "a", "1", "0", "5", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_RANGE);
    s_frames(&f, "STATUS", "a", "1", "7", "5", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_RANGE);
}

static void test_rejects_names_topics_texts(void **state)
{
    (void) state;
    zkit__pubsub_frames_t f;
    char long_text[300];
    memset(long_text, 'x', sizeof long_text);
    long_text[256] = '\0'; /* 256 bytes: one more than allowed */

    s_frames(&f, "FETCH", "", "1", "1", "2", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_SRC);
    s_frames(&f, "FETCH", long_text, "1", "1", "2", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_SRC);
    s_frames(&f, "FETCH", "a", "1", "1", "2", NULL);
    s_frame_bytes(&f, 1, "a\0b", 3);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_SRC);
    s_frames(&f, "END", "", "1", "1", "1", "0", "1", "1", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_SRC);
    s_frames(&f, "SNAPEND", long_text, "1", "1", "0", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_SRC);
    s_frames(&f, "PROBE", "", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_SRC);
    s_frames(&f, "STATUS", long_text, "1", "1", "0", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_SRC);

    s_frames(&f, "SNAPSHOT", "ok", long_text, NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_TOPIC);
    s_frames(&f, "SNAPSHOT", "ok", NULL);
    s_frame_bytes(&f, 1, "o\0k", 3);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_TOPIC);
    s_frames(&f, "REPLAY", long_text, "env", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_TOPIC);

    s_frames(&f, "REPLAY", "t", "", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_ENVELOPE);
    s_frames(&f, "VALUE", "t", "", NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_ENVELOPE);

    char text[ZKIT__PUBSUB_ERROR_MAX + 2];
    memset(text, 'e', sizeof text);
    text[ZKIT__PUBSUB_ERROR_MAX + 1] = '\0';
    s_frames(&f, "ERROR", text, NULL);
    s_expect_bad(&f, ZKIT__PUBSUB_BAD_TEXT);
}

/* ---- acceptance and round trips ------------------------------------------------------ */

static void test_parses_valid_forms(void **state)
{
    (void) state;
    zkit__pubsub_frames_t f;
    zkit__pubsub_msg_t m;

    s_frames(&f, "rid", "FETCH", "pub", "0", "1", "18446744073709551615", NULL);
    zkit__pubsub_bad_t why;
    assert_int_equal(zkit__pubsub_parse(&f, 1, &m, &why), 0); /* behind a routing id */
    assert_int_equal(m.cmd, ZKIT__PUBSUB_FETCH);
    assert_string_equal(m.src, "pub");
    assert_int_equal(m.epoch, 0);
    assert_int_equal(m.from, 1);
    assert_true(m.to == UINT64_MAX);
    zkit__pubsub_frames_close(&f);

    s_frames(&f, "SNAPSHOT", "", NULL); /* the empty prefix: every topic */
    s_expect_ok(&f, &m);
    assert_int_equal(m.prefix_count, 1);
    assert_int_equal(m.prefix_size[0], 0);
    zkit__pubsub_frames_close(&f);

    s_frames(&f, "END", "p", "7", "5", "9", "9", "0", "4", NULL); /* all lost */
    s_expect_ok(&f, &m);
    assert_int_equal(m.lost_to, 9);
    assert_int_equal(m.served_to, 0);
    zkit__pubsub_frames_close(&f);

    s_frames(&f, "END", "p", "7", "5", "9", "0", "0", "4", NULL); /* none there yet */
    s_expect_ok(&f, &m);
    zkit__pubsub_frames_close(&f);

    s_frames(&f, "STATUS", "p", "7", "6", "5", NULL); /* nothing held */
    s_expect_ok(&f, &m);
    assert_true(m.first == 6 && m.last == 5 && m.epoch == 7);
    zkit__pubsub_frames_close(&f);

    s_frames(&f, "STATUS", "p", "7", "1", "0", NULL); /* nothing published */
    s_expect_ok(&f, &m);
    zkit__pubsub_frames_close(&f);

    s_frames(&f, "ERROR", "", NULL);
    s_expect_ok(&f, &m);
    assert_string_equal(m.text, "");
    zkit__pubsub_frames_close(&f);
}

static void s_roundtrip(void *out, void *in, const zkit__pubsub_msg_t *sent,
                        zkit__pubsub_msg_t *got, zkit__pubsub_frames_t *frames)
{
    assert_int_equal(zkit__pubsub_send(out, NULL, 0, sent), 0);
    assert_int_equal(zkit__pubsub_recv(in, frames, 0), 0);
    zkit__pubsub_bad_t why;
    assert_int_equal(zkit__pubsub_parse(frames, 0, got, &why), 0);
    assert_int_equal(got->cmd, sent->cmd);
}

static void test_roundtrip_every_command(void **state)
{
    (void) state;
    zsock_t *out = zsock_new_pair("@inproc://test-pubsub-protocol");
    zsock_t *in = zsock_new_pair(">inproc://test-pubsub-protocol");
    assert_non_null(out);
    assert_non_null(in);
    zkit__pubsub_frames_t f;
    zkit__pubsub_msg_t m, got;

    memset(&m, 0, sizeof m);
    m.cmd = ZKIT__PUBSUB_FETCH;
    strcpy(m.src, "pub-1");
    m.epoch = 1700000000000000;
    m.from = 10;
    m.to = UINT64_MAX;
    s_roundtrip(out, in, &m, &got, &f);
    assert_string_equal(got.src, "pub-1");
    assert_true(got.epoch == m.epoch && got.from == 10 && got.to == UINT64_MAX);
    zkit__pubsub_frames_close(&f);

    memset(&m, 0, sizeof m);
    m.cmd = ZKIT__PUBSUB_SNAPSHOT;
    m.prefix_count = 2;
    strcpy(m.prefix[0], "prices.");
    m.prefix_size[0] = 7;
    m.prefix_size[1] = 0;
    s_roundtrip(out, in, &m, &got, &f);
    assert_int_equal(got.prefix_count, 2);
    assert_string_equal(got.prefix[0], "prices.");
    assert_int_equal(got.prefix_size[1], 0);
    zkit__pubsub_frames_close(&f);

    zmq_msg_t topic, env;
    zmq_msg_init_size(&topic, 4);
    memcpy(zmq_msg_data(&topic), "tick", 4);
    zmq_msg_init_size(&env, 100);
    memset(zmq_msg_data(&env), 0x93, 100);
    memset(&m, 0, sizeof m);
    m.cmd = ZKIT__PUBSUB_REPLAY;
    m.topic = &topic;
    m.envelope = &env;
    s_roundtrip(out, in, &m, &got, &f);
    assert_int_equal(zmq_msg_size(got.topic), 4);
    assert_memory_equal(zmq_msg_data(got.envelope), zmq_msg_data(&env), 100);
    assert_int_equal(zmq_msg_size(&env), 100); /* the sender's frames are its own */
    zkit__pubsub_frames_close(&f);
    m.cmd = ZKIT__PUBSUB_VALUE;
    s_roundtrip(out, in, &m, &got, &f);
    zkit__pubsub_frames_close(&f);
    zmq_msg_close(&topic);
    zmq_msg_close(&env);

    memset(&m, 0, sizeof m);
    m.cmd = ZKIT__PUBSUB_END;
    strcpy(m.src, "p");
    m.epoch = 3;
    m.from = 5;
    m.to = 100;
    m.lost_to = 9;
    m.served_to = 50;
    m.last = 120;
    s_roundtrip(out, in, &m, &got, &f);
    assert_true(got.from == 5 && got.to == 100 && got.lost_to == 9 && got.served_to == 50 &&
                got.last == 120 && got.epoch == 3);
    zkit__pubsub_frames_close(&f);

    memset(&m, 0, sizeof m);
    m.cmd = ZKIT__PUBSUB_SNAPEND;
    strcpy(m.src, "p");
    m.epoch = 3;
    m.last = 120;
    m.count = 7;
    s_roundtrip(out, in, &m, &got, &f);
    assert_true(got.last == 120 && got.count == 7);
    zkit__pubsub_frames_close(&f);

    memset(&m, 0, sizeof m);
    m.cmd = ZKIT__PUBSUB_ERROR;
    strcpy(m.text, "unknown source");
    s_roundtrip(out, in, &m, &got, &f);
    assert_string_equal(got.text, "unknown source");
    zkit__pubsub_frames_close(&f);

    memset(&m, 0, sizeof m);
    m.cmd = ZKIT__PUBSUB_PROBE;
    strcpy(m.src, "p");
    s_roundtrip(out, in, &m, &got, &f);
    assert_string_equal(got.src, "p");
    zkit__pubsub_frames_close(&f);

    memset(&m, 0, sizeof m);
    m.cmd = ZKIT__PUBSUB_STATUS;
    strcpy(m.src, "p");
    m.epoch = 9;
    m.first = 101;
    m.last = UINT64_MAX;
    s_roundtrip(out, in, &m, &got, &f);
    assert_true(got.epoch == 9 && got.first == 101 && got.last == UINT64_MAX);
    zkit__pubsub_frames_close(&f);

    /* behind a routing id */
    memset(&m, 0, sizeof m);
    m.cmd = ZKIT__PUBSUB_ERROR;
    assert_int_equal(zkit__pubsub_send(out, "id", 2, &m), 0);
    assert_int_equal(zkit__pubsub_recv(in, &f, 0), 0);
    assert_int_equal(f.count, 3);
    assert_int_equal(zkit__pubsub_parse(&f, 1, &got, NULL), 0);
    zkit__pubsub_frames_close(&f);

    zsock_destroy(&in);
    zsock_destroy(&out);
}

static void test_send_refuses_what_parse_would(void **state)
{
    (void) state;
    zsock_t *out = zsock_new_pair("@inproc://test-pubsub-refuse");
    zkit__pubsub_msg_t m;
    memset(&m, 0, sizeof m);
    errno = 0;
    assert_int_equal(zkit__pubsub_send(out, NULL, 0, &m), -1); /* NONE */
    assert_int_equal(errno, EINVAL);
    m.cmd = ZKIT__PUBSUB_FETCH; /* empty src */
    m.from = 1;
    m.to = 1;
    assert_int_equal(zkit__pubsub_send(out, NULL, 0, &m), -1);
    strcpy(m.src, "a");
    m.from = 2; /* from > to */
    assert_int_equal(zkit__pubsub_send(out, NULL, 0, &m), -1);
    m.cmd = ZKIT__PUBSUB_SNAPSHOT; /* no prefix */
    assert_int_equal(zkit__pubsub_send(out, NULL, 0, &m), -1);
    m.cmd = ZKIT__PUBSUB_END;
    m.from = 1;
    m.to = 5;
    m.lost_to = 3;
    m.served_to = 3; /* must be above lost_to */
    assert_int_equal(zkit__pubsub_send(out, NULL, 0, &m), -1);
    m.cmd = ZKIT__PUBSUB_REPLAY; /* no frames */
    assert_int_equal(zkit__pubsub_send(out, NULL, 0, &m), -1);
    m.cmd = ZKIT__PUBSUB_STATUS; /* first 0 */
    m.first = 0;
    assert_int_equal(zkit__pubsub_send(out, NULL, 0, &m), -1);
    m.cmd = ZKIT__PUBSUB_PROBE;
    m.src[0] = '\0';
    assert_int_equal(zkit__pubsub_send(out, NULL, 0, &m), -1);
    zsock_destroy(&out);
}

static void test_prefix_match_and_names(void **state)
{
    (void) state;
    assert_true(zkit__pubsub_prefix_match("", 0, "anything", 8));
    assert_true(zkit__pubsub_prefix_match("pri", 3, "prices", 6));
    assert_false(zkit__pubsub_prefix_match("prices.x", 8, "prices", 6));
    assert_false(zkit__pubsub_prefix_match("q", 1, "prices", 6));
    assert_true(zkit__pubsub_topic_valid("", 0));
    assert_false(zkit__pubsub_topic_valid("a\0b", 3));
    assert_string_equal(zkit__pubsub_cmd_name(ZKIT__PUBSUB_SNAPEND), "SNAPEND");
    assert_string_equal(zkit__pubsub_cmd_name(ZKIT__PUBSUB_NONE), "?");
    assert_string_equal(zkit__pubsub_bad_name(ZKIT__PUBSUB_BAD_REASONS_), "?");
    zkit__ratelimit_t log = {0};
    zkit__pubsub_log_bad(&log, "test", ZKIT__PUBSUB_BAD_FRAMES);
    assert_true(log.logged);
    zkit__pubsub_log_bad(&log, "test", ZKIT__PUBSUB_BAD_FRAMES); /* same second */
    assert_int_equal(log.suppressed, 1);
}

int main(void)
{
    zsys_init();
    zsys_set_logstream(NULL); /* the rate-limited log line is not output here */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_uint),
        cmocka_unit_test(test_rejects_frames),
        cmocka_unit_test(test_rejects_commands),
        cmocka_unit_test(test_rejects_numbers_and_ranges),
        cmocka_unit_test(test_rejects_names_topics_texts),
        cmocka_unit_test(test_parses_valid_forms),
        cmocka_unit_test(test_roundtrip_every_command),
        cmocka_unit_test(test_send_refuses_what_parse_would),
        cmocka_unit_test(test_prefix_match_and_names),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    zsys_shutdown();
    return rc;
}
