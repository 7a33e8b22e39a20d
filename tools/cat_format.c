/*  cat_format.c: how `zkit cat` prints what it receives (see cat_format.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "cat_format.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mpack.h"

/* ---- buffer ---------------------------------------------------------------- */

void zkit__cat_buf_free(zkit__cat_buf_t *buf)
{
    free(buf->data);
    memset(buf, 0, sizeof *buf);
}

void zkit__cat_buf_clear(zkit__cat_buf_t *buf)
{
    buf->size = 0;
    buf->failed = false;
}

/*  Makes room for extra more bytes plus a NUL. Returns false (and sets failed)
    when memory runs out or the size would overflow.                          */
static bool s_reserve(zkit__cat_buf_t *buf, size_t extra)
{
    if (buf->failed)
        return false;
    if (extra > SIZE_MAX / 2 - buf->size) {
        buf->failed = true;
        return false;
    }
    size_t need = buf->size + extra + 1;
    if (need <= buf->capacity)
        return true;
    size_t capacity = buf->capacity ? buf->capacity : 256;
    while (capacity < need)
        capacity *= 2;
    char *data = realloc(buf->data, capacity);
    if (!data) {
        buf->failed = true;
        return false;
    }
    buf->data = data;
    buf->capacity = capacity;
    return true;
}

void zkit__cat_buf_append(zkit__cat_buf_t *buf, const void *data, size_t size)
{
    if (!s_reserve(buf, size))
        return;
    if (size)
        memcpy(buf->data + buf->size, data, size);
    buf->size += size;
    buf->data[buf->size] = '\0';
}

void zkit__cat_buf_puts(zkit__cat_buf_t *buf, const char *text)
{
    zkit__cat_buf_append(buf, text, strlen(text));
}

void zkit__cat_buf_putc(zkit__cat_buf_t *buf, char c)
{
    zkit__cat_buf_append(buf, &c, 1);
}

void zkit__cat_buf_printf(zkit__cat_buf_t *buf, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    va_list copy;
    va_copy(copy, args);
    int n = vsnprintf(NULL, 0, format, copy);
    va_end(copy);
    if (n < 0)
        buf->failed = true;
    else if (s_reserve(buf, (size_t) n)) {
        vsnprintf(buf->data + buf->size, (size_t) n + 1, format, args);
        buf->size += (size_t) n;
    }
    va_end(args);
}

/* ---- UTF-8, JSON strings, base64, hex -------------------------------------- */

/*  Well-formed sequences, Unicode 15 table 3-7: the second byte's range
    depends on the first, which is what excludes overlong forms (C0, C1,
    E0 80..9F, F0 80..8F), surrogates (ED A0..BF) and code points beyond
    U+10FFFF (F4 90.., F5..FF).                                               */
size_t zkit__cat_utf8_sequence(const uint8_t *p, size_t size)
{
    uint8_t b = p[0];
    if (b < 0x80)
        return 1;
    size_t n;
    uint8_t lo = 0x80, hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf)
        n = 2;
    else if (b >= 0xe0 && b <= 0xef) {
        n = 3;
        if (b == 0xe0)
            lo = 0xa0;
        else if (b == 0xed)
            hi = 0x9f;
    }
    else if (b >= 0xf0 && b <= 0xf4) {
        n = 4;
        if (b == 0xf0)
            lo = 0x90;
        else if (b == 0xf4)
            hi = 0x8f;
    }
    else
        return 0;
    if (size < n)
        return 0;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return n;
}

bool zkit__cat_utf8_valid(const void *data, size_t size)
{
    const uint8_t *p = data;
    size_t i = 0;
    while (i < size) {
        /* Fast path over ASCII. */
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t n = zkit__cat_utf8_sequence(p + i, size - i);
        if (!n)
            return false;
        i += n;
    }
    return true;
}

