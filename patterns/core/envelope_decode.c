/*  envelope_decode.c: the envelope decoder (see zkit_envelope.h and
    docs/envelope.md).

    The input is hostile until proven otherwise. mpack_read checks that the
    bytes a header announces are present before anything trusts a length or
    count, so a short frame claiming a huge array or map fails at once with
    ZKIT_ETRUNCATED. Nothing here allocates from a declared count: entry tables
    grow one entry at a time as entries are actually read. The body and the
    bin-or-str values are not copied; only the meta strings that getters hand
    out NUL-terminated are copied into the arena.

    Every failure sets a static detail naming the field. The caller resets the
    envelope, so a half-filled one is never seen.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <errno.h>
#include <string.h>

#include "core/envelope_internal.h"
#include "core/mpack.h"

static int s_fail(zkit_envelope_t *self, int code, const char *detail)
{
    self->error = detail;
    errno = code;
    return -1;
}

/* A reader error where a value of some type was expected: the input ends
   (truncated) or holds 0xc1, which is no type at all (wrong type). */
static int s_read_fail(zkit_envelope_t *self, mpack_err_t rc, const char *truncated,
                       const char *wrong_type)
{
    if (rc == MPACK_ERR_TRUNCATED)
        return s_fail(self, ZKIT_ETRUNCATED, truncated);
    return s_fail(self, ZKIT_ETYPE, wrong_type);
}

/* What to say when skipping an unknown value or extra elements fails. */
typedef struct {
    const char *truncated;
    const char *invalid;
    const char *depth;
} s_skip_detail_t;

static const s_skip_detail_t s_unknown_skip = {
    "meta: input ends inside the value of an unknown key",
    "meta: the value of an unknown key holds the invalid byte 0xc1",
    "meta: the value of an unknown key nests deeper than max_depth",
};

static const s_skip_detail_t s_extra_skip = {
    "envelope: input ends inside an element past index 5",
    "envelope: an element past index 5 holds the invalid byte 0xc1",
    "envelope: an element past index 5 nests deeper than max_depth",
};

static int s_skip(zkit_envelope_t *self, mpack_reader_t *r, uint64_t items,
                  const s_skip_detail_t *detail)
{
    mpack_err_t rc = mpack_skip(r, items, self->limits.max_depth);
    switch (rc) {
    case MPACK_OK: return 0;
    case MPACK_ERR_TRUNCATED: return s_fail(self, ZKIT_ETRUNCATED, detail->truncated);
    case MPACK_ERR_DEPTH: return s_fail(self, ZKIT_ELIMIT, detail->depth);
    default: return s_fail(self, ZKIT_ETYPE, detail->invalid);
    }
}

/* ---- meta ----------------------------------------------------------------- */

typedef struct {
    const char *type;
    const char *truncated;
    const char *repeated;
    const char *too_long;
} s_key_detail_t;

#define S_KEY_DETAIL(name, expected)                                                               \
    {                                                                                              \
        "meta key '" name "': expected " expected,                                                 \
            "meta key '" name "': input ends inside the value",                                    \
            "meta key '" name "': appears twice", "meta key '" name "': longer than max_string"    \
    }

static const s_key_detail_t s_key_details[ZKIT_META_COUNT_] = {
    [ZKIT_META_SRC] = S_KEY_DETAIL("src", "a str"),
    [ZKIT_META_TTL] = S_KEY_DETAIL("ttl", "an unsigned integer"),
    [ZKIT_META_ATT] = S_KEY_DETAIL("att", "an unsigned integer"),
    [ZKIT_META_TOPIC] = S_KEY_DETAIL("topic", "a str"),
    [ZKIT_META_BATCH] = S_KEY_DETAIL("batch", "a bin or a str"),
    [ZKIT_META_REPLY] = S_KEY_DETAIL("reply", "a str"),
    [ZKIT_META_CORR] = S_KEY_DETAIL("corr", "a bin or a str"),
    [ZKIT_META_CT] = S_KEY_DETAIL("ct", "a str"),
    [ZKIT_META_HDR] = S_KEY_DETAIL("hdr", "a map"),
};

