/*  test_pipeline_protocol: ZKIT-PIPELINE/1 command messages, built and parsed.

    Every command survives build -> send -> receive -> parse unchanged, and
    every way a frame can be wrong is refused with the reason a component
    counts it under: frame counts, unknown commands, integers (sign, leading
    zero, digits, range), ids, batch names, reasons and tokens.

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

#include "pipeline/protocol.h"
#include "pipeline/sink_batch.h"

static const uint8_t s_id[16] = {0x01, 0x90, 0xa4, 0xc1, 0xe2, 0xb3, 0x7a, 0x4c,
                                 0x8d, 0x5e, 0x6f, 0x70, 0x81, 0x92, 0xa3, 0xb4};

/* ---- helpers ------------------------------------------------------------- */

/* Frames from a list of C strings (NULL-terminated), sizes by strlen. */
static void s_frames(zkit__pipeline_frames_t *frames, ...)
{
    frames->count = 0;
    frames->dropped = 0;
    va_list ap;
    va_start(ap, frames);
    for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *))
        assert_int_equal(zkit__pipeline_frames_add(frames, s, strlen(s)), 0);
    va_end(ap);
}

/* Parses and expects a refusal for reason why. */
static void s_refused(zkit__pipeline_frames_t *frames, size_t first,
                      zkit__pipeline_bad_reason_t why)
{
    zkit__pipeline_msg_t msg;
    zkit__pipeline_bad_reason_t got = ZKIT__PIPELINE_BAD_REASONS_;
    assert_int_equal(zkit__pipeline_parse(frames, first, &msg, &got), -1);
    assert_int_equal(got, why);
    assert_int_equal(errno, why == ZKIT__PIPELINE_BAD_FRAMES ? ZKIT_EFRAMES : ZKIT_ECOMMAND);
    assert_null(msg.envelope);
    zkit__pipeline_frames_close(frames);
}

static void s_refused_strings(zkit__pipeline_bad_reason_t why, ...)
{
    zkit__pipeline_frames_t frames = {.count = 0};
    va_list ap;
    va_start(ap, why);
    for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *))
        assert_int_equal(zkit__pipeline_frames_add(&frames, s, strlen(s)), 0);
    va_end(ap);
    s_refused(&frames, 0, why);
}

/* A frame of raw bytes appended. */
static void s_add(zkit__pipeline_frames_t *frames, const void *data, size_t size)
{
    assert_int_equal(zkit__pipeline_frames_add(frames, data, size), 0);
}

static void s_envelope_msg(zmq_msg_t *msg, const char *body)
{
    zkit_envelope_t *env = zkit_envelope_new();
    assert_non_null(env);
    zkit_envelope_set_body(env, body, strlen(body));
    zkit_envelope_set_seq(env, 7);
    assert_int_equal(zkit_envelope_encode(env, msg), 0);
    zkit_envelope_destroy(&env);
}

/* Builds msg, sends it over an inproc PAIR, receives and parses it. The
   traffic counted on send is the bytes the receiver got.                   */
static void s_round_trip(void *tx, void *rx, const zkit__pipeline_msg_t *msg,
                         zkit__pipeline_msg_t *out, zkit__pipeline_frames_t *frames)
{
    zkit__traffic_t sent = {0};
    assert_int_equal(zkit__pipeline_send_msg(tx, "rid", 3, msg, &sent), 0);
    assert_int_equal(sent.msgs_out, 1);
    assert_int_equal(zkit__pipeline_recv(rx, frames, 0), 0);
    assert_int_equal(frames->bytes, sent.bytes_out);
    size_t bytes = 0;
    for (size_t i = 0; i < frames->count; i++)
        bytes += zmq_msg_size(&frames->part[i]);
    assert_int_equal(frames->bytes, bytes);
    assert_int_equal(zmq_msg_size(&frames->part[0]), 3);
    assert_int_equal(zkit__pipeline_parse(frames, 1, out, NULL), 0);
    assert_int_equal(out->cmd, msg->cmd);
}