void zkit__cat_json_string(zkit__cat_buf_t *buf, const void *data, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = data;
    zkit__cat_buf_putc(buf, '"');
    size_t i = 0;
    while (i < size) {
        /* Copy the longest run that needs no escaping in one go. */
        size_t run = i;
        while (run < size && p[run] >= 0x20 && p[run] < 0x7f && p[run] != '"' && p[run] != '\\')
            run++;
        if (run > i) {
            zkit__cat_buf_append(buf, p + i, run - i);
            i = run;
            continue;
        }
        uint8_t c = p[i];
        if (c >= 0x80) {
            size_t n = zkit__cat_utf8_sequence(p + i, size - i);
            if (n) {
                zkit__cat_buf_append(buf, p + i, n);
                i += n;
            }
            else {
                zkit__cat_buf_puts(buf, "\\ufffd");
                i++;
            }
            continue;
        }
        switch (c) {
        case '"': zkit__cat_buf_puts(buf, "\\\""); break;
        case '\\': zkit__cat_buf_puts(buf, "\\\\"); break;
        case '\n': zkit__cat_buf_puts(buf, "\\n"); break;
        case '\r': zkit__cat_buf_puts(buf, "\\r"); break;
        case '\t': zkit__cat_buf_puts(buf, "\\t"); break;
        case '\b': zkit__cat_buf_puts(buf, "\\b"); break;
        case '\f': zkit__cat_buf_puts(buf, "\\f"); break;
        default: {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            zkit__cat_buf_append(buf, esc, sizeof esc);
        }
        }
        i++;
    }
    zkit__cat_buf_putc(buf, '"');
}

void zkit__cat_base64(zkit__cat_buf_t *buf, const void *data, size_t size)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const uint8_t *p = data;
    if (size > (SIZE_MAX / 4) * 3 - 3) {
        buf->failed = true;
        return;
    }
    if (!s_reserve(buf, (size + 2) / 3 * 4))
        return;
    char *out = buf->data + buf->size;
    size_t i = 0;
    for (; i + 3 <= size; i += 3) {
        uint32_t v = (uint32_t) p[i] << 16 | (uint32_t) p[i + 1] << 8 | p[i + 2];
        *out++ = alphabet[v >> 18];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = alphabet[(v >> 6) & 63];
        *out++ = alphabet[v & 63];
    }
    if (size - i == 1) {
        uint32_t v = (uint32_t) p[i] << 16;
        *out++ = alphabet[v >> 18];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = '=';
        *out++ = '=';
    }
    else if (size - i == 2) {
        uint32_t v = (uint32_t) p[i] << 16 | (uint32_t) p[i + 1] << 8;
        *out++ = alphabet[v >> 18];
        *out++ = alphabet[(v >> 12) & 63];
        *out++ = alphabet[(v >> 6) & 63];
        *out++ = '=';
    }
    buf->size = (size_t) (out - buf->data);
    buf->data[buf->size] = '\0';
}

void zkit__cat_hex(zkit__cat_buf_t *buf, const void *data, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = data;
    if (size > SIZE_MAX / 4 || !s_reserve(buf, size * 2)) {
        buf->failed = true;
        return;
    }
    char *out = buf->data + buf->size;
    for (size_t i = 0; i < size; i++) {
        *out++ = hex[p[i] >> 4];
        *out++ = hex[p[i] & 15];
    }
    buf->size += size * 2;
    buf->data[buf->size] = '\0';
}

static void s_json_base64_object(zkit__cat_buf_t *buf, const void *data, size_t size)
{
    zkit__cat_buf_puts(buf, "{\"base64\":\"");
    zkit__cat_base64(buf, data, size);
    zkit__cat_buf_puts(buf, "\"}");
}

void zkit__cat_json_bytes(zkit__cat_buf_t *buf, const void *data, size_t size)
{
    if (zkit__cat_utf8_valid(data, size))
        zkit__cat_json_string(buf, data, size);
    else
        s_json_base64_object(buf, data, size);
}

/* ---- MessagePack as JSON ---------------------------------------------------- */

static void s_json_double(zkit__cat_buf_t *buf, double f)
{
    if (isnan(f) || isinf(f))
        zkit__cat_buf_puts(buf, "null");
    else
        zkit__cat_buf_printf(buf, "%.17g", f);
}

