/*  envelope_meta.c: the envelope's optional fields (the meta map at index 5),
    their accessors and their encoding (see zkit_envelope.h).

    Known keys are encoded in the order of zkit_meta_key_t (src ttl att topic
    batch reply corr ct hdr), then unknown keys as they were received, so a
    frame written in that order by any encoder survives decode and re-encode
    byte for byte.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <assert.h>
#include <errno.h>
#include <string.h>

#include "core/envelope_internal.h"
#include "core/mpack.h"

/* Wire names, indexed by zkit_meta_key_t. All are fixstr (under 32 bytes). */
static const struct {
    char name[6];
    uint8_t len;
} s_keys[ZKIT_META_COUNT_] = {
    [ZKIT_META_SRC] = {"src", 3},     [ZKIT_META_TTL] = {"ttl", 3},
    [ZKIT_META_ATT] = {"att", 3},     [ZKIT_META_TOPIC] = {"topic", 5},
    [ZKIT_META_BATCH] = {"batch", 5}, [ZKIT_META_REPLY] = {"reply", 5},
    [ZKIT_META_CORR] = {"corr", 4},   [ZKIT_META_CT] = {"ct", 2},
    [ZKIT_META_HDR] = {"hdr", 3},
};

int zkit__meta_key(const uint8_t *name, uint32_t len)
{
    /* Dispatch on length first: most lengths rule out all but one or two. */
    switch (len) {
    case 2: return memcmp(name, "ct", 2) ? -1 : ZKIT_META_CT;
    case 3:
        if (!memcmp(name, "src", 3))
            return ZKIT_META_SRC;
        if (!memcmp(name, "ttl", 3))
            return ZKIT_META_TTL;
        if (!memcmp(name, "att", 3))
            return ZKIT_META_ATT;
        if (!memcmp(name, "hdr", 3))
            return ZKIT_META_HDR;
        return -1;
    case 4: return memcmp(name, "corr", 4) ? -1 : ZKIT_META_CORR;
    case 5:
        if (!memcmp(name, "topic", 5))
            return ZKIT_META_TOPIC;
        if (!memcmp(name, "batch", 5))
            return ZKIT_META_BATCH;
        if (!memcmp(name, "reply", 5))
            return ZKIT_META_REPLY;
        return -1;
    default: return -1;
    }
}

static inline bool s_valid_key(zkit_meta_key_t key)
{
    return (unsigned) key < ZKIT_META_COUNT_;
}

ZKIT_EXPORT bool zkit_envelope_has(const zkit_envelope_t *self, zkit_meta_key_t key)
{
    return s_valid_key(key) && (self->present & ZKIT__BIT(key));
}

ZKIT_EXPORT void zkit_envelope_unset(zkit_envelope_t *self, zkit_meta_key_t key)
{
    if (!s_valid_key(key))
        return;
    self->present &= (uint16_t) ~ZKIT__BIT(key);
    if (key == ZKIT_META_HDR)
        self->hdr_count = 0;
}

/* ---- string, bin-or-str and unsigned fields ------------------------------- */

/* Stores bytes for a text, batch or corr key; an owned slot is reused in place
   when the key is present (its cap is only meaningful then). */
static int s_set_bytes(zkit_envelope_t *self, zkit_meta_key_t key, const void *data, size_t len,
                       bool is_str)
{
    assert(self);
    assert(data || !len);
    uint16_t bit = ZKIT__BIT(key);
    if (zkit__bytes_set(self, &self->text[key], (self->present & bit) != 0, data, len))
        return -1;
    self->present |= bit;
    if (is_str)
        self->is_str |= bit;
    else
        self->is_str &= (uint16_t) ~bit;
    return 0;
}

static const char *s_text(const zkit_envelope_t *self, zkit_meta_key_t key)
{
    /* Decoded text is copied with a NUL, set text is stored with one. */
    return self->present & ZKIT__BIT(key) ? (const char *) self->text[key].ptr : NULL;
}

static int s_set_text(zkit_envelope_t *self, zkit_meta_key_t key, const char *value)
{
    if (!value) {
        zkit_envelope_unset(self, key);
        return 0;
    }
    return s_set_bytes(self, key, value, strlen(value), true);
}

ZKIT_EXPORT const char *zkit_envelope_src(const zkit_envelope_t *self)
{
    return s_text(self, ZKIT_META_SRC);
}

ZKIT_EXPORT int zkit_envelope_set_src(zkit_envelope_t *self, const char *value)
{
    return s_set_text(self, ZKIT_META_SRC, value);
}

ZKIT_EXPORT const char *zkit_envelope_topic(const zkit_envelope_t *self)
{
    return s_text(self, ZKIT_META_TOPIC);
}

