/*  crc32c.c: CRC-32C in software (slicing-by-8) and with SSE4.2 (see crc32c.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "spool/crc32c.h"

#include <pthread.h>
#include <string.h>

#define S_POLY 0x82F63B78u /* Castagnoli, reflected */

static uint32_t s_table[8][256];
static bool s_use_hw;
static pthread_once_t s_once = PTHREAD_ONCE_INIT;

static void s_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t crc = i;
        for (int bit = 0; bit < 8; bit++)
            crc = (crc >> 1) ^ (S_POLY & (0u - (crc & 1)));
        s_table[0][i] = crc;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int k = 1; k < 8; k++)
            s_table[k][i] = (s_table[k - 1][i] >> 8) ^ s_table[0][s_table[k - 1][i] & 0xff];
    s_use_hw = zkit__crc32c_hw_available();
}

uint32_t zkit__crc32c_sw(uint32_t crc, const void *data, size_t size)
{
    pthread_once(&s_once, s_init);
    const uint8_t *p = data;
    crc = ~crc;
    /* Byte by byte up to an 8-byte boundary, then 8 bytes per step: each byte
       of the 64-bit word indexes the table that advances it by its distance
       from the end of the word. */
    while (size && ((uintptr_t) p & 7)) {
        crc = (crc >> 8) ^ s_table[0][(crc ^ *p++) & 0xff];
        size--;
    }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (size >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        word ^= crc;
        crc = s_table[7][word & 0xff] ^ s_table[6][(word >> 8) & 0xff] ^
              s_table[5][(word >> 16) & 0xff] ^ s_table[4][(word >> 24) & 0xff] ^
              s_table[3][(word >> 32) & 0xff] ^ s_table[2][(word >> 40) & 0xff] ^
              s_table[1][(word >> 48) & 0xff] ^ s_table[0][word >> 56];
        p += 8;
        size -= 8;
    }
#endif
    while (size--)
        crc = (crc >> 8) ^ s_table[0][(crc ^ *p++) & 0xff];
    return ~crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))

bool zkit__crc32c_hw_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2");
}

__attribute__((target("sse4.2"))) uint32_t zkit__crc32c_hw(uint32_t crc, const void *data,
                                                           size_t size)
{
    const uint8_t *p = data;
    uint64_t c = ~crc;
    while (size && ((uintptr_t) p & 7)) {
        c = __builtin_ia32_crc32qi((uint32_t) c, *p++);
        size--;
    }
    while (size >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        c = __builtin_ia32_crc32di(c, word);
        p += 8;
        size -= 8;
    }
    while (size--)
        c = __builtin_ia32_crc32qi((uint32_t) c, *p++);
    return ~(uint32_t) c;
}

#else

bool zkit__crc32c_hw_available(void)
{
    return false;
}

uint32_t zkit__crc32c_hw(uint32_t crc, const void *data, size_t size)
{
    return zkit__crc32c_sw(crc, data, size);
}

#endif

uint32_t zkit__crc32c(uint32_t crc, const void *data, size_t size)
{
    pthread_once(&s_once, s_init);
    return s_use_hw ? zkit__crc32c_hw(crc, data, size) : zkit__crc32c_sw(crc, data, size);
}
