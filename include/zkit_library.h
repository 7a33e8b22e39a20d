/*  zkit_library.h: version, export macro and the error codes shared by every class.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_LIBRARY_H_INCLUDED
#define ZKIT_LIBRARY_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZKIT_VERSION_MAJOR 0
#define ZKIT_VERSION_MINOR 1
#define ZKIT_VERSION_PATCH 0

#if defined(ZKIT_BUILDING)
#define ZKIT_EXPORT __attribute__((visibility("default")))
#else
#define ZKIT_EXPORT
#endif

#ifdef __cplusplus
extern "C" {
#endif

/*  Errors. Functions return 0 or -1 (or NULL) and set errno. errno is either a
    system code (ENOMEM, EINVAL, EAGAIN, ...) or one of the ZKIT_E* codes below,
    which start far above any system code, as libzmq's own codes do.
    zkit_strerror() describes both kinds.                                      */
#define ZKIT_HAUSNUMERO 0x5A4B0000

enum {
    ZKIT_EEMPTY = ZKIT_HAUSNUMERO + 1, /* empty frame                            */
    ZKIT_ETRUNCATED,                   /* input ends inside a value              */
    ZKIT_ENOTARRAY,                    /* envelope is not a MessagePack array    */
    ZKIT_EFIELDS,                      /* fewer than the 5 required elements     */
    ZKIT_EVERSION,                     /* version 0 or newer than supported      */
    ZKIT_ETYPE,                        /* a field has the wrong MessagePack type */
    ZKIT_EIDSIZE,                      /* id is not 16 bytes                     */
    ZKIT_ETRAILING,                    /* bytes after the envelope               */
    ZKIT_EDUPKEY,                      /* a meta or header key appears twice     */
    ZKIT_EMETAKEY,                     /* a meta or header key is not a string   */
    ZKIT_ETOOBIG,                      /* frame larger than the configured limit */
    ZKIT_ELIMIT,                       /* meta entries, string length or nesting
                                          beyond the configured limit            */
    ZKIT_EFRAMES,                      /* wrong number of frames in a message    */
    ZKIT_ECOMMAND,                     /* unknown or malformed control command   */
    ZKIT_ECLOSED,                      /* component stopped or failed            */
    ZKIT_EFULL,                        /* spool full (max_bytes) and the policy
                                          refused or timed out                   */
    ZKIT_EFAILED,                      /* spool FAILED after an fsync or I/O
                                          error; writes refused until reopened   */
    ZKIT_EFORMAT,                      /* spool file of a newer format version   */
    ZKIT_ELAST_
};

/*  Describes errnum, a system errno or a ZKIT_E* code. Never returns NULL; the
    string is static and must not be freed. This function can't fail.          */
ZKIT_EXPORT const char *zkit_strerror(int errnum);

/*  The library's version as "MAJOR.MINOR.PATCH". Static string.               */
ZKIT_EXPORT const char *zkit_version(void);

/*  Microseconds since the Unix epoch (CLOCK_REALTIME), as stored in ts.       */
ZKIT_EXPORT uint64_t zkit_clock_usec(void);

/*  Fills out[16] with a new message id: a time-ordered 128-bit value in the
    layout of RFC 9562 UUIDv7 (48-bit Unix milliseconds, then random bits with
    a per-thread counter so ids made in one millisecond still sort). Ids from
    different threads and processes differ with overwhelming probability.
    Cheap (no system call in steady state) and thread-safe. Can't fail.        */
ZKIT_EXPORT void zkit_id_generate(uint8_t out[16]);

/*  Writes the 32 lower-case hex characters of a 16-byte id plus a NUL into
    out[33]. Returns out.                                                      */
ZKIT_EXPORT char *zkit_id_to_hex(const uint8_t id[16], char out[33]);

#ifdef __cplusplus
}
#endif

#endif