ZKIT_EXPORT int zkit_envelope_set_topic(zkit_envelope_t *self, const char *value)
{
    return s_set_text(self, ZKIT_META_TOPIC, value);
}

ZKIT_EXPORT const char *zkit_envelope_reply(const zkit_envelope_t *self)
{
    return s_text(self, ZKIT_META_REPLY);
}

ZKIT_EXPORT int zkit_envelope_set_reply(zkit_envelope_t *self, const char *value)
{
    return s_set_text(self, ZKIT_META_REPLY, value);
}

ZKIT_EXPORT const char *zkit_envelope_ct(const zkit_envelope_t *self)
{
    return s_text(self, ZKIT_META_CT);
}

ZKIT_EXPORT int zkit_envelope_set_ct(zkit_envelope_t *self, const char *value)
{
    return s_set_text(self, ZKIT_META_CT, value);
}

ZKIT_EXPORT uint64_t zkit_envelope_ttl(const zkit_envelope_t *self)
{
    return self->present & ZKIT__BIT(ZKIT_META_TTL) ? self->ttl : 0;
}

ZKIT_EXPORT void zkit_envelope_set_ttl(zkit_envelope_t *self, uint64_t ttl_ms)
{
    self->ttl = ttl_ms;
    self->present |= ZKIT__BIT(ZKIT_META_TTL);
}

ZKIT_EXPORT uint64_t zkit_envelope_att(const zkit_envelope_t *self)
{
    return self->present & ZKIT__BIT(ZKIT_META_ATT) ? self->att : 0;
}

ZKIT_EXPORT void zkit_envelope_set_att(zkit_envelope_t *self, uint64_t attempt)
{
    self->att = attempt;
    self->present |= ZKIT__BIT(ZKIT_META_ATT);
}

ZKIT_EXPORT bool zkit_envelope_expired(const zkit_envelope_t *self, uint64_t now_usec)
{
    if (!(self->present & ZKIT__BIT(ZKIT_META_TTL)))
        return false;
    /* Saturate: a deadline past the end of time never comes. */
    if (self->ttl > UINT64_MAX / 1000)
        return false;
    uint64_t ttl_usec = self->ttl * 1000;
    if (self->ts > UINT64_MAX - ttl_usec)
        return false;
    return now_usec > self->ts + ttl_usec;
}

static int s_get_value(const zkit_envelope_t *self, zkit_meta_key_t key, zkit_value_t *value)
{
    uint16_t bit = ZKIT__BIT(key);
    if (!(self->present & bit)) {
        errno = ENOENT;
        return -1;
    }
    value->type = self->is_str & bit ? ZKIT_VALUE_STR : ZKIT_VALUE_BIN;
    value->data = self->text[key].ptr;
    value->size = self->text[key].len;
    value->i = 0;
    return 0;
}

ZKIT_EXPORT int zkit_envelope_batch(const zkit_envelope_t *self, zkit_value_t *value)
{
    return s_get_value(self, ZKIT_META_BATCH, value);
}

ZKIT_EXPORT int zkit_envelope_set_batch(zkit_envelope_t *self, const void *data, size_t size)
{
    return s_set_bytes(self, ZKIT_META_BATCH, data, size, false);
}

ZKIT_EXPORT int zkit_envelope_set_batch_str(zkit_envelope_t *self, const char *value)
{
    assert(value);
    return s_set_bytes(self, ZKIT_META_BATCH, value, strlen(value), true);
}

ZKIT_EXPORT int zkit_envelope_corr(const zkit_envelope_t *self, zkit_value_t *value)
{
    return s_get_value(self, ZKIT_META_CORR, value);
}

ZKIT_EXPORT int zkit_envelope_set_corr(zkit_envelope_t *self, const void *data, size_t size)
{
    return s_set_bytes(self, ZKIT_META_CORR, data, size, false);
}

ZKIT_EXPORT int zkit_envelope_set_corr_str(zkit_envelope_t *self, const char *value)
{
    assert(value);
    return s_set_bytes(self, ZKIT_META_CORR, value, strlen(value), true);
}

/* ---- headers -------------------------------------------------------------- */

int64_t zkit__header_find(const zkit_envelope_t *self, const void *key, size_t len)
{
    /* Linear: the decoder caps headers at max_headers (64 by default), and a
       scan over a few short keys beats hashing them. */
    for (uint32_t i = 0; i < self->hdr_count; i++) {
        const zkit__bytes_t *k = &self->hdr[i].key;
        if (k->len == len && !memcmp(k->ptr, key, len))
            return i;
    }
    return -1;
}

static void s_fill(const zkit__header_t *h, zkit_value_t *value)
{
    value->type = h->type;
    value->data = h->type == ZKIT_VALUE_INT ? NULL : h->val.ptr;
    value->size = h->type == ZKIT_VALUE_INT ? 0 : h->val.len;
    value->i = h->type == ZKIT_VALUE_INT ? h->i : 0;
}