/* ---- tests ---------------------------------------------------------------- */

static void test_round_trips(void **state)
{
    (void) state;
    zsock_t *tx = zsock_new_pair("@inproc://proto-rt");
    zsock_t *rx = zsock_new_pair(">inproc://proto-rt");
    assert_non_null(tx);
    assert_non_null(rx);
    zkit__pipeline_msg_t in, out;
    zkit__pipeline_frames_t frames;

    memset(&in, 0, sizeof in);
    in.cmd = ZKIT__PIPELINE_READY;
    in.window = 10000;
    s_round_trip(tx, rx, &in, &out, &frames);
    assert_int_equal(out.window, 10000);
    assert_memory_equal(zmq_msg_data(&frames.part[2]), "10000", 5);
    zkit__pipeline_frames_close(&frames);

    in.cmd = ZKIT__PIPELINE_HEARTBEAT;
    s_round_trip(tx, rx, &in, &out, &frames);
    assert_int_equal(frames.count, 2);
    zkit__pipeline_frames_close(&frames);

    in.cmd = ZKIT__PIPELINE_DISCONNECT;
    s_round_trip(tx, rx, &in, &out, &frames);
    zkit__pipeline_frames_close(&frames);

    const zkit__pipeline_cmd_t with_id[] = {ZKIT__PIPELINE_DONE, ZKIT__PIPELINE_ACK};
    for (size_t i = 0; i < 2; i++) {
        in.cmd = with_id[i];
        memcpy(in.task_id, s_id, 16);
        s_round_trip(tx, rx, &in, &out, &frames);
        assert_memory_equal(out.task_id, s_id, 16);
        zkit__pipeline_frames_close(&frames);
    }

    in.cmd = ZKIT__PIPELINE_FAIL;
    snprintf(in.reason, sizeof in.reason, "exit status 3: caf\xc3\xa9");
    s_round_trip(tx, rx, &in, &out, &frames);
    assert_memory_equal(out.task_id, s_id, 16);
    assert_string_equal(out.reason, in.reason);
    zkit__pipeline_frames_close(&frames);

    /* An empty reason is allowed; a reason of exactly the limit too.      */
    in.reason[0] = '\0';
    s_round_trip(tx, rx, &in, &out, &frames);
    assert_string_equal(out.reason, "");
    zkit__pipeline_frames_close(&frames);
    memset(in.reason, 'r', ZKIT__PIPELINE_REASON_MAX);
    in.reason[ZKIT__PIPELINE_REASON_MAX] = '\0';
    s_round_trip(tx, rx, &in, &out, &frames);
    assert_int_equal(strlen(out.reason), ZKIT__PIPELINE_REASON_MAX);
    zkit__pipeline_frames_close(&frames);

    zmq_msg_t env;
    s_envelope_msg(&env, "payload");
    const zkit__pipeline_cmd_t with_env[] = {ZKIT__PIPELINE_TASK, ZKIT__PIPELINE_RESULT};
    for (size_t i = 0; i < 2; i++) {
        in.cmd = with_env[i];
        in.envelope = &env;
        s_round_trip(tx, rx, &in, &out, &frames);
        assert_non_null(out.envelope);
        assert_int_equal(zmq_msg_size(out.envelope), zmq_msg_size(&env));
        assert_memory_equal(zmq_msg_data(out.envelope), zmq_msg_data(&env), zmq_msg_size(&env));
        zkit__pipeline_frames_close(&frames);
    }
    /* The builder took a reference: the caller's frame is still whole.    */
    assert_true(zmq_msg_size(&env) > 0);
    zmq_msg_close(&env);

    in.cmd = ZKIT__PIPELINE_BATCH;
    snprintf(in.batch, sizeof in.batch, "primes-2024");
    in.total = ZKIT_BATCH_TASKS_MAX;
    s_round_trip(tx, rx, &in, &out, &frames);
    assert_string_equal(out.batch, "primes-2024");
    assert_int_equal(out.total, ZKIT_BATCH_TASKS_MAX);
    zkit__pipeline_frames_close(&frames);
    in.total = 0; /* not known yet */
    s_round_trip(tx, rx, &in, &out, &frames);
    assert_int_equal(out.total, 0);
    zkit__pipeline_frames_close(&frames);

    /* COMPLETE: the sink's word that the batch is complete, BATCH's frames. */
    in.cmd = ZKIT__PIPELINE_COMPLETE;
    in.total = 1234;
    s_round_trip(tx, rx, &in, &out, &frames);
    assert_int_equal(frames.count, 4);
    assert_memory_equal(zmq_msg_data(&frames.part[1]), "COMPLETE", 8);
    assert_string_equal(out.batch, "primes-2024");
    assert_int_equal(out.total, 1234);
    zkit__pipeline_frames_close(&frames);

    in.cmd = ZKIT__PIPELINE_DEAD;
    in.task_seq = 42;
    in.attempts = UINT32_MAX;
    snprintf(in.reason, sizeof in.reason, "NACKED: exit status 3");
    s_round_trip(tx, rx, &in, &out, &frames);
    assert_string_equal(out.batch, "primes-2024");
    assert_memory_equal(out.task_id, s_id, 16);
    assert_int_equal(out.task_seq, 42);
    assert_int_equal(out.attempts, UINT32_MAX);
    assert_string_equal(out.reason, "NACKED: exit status 3");
    zkit__pipeline_frames_close(&frames);
    snprintf(in.reason, sizeof in.reason, "PEER_DIED");
    s_round_trip(tx, rx, &in, &out, &frames);
    assert_string_equal(out.reason, "PEER_DIED");
    zkit__pipeline_frames_close(&frames);

    in.cmd = ZKIT__PIPELINE_OK;
    zkit__pipeline_batch_token("primes-2024", 1234, in.token);
    assert_string_equal(in.token, "primes-2024:1234");
    s_round_trip(tx, rx, &in, &out, &frames);
    assert_string_equal(out.token, "primes-2024:1234");
    zkit__pipeline_frames_close(&frames);

    zsock_destroy(&tx);
    zsock_destroy(&rx);
}

