/*  line_reader.c: lines without blocking (see line_reader.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "line_reader.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_READ_SIZE 65536

int zkit__line_reader_open(zkit__line_reader_t *self, const char *path)
{
    memset(self, 0, sizeof *self);
    if (strcmp(path, "-") == 0) {
        self->fd = STDIN_FILENO;
        return 0;
    }
    self->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (self->fd == -1)
        return -1;
    self->owned = true;
    return 0;
}

void zkit__line_reader_close(zkit__line_reader_t *self)
{
    if (self->owned && self->fd >= 0)
        close(self->fd);
    self->owned = false;
    self->fd = -1;
    free(self->buf);
    self->buf = NULL;
    self->start = self->end = self->cap = 0;
}

int zkit__line_reader_fd(const zkit__line_reader_t *self)
{
    return self->fd;
}

/*  Makes room for S_READ_SIZE more bytes after end. Returns 0, or -1 with
    errno EMSGSIZE (a line beyond the limit) or ENOMEM.                      */
static int s_make_room(zkit__line_reader_t *self)
{
    if (self->start > 0) { /* slide the unread part to the front */
        memmove(self->buf, self->buf + self->start, self->end - self->start);
        self->end -= self->start;
        self->start = 0;
    }
    if (self->cap - self->end >= S_READ_SIZE)
        return 0;
    if (self->end >= ZKIT__LINE_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    size_t cap = self->cap ? self->cap * 2 : 2 * S_READ_SIZE;
    char *buf = realloc(self->buf, cap);
    if (!buf) {
        errno = ENOMEM;
        return -1;
    }
    self->buf = buf;
    self->cap = cap;
    return 0;
}

zkit__line_status_t zkit__line_reader_next(zkit__line_reader_t *self, const char **line,
                                           size_t *size)
{
    for (;;) {
        char *from = self->buf + self->start;
        size_t avail = self->end - self->start;
        char *nl = avail ? memchr(from, '\n', avail) : NULL;
        if (nl || (self->eof && avail)) {
            size_t n = nl ? (size_t) (nl - from) : avail;
            *line = from;
            *size = n;
            self->start += nl ? n + 1 : n;
            return ZKIT__LINE_OK;
        }
        if (self->eof)
            return ZKIT__LINE_END;
        /* A regular file always polls readable; a pipe or a terminal only
           when a read will return at once.                                 */
        struct pollfd pfd = {.fd = self->fd, .events = POLLIN};
        int ready = poll(&pfd, 1, 0);
        if (ready == -1 && errno != EINTR)
            return ZKIT__LINE_ERROR;
        if (ready <= 0)
            return ZKIT__LINE_AGAIN;
        if (s_make_room(self) == -1)
            return ZKIT__LINE_ERROR;
        ssize_t got = read(self->fd, self->buf + self->end, self->cap - self->end);
        if (got == -1) {
            if (errno == EINTR || errno == EAGAIN)
                return ZKIT__LINE_AGAIN;
            return ZKIT__LINE_ERROR;
        }
        if (got == 0)
            self->eof = true;
        self->end += (size_t) got;
    }
}