static const char s_oom[] = "out of memory while decoding meta";

static int s_parse_headers(zkit_envelope_t *self, mpack_reader_t *r, uint32_t count)
{
    if (count > self->limits.max_headers)
        return s_fail(self, ZKIT_ELIMIT, "meta key 'hdr': more entries than max_headers");
    const uint32_t max_string = self->limits.max_string;
    mpack_item_t it;
    mpack_err_t rc;
    for (uint32_t n = 0; n < count; n++) {
        rc = mpack_read(r, &it);
        if (rc == MPACK_ERR_TRUNCATED)
            return s_fail(self, ZKIT_ETRUNCATED, "meta key 'hdr': input ends inside a header key");
        if (rc != MPACK_OK || it.type != MPACK_STR)
            return s_fail(self, ZKIT_EMETAKEY, "meta key 'hdr': a header key is not a str");
        if (it.count > max_string)
            return s_fail(self, ZKIT_ELIMIT,
                          "meta key 'hdr': a header key is longer than max_string");
        if (zkit__header_find(self, it.data, it.count) >= 0)
            return s_fail(self, ZKIT_EDUPKEY, "meta key 'hdr': a header key appears twice");
        if (zkit__envelope_grow_headers(self))
            return s_fail(self, ENOMEM, s_oom);
        zkit__header_t *h = &self->hdr[self->hdr_count];
        h->key = (zkit__bytes_t){it.data, it.count, 0};

        static const char wrong_value[] =
            "meta key 'hdr': a header value is not a str, a bin or an integer within int64";
        if ((rc = mpack_read(r, &it)))
            return s_read_fail(self, rc, "meta key 'hdr': input ends inside a header value",
                               wrong_value);
        switch (it.type) {
        case MPACK_STR:
        case MPACK_BIN:
            if (it.count > max_string)
                return s_fail(self, ZKIT_ELIMIT,
                              "meta key 'hdr': a header value is longer than max_string");
            h->type = it.type == MPACK_STR ? ZKIT_VALUE_STR : ZKIT_VALUE_BIN;
            h->val = (zkit__bytes_t){it.data, it.count, 0};
            h->i = 0;
            break;
        case MPACK_UINT:
            if (it.u > INT64_MAX)
                return s_fail(self, ZKIT_ETYPE, wrong_value);
            h->type = ZKIT_VALUE_INT;
            h->val = (zkit__bytes_t){NULL, 0, 0};
            h->i = (int64_t) it.u;
            break;
        case MPACK_INT:
            h->type = ZKIT_VALUE_INT;
            h->val = (zkit__bytes_t){NULL, 0, 0};
            h->i = it.i;
            break;
        default: return s_fail(self, ZKIT_ETYPE, wrong_value);
        }
        self->hdr_count++;
    }
    return 0;
}