static void test_bare_envelope(void **state)
{
    (void) state;
    zkit__pipeline_frames_t frames = {.count = 0};
    zmq_msg_t env;
    s_envelope_msg(&env, "x");
    zkit__pipeline_msg_t in = {.cmd = ZKIT__PIPELINE_NONE, .envelope = &env};
    assert_int_equal(zkit__pipeline_build(&in, &frames), 0);
    assert_int_equal(frames.count, 1);
    zkit__pipeline_msg_t out;
    assert_int_equal(zkit__pipeline_parse(&frames, 0, &out, NULL), 0);
    assert_int_equal(out.cmd, ZKIT__PIPELINE_NONE);
    assert_ptr_equal(out.envelope, &frames.part[0]);
    /* A bare envelope is one frame: anything after it is refused.         */
    s_add(&frames, "more", 4);
    s_refused(&frames, 0, ZKIT__PIPELINE_BAD_FRAMES);
    zmq_msg_close(&env);
}

static void test_frame_counts(void **state)
{
    (void) state;
    zkit__pipeline_frames_t frames = {.count = 0};
    /* Nothing after the routing id. */
    s_frames(&frames, "rid", NULL);
    s_refused(&frames, 1, ZKIT__PIPELINE_BAD_FRAMES);
    s_refused_strings(ZKIT__PIPELINE_BAD_FRAMES, "READY", NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_FRAMES, "READY", "1", "2", NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_FRAMES, "HEARTBEAT", "x", NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_FRAMES, "DISCONNECT", "", NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_FRAMES, "DONE", NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_FRAMES, "FAIL", "0123456789abcdef", NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_FRAMES, "TASK", NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_FRAMES, "BATCH", "b", NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_FRAMES, "COMPLETE", "b", NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_FRAMES, "COMPLETE", "b", "1", "1", NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_FRAMES, "DEAD", "b", "0123456789abcdef", "1", "1", NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_FRAMES, "OK", NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_FRAMES, "ACK", "0123456789abcdef", "x", NULL);

    /* More frames than any command has: read to the end, then refused.   */
    zsock_t *tx = zsock_new_pair("@inproc://proto-long");
    zsock_t *rx = zsock_new_pair(">inproc://proto-long");
    for (int i = 0; i < 20; i++)
        zmq_send(zsock_resolve(tx), "F", 1, i < 19 ? ZMQ_SNDMORE : 0);
    zstr_send(tx, "HEARTBEAT");
    assert_int_equal(zkit__pipeline_recv(rx, &frames, 0), 0);
    assert_int_equal(frames.count, ZKIT__PIPELINE_FRAMES_MAX);
    assert_int_equal(frames.dropped, 20 - ZKIT__PIPELINE_FRAMES_MAX);
    assert_int_equal(frames.bytes, 20); /* the dropped frames count too */
    s_refused(&frames, 0, ZKIT__PIPELINE_BAD_FRAMES);
    /* The socket is still in step: the next message parses.              */
    assert_int_equal(zkit__pipeline_recv(rx, &frames, 0), 0);
    zkit__pipeline_msg_t msg;
    assert_int_equal(zkit__pipeline_parse(&frames, 0, &msg, NULL), 0);
    assert_int_equal(msg.cmd, ZKIT__PIPELINE_HEARTBEAT);
    zkit__pipeline_frames_close(&frames);
    /* Nothing waiting: EAGAIN, nothing held. */
    assert_int_equal(zkit__pipeline_recv(rx, &frames, ZMQ_DONTWAIT), -1);
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(frames.count, 0);
    zsock_destroy(&tx);
    zsock_destroy(&rx);
}

