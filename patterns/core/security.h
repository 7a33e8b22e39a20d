/*  security.h (internal): CURVE encryption, ZAP authentication and IP lists
    for the sockets a component binds or connects (docs/security.md).

    Server role (`--curve-secret FILE --curve-allow DIR`, and/or `--ip-allow`,
    `--ip-deny`): a bound socket gets this process's keypair, CURVE server
    mode, a ZAP domain and ZAP enforcement, so libzmq asks the process's ZAP
    handler about every new peer and refuses the peer when nobody answers.
    The ZAP handler is czmq's zauth, one per process (ZAP is process-wide:
    libzmq sends every request to inproc://zeromq.zap.01), owned by security_zap.c
    and shared by every zkit__security_t of the process through a reference
    count. All server-role objects alive at once must therefore have the same
    allow directory and IP lists; a different one fails with EBUSY.

    A CURVE peer is admitted only when its public key is in a certificate
    file in the allow directory ("*" admits any key: encryption without
    authentication). The directory is rescanned when it changes (polled every
    reload_ms) and on zkit__security_reload(), without a restart; a removed
    key admits no new connection after the rescan, but connections already
    made stay up. A plaintext peer fails the handshake against a CURVE
    server, and so does a client that was given the wrong server key.

    zauth reads a certificate directory itself and aborts the process when
    two files hold the same key, so it is never given the operator's
    directory: this file validates and deduplicates the keys and keeps a
    private copy, one file per key, named after the key, in a 0700 temporary
    directory that zauth reads.

    Client role (`--curve-secret FILE --curve-server PUBLICFILE`): a
    connected socket gets this process's keypair and the server's public key.

    No function here logs a secret key.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_SECURITY_H_INCLUDED
#define ZKIT_SECURITY_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct zkit__security_t zkit__security_t;

typedef struct {
    const char *curve_secret; /* this process's certificate (zcert secret
                                 format: public and secret key)               */
    const char *curve_server; /* client role: the server's public certificate */
    const char *curve_allow;  /* server role: directory of allowed clients'
                                 public certificates, or "*" for any key    */
    const char *ip_allow;     /* comma-separated IPv4/IPv6 addresses: only
                                 these may connect (then ip_deny is ignored) */
    const char *ip_deny;      /* comma-separated addresses refused          */
    const char *zap_domain;   /* NULL = "zkit"                               */
    int reload_ms;            /* allow directory poll period; 0 = 1000     */
} zkit__security_opts_t;

#define ZKIT__SECURITY_OPTS_DEFAULT                                                                \
    {                                                                                              \
        .curve_secret = NULL, .curve_server = NULL, .curve_allow = NULL, .ip_allow = NULL,         \
        .ip_deny = NULL, .zap_domain = NULL, .reload_ms = 0                                        \
    }

/*  Loads the certificates the options name and, for the server role, starts
    (or joins) the process's ZAP handler and loads the allow directory; it
    returns once the handler would answer with those keys. opts may be NULL
    or empty: the object then applies nothing. Returns NULL with errno set
    and a ZKIT-SECURITY-* log line: EINVAL (an option, a certificate file, an
    address or a combination is not valid, e.g. --curve-allow without
    --curve-secret), ENOENT/EACCES (a file or the directory), ENOTSUP
    (libzmq without CURVE), EBUSY (another server configuration, or a ZAP
    handler this file did not start, is active in the process), ENOMEM.     */
zkit__security_t *zkit__security_new(const zkit__security_opts_t *opts);

/*  Releases the object and, with the last server-role object, stops the
    ZAP handler. Destroy it only after the sockets it secured are closed:
    from then on they refuse new peers (ZAP enforcement, no handler). Nulls
    *self_p; safe on NULL.                                                   */
void zkit__security_destroy(zkit__security_t **self_p);

/*  True when the options asked for anything at all.                         */
bool zkit__security_enabled(const zkit__security_t *self);

/*  True when bound sockets get a server configuration (an allow directory
    or an IP list), so apply_server() would secure them.                    */
bool zkit__security_serves(const zkit__security_t *self);

/*  Prepares sock (not bound yet) for the server role: ZAP domain and ZAP
    enforcement, plus CURVE server mode with this process's keypair when a
    secret was given. A no-op returning 0 when nothing is enabled. Returns
    -1 with errno EINVAL when the object has no server role (a secret without
    an allow directory, or only a client configuration), or the error of a
    socket option libzmq refused.                                             */
int zkit__security_apply_server(zkit__security_t *self, zsock_t *sock);

/*  Prepares sock (not connected yet) for the client role: this process's
    keypair and the server's public key. A no-op returning 0 when no CURVE
    option was given. Returns -1 with errno EINVAL when --curve-secret was
    given without --curve-server (or the reverse).                          */
int zkit__security_apply_client(zkit__security_t *self, zsock_t *sock);

/*  Rescans the allow directory now (for SIGHUP) and returns once the ZAP
    handler uses the result. Returns 0 (also when there is nothing to
    reload), or -1 with errno set when the directory cannot be read; the keys
    loaded before stay in force.                                             */
int zkit__security_reload(zkit__security_t *self);

/*  This process's public key in Z85 (40 characters), or NULL without
    --curve-secret. Valid until destroy.                                      */
const char *zkit__security_public_key(const zkit__security_t *self);

#endif
