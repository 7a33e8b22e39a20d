/*  mpack.h (internal): the MessagePack subset zkit reads and writes by hand.

    Why hand-rolled: msgpack-c's generic unpacker allocates from the counts a
    frame declares and costs ~100 ns a message; the envelope needs neither.
    Every reader function checks the bytes are there before it trusts a length
    or count, so a hostile frame can only produce an error.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_MPACK_H_INCLUDED
#define ZKIT_MPACK_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* ---- writer: the caller guarantees room (sizes from mpack_size_*) ---------- */

static inline uint8_t *mpack_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t) (v >> 8);
    p[1] = (uint8_t) v;
    return p + 2;
}

static inline uint8_t *mpack_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t) (v >> 24);
    p[1] = (uint8_t) (v >> 16);
    p[2] = (uint8_t) (v >> 8);
    p[3] = (uint8_t) v;
    return p + 4;
}

static inline uint8_t *mpack_put_be64(uint8_t *p, uint64_t v)
{
    p = mpack_put_be32(p, (uint32_t) (v >> 32));
    return mpack_put_be32(p, (uint32_t) v);
}

static inline size_t mpack_size_uint(uint64_t v)
{
    return v < 128 ? 1 : v <= 0xff ? 2 : v <= 0xffff ? 3 : v <= 0xffffffffu ? 5 : 9;
}

static inline uint8_t *mpack_write_uint(uint8_t *p, uint64_t v)
{
    if (v < 128)
        *p++ = (uint8_t) v;
    else if (v <= 0xff) {
        *p++ = 0xcc;
        *p++ = (uint8_t) v;
    }
    else if (v <= 0xffff) {
        *p++ = 0xcd;
        p = mpack_put_be16(p, (uint16_t) v);
    }
    else if (v <= 0xffffffffu) {
        *p++ = 0xce;
        p = mpack_put_be32(p, (uint32_t) v);
    }
    else {
        *p++ = 0xcf;
        p = mpack_put_be64(p, v);
    }
    return p;
}

static inline size_t mpack_size_int(int64_t v)
{
    if (v >= 0)
        return mpack_size_uint((uint64_t) v);
    return v >= -32 ? 1 : v >= INT8_MIN ? 2 : v >= INT16_MIN ? 3 : v >= INT32_MIN ? 5 : 9;
}

static inline uint8_t *mpack_write_int(uint8_t *p, int64_t v)
{
    if (v >= 0)
        return mpack_write_uint(p, (uint64_t) v);
    if (v >= -32)
        *p++ = (uint8_t) (int8_t) v;
    else if (v >= INT8_MIN) {
        *p++ = 0xd0;
        *p++ = (uint8_t) (int8_t) v;
    }
    else if (v >= INT16_MIN) {
        *p++ = 0xd1;
        p = mpack_put_be16(p, (uint16_t) (int16_t) v);
    }
    else if (v >= INT32_MIN) {
        *p++ = 0xd2;
        p = mpack_put_be32(p, (uint32_t) (int32_t) v);
    }
    else {
        *p++ = 0xd3;
        p = mpack_put_be64(p, (uint64_t) v);
    }
    return p;
}

static inline size_t mpack_size_str_header(size_t n)
{
    return n < 32 ? 1 : n <= 0xff ? 2 : n <= 0xffff ? 3 : 5;
}

static inline uint8_t *mpack_write_str_header(uint8_t *p, uint32_t n)
{
    if (n < 32)
        *p++ = (uint8_t) (0xa0 | n);
    else if (n <= 0xff) {
        *p++ = 0xd9;
        *p++ = (uint8_t) n;
    }
    else if (n <= 0xffff) {
        *p++ = 0xda;
        p = mpack_put_be16(p, (uint16_t) n);
    }
    else {
        *p++ = 0xdb;
        p = mpack_put_be32(p, n);
    }
    return p;
}

static inline size_t mpack_size_bin_header(size_t n)
{
    return n <= 0xff ? 2 : n <= 0xffff ? 3 : 5;
}

static inline uint8_t *mpack_write_bin_header(uint8_t *p, uint32_t n)
{
    if (n <= 0xff) {
        *p++ = 0xc4;
        *p++ = (uint8_t) n;
    }
    else if (n <= 0xffff) {
        *p++ = 0xc5;
        p = mpack_put_be16(p, (uint16_t) n);
    }
    else {
        *p++ = 0xc6;
        p = mpack_put_be32(p, n);
    }
    return p;
}

/* Arrays and maps share the size rule: fix form below 16, then 16 and 32 bit. */
static inline size_t mpack_size_container_header(size_t n)
{
    return n < 16 ? 1 : n <= 0xffff ? 3 : 5;
}