ZKIT_EXPORT int zkit_envelope_header(const zkit_envelope_t *self, const char *key,
                                     zkit_value_t *value)
{
    assert(key);
    int64_t i = zkit__header_find(self, key, strlen(key));
    if (i < 0) {
        errno = ENOENT;
        return -1;
    }
    if (value)
        s_fill(&self->hdr[i], value);
    return 0;
}

ZKIT_EXPORT size_t zkit_envelope_header_count(const zkit_envelope_t *self)
{
    return self->hdr_count;
}

ZKIT_EXPORT int zkit_envelope_header_at(const zkit_envelope_t *self, size_t index, const char **key,
                                        size_t *key_size, zkit_value_t *value)
{
    if (index >= self->hdr_count) {
        errno = EINVAL;
        return -1;
    }
    const zkit__header_t *h = &self->hdr[index];
    if (key)
        *key = (const char *) h->key.ptr;
    if (key_size)
        *key_size = h->key.len;
    if (value)
        s_fill(h, value);
    return 0;
}

/* Adds or replaces a header. A new entry becomes visible only once both its
   key and value are stored, so a failure changes nothing. */
static int s_set_header(zkit_envelope_t *self, const char *key, zkit_value_type_t type,
                        const void *data, size_t size, int64_t i)
{
    assert(self);
    assert(key);
    assert(data || !size);
    size_t key_len = strlen(key);
    int64_t at = zkit__header_find(self, key, key_len);
    zkit__header_t *h;
    if (at < 0) {
        if (zkit__envelope_grow_headers(self))
            return -1;
        h = &self->hdr[self->hdr_count];
        *h = (zkit__header_t){.type = ZKIT_VALUE_INT};
        if (zkit__bytes_set(self, &h->key, false, key, key_len))
            return -1;
    }
    else
        h = &self->hdr[at];
    /* A zeroed or borrowed val has cap 0, so reuse only ever hits our bytes. */
    if (type != ZKIT_VALUE_INT && zkit__bytes_set(self, &h->val, true, data, size))
        return -1;
    h->type = type;
    h->i = type == ZKIT_VALUE_INT ? i : 0;
    if (at < 0)
        self->hdr_count++;
    self->present |= ZKIT__BIT(ZKIT_META_HDR);
    return 0;
}

ZKIT_EXPORT int zkit_envelope_set_header_str(zkit_envelope_t *self, const char *key,
                                             const char *value)
{
    assert(value);
    return s_set_header(self, key, ZKIT_VALUE_STR, value, strlen(value), 0);
}

ZKIT_EXPORT int zkit_envelope_set_header_bin(zkit_envelope_t *self, const char *key,
                                             const void *data, size_t size)
{
    return s_set_header(self, key, ZKIT_VALUE_BIN, data, size, 0);
}

ZKIT_EXPORT int zkit_envelope_set_header_int(zkit_envelope_t *self, const char *key, int64_t value)
{
    return s_set_header(self, key, ZKIT_VALUE_INT, NULL, 0, value);
}

ZKIT_EXPORT int zkit_envelope_remove_header(zkit_envelope_t *self, const char *key)
{
    assert(key);
    int64_t at = zkit__header_find(self, key, strlen(key));
    if (at < 0) {
        errno = ENOENT;
        return -1;
    }
    memmove(&self->hdr[at], &self->hdr[at + 1],
            (self->hdr_count - (size_t) at - 1) * sizeof(zkit__header_t));
    /* No headers left means no hdr key: an empty map would be noise. */
    if (--self->hdr_count == 0)
        self->present &= (uint16_t) ~ZKIT__BIT(ZKIT_META_HDR);
    return 0;
}

/* ---- unknown keys and extra elements -------------------------------------- */

ZKIT_EXPORT size_t zkit_envelope_unknown_count(const zkit_envelope_t *self)
{
    return self->unknown_count;
}

ZKIT_EXPORT int zkit_envelope_unknown_at(const zkit_envelope_t *self, size_t index,
                                         const char **key, size_t *key_size, const void **raw_value,
                                         size_t *raw_size)
{
    if (index >= self->unknown_count) {
        errno = EINVAL;
        return -1;
    }
    const zkit__unknown_t *u = &self->unknown[index];
    if (key)
        *key = (const char *) u->key + u->key_off;
    if (key_size)
        *key_size = u->key_size - u->key_off;
    if (raw_value)
        *raw_value = u->raw;
    if (raw_size)
        *raw_size = u->raw_size;
    return 0;
}

ZKIT_EXPORT size_t zkit_envelope_extra_count(const zkit_envelope_t *self)
{
    return self->extra_count;
}