/*  Renders one scalar item (not a container) as JSON.                       */
static void s_json_scalar(zkit__cat_buf_t *buf, const mpack_item_t *it)
{
    switch (it->type) {
    case MPACK_NIL: zkit__cat_buf_puts(buf, "null"); break;
    case MPACK_BOOL: zkit__cat_buf_puts(buf, it->u ? "true" : "false"); break;
    case MPACK_UINT: zkit__cat_buf_printf(buf, "%" PRIu64, it->u); break;
    case MPACK_INT: zkit__cat_buf_printf(buf, "%" PRId64, it->i); break;
    case MPACK_FLOAT: s_json_double(buf, it->f); break;
    case MPACK_STR: zkit__cat_json_bytes(buf, it->data, it->count); break;
    case MPACK_BIN: s_json_base64_object(buf, it->data, it->count); break;
    case MPACK_EXT:
        zkit__cat_buf_printf(buf, "{\"ext\":%d,\"base64\":\"", (int) it->ext);
        zkit__cat_base64(buf, it->data, it->count);
        zkit__cat_buf_puts(buf, "\"}");
        break;
    default: zkit__cat_buf_puts(buf, "null"); break;
    }
}

static int s_json_value(zkit__cat_buf_t *buf, mpack_reader_t *r, unsigned depth,
                        unsigned max_depth);

/*  Renders one map key as a JSON string: a str key as itself (invalid UTF-8
    replaced), anything else as its own JSON text in a string.               */
static int s_json_key(zkit__cat_buf_t *buf, mpack_reader_t *r, unsigned depth, unsigned max_depth)
{
    mpack_reader_t peek = *r;
    mpack_item_t it;
    if (mpack_read(&peek, &it) != MPACK_OK) {
        zkit__cat_buf_puts(buf, "\"\"");
        return -1;
    }
    if (it.type == MPACK_STR) {
        *r = peek;
        zkit__cat_json_string(buf, it.data, it.count);
        return 0;
    }
    zkit__cat_buf_t text = {0};
    int rc = s_json_value(&text, r, depth, max_depth);
    if (text.failed)
        buf->failed = true;
    else
        zkit__cat_json_string(buf, text.data, text.size);
    zkit__cat_buf_free(&text);
    return rc;
}

/*  Renders the next value from r. Recursion is bounded by max_depth, and the
    reader has already checked every container count against the bytes left. */
static int s_json_value(zkit__cat_buf_t *buf, mpack_reader_t *r, unsigned depth, unsigned max_depth)
{
    mpack_item_t it;
    if (mpack_read(r, &it) != MPACK_OK) {
        zkit__cat_buf_puts(buf, "null");
        return -1;
    }
    if (it.type != MPACK_ARRAY && it.type != MPACK_MAP) {
        s_json_scalar(buf, &it);
        return 0;
    }
    bool is_map = it.type == MPACK_MAP;
    if (it.count > 0 && depth + 1 > max_depth) {
        zkit__cat_buf_puts(buf, "\"...\"");
        return mpack_skip(r, (uint64_t) it.count * (is_map ? 2 : 1), 63) == MPACK_OK ? 0 : -1;
    }
    zkit__cat_buf_putc(buf, is_map ? '{' : '[');
    for (uint32_t i = 0; i < it.count; i++) {
        if (i)
            zkit__cat_buf_putc(buf, ',');
        if (is_map) {
            if (s_json_key(buf, r, depth + 1, max_depth) < 0) {
                zkit__cat_buf_puts(buf, ":null}");
                return -1;
            }
            zkit__cat_buf_putc(buf, ':');
        }
        if (s_json_value(buf, r, depth + 1, max_depth) < 0) {
            zkit__cat_buf_putc(buf, is_map ? '}' : ']');
            return -1;
        }
    }
    zkit__cat_buf_putc(buf, is_map ? '}' : ']');
    return 0;
}

int zkit__cat_json_msgpack(zkit__cat_buf_t *buf, const void *data, size_t size, size_t count,
                           unsigned max_depth)
{
    mpack_reader_t r;
    mpack_reader_init(&r, data, size);
    for (size_t i = 0; i < count; i++) {
        if (i)
            zkit__cat_buf_putc(buf, ',');
        if (s_json_value(buf, &r, 0, max_depth) < 0)
            return -1;
    }
    return 0;
}

/* ---- envelopes --------------------------------------------------------------- */

