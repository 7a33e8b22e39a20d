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

/*  What every device and component takes besides its own options: where to
    answer STATS and PAUSE/RESUME (docs/control-protocol.md), and how to
    secure its sockets with CURVE, ZAP and IP lists (docs/security.md). All
    NULL (the default) = no control endpoint, plaintext, anyone may connect.

    Sockets the component binds are CURVE servers when curve_allow is set
    (and are checked against the IP lists when one is set); sockets it
    connects are CURVE clients when curve_server is set; curve_secret is the
    component's own keypair for both. The control endpoint is secured like a
    bound socket. ZAP is process-wide: every component of one process must
    name the same curve_allow, ip_allow and ip_deny (or none); a different
    one fails with EBUSY. The strings are copied where they must outlive the
    constructor.                                                              */
typedef struct {
    const char *control;      /* bind the control endpoint here (comma-separated) */
    const char *curve_secret; /* this component's certificate (zcert secret file) */
    const char *curve_server; /* the public certificate of the servers it connects to */
    const char *curve_allow;  /* directory of allowed clients' public certificates,
                                 or "*" for any key (encryption only)             */
    const char *ip_allow;     /* comma-separated addresses: only these may connect */
    const char *ip_deny;      /* comma-separated addresses refused                */
} zkit_ops_opts_t;

/*  Rescans the process's CURVE allow directory now (what SIGHUP does in the
    zkit program; the directory is also polled every second) and returns once
    the new keys are in force. Returns 0 (also when no component serves
    CURVE), or -1 with errno set when the directory cannot be read; the keys
    loaded before stay in force.                                             */
ZKIT_EXPORT int zkit_security_reload(void);

#ifdef __cplusplus
}
#endif

#endif
