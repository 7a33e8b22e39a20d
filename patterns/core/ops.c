/*  ops.c: security and the control endpoint, applied the same way by every
    component (see ops.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "core/ops.h"

#include <errno.h>
#include <stdlib.h>

#include "core/security.h"
#include "core/security_zap.h"

/* Requests one serve() answers before the component's sockets get a turn. */
#define S_SERVE_BATCH 32

struct zkit__ops_t {
    zkit__security_t *security;
    zkit__control_t *control;
};

zkit__ops_t *zkit__ops_new(const zkit__ops_config_t *config)
{
    if (!config || !config->component) {
        errno = EINVAL;
        return NULL;
    }
    zkit__ops_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    const zkit_ops_opts_t *o = config->opts;
    zkit__security_opts_t sopts = ZKIT__SECURITY_OPTS_DEFAULT;
    if (o) {
        sopts.curve_secret = o->curve_secret;
        sopts.curve_server = o->curve_server;
        sopts.curve_allow = o->curve_allow;
        sopts.ip_allow = o->ip_allow;
        sopts.ip_deny = o->ip_deny;
    }
    int err = 0;
    self->security = zkit__security_new(&sopts);
    if (!self->security) {
        err = errno;
        goto fail;
    }
    if (o && o->control && *o->control) {
        bool serves = zkit__security_serves(self->security);
        if (zkit__security_enabled(self->security) && !serves)
            zsys_warning("ZKIT-CONTROL-PLAINTEXT: %s's control endpoint %s is not secured (no "
                         "--curve-allow or IP list); bind it to 127.0.0.1 or ipc://",
                         config->component, o->control);
        zkit__control_opts_t copts = ZKIT__CONTROL_OPTS_DEFAULT;
        copts.endpoint = o->control;
        copts.component = config->component;
        copts.name = config->name;
        copts.stats_fn = config->stats_fn;
        copts.command_fn = config->command_fn;
        copts.arg = config->arg;
        copts.security = serves ? self->security : NULL;
        self->control = zkit__control_new(&copts);
        if (!self->control) {
            err = errno;
            goto fail;
        }
    }
    return self;

fail:
    zkit__ops_destroy(&self);
    errno = err ? err : EINVAL;
    return NULL;
}

void zkit__ops_destroy(zkit__ops_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zkit__ops_t *self = *self_p;
    zkit__control_destroy(&self->control);
    zkit__security_destroy(&self->security);
    free(self);
    *self_p = NULL;
}

int zkit__ops_secure(zkit__ops_t *self, zsock_t *sock, bool bind)
{
    if (!self)
        return 0;
    return bind ? zkit__security_apply_server(self->security, sock)
                : zkit__security_apply_client(self->security, sock);
}

int zkit__ops_attach(zkit__ops_t *self, zsock_t *sock, const char *endpoints, bool bind)
{
    if (zkit__ops_secure(self, sock, bind) == -1)
        return -1;
    return zkit__socket_attach(sock, endpoints, bind);
}

int zkit__ops_bind(zkit__ops_t *self, zsock_t *sock, const char *endpoints, char *resolved,
                   size_t size)
{
    if (zkit__ops_secure(self, sock, true) == -1)
        return -1;
    return zkit__socket_bind(sock, endpoints, resolved, size);
}

zsock_t *zkit__ops_socket_new_bound(zkit__ops_t *self, int type, const zkit__socket_opts_t *opts,
                                    const char *endpoints, char *resolved, size_t size)
{
    zsock_t *sock = zkit__socket_new(type, opts);
    if (!sock)
        return NULL;
    if (zkit__ops_bind(self, sock, endpoints, resolved, size) == -1) {
        int err = errno;
        zkit__socket_close(&sock, 0);
        errno = err;
        return NULL;
    }
    return sock;
}

int zkit__ops_pollitem(zkit__ops_t *self, zmq_pollitem_t *item)
{
    if (!self || !self->control)
        return 0;
    *item = (zmq_pollitem_t){zsock_resolve(zkit__control_socket(self->control)), 0, ZMQ_POLLIN, 0};
    return 1;
}

int zkit__ops_serve(zkit__ops_t *self)
{
    if (!self || !self->control)
        return 0;
    for (int n = 0; n < S_SERVE_BATCH; n++) {
        int rc = zkit__control_handle(self->control);
        if (rc == 0)
            return 0;
        if (rc == -1)
            return errno == ETERM ? -1 : 0;
    }
    return 0;
}

zsock_t *zkit__ops_control_socket(zkit__ops_t *self)
{
    return self && self->control ? zkit__control_socket(self->control) : NULL;
}

const char *zkit__ops_control_endpoint(zkit__ops_t *self)
{
    return self && self->control ? zkit__control_endpoint(self->control) : NULL;
}

int zkit_security_reload(void)
{
    int err = zkit__zap_reload();
    if (err) {
        errno = err;
        return -1;
    }
    return 0;
}
