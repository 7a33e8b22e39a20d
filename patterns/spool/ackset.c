/*  ackset.c: acknowledged seqs and the cursor file (ackset.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "spool/ackset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "zkit_library.h"
#include "spool/crc32c.h"
#include "spool/format.h"

void zkit__ackset_init(zkit__ackset_t *set)
{
    memset(set, 0, sizeof *set);
    set->floor = 1;
}

void zkit__ackset_fini(zkit__ackset_t *set)
{
    free(set->ranges);
    memset(set, 0, sizeof *set);
}

/* Index of the first range whose end >= seq (ranges that could touch seq). */
static size_t s_lower(const zkit__ackset_t *set, uint64_t seq)
{
    size_t lo = 0, hi = set->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (set->ranges[mid].end < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int zkit__ackset_add(zkit__ackset_t *set, uint64_t start, uint64_t end)
{
    if (start < set->floor)
        start = set->floor;
    if (start >= end)
        return 0;
    if (start == set->floor) {
        /* At the floor: raise it past [start, end) and every range it now
           reaches. Needs no memory, so deleting a segment cannot fail here. */
        uint64_t floor = end;
        size_t gone = 0;
        while (gone < set->count && set->ranges[gone].start <= floor) {
            if (set->ranges[gone].end > floor)
                floor = set->ranges[gone].end;
            set->above -= set->ranges[gone].end - set->ranges[gone].start;
            gone++;
        }
        if (gone) {
            memmove(set->ranges, set->ranges + gone, (set->count - gone) * sizeof *set->ranges);
            set->count -= gone;
        }
        set->floor = floor;
        return 1;
    }
    /* Ranges i..j-1 overlap or touch [start, end): merge them into one. */
    size_t i = s_lower(set, start);
    size_t j = i;
    uint64_t merged_start = start, merged_end = end, absorbed = 0;
    while (j < set->count && set->ranges[j].start <= end) {
        if (set->ranges[j].start < merged_start)
            merged_start = set->ranges[j].start;
        if (set->ranges[j].end > merged_end)
            merged_end = set->ranges[j].end;
        absorbed += set->ranges[j].end - set->ranges[j].start;
        j++;
    }
    if (j == i + 1 && merged_start == set->ranges[i].start && merged_end == set->ranges[i].end)
        return 0; /* already inside one range */
    if (j == i) {
        /* A new range at i. */
        if (set->count == set->cap) {
            size_t cap = set->cap ? set->cap * 2 : 8;
            zkit__range_t *grown = realloc(set->ranges, cap * sizeof *grown);
            if (!grown) {
                errno = ENOMEM;
                return -1;
            }
            set->ranges = grown;
            set->cap = cap;
        }
        memmove(set->ranges + i + 1, set->ranges + i, (set->count - i) * sizeof *set->ranges);
        set->count++;
        j = i + 1;
    }
    else if (j > i + 1) {
        memmove(set->ranges + i + 1, set->ranges + j, (set->count - j) * sizeof *set->ranges);
        set->count -= j - i - 1;
    }
    set->ranges[i].start = merged_start;
    set->ranges[i].end = merged_end;
    set->above += (merged_end - merged_start) - absorbed;
    return 1;
}

bool zkit__ackset_has(const zkit__ackset_t *set, uint64_t seq)
{
    if (seq < set->floor)
        return true;
    size_t i = s_lower(set, seq + 1);
    return i < set->count && set->ranges[i].start <= seq && seq < set->ranges[i].end;
}

uint64_t zkit__ackset_count(const zkit__ackset_t *set, uint64_t start, uint64_t end)
{
    if (start >= end)
        return 0;
    uint64_t n = 0;
    if (start < set->floor) {
        n += (end < set->floor ? end : set->floor) - start;
        start = set->floor;
    }
    for (size_t i = s_lower(set, start); i < set->count && set->ranges[i].start < end; i++) {
        uint64_t s = set->ranges[i].start > start ? set->ranges[i].start : start;
        uint64_t e = set->ranges[i].end < end ? set->ranges[i].end : end;
        if (e > s)
            n += e - s;
    }
    return n;
}

uint64_t zkit__ackset_top(const zkit__ackset_t *set)
{
    return set->count ? set->ranges[set->count - 1].end : set->floor;
}

uint64_t zkit__ackset_next_unacked(const zkit__ackset_t *set, uint64_t seq)
{
    if (seq < set->floor)
        return set->floor;
    size_t i = s_lower(set, seq + 1);
    if (i < set->count && set->ranges[i].start <= seq)
        return set->ranges[i].end;
    return seq;
}

/* ---- the cursor file -------------------------------------------------------

    Layout (docs/spool-format.md):
      0  8  magic "ZKCURSOR"       16  8  floor: lowest unacknowledged seq
      8  2  format version         24  8  time written (usec)
     10  2  header size (32)       32 16n ranges: start, end (u64 each)
     12  4  range count n          32+16n  4  CRC-32C of everything before  */

uint8_t *zkit__cursor_encode(const zkit__ackset_t *set, uint64_t ts, size_t *size)
{
    size_t total = ZKIT__CURSOR_HDR_SIZE + 16 * set->count + 4;
    uint8_t *out = malloc(total);
    if (!out) {
        errno = ENOMEM;
        return NULL;
    }
    memcpy(out, ZKIT__CURSOR_MAGIC, 8);
    zkit__put_le16(out + 8, ZKIT__SPOOL_VERSION);
    zkit__put_le16(out + 10, ZKIT__CURSOR_HDR_SIZE);
    zkit__put_le32(out + 12, (uint32_t) set->count);
    zkit__put_le64(out + 16, set->floor);
    zkit__put_le64(out + 24, ts);
    uint8_t *p = out + ZKIT__CURSOR_HDR_SIZE;
    for (size_t i = 0; i < set->count; i++, p += 16) {
        zkit__put_le64(p, set->ranges[i].start);
        zkit__put_le64(p + 8, set->ranges[i].end);
    }
    zkit__put_le32(p, zkit__crc32c(0, out, total - 4));
    *size = total;
    return out;
}

int zkit__cursor_decode(zkit__ackset_t *set, const uint8_t *data, size_t size, const char **reason)
{
    *reason = NULL;
    if (size < ZKIT__CURSOR_HDR_SIZE + 4)
        *reason = "short";
    else if (memcmp(data, ZKIT__CURSOR_MAGIC, 8) != 0)
        *reason = "magic";
    else if (zkit__get_le16(data + 10) != ZKIT__CURSOR_HDR_SIZE)
        *reason = "header size";
    else {
        uint64_t count = zkit__get_le32(data + 12);
        if (size != ZKIT__CURSOR_HDR_SIZE + 16 * count + 4)
            *reason = "length";
        else if (zkit__crc32c(0, data, size - 4) != zkit__get_le32(data + size - 4))
            *reason = "crc";
    }
    if (*reason) {
        errno = EINVAL;
        return -1;
    }
    if (zkit__get_le16(data + 8) > ZKIT__SPOOL_VERSION) {
        *reason = "newer version";
        errno = ZKIT_EFORMAT;
        return -1;
    }
    uint64_t floor = zkit__get_le64(data + 16);
    set->floor = floor ? floor : 1;
    uint32_t count = zkit__get_le32(data + 12);
    const uint8_t *p = data + ZKIT__CURSOR_HDR_SIZE;
    for (uint32_t i = 0; i < count; i++, p += 16) {
        uint64_t start = zkit__get_le64(p), end = zkit__get_le64(p + 8);
        if (start <= set->floor || end <= start) {
            *reason = "range";
            zkit__ackset_fini(set);
            zkit__ackset_init(set);
            errno = EINVAL;
            return -1;
        }
        if (zkit__ackset_add(set, start, end) < 0) {
            zkit__ackset_fini(set);
            zkit__ackset_init(set);
            return -1;
        }
    }
    return 0;
}
