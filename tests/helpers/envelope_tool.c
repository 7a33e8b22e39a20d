/*  envelope_tool: the C side of the envelope interop test
    (tests/integration/test_envelope_interop.py), which checks the codec
    against an independent MessagePack implementation (Python's msgpack).

    envelope_tool encode     writes a fixed set of envelopes covering every
                             field and meta key to stdout
    envelope_tool decode     reads frames from stdin, prints one JSON line each
                             (or {"error": zkit_strerror text, "detail": ...})
    envelope_tool reencode   reads frames, decodes and re-encodes each; a frame
                             that fails to decode comes out empty

    Frames on stdin and stdout are length-prefixed: 4 bytes big-endian, then
    the frame.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zkit_envelope.h"

/* ---- framing ------------------------------------------------------------- */

static int s_write_frame(const void *data, size_t size)
{
    uint8_t prefix[4] = {(uint8_t) (size >> 24), (uint8_t) (size >> 16), (uint8_t) (size >> 8),
                         (uint8_t) size};
    if (fwrite(prefix, 1, 4, stdout) != 4 || (size && fwrite(data, 1, size, stdout) != size))
        return -1;
    return 0;
}

/* Reads one frame into *buf (grown as needed). Returns 1, 0 at a clean end of
   input, or -1 on a torn frame. */
static int s_read_frame(uint8_t **buf, size_t *cap, size_t *size)
{
    uint8_t prefix[4];
    size_t got = fread(prefix, 1, 4, stdin);
    if (got == 0)
        return 0;
    if (got != 4)
        return -1;
    *size =
        (size_t) prefix[0] << 24 | (size_t) prefix[1] << 16 | (size_t) prefix[2] << 8 | prefix[3];
    if (*size > *cap) {
        uint8_t *grown = realloc(*buf, *size);
        if (!grown)
            return -1;
        *buf = grown;
        *cap = *size;
    }
    return fread(*buf, 1, *size, stdin) == *size ? 1 : -1;
}

static int s_emit(const zkit_envelope_t *env)
{
    zmq_msg_t msg;
    if (zkit_envelope_encode(env, &msg))
        return -1;
    int rc = s_write_frame(zmq_msg_data(&msg), zmq_msg_size(&msg));
    zmq_msg_close(&msg);
    return rc;
}

/* ---- encode: the fixed cases the Python side expects --------------------- */

static void s_fixed(zkit_envelope_t *env, uint8_t id_byte, uint64_t seq, uint64_t ts)
{
    uint8_t id[ZKIT_ID_SIZE];
    for (int i = 0; i < ZKIT_ID_SIZE; i++)
        id[i] = (uint8_t) (id_byte + i);
    zkit_envelope_set_id(env, id);
    zkit_envelope_set_seq(env, seq);
    zkit_envelope_set_ts(env, ts);
}