static int s_parse_known(zkit_envelope_t *self, mpack_reader_t *r, zkit_meta_key_t key)
{
    const s_key_detail_t *d = &s_key_details[key];
    mpack_item_t it;
    mpack_err_t rc = mpack_read(r, &it);
    if (rc)
        return s_read_fail(self, rc, d->truncated, d->type);
    switch (key) {
    case ZKIT_META_TTL:
    case ZKIT_META_ATT:
        if (it.type != MPACK_UINT)
            return s_fail(self, ZKIT_ETYPE, d->type);
        *(key == ZKIT_META_TTL ? &self->ttl : &self->att) = it.u;
        return 0;
    case ZKIT_META_HDR:
        if (it.type != MPACK_MAP)
            return s_fail(self, ZKIT_ETYPE, d->type);
        return s_parse_headers(self, r, it.count);
    case ZKIT_META_BATCH:
    case ZKIT_META_CORR:
        if (it.type != MPACK_STR && it.type != MPACK_BIN)
            return s_fail(self, ZKIT_ETYPE, d->type);
        if (it.count > self->limits.max_string)
            return s_fail(self, ZKIT_ELIMIT, d->too_long);
        /* Borrowed from the frame: zkit_value_t is not NUL-terminated. */
        self->text[key] = (zkit__bytes_t){it.data, it.count, 0};
        if (it.type == MPACK_STR)
            self->is_str |= ZKIT__BIT(key);
        return 0;
    default: /* src, topic, reply, ct: copied so the getters can NUL-terminate */
        if (it.type != MPACK_STR)
            return s_fail(self, ZKIT_ETYPE, d->type);
        if (it.count > self->limits.max_string)
            return s_fail(self, ZKIT_ELIMIT, d->too_long);
        if (zkit__bytes_set(self, &self->text[key], false, it.data, it.count))
            return s_fail(self, ENOMEM, s_oom);
        return 0;
    }
}

/* An unknown key: its value is skipped (depth-limited) and kept raw, with the
   key's own bytes, so a re-encode writes both back unchanged. */
static int s_parse_unknown(zkit_envelope_t *self, mpack_reader_t *r, const uint8_t *key_start,
                           const mpack_item_t *key)
{
    for (uint32_t i = 0; i < self->unknown_count; i++) {
        const zkit__unknown_t *u = &self->unknown[i];
        if (u->key_size - u->key_off == key->count &&
            !memcmp(u->key + u->key_off, key->data, key->count))
            return s_fail(self, ZKIT_EDUPKEY, "meta: an unknown key appears twice");
    }
    const uint8_t *raw = r->p;
    if (s_skip(self, r, 1, &s_unknown_skip))
        return -1;
    if (zkit__envelope_grow_unknown(self))
        return s_fail(self, ENOMEM, s_oom);
    self->unknown[self->unknown_count++] = (zkit__unknown_t){
        .key = key_start,
        .raw = raw,
        .key_size = (uint32_t) (raw - key_start),
        .key_off = (uint32_t) (key->data - key_start),
        .raw_size = (uint32_t) (r->p - raw),
    };
    return 0;
}

static int s_parse_meta(zkit_envelope_t *self, mpack_reader_t *r)
{
    mpack_item_t it;
    mpack_err_t rc = mpack_read(r, &it);
    if (rc)
        return s_read_fail(self, rc, "meta: input ends inside the map header",
                           "meta: expected a map");
    if (it.type != MPACK_MAP)
        return s_fail(self, ZKIT_ETYPE, "meta: expected a map");
    if (it.count > self->limits.max_meta_entries)
        return s_fail(self, ZKIT_ELIMIT, "meta: more entries than max_meta_entries");
    for (uint32_t n = it.count; n > 0; n--) {
        const uint8_t *key_start = r->p;
        rc = mpack_read(r, &it);
        if (rc == MPACK_ERR_TRUNCATED)
            return s_fail(self, ZKIT_ETRUNCATED, "meta: input ends inside a key");
        if (rc != MPACK_OK || it.type != MPACK_STR)
            return s_fail(self, ZKIT_EMETAKEY, "meta: a key is not a str");
        int key = zkit__meta_key(it.data, it.count);
        if (key < 0) {
            /* Known names are short and fixed; only unknown ones can be long. */
            if (it.count > self->limits.max_string)
                return s_fail(self, ZKIT_ELIMIT, "meta: a key is longer than max_string");
            if (s_parse_unknown(self, r, key_start, &it))
                return -1;
            continue;
        }
        if (self->present & ZKIT__BIT(key))
            return s_fail(self, ZKIT_EDUPKEY, s_key_details[key].repeated);
        if (s_parse_known(self, r, (zkit_meta_key_t) key))
            return -1;
        self->present |= ZKIT__BIT(key);
    }
    return 0;
}