ZKIT_EXPORT const void *zkit_envelope_extra_raw(const zkit_envelope_t *self, size_t *size)
{
    if (size)
        *size = self->extra_size;
    return self->extra;
}

/* ---- encoding ------------------------------------------------------------- */

static size_t s_str_size(size_t len)
{
    return mpack_size_str_header(len) + len;
}

static size_t s_headers_size(const zkit_envelope_t *self)
{
    size_t size = mpack_size_container_header(self->hdr_count);
    for (uint32_t i = 0; i < self->hdr_count; i++) {
        const zkit__header_t *h = &self->hdr[i];
        size += s_str_size(h->key.len);
        switch (h->type) {
        case ZKIT_VALUE_STR: size += s_str_size(h->val.len); break;
        case ZKIT_VALUE_BIN: size += mpack_size_bin_header(h->val.len) + h->val.len; break;
        default: size += mpack_size_int(h->i); break;
        }
    }
    return size;
}

static unsigned s_map_count(const zkit_envelope_t *self)
{
    return (unsigned) __builtin_popcount(self->present) + self->unknown_count;
}

size_t zkit__meta_size(const zkit_envelope_t *self)
{
    size_t size = mpack_size_container_header(s_map_count(self));
    /* Bits ascend in key order, which is also the encoding order. */
    for (unsigned bits = self->present; bits; bits &= bits - 1) {
        int key = __builtin_ctz(bits);
        const zkit__bytes_t *t = &self->text[key];
        size += 1 + s_keys[key].len;
        switch (key) {
        case ZKIT_META_TTL: size += mpack_size_uint(self->ttl); break;
        case ZKIT_META_ATT: size += mpack_size_uint(self->att); break;
        case ZKIT_META_HDR: size += s_headers_size(self); break;
        case ZKIT_META_BATCH:
        case ZKIT_META_CORR:
            /* bin or str, as set or received */
            if (self->is_str & ZKIT__BIT(key))
                size += s_str_size(t->len);
            else
                size += mpack_size_bin_header(t->len) + t->len;
            break;
        default: size += s_str_size(t->len); break;
        }
    }
    for (uint32_t i = 0; i < self->unknown_count; i++)
        size += (size_t) self->unknown[i].key_size + self->unknown[i].raw_size;
    return size;
}

static uint8_t *s_write_str(uint8_t *p, const void *data, uint32_t len)
{
    p = mpack_write_str_header(p, len);
    memcpy(p, data, len);
    return p + len;
}

static uint8_t *s_write_bin(uint8_t *p, const void *data, uint32_t len)
{
    p = mpack_write_bin_header(p, len);
    memcpy(p, data, len);
    return p + len;
}

static uint8_t *s_write_headers(const zkit_envelope_t *self, uint8_t *p)
{
    p = mpack_write_map_header(p, self->hdr_count);
    for (uint32_t i = 0; i < self->hdr_count; i++) {
        const zkit__header_t *h = &self->hdr[i];
        p = s_write_str(p, h->key.ptr, h->key.len);
        switch (h->type) {
        case ZKIT_VALUE_STR: p = s_write_str(p, h->val.ptr, h->val.len); break;
        case ZKIT_VALUE_BIN: p = s_write_bin(p, h->val.ptr, h->val.len); break;
        default: p = mpack_write_int(p, h->i); break;
        }
    }
    return p;
}

uint8_t *zkit__meta_write(const zkit_envelope_t *self, uint8_t *p)
{
    p = mpack_write_map_header(p, s_map_count(self));
    for (unsigned bits = self->present; bits; bits &= bits - 1) {
        int key = __builtin_ctz(bits);
        const zkit__bytes_t *t = &self->text[key];
        p = s_write_str(p, s_keys[key].name, s_keys[key].len);
        switch (key) {
        case ZKIT_META_TTL: p = mpack_write_uint(p, self->ttl); break;
        case ZKIT_META_ATT: p = mpack_write_uint(p, self->att); break;
        case ZKIT_META_HDR: p = s_write_headers(self, p); break;
        case ZKIT_META_BATCH:
        case ZKIT_META_CORR:
            if (self->is_str & ZKIT__BIT(key))
                p = s_write_str(p, t->ptr, t->len);
            else
                p = s_write_bin(p, t->ptr, t->len);
            break;
        default: p = s_write_str(p, t->ptr, t->len); break;
        }
    }
    for (uint32_t i = 0; i < self->unknown_count; i++) {
        const zkit__unknown_t *u = &self->unknown[i];
        memcpy(p, u->key, u->key_size);
        p += u->key_size;
        memcpy(p, u->raw, u->raw_size);
        p += u->raw_size;
    }
    return p;
}