static int s_encode_cases(void)
{
    zkit_envelope_t *env = zkit_envelope_new();
    if (!env)
        return -1;
    int rc = 0;
    static uint8_t bytes[70000];
    for (size_t i = 0; i < sizeof bytes; i++)
        bytes[i] = (uint8_t) (i % 251);

    /* 1: minimal */
    s_fixed(env, 0x00, 1, 1700000000000000u);
    zkit_envelope_set_body_ref(env, "hello", 5);
    rc |= s_emit(env);

    /* 2: all zero, empty body */
    zkit_envelope_reset(env);
    s_fixed(env, 0xf0, 0, 0);
    rc |= s_emit(env);

    /* 3: integer edges */
    zkit_envelope_reset(env);
    s_fixed(env, 0x10, UINT64_MAX, (uint64_t) UINT32_MAX + 1);
    zkit_envelope_set_body_ref(env, "\0", 1);
    rc |= s_emit(env);

    /* 4: every meta key, batch as bin, corr as str, headers of every type */
    zkit_envelope_reset(env);
    s_fixed(env, 0x20, 128, 65536);
    zkit_envelope_set_body_ref(env, bytes, 256);
    rc |= zkit_envelope_set_src(env, "sensor-a");
    zkit_envelope_set_ttl(env, 60000);
    zkit_envelope_set_att(env, 1);
    rc |= zkit_envelope_set_topic(env, "weather.eu");
    rc |= zkit_envelope_set_batch(env, "\xde\xad\xbe\xef", 4);
    rc |= zkit_envelope_set_reply(env, "tcp://127.0.0.1:5555");
    rc |= zkit_envelope_set_corr_str(env, "req-42");
    rc |= zkit_envelope_set_ct(env, "application/json");
    rc |= zkit_envelope_set_header_str(env, "user", "alice");
    rc |= zkit_envelope_set_header_bin(env, "sig", "\x01\x02", 2);
    rc |= zkit_envelope_set_header_int(env, "neg", -129);
    rc |= zkit_envelope_set_header_int(env, "big", INT64_MAX);
    rc |= zkit_envelope_set_header_int(env, "min", INT64_MIN);
    rc |= s_emit(env);

    /* 5: batch as str, corr as bin, a non-ASCII src */
    zkit_envelope_reset(env);
    s_fixed(env, 0x30, 2, 3);
    rc |= zkit_envelope_set_src(env, "\xc3\xbc-unicode");
    rc |= zkit_envelope_set_batch_str(env, "batch-7");
    rc |= zkit_envelope_set_corr(env, "\x00\x01", 2);
    rc |= s_emit(env);

    /* 6: large body (bin32) and a str16 topic */
    zkit_envelope_reset(env);
    s_fixed(env, 0x40, 65535, UINT32_MAX);
    zkit_envelope_set_body_ref(env, bytes, sizeof bytes);
    char topic[301];
    memset(topic, 'x', 300);
    topic[300] = '\0';
    rc |= zkit_envelope_set_topic(env, topic);
    rc |= s_emit(env);

    /* 7: unsigned meta at the edges */
    zkit_envelope_reset(env);
    s_fixed(env, 0x50, 255, 256);
    zkit_envelope_set_ttl(env, UINT64_MAX);
    zkit_envelope_set_att(env, 0);
    rc |= s_emit(env);

    zkit_envelope_destroy(&env);
    return rc ? -1 : 0;
}

/* ---- decode: one canonical JSON line per frame ---------------------------- */

static void s_hex(const void *data, size_t size)
{
    const uint8_t *p = data;
    putchar('"');
    for (size_t i = 0; i < size; i++)
        printf("%02x", p[i]);
    putchar('"');
}

/* A JSON string: the bytes as they are (UTF-8 assumed), with quotes,
   backslashes and control characters escaped. */
static void s_json_str(const void *data, size_t size)
{
    const uint8_t *p = data;
    putchar('"');
    for (size_t i = 0; i < size; i++) {
        if (p[i] == '"' || p[i] == '\\')
            printf("\\%c", p[i]);
        else if (p[i] < 0x20)
            printf("\\u%04x", p[i]);
        else
            putchar(p[i]);
    }
    putchar('"');
}

static void s_json_value(const zkit_value_t *v)
{
    if (v->type == ZKIT_VALUE_STR) {
        printf("{\"str\":");
        s_json_str(v->data, v->size);
    }
    else if (v->type == ZKIT_VALUE_BIN) {
        printf("{\"bin\":");
        s_hex(v->data, v->size);
    }
    else
        printf("{\"int\":%" PRId64, v->i);
    putchar('}');
}

