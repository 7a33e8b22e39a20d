/*  deadletter.c: the dead-letter store interface and its spool store (see
    deadletter.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "balancer/deadletter.h"

#include <czmq.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "zkit_spool.h"

/* ---- the spool store ---------------------------------------------------------------- */

static int s_spool_put(void *state, const void *record, size_t size)
{
    /* fsync ALWAYS: returns after the fdatasync covering the record.       */
    return zkit_spool_append(state, record, size, NULL);
}

static void s_spool_close(void *state)
{
    zkit_spool_t *spool = state;
    zkit_spool_destroy(&spool);
}

static const zkit__deadletter_ops_t s_spool_ops = {"spool", s_spool_put, s_spool_close};

/* Creates dir and every missing directory above it (mkdir -p), because
   zkit_spool_new makes one level only and --dead-letter has always accepted
   a path whose parents do not exist yet. Returns 0, or -1 with errno.      */
static int s_mkdirs(const char *dir)
{
    char *copy = strdup(dir);
    if (!copy) {
        errno = ENOMEM;
        return -1;
    }
    int rc = 0;
    for (char *p = copy + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(copy, 0755) == -1 && errno != EEXIST) {
            rc = -1;
            break;
        }
        if (c == '\0')
            break;
        *p = c;
    }
    int err = errno;
    free(copy);
    errno = err;
    return rc;
}

zkit__deadletter_t *zkit__deadletter_open_spool(const char *dir)
{
    if (!dir || !*dir) {
        errno = EINVAL;
        return NULL;
    }
    zkit__deadletter_t *self = calloc(1, sizeof *self);
    char *where = strdup(dir);
    if (!self || !where) {
        free(where);
        free(self);
        errno = ENOMEM;
        return NULL;
    }
    if (s_mkdirs(dir)) {
        int err = errno;
        zsys_error("ZKIT-DEADLETTER: cannot create the directory %s: %s", dir, strerror(err));
        free(where);
        free(self);
        errno = err;
        return NULL;
    }
    zkit_spool_opts_t opts = ZKIT_SPOOL_OPTS_DEFAULT;
    opts.fsync = ZKIT_SPOOL_FSYNC_ALWAYS;
    /* Every request the balancer accepted must fit, with its headers.      */
    opts.max_record = ZKIT__DEADLETTER_RECORD_MAX;
    zkit_spool_t *spool = zkit_spool_new(dir, &opts);
    if (!spool) {
        int err = errno;
        zsys_error("ZKIT-DEADLETTER: cannot open the dead-letter spool %s: %s", dir,
                   err == EBUSY ? "another process has it open" : zkit_strerror(err));
        free(where);
        free(self);
        errno = err;
        return NULL;
    }
    /* An older balancer's file would otherwise sit there unnoticed.        */
    size_t len = strlen(dir) + sizeof "/" ZKIT__DEADLETTER_LEGACY_FILE;
    char *legacy = malloc(len);
    if (legacy) {
        snprintf(legacy, len, "%s/" ZKIT__DEADLETTER_LEGACY_FILE, dir);
        if (access(legacy, F_OK) == 0)
            zsys_warning("ZKIT-DEADLETTER: %s was written by an older balancer and is not "
                         "part of the spool; new dead letters go to the spool in %s",
                         legacy, dir);
        free(legacy);
    }
    self->ops = &s_spool_ops;
    self->state = spool;
    self->where = where;
    return self;
}

/* ---- the interface ---------------------------------------------------------------- */

int zkit__deadletter_put(zkit__deadletter_t *self, const void *record, size_t size)
{
    if (size > ZKIT__DEADLETTER_RECORD_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    return self->ops->put(self->state, record, size);
}

void zkit__deadletter_close(zkit__deadletter_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zkit__deadletter_t *self = *self_p;
    self->ops->close(self->state);
    free(self->where);
    free(self);
    *self_p = NULL;
}
