/*  format.h (internal): the spool's on-disk format, docs/spool-format.md.

    All integers are little-endian. A segment file is a 64-byte header and then
    records, each starting at an 8-byte aligned offset: a 32-byte record
    header, the payload, and zero padding to the next multiple of 8.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_SPOOL_FORMAT_H_INCLUDED
#define ZKIT_SPOOL_FORMAT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define ZKIT__SPOOL_VERSION 1

/* Segment header. */
#define ZKIT__SEG_MAGIC     "ZKSEG\r\n\x1a" /* 8 bytes, PNG-style: catches text mangling */
#define ZKIT__SEG_HDR_SIZE  64
#define ZKIT__SEG_SUFFIX    ".zseg"
#define ZKIT__SEG_NAME_SIZE 32 /* "%016x.zseg" plus room */

/* Record header. */
#define ZKIT__REC_MAGIC    0x1E524B5Au /* bytes 5A 4B 52 1E: "ZKR" + RS */
#define ZKIT__REC_HDR_SIZE 32
#define ZKIT__REC_ALIGN    8
#define ZKIT__REC_MAX      (1u << 30) /* format limit on a payload */

/* Cursor file. */
#define ZKIT__CURSOR_MAGIC    "ZKCURSOR"
#define ZKIT__CURSOR_HDR_SIZE 32
#define ZKIT__CURSOR_NAME     "cursor"
#define ZKIT__CURSOR_TMP      "cursor.tmp"
#define ZKIT__QUARANTINE_NAME "quarantine"
#define ZKIT__LOCK_NAME       "lock"

static inline void zkit__put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t) v;
    p[1] = (uint8_t) (v >> 8);
}

static inline void zkit__put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t) (v >> (8 * i));
}

static inline void zkit__put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t) (v >> (8 * i));
}

static inline uint16_t zkit__get_le16(const uint8_t *p)
{
    return (uint16_t) (p[0] | (p[1] << 8));
}

static inline uint32_t zkit__get_le32(const uint8_t *p)
{
    return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static inline uint64_t zkit__get_le64(const uint8_t *p)
{
    return (uint64_t) zkit__get_le32(p) | (uint64_t) zkit__get_le32(p + 4) << 32;
}

/* Bytes a record with a payload of size bytes takes on disk. */
static inline uint64_t zkit__rec_size(uint64_t size)
{
    return ZKIT__REC_HDR_SIZE + ((size + ZKIT__REC_ALIGN - 1) & ~(uint64_t) (ZKIT__REC_ALIGN - 1));
}

#endif
