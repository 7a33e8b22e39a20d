/*  io.c: the spool's file operations: the default table of real system
    calls, and the helpers built on a table (full writes, atomic replace).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "spool/spool_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

static int s_open(void *arg, const char *path, int flags, mode_t mode)
{
    (void) arg;
    return open(path, flags, mode);
}

static int s_close(void *arg, int fd)
{
    (void) arg;
    return close(fd);
}

static ssize_t s_pread(void *arg, int fd, void *buf, size_t size, off_t offset)
{
    (void) arg;
    return pread(fd, buf, size, offset);
}

static ssize_t s_pwrite(void *arg, int fd, const void *buf, size_t size, off_t offset)
{
    (void) arg;
    return pwrite(fd, buf, size, offset);
}

static int s_fdatasync(void *arg, int fd)
{
    (void) arg;
    return fdatasync(fd);
}

static int s_fsync(void *arg, int fd)
{
    (void) arg;
    return fsync(fd);
}

static int s_ftruncate(void *arg, int fd, off_t size)
{
    (void) arg;
    return ftruncate(fd, size);
}

static int s_rename(void *arg, const char *from, const char *to)
{
    (void) arg;
    return rename(from, to);
}

static int s_unlink(void *arg, const char *path)
{
    (void) arg;
    return unlink(path);
}

static const zkit_spool_io_t s_default_io = {
    .open = s_open,
    .close = s_close,
    .pread = s_pread,
    .pwrite = s_pwrite,
    .fdatasync = s_fdatasync,
    .fsync = s_fsync,
    .ftruncate = s_ftruncate,
    .rename = s_rename,
    .unlink = s_unlink,
    .arg = NULL,
};

ZKIT_EXPORT const zkit_spool_io_t *zkit_spool_io_default(void)
{
    return &s_default_io;
}

int zkit__io_pwrite_all(const zkit_spool_io_t *io, int fd, const void *buf, size_t size,
                        uint64_t offset)
{
    const uint8_t *p = buf;
    while (size) {
        ssize_t n = io->pwrite(io->arg, fd, p, size, (off_t) offset);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0) {
            errno = EIO; /* a regular file never accepts nothing without an error */
            return -1;
        }
        p += n;
        size -= (size_t) n;
        offset += (uint64_t) n;
    }
    return 0;
}

int zkit__io_replace(const zkit_spool_io_t *io, int dir_fd, const char *tmp_path, const char *path,
                     const void *data, size_t size, bool durable)
{
    int fd = io->open(io->arg, tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    if (zkit__io_pwrite_all(io, fd, data, size, 0) || (durable && io->fdatasync(io->arg, fd)))
        goto err;
    if (io->close(io->arg, fd)) {
        fd = -1;
        goto err;
    }
    fd = -1;
    if (io->rename(io->arg, tmp_path, path))
        goto err;
    /* The rename is durable once the directory is. A failure here leaves
       either file in place, both complete: the caller reports it and writes
       a fresh temporary file next time (it never retries this fsync). */
    if (durable && io->fsync(io->arg, dir_fd))
        return -1;
    return 0;
err:;
    int err = errno;
    if (fd >= 0)
        io->close(io->arg, fd);
    io->unlink(io->arg, tmp_path);
    errno = err;
    return -1;
}
