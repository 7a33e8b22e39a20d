/*  security_zap.h (internal to security*.c): the process's one ZAP handler.

    libzmq sends every ZAP request of a context to inproc://zeromq.zap.01, so
    there is one handler per process: czmq's zauth, owned by an "auth
    manager" actor and shared by reference count. zauth is never given the
    operator's allow directory (its certificate store aborts on two files
    with one key): the manager validates and deduplicates the keys and keeps
    a private copy, one file per key, that zauth reads.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_SECURITY_ZAP_H_INCLUDED
#define ZKIT_SECURITY_ZAP_H_INCLUDED

#include <czmq.h>
#include <stdint.h>

/*  Reads the zcert file at path: the public key into public_txt[41] (Z85)
    and, when secret_bin is not NULL, the secret key (required then) into
    secret_bin[32]. Returns 0, or -1 with errno: open's error (ENOENT,
    EACCES), EISDIR for anything that is not a regular file, EFBIG above 64
    KiB, EINVAL when it holds no valid key. Wipes what it read.             */
int zkit__security_read_cert(const char *path, char public_txt[41], uint8_t secret_bin[32]);

/*  Starts the ZAP handler with this configuration, or joins the running one
    when the configuration is the same. allow: NULL or "" (no CURVE keys),
    "*" (any key) or a directory; ip_allow and ip_deny: comma-separated
    addresses or NULL; reload_ms: the directory poll period (0 = 1000).
    Returns once the handler answers with the directory's keys: 0, or an
    errno value (EINVAL, ENOENT, ENOTDIR, EBUSY, ENOMEM) after a log line. */
int zkit__zap_acquire(const char *allow, const char *ip_allow, const char *ip_deny, int reload_ms);

/*  Drops one reference; the last one stops the handler and removes the
    private copy.                                                            */
void zkit__zap_release(void);

/*  Rescans the allow directory now. Returns 0 (also when nothing runs), or
    an errno value when the directory cannot be read.                       */
int zkit__zap_reload(void);

#endif