static inline uint8_t *mpack_write_array_header(uint8_t *p, uint32_t n)
{
    if (n < 16)
        *p++ = (uint8_t) (0x90 | n);
    else if (n <= 0xffff) {
        *p++ = 0xdc;
        p = mpack_put_be16(p, (uint16_t) n);
    }
    else {
        *p++ = 0xdd;
        p = mpack_put_be32(p, n);
    }
    return p;
}

static inline uint8_t *mpack_write_map_header(uint8_t *p, uint32_t n)
{
    if (n < 16)
        *p++ = (uint8_t) (0x80 | n);
    else if (n <= 0xffff) {
        *p++ = 0xde;
        p = mpack_put_be16(p, (uint16_t) n);
    }
    else {
        *p++ = 0xdf;
        p = mpack_put_be32(p, n);
    }
    return p;
}

/* ---- reader ---------------------------------------------------------------- */

typedef enum {
    MPACK_NIL,
    MPACK_BOOL,
    MPACK_UINT, /* non-negative integers, whatever their wire form */
    MPACK_INT,  /* negative integers */
    MPACK_FLOAT,
    MPACK_STR,
    MPACK_BIN,
    MPACK_ARRAY,
    MPACK_MAP,
    MPACK_EXT
} mpack_type_t;

/* One decoded header. For STR/BIN/EXT, data points at the payload, which the
   reader has checked is present. For ARRAY/MAP, count is the declared count,
   which the reader has checked is plausible (each element needs one byte). */
typedef struct {
    mpack_type_t type;
    uint32_t count; /* STR/BIN/EXT payload size, ARRAY elements, MAP pairs */
    const uint8_t *data;
    uint64_t u; /* UINT value, BOOL value */
    int64_t i;  /* INT value */
    double f;   /* FLOAT value */
    int8_t ext; /* EXT type */
} mpack_item_t;

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} mpack_reader_t;

typedef enum {
    MPACK_OK = 0,
    MPACK_ERR_TRUNCATED = 1, /* the input ends inside the value */
    MPACK_ERR_INVALID = 2,   /* 0xc1, the one byte MessagePack never uses */
    MPACK_ERR_DEPTH = 3      /* nesting deeper than the caller allows */
} mpack_err_t;

static inline void mpack_reader_init(mpack_reader_t *r, const void *data, size_t size)
{
    r->p = (const uint8_t *) data;
    r->end = r->p + size;
}

static inline size_t mpack_remaining(const mpack_reader_t *r)
{
    return (size_t) (r->end - r->p);
}

static inline uint16_t mpack_get_be16(const uint8_t *p)
{
    return (uint16_t) ((p[0] << 8) | p[1]);
}

static inline uint32_t mpack_get_be32(const uint8_t *p)
{
    return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16) | ((uint32_t) p[2] << 8) | p[3];
}

static inline uint64_t mpack_get_be64(const uint8_t *p)
{
    return ((uint64_t) mpack_get_be32(p) << 32) | mpack_get_be32(p + 4);
}