static void s_json_key_literal(zkit__cat_buf_t *buf, const char *key)
{
    zkit__cat_buf_printf(buf, ",\"%s\":", key);
}

static void s_json_value_view(zkit__cat_buf_t *buf, const zkit_value_t *value)
{
    switch (value->type) {
    case ZKIT_VALUE_STR: zkit__cat_json_bytes(buf, value->data, value->size); break;
    case ZKIT_VALUE_BIN: s_json_base64_object(buf, value->data, value->size); break;
    case ZKIT_VALUE_INT: zkit__cat_buf_printf(buf, "%" PRId64, value->i); break;
    default: zkit__cat_buf_puts(buf, "null"); break;
    }
}

static void s_json_meta_string(zkit__cat_buf_t *buf, const char *key, const char *value)
{
    if (!value)
        return;
    s_json_key_literal(buf, key);
    zkit__cat_json_bytes(buf, value, strlen(value));
}

void zkit__cat_json_envelope(zkit__cat_buf_t *buf, const zkit_envelope_t *env,
                             const zkit__cat_context_t *context)
{
    char id[33];
    zkit_id_to_hex(zkit_envelope_id(env), id);
    zkit__cat_buf_printf(buf, "{\"v\":%u,\"id\":\"%s\",\"seq\":%" PRIu64 ",\"ts\":%" PRIu64,
                         zkit_envelope_version(env), id, zkit_envelope_seq(env),
                         zkit_envelope_ts(env));

    zkit_value_t value;
    if (zkit_envelope_has(env, ZKIT_META_SRC))
        s_json_meta_string(buf, "src", zkit_envelope_src(env));
    if (zkit_envelope_has(env, ZKIT_META_TTL))
        zkit__cat_buf_printf(buf, ",\"ttl\":%" PRIu64, zkit_envelope_ttl(env));
    if (zkit_envelope_has(env, ZKIT_META_ATT))
        zkit__cat_buf_printf(buf, ",\"att\":%" PRIu64, zkit_envelope_att(env));
    if (zkit_envelope_has(env, ZKIT_META_TOPIC))
        s_json_meta_string(buf, "topic", zkit_envelope_topic(env));
    if (zkit_envelope_batch(env, &value) == 0) {
        s_json_key_literal(buf, "batch");
        s_json_value_view(buf, &value);
    }
    if (zkit_envelope_has(env, ZKIT_META_REPLY))
        s_json_meta_string(buf, "reply", zkit_envelope_reply(env));
    if (zkit_envelope_corr(env, &value) == 0) {
        s_json_key_literal(buf, "corr");
        s_json_value_view(buf, &value);
    }
    if (zkit_envelope_has(env, ZKIT_META_CT))
        s_json_meta_string(buf, "ct", zkit_envelope_ct(env));
    if (zkit_envelope_has(env, ZKIT_META_HDR)) {
        s_json_key_literal(buf, "hdr");
        zkit__cat_buf_putc(buf, '{');
        size_t count = zkit_envelope_header_count(env);
        for (size_t i = 0; i < count; i++) {
            const char *key;
            size_t key_size;
            if (zkit_envelope_header_at(env, i, &key, &key_size, &value) < 0)
                break;
            if (i)
                zkit__cat_buf_putc(buf, ',');
            zkit__cat_json_string(buf, key, key_size);
            zkit__cat_buf_putc(buf, ':');
            s_json_value_view(buf, &value);
        }
        zkit__cat_buf_putc(buf, '}');
    }
    size_t unknown = zkit_envelope_unknown_count(env);
    if (unknown) {
        s_json_key_literal(buf, "unknown");
        zkit__cat_buf_putc(buf, '{');
        for (size_t i = 0; i < unknown; i++) {
            const char *key;
            size_t key_size;
            const void *raw;
            size_t raw_size;
            if (zkit_envelope_unknown_at(env, i, &key, &key_size, &raw, &raw_size) < 0)
                break;
            if (i)
                zkit__cat_buf_putc(buf, ',');
            zkit__cat_json_string(buf, key, key_size);
            zkit__cat_buf_putc(buf, ':');
            zkit__cat_json_msgpack(buf, raw, raw_size, 1, 16);
        }
        zkit__cat_buf_putc(buf, '}');
    }
    size_t extra = zkit_envelope_extra_count(env);
    if (extra) {
        size_t raw_size;
        const void *raw = zkit_envelope_extra_raw(env, &raw_size);
        s_json_key_literal(buf, "extra");
        zkit__cat_buf_putc(buf, '[');
        zkit__cat_json_msgpack(buf, raw, raw_size, extra, 16);
        zkit__cat_buf_putc(buf, ']');
    }
    if (context && context->frame_topic) {
        s_json_key_literal(buf, "frame_topic");
        zkit__cat_json_bytes(buf, context->frame_topic, context->frame_topic_size);
    }
    if (context && context->peer) {
        s_json_key_literal(buf, "peer");
        zkit__cat_buf_putc(buf, '"');
        zkit__cat_hex(buf, context->peer, context->peer_size);
        zkit__cat_buf_putc(buf, '"');
    }
    size_t body_size;
    const void *body = zkit_envelope_body(env, &body_size);
    if (zkit__cat_utf8_valid(body, body_size)) {
        s_json_key_literal(buf, "body");
        zkit__cat_json_string(buf, body, body_size);
    }
    else {
        s_json_key_literal(buf, "body_base64");
        zkit__cat_buf_putc(buf, '"');
        zkit__cat_base64(buf, body, body_size);
        zkit__cat_buf_putc(buf, '"');
    }
    zkit__cat_buf_putc(buf, '}');
}

