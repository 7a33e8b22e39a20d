/*  segment.c: segment headers, record framing and the scanner (segment.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "spool/segment.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "spool/crc32c.h"

/* Reads at least this much at a time, so a scan costs few system calls. */
#define S_CHUNK (256u * 1024)

/* ---- segment header ------------------------------------------------------- */

/*  Layout (docs/spool-format.md):
      0  8  magic "ZKSEG\r\n\x1a"      16  8  first seq
      8  2  format version             24  8  creation time (usec)
     10  2  header size (64)           32 28  reserved, zero
     12  4  flags (0)                  60  4  CRC-32C of bytes 0..59        */
void zkit__seghdr_encode(uint8_t *out, uint64_t first_seq, uint64_t create_ts)
{
    memset(out, 0, ZKIT__SEG_HDR_SIZE);
    memcpy(out, ZKIT__SEG_MAGIC, 8);
    zkit__put_le16(out + 8, ZKIT__SPOOL_VERSION);
    zkit__put_le16(out + 10, ZKIT__SEG_HDR_SIZE);
    zkit__put_le32(out + 12, 0);
    zkit__put_le64(out + 16, first_seq);
    zkit__put_le64(out + 24, create_ts);
    zkit__put_le32(out + 60, zkit__crc32c(0, out, 60));
}

int zkit__seghdr_decode(const uint8_t *in, size_t size, zkit__seghdr_t *hdr, const char **reason)
{
    if (size < ZKIT__SEG_HDR_SIZE) {
        *reason = "short";
        return -1;
    }
    if (memcmp(in, ZKIT__SEG_MAGIC, 8) != 0) {
        *reason = "magic";
        return -1;
    }
    if (zkit__crc32c(0, in, 60) != zkit__get_le32(in + 60)) {
        *reason = "header-crc";
        return -1;
    }
    hdr->version = zkit__get_le16(in + 8);
    hdr->first_seq = zkit__get_le64(in + 16);
    hdr->create_ts = zkit__get_le64(in + 24);
    if (hdr->version > ZKIT__SPOOL_VERSION)
        return 1;
    if (hdr->version == 0 || zkit__get_le16(in + 10) != ZKIT__SEG_HDR_SIZE || hdr->first_seq == 0) {
        *reason = "header-fields";
        return -1;
    }
    return 0;
}

void zkit__seg_name(char *out, size_t size, uint64_t first_seq)
{
    snprintf(out, size, "%016" PRIx64 "%s", first_seq, ZKIT__SEG_SUFFIX);
}

bool zkit__seg_parse_name(const char *name, uint64_t *first_seq)
{
    uint64_t value = 0;
    for (int i = 0; i < 16; i++) {
        char c = name[i];
        unsigned digit;
        if (c >= '0' && c <= '9')
            digit = (unsigned) (c - '0');
        else if (c >= 'a' && c <= 'f')
            digit = (unsigned) (c - 'a' + 10);
        else
            return false;
        value = value << 4 | digit;
    }
    if (strcmp(name + 16, ZKIT__SEG_SUFFIX) != 0 || value == 0)
        return false;
    *first_seq = value;
    return true;
}

/* ---- records ---------------------------------------------------------------- */

/*  Layout:
      0  4  magic 5A 4B 52 1E          16  8  timestamp (usec)
      4  4  payload length             24  4  CRC-32C of payload + padding
      8  8  seq                        28  4  CRC-32C of bytes 0..27
    then the payload and zero padding to a multiple of 8.                    */
void zkit__rec_encode(uint8_t *out, uint64_t seq, uint64_t ts, const void *data, uint32_t size)
{
    uint64_t total = zkit__rec_size(size);
    uint8_t *body = out + ZKIT__REC_HDR_SIZE;
    if (size)
        memcpy(body, data, size);
    memset(body + size, 0, total - ZKIT__REC_HDR_SIZE - size);
    zkit__put_le32(out, ZKIT__REC_MAGIC);
    zkit__put_le32(out + 4, size);
    zkit__put_le64(out + 8, seq);
    zkit__put_le64(out + 16, ts);
    zkit__put_le32(out + 24, zkit__crc32c(0, body, total - ZKIT__REC_HDR_SIZE));
    zkit__put_le32(out + 28, zkit__crc32c(0, out, 28));
}

/* ---- the view ----------------------------------------------------------------- */

void zkit__segview_init(zkit__segview_t *view, const zkit_spool_io_t *io)
{
    memset(view, 0, sizeof *view);
    view->io = io;
    view->fd = -1;
}

void zkit__segview_set_fd(zkit__segview_t *view, int fd)
{
    view->fd = fd;
    view->off = 0;
    view->len = 0;
}

void zkit__segview_fini(zkit__segview_t *view)
{
    free(view->buf);
    view->buf = NULL;
    view->cap = 0;
    view->len = 0;
}