/* Reads one header (and, for STR/BIN/EXT, steps over the payload). */
static inline mpack_err_t mpack_read(mpack_reader_t *r, mpack_item_t *it)
{
    if (r->p >= r->end)
        return MPACK_ERR_TRUNCATED;
    uint8_t b = *r->p++;
    size_t avail = mpack_remaining(r);
    uint32_t n = 0;
    size_t width = 0; /* bytes of a length or value field after the type byte */

    if (b <= 0x7f) {
        it->type = MPACK_UINT;
        it->u = b;
        return MPACK_OK;
    }
    if (b >= 0xe0) {
        it->type = MPACK_INT;
        it->i = (int8_t) b;
        return MPACK_OK;
    }
    if ((b & 0xe0) == 0xa0) {
        it->type = MPACK_STR;
        n = b & 0x1f;
        goto payload;
    }
    if ((b & 0xf0) == 0x90) {
        it->type = MPACK_ARRAY;
        n = b & 0x0f;
        goto container;
    }
    if ((b & 0xf0) == 0x80) {
        it->type = MPACK_MAP;
        n = b & 0x0f;
        goto container;
    }
    switch (b) {
    case 0xc0: it->type = MPACK_NIL; return MPACK_OK;
    case 0xc2:
    case 0xc3:
        it->type = MPACK_BOOL;
        it->u = b == 0xc3;
        return MPACK_OK;
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf:
        width = (size_t) 1 << (b - 0xcc);
        if (avail < width)
            return MPACK_ERR_TRUNCATED;
        it->type = MPACK_UINT;
        it->u = width == 1   ? r->p[0]
                : width == 2 ? mpack_get_be16(r->p)
                : width == 4 ? mpack_get_be32(r->p)
                             : mpack_get_be64(r->p);
        r->p += width;
        return MPACK_OK;
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3:
        width = (size_t) 1 << (b - 0xd0);
        if (avail < width)
            return MPACK_ERR_TRUNCATED;
        {
            int64_t v = width == 1   ? (int8_t) r->p[0]
                        : width == 2 ? (int16_t) mpack_get_be16(r->p)
                        : width == 4 ? (int32_t) mpack_get_be32(r->p)
                                     : (int64_t) mpack_get_be64(r->p);
            r->p += width;
            /* A signed encoding of a non-negative value is still that value. */
            if (v >= 0) {
                it->type = MPACK_UINT;
                it->u = (uint64_t) v;
            }
            else {
                it->type = MPACK_INT;
                it->i = v;
            }
        }
        return MPACK_OK;
    case 0xca:
        if (avail < 4)
            return MPACK_ERR_TRUNCATED;
        {
            uint32_t bits = mpack_get_be32(r->p);
            float f;
            memcpy(&f, &bits, 4);
            it->f = f;
        }
        it->type = MPACK_FLOAT;
        r->p += 4;
        return MPACK_OK;
    case 0xcb:
        if (avail < 8)
            return MPACK_ERR_TRUNCATED;
        {
            uint64_t bits = mpack_get_be64(r->p);
            memcpy(&it->f, &bits, 8);
        }
        it->type = MPACK_FLOAT;
        r->p += 8;
        return MPACK_OK;
    case 0xd9:
    case 0xda:
    case 0xdb:
        it->type = MPACK_STR;
        width = (size_t) 1 << (b - 0xd9);
        goto sized_payload;
    case 0xc4:
    case 0xc5:
    case 0xc6:
        it->type = MPACK_BIN;
        width = (size_t) 1 << (b - 0xc4);
        goto sized_payload;
    case 0xdc:
    case 0xdd:
        it->type = MPACK_ARRAY;
        width = b == 0xdc ? 2 : 4;
        goto sized_container;
    case 0xde:
    case 0xdf:
        it->type = MPACK_MAP;
        width = b == 0xde ? 2 : 4;
        goto sized_container;
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        /* fixext 1, 2, 4, 8, 16: one type byte, then 2^k bytes */
        if (avail < 1)
            return MPACK_ERR_TRUNCATED;
        it->type = MPACK_EXT;
        it->ext = (int8_t) *r->p++;
        n = (uint32_t) 1 << (b - 0xd4);
        goto payload;
    case 0xc7:
    case 0xc8:
    case 0xc9:
        width = (size_t) 1 << (b - 0xc7);
        if (avail < width + 1)
            return MPACK_ERR_TRUNCATED;
        n = width == 1 ? r->p[0] : width == 2 ? mpack_get_be16(r->p) : mpack_get_be32(r->p);
        r->p += width;
        it->type = MPACK_EXT;
        it->ext = (int8_t) *r->p++;
        goto payload;
    default: /* 0xc1 */ return MPACK_ERR_INVALID;
    }

sized_payload:
    if (avail < width)
        return MPACK_ERR_TRUNCATED;
    n = width == 1 ? r->p[0] : width == 2 ? mpack_get_be16(r->p) : mpack_get_be32(r->p);
    r->p += width;
payload:
    if (mpack_remaining(r) < n)
        return MPACK_ERR_TRUNCATED;
    it->count = n;
    it->data = r->p;
    r->p += n;
    return MPACK_OK;

sized_container:
    if (avail < width)
        return MPACK_ERR_TRUNCATED;
    n = width == 2 ? mpack_get_be16(r->p) : mpack_get_be32(r->p);
    r->p += width;
container:
    /* Every element takes at least one byte: a count the remaining bytes
       cannot hold is rejected here, before anyone sizes anything from it. */
    if ((uint64_t) n * (it->type == MPACK_MAP ? 2 : 1) > mpack_remaining(r))
        return MPACK_ERR_TRUNCATED;
    it->count = n;
    it->data = r->p;
    return MPACK_OK;
}

/* Steps over `items` complete values (containers with all their contents),
   iteratively, with nesting limited to max_depth. */
static inline mpack_err_t mpack_skip(mpack_reader_t *r, uint64_t items, unsigned max_depth)
{
    /* pending[d] = values still to skip at depth d */
    uint64_t pending[64];
    unsigned depth = 0;
    if (max_depth > 63)
        max_depth = 63;
    pending[0] = items;
    while (true) {
        if (pending[depth] == 0) {
            if (depth == 0)
                return MPACK_OK;
            depth--;
            continue;
        }
        pending[depth]--;
        mpack_item_t it;
        mpack_err_t rc = mpack_read(r, &it);
        if (rc != MPACK_OK)
            return rc;
        if ((it.type == MPACK_ARRAY || it.type == MPACK_MAP) && it.count > 0) {
            if (depth + 1 > max_depth)
                return MPACK_ERR_DEPTH;
            depth++;
            pending[depth] = (uint64_t) it.count * (it.type == MPACK_MAP ? 2 : 1);
        }
    }
}

#endif