/* ---- whole records ------------------------------------------------------------ */

void zkit__cat_format_envelope(zkit__cat_buf_t *buf, zkit__cat_format_t format,
                               const zkit_envelope_t *env, const void *frame, size_t frame_size,
                               const zkit__cat_context_t *context)
{
    size_t size;
    const void *body;
    switch (format) {
    case ZKIT__CAT_FORMAT_JSON:
        zkit__cat_json_envelope(buf, env, context);
        zkit__cat_buf_putc(buf, '\n');
        break;
    case ZKIT__CAT_FORMAT_RAW:
        body = zkit_envelope_body(env, &size);
        zkit__cat_buf_append(buf, body, size);
        zkit__cat_buf_putc(buf, '\n');
        break;
    case ZKIT__CAT_FORMAT_HEX:
        zkit__cat_hex(buf, frame, frame_size);
        zkit__cat_buf_putc(buf, '\n');
        break;
    case ZKIT__CAT_FORMAT_MSGPACK: zkit__cat_buf_append(buf, frame, frame_size); break;
    }
}

void zkit__cat_format_frames(zkit__cat_buf_t *buf, zkit__cat_format_t format,
                             const zkit__cat_frame_t *frames, size_t count,
                             const zkit__cat_context_t *context)
{
    switch (format) {
    case ZKIT__CAT_FORMAT_JSON:
        zkit__cat_buf_puts(buf, "{\"frames\":[");
        for (size_t i = 0; i < count; i++) {
            if (i)
                zkit__cat_buf_putc(buf, ',');
            zkit__cat_json_bytes(buf, frames[i].data, frames[i].size);
        }
        zkit__cat_buf_putc(buf, ']');
        if (context && context->peer) {
            zkit__cat_buf_puts(buf, ",\"peer\":\"");
            zkit__cat_hex(buf, context->peer, context->peer_size);
            zkit__cat_buf_putc(buf, '"');
        }
        zkit__cat_buf_puts(buf, "}\n");
        break;
    case ZKIT__CAT_FORMAT_RAW:
        for (size_t i = 0; i < count; i++) {
            zkit__cat_buf_append(buf, frames[i].data, frames[i].size);
            zkit__cat_buf_putc(buf, '\n');
        }
        break;
    case ZKIT__CAT_FORMAT_HEX:
        for (size_t i = 0; i < count; i++) {
            if (i)
                zkit__cat_buf_putc(buf, ' ');
            zkit__cat_hex(buf, frames[i].data, frames[i].size);
        }
        zkit__cat_buf_putc(buf, '\n');
        break;
    case ZKIT__CAT_FORMAT_MSGPACK:
        for (size_t i = 0; i < count; i++)
            zkit__cat_buf_append(buf, frames[i].data, frames[i].size);
        break;
    }
}