const uint8_t *zkit__segview_get(zkit__segview_t *view, uint64_t off, size_t size, uint64_t end)
{
    if (off >= view->off && off + size <= view->off + view->len)
        return view->buf + (off - view->off);
    size_t want = size > S_CHUNK ? size : S_CHUNK;
    if (want > end - off)
        want = (size_t) (end - off);
    if (want > view->cap) {
        uint8_t *grown = realloc(view->buf, want);
        if (!grown) {
            errno = ENOMEM;
            return NULL;
        }
        view->buf = grown;
        view->cap = want;
    }
    view->off = off;
    view->len = 0;
    while (view->len < want) {
        ssize_t n = view->io->pread(view->io->arg, view->fd, view->buf + view->len,
                                    want - view->len, (off_t) (off + view->len));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            view->len = 0;
            return NULL;
        }
        if (n == 0)
            break;
        view->len += (size_t) n;
    }
    if (view->len < size) {
        view->len = 0;
        errno = EIO; /* the file is shorter than the caller knows it to be */
        return NULL;
    }
    return view->buf;
}

/* ---- the scanner ------------------------------------------------------------- */

/* 1 when a good record starts at off (item filled), 0 when not (*reason
   set), -1 on a read error. */
static int s_check(zkit__segview_t *view, uint64_t off, uint64_t end, uint64_t prev_seq,
                   zkit__scan_item_t *item, const char **reason)
{
    if (end - off < ZKIT__REC_HDR_SIZE) {
        *reason = "short";
        return 0;
    }
    const uint8_t *h = zkit__segview_get(view, off, ZKIT__REC_HDR_SIZE, end);
    if (!h)
        return -1;
    if (zkit__get_le32(h) != ZKIT__REC_MAGIC) {
        *reason = "magic";
        return 0;
    }
    if (zkit__crc32c(0, h, 28) != zkit__get_le32(h + 28)) {
        *reason = "header-crc";
        return 0;
    }
    uint32_t size = zkit__get_le32(h + 4);
    uint64_t seq = zkit__get_le64(h + 8);
    uint64_t ts = zkit__get_le64(h + 16);
    uint32_t dcrc = zkit__get_le32(h + 24);
    uint64_t total = zkit__rec_size(size);
    if (size > ZKIT__REC_MAX) {
        *reason = "length";
        return 0;
    }
    if (total > end - off) {
        *reason = "short";
        return 0;
    }
    if (seq <= prev_seq) {
        *reason = "seq";
        return 0;
    }
    /* The length is trusted (its header CRC checked) and the bytes exist:
       only now is a buffer sized from it. */
    const uint8_t *rec = zkit__segview_get(view, off, (size_t) total, end);
    if (!rec)
        return -1;
    const uint8_t *body = rec + ZKIT__REC_HDR_SIZE;
    if (zkit__crc32c(0, body, (size_t) total - ZKIT__REC_HDR_SIZE) != dcrc) {
        *reason = "data-crc";
        return 0;
    }
    item->off = off;
    item->next_off = off + total;
    item->seq = seq;
    item->ts = ts;
    item->data = body;
    item->size = size;
    return 1;
}

zkit__scan_t zkit__segment_scan(zkit__segview_t *view, uint64_t off, uint64_t end,
                                uint64_t prev_seq, zkit__scan_item_t *item)
{
    if (off >= end)
        return ZKIT__SCAN_END;
    const char *reason = NULL;
    int rc = s_check(view, off, end, prev_seq, item, &reason);
    if (rc != 0)
        return rc > 0 ? ZKIT__SCAN_RECORD : ZKIT__SCAN_ERROR;

    /* Resynchronise: the next 8-byte aligned offset that holds a good record.
       Records start on such offsets, so a damaged length cannot make the
       scan skip a good record that follows. */
    uint64_t cand = (off + ZKIT__REC_ALIGN) & ~(uint64_t) (ZKIT__REC_ALIGN - 1);
    for (; cand + ZKIT__REC_HDR_SIZE <= end; cand += ZKIT__REC_ALIGN) {
        const uint8_t *h = zkit__segview_get(view, cand, 4, end);
        if (!h)
            return ZKIT__SCAN_ERROR;
        if (zkit__get_le32(h) != ZKIT__REC_MAGIC)
            continue;
        const char *ignored;
        rc = s_check(view, cand, end, prev_seq, item, &ignored);
        if (rc < 0)
            return ZKIT__SCAN_ERROR;
        if (rc > 0) {
            item->next_seq = item->seq;
            item->off = off;
            item->next_off = cand;
            item->bad_size = cand - off;
            item->to_end = false;
            item->reason = reason;
            item->data = NULL;
            return ZKIT__SCAN_BAD;
        }
    }
    item->off = off;
    item->next_off = end;
    item->bad_size = end - off;
    item->to_end = true;
    item->next_seq = 0;
    item->reason = reason;
    item->data = NULL;
    return ZKIT__SCAN_BAD;
}
