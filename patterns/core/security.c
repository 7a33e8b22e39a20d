/*  security.c: CURVE, ZAP and IP lists for zkit sockets (see security.h and
    docs/security.md). The process-wide ZAP handler lives in security_zap.c.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "core/security.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/security_zap.h"

/*  Draft in zmq.h, yet libzmq 4.3 release builds accept it: with it set, a
    server socket refuses every peer when no ZAP handler answers, instead of
    admitting it unauthenticated (libzmq's legacy behaviour).              */
#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93
#endif

#define S_DEFAULT_DOMAIN "zkit"

struct zkit__security_t {
    bool enabled;
    bool server; /* holds a reference on the ZAP handler (security_zap.c) */
    bool allow_set;
    zcert_t *cert; /* this process's keypair, or NULL */
    char server_key[41];
    char *domain;
};

/* ---- the object ----------------------------------------------------------------- */

static bool s_set(const char *option)
{
    return option && *option;
}

static int s_fail(zkit__security_t **self_p, int err)
{
    zkit__security_destroy(self_p);
    errno = err;
    return -1;
}

/*  Loads --curve-secret into self->cert. Returns 0, or -1 with errno.      */
static int s_load_secret(zkit__security_t *self, const char *path)
{
    char public_txt[41];
    uint8_t public_key[32], secret_key[32];
    if (zkit__security_read_cert(path, public_txt, secret_key) == -1) {
        int err = errno;
        zsys_error("ZKIT-SECURITY-KEY: cannot load the secret certificate %s: %s", path,
                   err == EINVAL ? "no valid curve public-key and secret-key" : strerror(err));
        errno = err;
        return -1;
    }
    struct stat st;
    if (stat(path, &st) == 0 && (st.st_mode & 077))
        zsys_warning("ZKIT-SECURITY-KEY-MODE: %s is readable by group or others; chmod 600 it",
                     path);
    zmq_z85_decode(public_key, public_txt);
    self->cert = zcert_new_from(public_key, secret_key);
    explicit_bzero(secret_key, sizeof secret_key);
    if (!self->cert) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

zkit__security_t *zkit__security_new(const zkit__security_opts_t *opts)
{
    static const zkit__security_opts_t none = ZKIT__SECURITY_OPTS_DEFAULT;
    if (!opts)
        opts = &none;
    zkit__security_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    self->domain = strdup(s_set(opts->zap_domain) ? opts->zap_domain : S_DEFAULT_DOMAIN);
    if (!self->domain)
        return s_fail(&self, ENOMEM), NULL;
    bool curve = s_set(opts->curve_secret) || s_set(opts->curve_server) || s_set(opts->curve_allow);
    bool ip = s_set(opts->ip_allow) || s_set(opts->ip_deny);
    self->enabled = curve || ip;
    if (!self->enabled)
        return self;
    if (curve && !zsys_has_curve()) {
        zsys_error("ZKIT-SECURITY-NO-CURVE: libzmq was built without CURVE (libsodium)");
        return s_fail(&self, ENOTSUP), NULL;
    }
    if (curve && !s_set(opts->curve_secret)) {
        zsys_error("ZKIT-SECURITY-OPTIONS: --curve-allow and --curve-server need --curve-secret "
                   "(this process's own certificate)");
        return s_fail(&self, EINVAL), NULL;
    }
    if (s_set(opts->curve_secret) && !s_set(opts->curve_allow) && !s_set(opts->curve_server)) {
        zsys_error("ZKIT-SECURITY-OPTIONS: --curve-secret needs --curve-allow (to serve) or "
                   "--curve-server (to connect)");
        return s_fail(&self, EINVAL), NULL;
    }
    if (s_set(opts->curve_secret) && s_load_secret(self, opts->curve_secret) == -1)
        return s_fail(&self, errno), NULL;
    if (s_set(opts->curve_server)) {
        if (zkit__security_read_cert(opts->curve_server, self->server_key, NULL) == -1) {
            int err = errno;
            zsys_error("ZKIT-SECURITY-KEY: cannot load the server certificate %s: %s",
                       opts->curve_server,
                       err == EINVAL ? "no valid curve public-key" : strerror(err));
            return s_fail(&self, err), NULL;
        }
    }
    self->allow_set = s_set(opts->curve_allow);
    if (!self->allow_set && !ip)
        return self; /* client role only: no ZAP handler needed */

    int err = zkit__zap_acquire(self->allow_set ? opts->curve_allow : NULL, opts->ip_allow,
                                opts->ip_deny, opts->reload_ms);
    if (err)
        return s_fail(&self, err), NULL;
    self->server = true;
    return self;
}

void zkit__security_destroy(zkit__security_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zkit__security_t *self = *self_p;
    if (self->server)
        zkit__zap_release();
    zcert_destroy(&self->cert);
    free(self->domain);
    free(self);
    *self_p = NULL;
}

bool zkit__security_enabled(const zkit__security_t *self)
{
    return self && self->enabled;
}

bool zkit__security_serves(const zkit__security_t *self)
{
    return self && self->server;
}

const char *zkit__security_public_key(const zkit__security_t *self)
{
    return self && self->cert ? zcert_public_txt(self->cert) : NULL;
}

int zkit__security_apply_server(zkit__security_t *self, zsock_t *sock)
{
    if (!self || !self->enabled)
        return 0;
    if (!self->server) {
        zsys_error("ZKIT-SECURITY-OPTIONS: a bound socket needs --curve-allow (or an IP list); "
                   "--curve-server alone configures only connecting sockets");
        errno = EINVAL;
        return -1;
    }
    void *handle = zsock_resolve(sock);
    int enforce = 1;
    if (zmq_setsockopt(handle, ZMQ_ZAP_DOMAIN, self->domain, strlen(self->domain)) == -1 ||
        zmq_setsockopt(handle, ZMQ_ZAP_ENFORCE_DOMAIN, &enforce, sizeof enforce) == -1) {
        int err = errno;
        zsys_error("ZKIT-SECURITY-ZAP: libzmq refused the ZAP options: %s", zmq_strerror(err));
        errno = err;
        return -1;
    }
    if (self->allow_set) {
        zcert_apply(self->cert, handle);
        int on = 1;
        if (zmq_setsockopt(handle, ZMQ_CURVE_SERVER, &on, sizeof on) == -1)
            return -1;
    }
    return 0;
}

int zkit__security_apply_client(zkit__security_t *self, zsock_t *sock)
{
    if (!self || !self->cert)
        return 0;
    if (!self->server_key[0]) {
        zsys_error("ZKIT-SECURITY-OPTIONS: a connecting socket needs --curve-server (the "
                   "server's public certificate)");
        errno = EINVAL;
        return -1;
    }
    void *handle = zsock_resolve(sock);
    zcert_apply(self->cert, handle);
    if (zmq_setsockopt(handle, ZMQ_CURVE_SERVERKEY, self->server_key, 40) == -1)
        return -1;
    return 0;
}

int zkit__security_reload(zkit__security_t *self)
{
    if (!self || !self->server)
        return 0;
    int err = zkit__zap_reload();
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}