static void s_print(const zkit_envelope_t *env)
{
    size_t size;
    const void *body = zkit_envelope_body(env, &size);
    printf("{\"v\":%u,\"id\":", zkit_envelope_version(env));
    s_hex(zkit_envelope_id(env), ZKIT_ID_SIZE);
    printf(",\"seq\":%" PRIu64 ",\"ts\":%" PRIu64 ",\"body\":", zkit_envelope_seq(env),
           zkit_envelope_ts(env));
    s_hex(body, size);
    printf(",\"meta\":{");
    const char *sep = "";
    static const struct {
        zkit_meta_key_t key;
        const char *name;
        const char *(*get)(const zkit_envelope_t *);
    } texts[] = {{ZKIT_META_SRC, "src", zkit_envelope_src},
                 {ZKIT_META_TOPIC, "topic", zkit_envelope_topic},
                 {ZKIT_META_REPLY, "reply", zkit_envelope_reply},
                 {ZKIT_META_CT, "ct", zkit_envelope_ct}};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        const char *text = texts[i].get(env);
        if (text) {
            printf("%s\"%s\":", sep, texts[i].name);
            s_json_str(text, strlen(text));
            sep = ",";
        }
    }
    if (zkit_envelope_has(env, ZKIT_META_TTL)) {
        printf("%s\"ttl\":%" PRIu64, sep, zkit_envelope_ttl(env));
        sep = ",";
    }
    if (zkit_envelope_has(env, ZKIT_META_ATT)) {
        printf("%s\"att\":%" PRIu64, sep, zkit_envelope_att(env));
        sep = ",";
    }
    zkit_value_t v;
    if (zkit_envelope_batch(env, &v) == 0) {
        printf("%s\"batch\":", sep);
        s_json_value(&v);
        sep = ",";
    }
    if (zkit_envelope_corr(env, &v) == 0) {
        printf("%s\"corr\":", sep);
        s_json_value(&v);
        sep = ",";
    }
    if (zkit_envelope_has(env, ZKIT_META_HDR)) {
        printf("%s\"hdr\":[", sep);
        for (size_t i = 0; i < zkit_envelope_header_count(env); i++) {
            const char *key;
            size_t key_size;
            zkit_envelope_header_at(env, i, &key, &key_size, &v);
            printf("%s[", i ? "," : "");
            s_json_str(key, key_size);
            putchar(',');
            s_json_value(&v);
            putchar(']');
        }
        putchar(']');
    }
    printf("},\"unknown\":[");
    for (size_t i = 0; i < zkit_envelope_unknown_count(env); i++) {
        const char *key;
        size_t key_size, raw_size;
        const void *raw;
        zkit_envelope_unknown_at(env, i, &key, &key_size, &raw, &raw_size);
        printf("%s[", i ? "," : "");
        s_json_str(key, key_size);
        putchar(',');
        s_hex(raw, raw_size);
        putchar(']');
    }
    size_t extra_size;
    const void *extra = zkit_envelope_extra_raw(env, &extra_size);
    printf("],\"extra\":{\"count\":%zu,\"raw\":", zkit_envelope_extra_count(env));
    s_hex(extra, extra_size);
    printf("}}\n");
}

static int s_filter(bool reencode)
{
    zkit_envelope_t *env = zkit_envelope_new();
    if (!env)
        return -1;
    uint8_t *buf = NULL;
    size_t cap = 0, size = 0;
    int rc;
    while ((rc = s_read_frame(&buf, &cap, &size)) == 1) {
        int ok = zkit_envelope_decode_bytes(env, buf, size);
        if (reencode) {
            if (ok == 0 ? s_emit(env) : s_write_frame(NULL, 0)) {
                rc = -1;
                break;
            }
        }
        else if (ok == 0)
            s_print(env);
        else {
            int err = errno;
            printf("{\"error\":");
            s_json_str(zkit_strerror(err), strlen(zkit_strerror(err)));
            printf(",\"detail\":");
            const char *detail = zkit_envelope_error_detail(env);
            s_json_str(detail, strlen(detail));
            printf("}\n");
        }
    }
    free(buf);
    zkit_envelope_destroy(&env);
    return rc;
}

int main(int argc, char **argv)
{
    const char *mode = argc == 2 ? argv[1] : "";
    int rc;
    if (!strcmp(mode, "encode"))
        rc = s_encode_cases();
    else if (!strcmp(mode, "decode"))
        rc = s_filter(false);
    else if (!strcmp(mode, "reencode"))
        rc = s_filter(true);
    else {
        fprintf(stderr, "usage: envelope_tool encode|decode|reencode\n");
        return 2;
    }
    if (fflush(stdout) || rc) {
        fprintf(stderr, "envelope_tool %s: failed (%s)\n", mode, strerror(errno));
        return 1;
    }
    return 0;
}
