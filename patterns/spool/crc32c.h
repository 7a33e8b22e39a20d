/*  crc32c.h (internal): CRC-32C (Castagnoli), the checksum of every spool
    record, segment header and cursor file.

    The standard parameters: reflected polynomial 0x82F63B78, initial value
    and final xor 0xFFFFFFFF, so zkit__crc32c(0, "123456789", 9) is 0xE3069283.
    Calls chain: crc32c(crc32c(0, a), b) == crc32c(0, a || b).

    The software version uses slicing-by-8 tables; on x86-64 CPUs with SSE4.2
    the crc32 instruction is used instead, chosen once at run time. Both give
    identical results (the tests check both against the same vectors).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_SPOOL_CRC32C_H_INCLUDED
#define ZKIT_SPOOL_CRC32C_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*  CRC-32C of size bytes, continuing from crc (0 to start). Thread-safe.
    This function can't fail.                                                 */
uint32_t zkit__crc32c(uint32_t crc, const void *data, size_t size);

/*  The software (slicing-by-8) implementation, whatever the CPU.             */
uint32_t zkit__crc32c_sw(uint32_t crc, const void *data, size_t size);

/*  True when the CPU has the SSE4.2 crc32 instruction.                       */
bool zkit__crc32c_hw_available(void);

/*  The hardware implementation. Only call it when hw_available() is true.    */
uint32_t zkit__crc32c_hw(uint32_t crc, const void *data, size_t size);

#endif
