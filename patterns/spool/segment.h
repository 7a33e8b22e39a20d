/*  segment.h (internal): segment headers, record framing and the record
    scanner shared by recovery, readers and verify.

    The scanner walks a segment from an offset and returns, one at a time,
    either a good record or a bad region. A record is good when its magic,
    header CRC, length (within the bytes that exist), sequence (above the
    previous good one) and data CRC all check. When the bytes at an offset
    are not a good record, the scanner resynchronises: it tries every 8-byte
    aligned offset after it until one holds a good record. The bytes between
    are one bad region; when no good record follows, the region runs to the
    end and is flagged to_end (for the newest segment: a torn tail).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_SPOOL_SEGMENT_H_INCLUDED
#define ZKIT_SPOOL_SEGMENT_H_INCLUDED

#include "zkit_spool.h"

#include "spool/format.h"

typedef struct {
    uint64_t first_seq;
    uint64_t create_ts;
    unsigned version;
} zkit__seghdr_t;

/*  Fills out[ZKIT__SEG_HDR_SIZE] with a segment header.                      */
void zkit__seghdr_encode(uint8_t *out, uint64_t first_seq, uint64_t create_ts);

/*  Decodes a segment header from size bytes. Returns 0 when it is valid, 1
    when it is valid but of a newer format version (hdr->version says which),
    or -1 with *reason set ("short", "magic", "header-crc") when it is bad.   */
int zkit__seghdr_decode(const uint8_t *in, size_t size, zkit__seghdr_t *hdr, const char **reason);

/*  Encodes a whole record (header, payload, zero padding) into out, which
    holds zkit__rec_size(size) bytes.                                          */
void zkit__rec_encode(uint8_t *out, uint64_t seq, uint64_t ts, const void *data, uint32_t size);

/*  "0000000000000001.zseg" for first_seq 1.                                  */
void zkit__seg_name(char *out, size_t size, uint64_t first_seq);

/*  True when name is a segment file name; *first_seq gets its seq.           */
bool zkit__seg_parse_name(const char *name, uint64_t *first_seq);

/*  A window onto a segment file: reads in large chunks so that walking
    records costs a memcpy, not a system call, per record. Bytes are only
    read below the end the caller gives, so bytes still being written by an
    appender are never cached.                                                */
typedef struct {
    const zkit_spool_io_t *io;
    int fd;
    uint8_t *buf;
    size_t cap;
    uint64_t off; /* file offset of buf[0] */
    size_t len;   /* valid bytes in buf    */
} zkit__segview_t;

void zkit__segview_init(zkit__segview_t *view, const zkit_spool_io_t *io);

/*  Points the view at fd (-1: none), dropping what it cached. The view does
    not own fd.                                                               */
void zkit__segview_set_fd(zkit__segview_t *view, int fd);

void zkit__segview_fini(zkit__segview_t *view);

/*  Returns size bytes at off, which the caller knows lie below end, valid
    until the next call. NULL with errno set on a read error (EIO when the
    file is shorter than end), or ENOMEM.                                      */
const uint8_t *zkit__segview_get(zkit__segview_t *view, uint64_t off, size_t size, uint64_t end);

typedef enum {
    ZKIT__SCAN_ERROR = -1, /* read error, errno set                        */
    ZKIT__SCAN_END = 0,    /* off is at end                                 */
    ZKIT__SCAN_RECORD = 1, /* a good record                                 */
    ZKIT__SCAN_BAD = 2,    /* a bad region                                  */
} zkit__scan_t;

typedef struct {
    uint64_t off;      /* where the record or bad region starts             */
    uint64_t next_off; /* where the next scan starts                        */
    /* RECORD */
    uint64_t seq, ts;
    const uint8_t *data; /* valid until the view's next call                */
    uint32_t size;
    /* BAD */
    uint64_t bad_size;  /* bytes in the region                              */
    bool to_end;        /* no good record follows in [off, end)              */
    uint64_t next_seq;  /* seq of the good record after it, 0 when to_end    */
    const char *reason; /* what was wrong at off: "short", "magic",
                           "header-crc", "length", "seq", "data-crc"        */
} zkit__scan_item_t;

/*  Scans at off (8-byte aligned, at least ZKIT__SEG_HDR_SIZE) of a segment
    whose readable bytes end at end, where prev_seq is the seq of the last good
    record before off (first_seq - 1 at the start). Fills *item.              */
zkit__scan_t zkit__segment_scan(zkit__segview_t *view, uint64_t off, uint64_t end,
                                uint64_t prev_seq, zkit__scan_item_t *item);

#endif