/* ---- the envelope --------------------------------------------------------- */

int zkit__envelope_parse(zkit_envelope_t *self, const uint8_t *data, size_t size)
{
    mpack_reader_t r;
    mpack_item_t it;
    mpack_err_t rc;
    mpack_reader_init(&r, data, size);
    zkit__envelope_clear_meta(self);

    /* Decide "not an array" on the first byte alone: whatever follows it is
       not an envelope, truncated or not. */
    uint8_t first = data[0];
    if ((first & 0xf0) != 0x90 && first != 0xdc && first != 0xdd)
        return s_fail(self, ZKIT_ENOTARRAY, "envelope: the frame is not a MessagePack array");
    if ((rc = mpack_read(&r, &it)))
        return s_fail(self, ZKIT_ETRUNCATED,
                      "envelope: the frame is shorter than the elements the array declares");
    const uint32_t count = it.count;
    if (count == 0)
        return s_fail(self, ZKIT_EFIELDS, "envelope: the array is empty");

    /* The version comes before the element count check: a newer version may
       have another layout, and "newer version" is the useful answer then. */
    static const char version_type[] = "version: expected a positive integer";
    if ((rc = mpack_read(&r, &it)))
        return s_read_fail(self, rc, "version: input ends inside the value", version_type);
    if (it.type != MPACK_UINT)
        return s_fail(self, ZKIT_ETYPE, version_type);
    if (it.u != ZKIT_ENVELOPE_VERSION)
        return s_fail(self, ZKIT_EVERSION,
                      it.u == 0 ? "version: 0 is not a version"
                                : "version: newer than this decoder supports (1)");
    if (count < 5)
        return s_fail(self, ZKIT_EFIELDS,
                      "envelope: fewer than 5 elements (version, id, seq, ts, body)");

    static const char id_type[] = "id: expected a bin";
    if ((rc = mpack_read(&r, &it)))
        return s_read_fail(self, rc, "id: input ends inside the value", id_type);
    if (it.type != MPACK_BIN)
        return s_fail(self, ZKIT_ETYPE, id_type);
    if (it.count != ZKIT_ID_SIZE)
        return s_fail(self, ZKIT_EIDSIZE, "id: expected 16 bytes");
    memcpy(self->id, it.data, ZKIT_ID_SIZE);

    static const char seq_type[] = "seq: expected an unsigned integer";
    if ((rc = mpack_read(&r, &it)))
        return s_read_fail(self, rc, "seq: input ends inside the value", seq_type);
    if (it.type != MPACK_UINT)
        return s_fail(self, ZKIT_ETYPE, seq_type);
    self->seq = it.u;

    static const char ts_type[] = "ts: expected an unsigned integer";
    if ((rc = mpack_read(&r, &it)))
        return s_read_fail(self, rc, "ts: input ends inside the value", ts_type);
    if (it.type != MPACK_UINT)
        return s_fail(self, ZKIT_ETYPE, ts_type);
    self->ts = it.u;

    static const char body_type[] = "body: expected a bin";
    if ((rc = mpack_read(&r, &it)))
        return s_read_fail(self, rc, "body: input ends inside the value", body_type);
    if (it.type != MPACK_BIN)
        return s_fail(self, ZKIT_ETYPE, body_type);
    self->body = it.data;
    self->body_size = it.count;

    if (count > 5 && s_parse_meta(self, &r))
        return -1;
    if (count > 6) {
        const uint8_t *start = r.p;
        if (s_skip(self, &r, count - 6, &s_extra_skip))
            return -1;
        self->extra = start;
        self->extra_size = (size_t) (r.p - start);
        self->extra_count = count - 6;
    }
    if (r.p != r.end)
        return s_fail(self, ZKIT_ETRAILING, "envelope: bytes follow the end of the array");
    self->error = "no error";
    return 0;
}