static void test_unknown_commands(void **state)
{
    (void) state;
    s_refused_strings(ZKIT__PIPELINE_BAD_COMMAND, "HELLO", NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_COMMAND, "ready", "1", NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_COMMAND, "READYX", "1", NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_COMMAND, "READ", "1", NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_COMMAND, "", NULL);
    zkit__pipeline_frames_t frames = {.count = 0};
    s_add(&frames, "\x00\xff", 2);
    s_refused(&frames, 0, ZKIT__PIPELINE_BAD_COMMAND);
    /* An envelope-looking first frame that does not decode is still "an
       envelope" to the parser; the component's decoder refuses it.        */
    s_add(&frames, "\x95", 1);
    zkit__pipeline_msg_t msg;
    assert_int_equal(zkit__pipeline_parse(&frames, 0, &msg, NULL), 0);
    assert_int_equal(msg.cmd, ZKIT__PIPELINE_NONE);
    zkit__pipeline_frames_close(&frames);
}

static void test_integers(void **state)
{
    (void) state;
    const char *bad[] = {"0",  "10001", "01", "+5",          "-1",  "",
                         " 5", "5 ",    "1a", "12345678901", "0x10"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        s_refused_strings(ZKIT__PIPELINE_BAD_FIELD, "READY", bad[i], NULL);
    uint64_t v = 0;
    assert_int_equal(zkit__pipeline_parse_uint("0", 1, 10, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(zkit__pipeline_parse_uint("9999999999", 10, UINT64_MAX, &v), 0);
    assert_int_equal(v, 9999999999ull);
    assert_int_equal(zkit__pipeline_parse_uint("4294967295", 10, UINT32_MAX, &v), 0);
    assert_int_equal(zkit__pipeline_parse_uint("4294967296", 10, UINT32_MAX, &v), -1);
    assert_int_equal(zkit__pipeline_parse_uint(NULL, 0, 10, &v), -1);

    /* Per-field ranges. */
    const char *id = "0123456789abcdef";
    s_refused_strings(ZKIT__PIPELINE_BAD_FIELD, "BATCH", "b", "100000001", NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_FIELD, "DEAD", "b", id, "0", "1", "NACKED", NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_FIELD, "DEAD", "b", id, "100000001", "1", "NACKED", NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_FIELD, "DEAD", "b", id, "1", "4294967296", "NACKED", NULL);
    zkit__pipeline_frames_t frames;
    s_frames(&frames, "DEAD", "b", id, "1", "0", "EXPIRED", NULL);
    zkit__pipeline_msg_t msg;
    assert_int_equal(zkit__pipeline_parse(&frames, 0, &msg, NULL), 0);
    assert_int_equal(msg.attempts, 0);
    zkit__pipeline_frames_close(&frames);
}

static void test_ids_names_texts(void **state)
{
    (void) state;
    const char *id = "0123456789abcdef";
    s_refused_strings(ZKIT__PIPELINE_BAD_FIELD, "DONE", "0123456789abcde", NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_FIELD, "ACK", "0123456789abcdef0", NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_FIELD, "DEAD", "b", "short", "1", "1", "NACKED", NULL);

    /* Batch names: 1-64 bytes of printable ASCII without space. */
    char name65[66];
    memset(name65, 'n', 65);
    name65[65] = '\0';
    s_refused_strings(ZKIT__PIPELINE_BAD_FIELD, "BATCH", "", "1", NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_FIELD, "BATCH", name65, "1", NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_FIELD, "BATCH", "a b", "1", NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_FIELD, "BATCH", "a\x7f", "1", NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_FIELD, "BATCH", "caf\xc3\xa9", "1", NULL);
    name65[64] = '\0';
    assert_true(zkit__pipeline_batch_valid(name65, 64));
    assert_false(zkit__pipeline_batch_valid(NULL, 0));

    /* Reasons: no NUL, at most 1024 bytes; DEAD's starts with a reason name. */
    zkit__pipeline_frames_t frames = {.count = 0};
    s_frames(&frames, "FAIL", id, NULL);
    s_add(&frames, "a\0b", 3);
    s_refused(&frames, 0, ZKIT__PIPELINE_BAD_FIELD);
    char long_reason[ZKIT__PIPELINE_REASON_MAX + 2];
    memset(long_reason, 'r', sizeof long_reason - 1);
    long_reason[sizeof long_reason - 1] = '\0';
    s_refused_strings(ZKIT__PIPELINE_BAD_FIELD, "FAIL", id, long_reason, NULL);
    const char *dead_bad[] = {"", "BOGUS", "NACKED:x", "NACKED:", "NACKEDX", "nacked", "NACKED "};
    for (size_t i = 0; i < sizeof dead_bad / sizeof *dead_bad; i++)
        s_refused_strings(ZKIT__PIPELINE_BAD_FIELD, "DEAD", "b", id, "1", "1", dead_bad[i], NULL);
    const char *dead_good[] = {"NACKED",  "PEER_DIED", "TIMED_OUT",
                               "EXPIRED", "NACKED: ",  "TIMED_OUT: took too long"};
    for (size_t i = 0; i < sizeof dead_good / sizeof *dead_good; i++) {
        zkit__pipeline_msg_t msg;
        s_frames(&frames, "DEAD", "b", id, "1", "1", dead_good[i], NULL);
        assert_int_equal(zkit__pipeline_parse(&frames, 0, &msg, NULL), 0);
        assert_string_equal(msg.reason, dead_good[i]);
        zkit__pipeline_frames_close(&frames);
    }

    /* Tokens: 1-75 printable bytes. */
    char token[ZKIT__PIPELINE_TOKEN_MAX + 2];
    memset(token, 't', sizeof token - 1);
    token[sizeof token - 1] = '\0';
    s_refused_strings(ZKIT__PIPELINE_BAD_FIELD, "OK", token, NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_FIELD, "OK", "", NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_FIELD, "OK", "a b", NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_FIELD, "COMPLETE", "a b", "1", NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_FIELD, "COMPLETE", "b", "100000001", NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_FIELD, "COMPLETE", "b", "01", NULL);

    /* TASK and RESULT carry something that starts like an envelope.      */
    s_refused_strings(ZKIT__PIPELINE_BAD_ENVELOPE, "TASK", "not an envelope", NULL);
    s_refused_strings(ZKIT__PIPELINE_BAD_ENVELOPE, "RESULT", "", NULL);
}

static void test_build_refuses_bad_fields(void **state)
{
    (void) state;
    zkit__pipeline_frames_t frames = {.count = 0};
    s_add(&frames, "rid", 3);
    zkit__pipeline_msg_t msg;
    memset(&msg, 0, sizeof msg);
    msg.cmd = ZKIT__PIPELINE_READY;
    msg.window = 0;
    assert_int_equal(zkit__pipeline_build(&msg, &frames), -1);
    assert_int_equal(errno, EINVAL);
    msg.window = ZKIT__PIPELINE_WINDOW_MAX + 1;
    assert_int_equal(zkit__pipeline_build(&msg, &frames), -1);
    msg.cmd = ZKIT__PIPELINE_BATCH;
    snprintf(msg.batch, sizeof msg.batch, "has space");
    assert_int_equal(zkit__pipeline_build(&msg, &frames), -1);
    snprintf(msg.batch, sizeof msg.batch, "b");
    msg.total = ZKIT_BATCH_TASKS_MAX + 1ull;
    assert_int_equal(zkit__pipeline_build(&msg, &frames), -1);
    msg.cmd = ZKIT__PIPELINE_DEAD;
    msg.task_seq = 1;
    snprintf(msg.reason, sizeof msg.reason, "because");
    assert_int_equal(zkit__pipeline_build(&msg, &frames), -1);
    msg.cmd = ZKIT__PIPELINE_TASK;
    msg.envelope = NULL;
    assert_int_equal(zkit__pipeline_build(&msg, &frames), -1);
    msg.cmd = ZKIT__PIPELINE_OK;
    msg.token[0] = '\0';
    assert_int_equal(zkit__pipeline_build(&msg, &frames), -1);
    msg.cmd = ZKIT__PIPELINE_COMMANDS_;
    assert_int_equal(zkit__pipeline_build(&msg, &frames), -1);
    /* Nothing was appended by the failures. */
    assert_int_equal(frames.count, 1);
    /* A full frame set refuses more, leaving what it held. */
    for (int i = 1; i < ZKIT__PIPELINE_FRAMES_MAX; i++)
        s_add(&frames, "x", 1);
    msg.cmd = ZKIT__PIPELINE_HEARTBEAT;
    assert_int_equal(zkit__pipeline_build(&msg, &frames), -1);
    assert_int_equal(errno, ENOBUFS);
    assert_int_equal(frames.count, ZKIT__PIPELINE_FRAMES_MAX);
    zkit__pipeline_frames_close(&frames);
    zkit__pipeline_frames_close(&frames); /* twice is fine */
}

static void test_send_without_peer(void **state)
{
    (void) state;
    /* A ROUTER with ROUTER_MANDATORY refuses an unknown peer; a DEALER
       without a peer would block: both come back at once.                 */
    zsock_t *router = zsock_new(ZMQ_ROUTER);
    zsock_set_router_mandatory(router, 1);
    zkit__pipeline_msg_t msg = {.cmd = ZKIT__PIPELINE_HEARTBEAT};
    zkit__traffic_t traffic = {0};
    assert_int_equal(zkit__pipeline_send_msg(router, "nobody", 6, &msg, &traffic), -1);
    assert_int_equal(errno, EHOSTUNREACH);
    zsock_t *dealer = zsock_new(ZMQ_DEALER);
    assert_int_equal(zkit__pipeline_send_msg(dealer, NULL, 0, &msg, &traffic), -1);
    assert_int_equal(errno, EAGAIN);
    zmq_msg_t frame;
    zmq_msg_init_size(&frame, 5);
    assert_int_equal(zkit__pipeline_send_frame(dealer, &frame, &traffic), -1);
    assert_int_equal(zmq_msg_size(&frame), 5); /* still the caller's */
    zmq_msg_close(&frame);
    /* What was not sent is not counted.                                   */
    assert_int_equal(traffic.msgs_out, 0);
    assert_int_equal(traffic.bytes_out, 0);
    zsock_destroy(&router);
    zsock_destroy(&dealer);
}

static void test_text_and_names(void **state)
{
    (void) state;
    char out[6];
    /* Cut to 5 bytes, "abcd" + e-acute (2 bytes) keeps whole characters.  */
    assert_string_equal(zkit__pipeline_copy_text(out, sizeof out, "abcd\xc3\xa9!"), "abcd");
    assert_string_equal(zkit__pipeline_copy_text(out, sizeof out, "ab\xc3\xa9!"), "ab\xc3\xa9!");
    assert_string_equal(zkit__pipeline_copy_text(out, sizeof out, "abcdefgh"), "abcde");
    for (int c = ZKIT__PIPELINE_READY; c < ZKIT__PIPELINE_COMMANDS_; c++)
        assert_string_not_equal(zkit__pipeline_cmd_name((zkit__pipeline_cmd_t) c), "?");
    assert_string_equal(zkit__pipeline_cmd_name(ZKIT__PIPELINE_NONE), "?");
    for (int r = 0; r < ZKIT__PIPELINE_BAD_REASONS_; r++)
        assert_string_not_equal(zkit__pipeline_bad_name((zkit__pipeline_bad_reason_t) r), "?");
    /* Counting: every call counts, whatever the log rate limit does.      */
    zkit__pipeline_bad_t bad = {.total = 0};
    for (int i = 0; i < 5; i++)
        zkit__pipeline_bad(&bad, ZKIT__PIPELINE_BAD_FIELD, "test", "detail");
    zkit__pipeline_bad(&bad, (zkit__pipeline_bad_reason_t) 99, "test", NULL);
    assert_int_equal(bad.count[ZKIT__PIPELINE_BAD_FIELD], 5);
    assert_int_equal(bad.count[ZKIT__PIPELINE_BAD_COMMAND], 1);
    assert_int_equal(bad.total, 6);
    /* Logged once, the rest held back within the second. */
    assert_int_equal(bad.log.suppressed, 5);
}

/*  The sink's per-batch table: bounds, budget, missing seqs, dead letters. */
static void test_sink_batch_table(void **state)
{
    (void) state;
    zkit__sink_batch_t *b = zkit__sink_batch_new("t");
    assert_non_null(b);
    size_t budget = 1000;
    assert_int_equal(zkit__sink_batch_reserve(b, 0, &budget), -1);
    assert_int_equal(errno, ERANGE);
    assert_int_equal(zkit__sink_batch_reserve(b, ZKIT_BATCH_TASKS_MAX + 1ull, &budget), -1);
    assert_int_equal(errno, ERANGE);
    /* 2 bits a seq: 1000 bytes hold 4000 seqs, not 4001. */
    assert_int_equal(zkit__sink_batch_reserve(b, 4001, &budget), -1);
    assert_int_equal(errno, ENOSPC);
    assert_int_equal(budget, 1000);
    assert_int_equal(zkit__sink_batch_reserve(b, 10, &budget), 0);
    assert_int_equal(zkit__sink_batch_table_bytes(b), 256); /* 1024 seqs ahead */
    assert_int_equal(budget, 1000 - 256);
    assert_int_equal(zkit__sink_batch_reserve(b, 4000, &budget), 0);
    assert_int_equal(budget, 0);
    zkit__sink_batch_destroy(&b);
    assert_null(b);

    b = zkit__sink_batch_new("t");
    budget = SIZE_MAX;
    assert_int_equal(zkit__sink_batch_missing(b, NULL, 0), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(zkit__sink_batch_set_total(b, 5000), 0);
    assert_int_equal(zkit__sink_batch_set_total(b, 5000), 0); /* a repeat */
    assert_int_equal(zkit__sink_batch_set_total(b, 4000), -1);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(zkit__sink_batch_reserve(b, 5001, &budget), -1);
    assert_int_equal(errno, ERANGE);
    for (uint64_t seq = 1; seq <= 5000; seq++) {
        if (seq == 3 || seq == 4096 || seq == 5000)
            continue;
        assert_int_equal(zkit__sink_batch_reserve(b, seq, &budget), 0);
        if (seq == 77)
            assert_int_equal(zkit__sink_batch_dead(b, seq, s_id, 2, "NACKED: x"), 0);
        else
            zkit__sink_batch_stored(b, seq, seq == 10 ? 3 : 1);
    }
    assert_false(zkit__sink_batch_check(b));
    uint64_t seqs[4];
    assert_int_equal(zkit__sink_batch_missing(b, seqs, 4), 3);
    assert_int_equal(seqs[0], 3);
    assert_int_equal(seqs[1], 4096);
    assert_int_equal(seqs[2], 5000);
    assert_int_equal(zkit__sink_batch_state(b, 77), ZKIT__SINK_DEAD);
    assert_int_equal(zkit__sink_batch_state(b, 78), ZKIT__SINK_STORED);
    assert_int_equal(zkit__sink_batch_state(b, 3), ZKIT__SINK_NONE);
    assert_int_equal(zkit__sink_batch_state(b, 999999), ZKIT__SINK_NONE);
    /* A late result replaces the dead letter. */
    zkit__sink_batch_stored(b, 77, 3);
    assert_int_equal(b->dead, 0);
    assert_int_equal(b->letter_count, 0);
    assert_int_equal(b->retried, 2 + 1 + 2); /* att 3 of seq 10, dead's 2, att 3 of 77 */
    for (uint64_t seq = 3; seq <= 5000; seq++)
        if (zkit__sink_batch_state(b, seq) == ZKIT__SINK_NONE) {
            assert_int_equal(zkit__sink_batch_reserve(b, seq, &budget), 0);
            zkit__sink_batch_stored(b, seq, 1);
        }
    assert_true(zkit__sink_batch_check(b));
    assert_int_equal(zkit__sink_batch_missing(b, seqs, 4), 0);
    zkit_batch_report_t report;
    zkit__sink_batch_report(b, &report);
    assert_true(report.complete);
    assert_int_equal(report.done, 5000);
    assert_string_equal(report.name, "t");
    /* The total cannot shrink below what was recorded. */
    zkit__sink_batch_t *c = zkit__sink_batch_new("u");
    assert_int_equal(zkit__sink_batch_reserve(c, 10, &budget), 0);
    zkit__sink_batch_stored(c, 10, 1);
    assert_int_equal(zkit__sink_batch_set_total(c, 9), -1);
    assert_int_equal(errno, ERANGE);
    zkit__sink_batch_destroy(&c);
    zkit__sink_batch_destroy(&b);
}

int main(void)
{
    zsys_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_bare_envelope),
        cmocka_unit_test(test_frame_counts),
        cmocka_unit_test(test_unknown_commands),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_ids_names_texts),
        cmocka_unit_test(test_build_refuses_bad_fields),
        cmocka_unit_test(test_send_without_peer),
        cmocka_unit_test(test_text_and_names),
        cmocka_unit_test(test_sink_batch_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
