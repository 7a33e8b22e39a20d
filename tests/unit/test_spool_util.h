/*  test_spool_util.h: helpers shared by the spool's unit tests: temporary
    directories, file surgery, and a fault-injecting I/O table.

    The fault table wraps the real system calls. It counts fdatasync calls,
    can fail them, can make writes run out of space after a byte budget
    (a short write, then ENOSPC), and can hold fdatasync at a gate until the
    test opens it. It also proves group commit: every record write is noted
    (its seq read from the record header), and when an fdatasync returns,
    every record written before it started is durable_seq or below.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef TEST_SPOOL_UTIL_H_INCLUDED
#define TEST_SPOOL_UTIL_H_INCLUDED

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "zkit_spool.h"

#define TU_UNUSED __attribute__((unused))

#include "spool/format.h"

/* ---- directories and files ------------------------------------------------------ */

TU_UNUSED static int s_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    return remove(path);
}

TU_UNUSED static void tu_rmrf(const char *path)
{
    nftw(path, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh empty directory path (the directory itself is not created). */
TU_UNUSED static void tu_tmpdir(char *out, size_t size, const char *tag)
{
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(out, size, "%s/zkit-%s-XXXXXX", base, tag);
    if (!mkdtemp(out))
        abort();
    tu_rmrf(out);
}

TU_UNUSED static void tu_seg_path(char *out, size_t size, const char *dir, uint64_t first_seq)
{
    snprintf(out, size, "%s/%016llx.zseg", dir, (unsigned long long) first_seq);
}

/* Reads a whole file; returns a malloc'd buffer (size in *size) or NULL. */
TU_UNUSED static uint8_t *tu_read(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t) n : 1);
    if (buf && n > 0 && fread(buf, 1, (size_t) n, f) != (size_t) n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *size = (size_t) (n > 0 ? n : 0);
    return buf;
}

TU_UNUSED static int tu_write(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int rc = size && fwrite(data, 1, size, f) != size ? -1 : 0;
    return fclose(f) || rc ? -1 : 0;
}

TU_UNUSED static long tu_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) ? -1 : (long) st.st_size;
}

/* Lines in a file (0 when it does not exist). */
TU_UNUSED static int tu_count_lines(const char *path)
{
    size_t size = 0;
    uint8_t *data = tu_read(path, &size);
    int lines = 0;
    for (size_t i = 0; data && i < size; i++)
        lines += data[i] == '\n';
    free(data);
    return lines;
}

/* A deterministic payload for seq-independent index i: its first 8 bytes are
   i, the rest a pattern of i, so a reader can check it without a table. */
TU_UNUSED static size_t tu_payload(uint8_t *buf, size_t cap, uint64_t i, size_t size)
{
    if (size > cap)
        size = cap;
    for (size_t k = 0; k < size; k++)
        buf[k] = (uint8_t) (i * 131 + k * 7 + (k >> 8));
    if (size >= 8)
        memcpy(buf, &i, 8);
    return size;
}

TU_UNUSED static int tu_payload_ok(const void *data, size_t size, uint64_t i)
{
    uint8_t want[70000];
    if (size > sizeof want)
        return 0;
    tu_payload(want, sizeof want, i, size);
    return memcmp(want, data, size) == 0;
}

/* ---- a clock the test moves ---------------------------------------------------- */

TU_UNUSED static uint64_t tu_clock(void *arg)
{
    return __atomic_load_n((uint64_t *) arg, __ATOMIC_SEQ_CST);
}

/* ---- the fault-injecting I/O table ------------------------------------------------ */

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    zkit_spool_io_t io;
    /* counters */
    int fdatasyncs;
    int pwrites;
    int record_writes;
    /* faults */
    int fail_fdatasync;     /* > 0: the next N fdatasyncs fail with EIO      */
    long long write_budget; /* >= 0: bytes writes may still take, then ENOSPC */
    int write_errno;        /* what a write past the budget fails with       */
    bool gate_closed;       /* fdatasync waits while closed                  */
    int gate_waiting;
    int hold_first_sync_until_writes; /* the first fdatasync waits until this
                                         many records were written (bounded) */
    bool first_sync_done;
    /* group commit proof */
    uint64_t last_written_seq;
    uint64_t durable_seq;
} tu_fault_t;

TU_UNUSED static tu_fault_t *tu_fault_of(void *arg)
{
    return arg;
}

TU_UNUSED static int tu_f_open(void *arg, const char *path, int flags, mode_t mode)
{
    (void) arg;
    return open(path, flags, mode);
}

TU_UNUSED static int tu_f_close(void *arg, int fd)
{
    (void) arg;
    return close(fd);
}

TU_UNUSED static ssize_t tu_f_pread(void *arg, int fd, void *buf, size_t size, off_t offset)
{
    (void) arg;
    return pread(fd, buf, size, offset);
}

TU_UNUSED static ssize_t tu_f_pwrite(void *arg, int fd, const void *buf, size_t size, off_t offset)
{
    tu_fault_t *f = tu_fault_of(arg);
    pthread_mutex_lock(&f->lock);
    f->pwrites++;
    size_t allowed = size;
    if (f->write_budget >= 0) {
        if (f->write_budget == 0) {
            pthread_mutex_unlock(&f->lock);
            errno = f->write_errno ? f->write_errno : ENOSPC;
            return -1;
        }
        if ((long long) allowed > f->write_budget)
            allowed = (size_t) f->write_budget;
        f->write_budget -= (long long) allowed;
    }
    pthread_mutex_unlock(&f->lock);
    ssize_t n = pwrite(fd, buf, allowed, offset);
    if (n > 0 && (size_t) n == size && size >= ZKIT__REC_HDR_SIZE &&
        zkit__get_le32(buf) == ZKIT__REC_MAGIC) {
        pthread_mutex_lock(&f->lock);
        f->record_writes++;
        uint64_t seq = zkit__get_le64((const uint8_t *) buf + 8);
        if (seq > f->last_written_seq)
            f->last_written_seq = seq;
        pthread_cond_broadcast(&f->cond);
        pthread_mutex_unlock(&f->lock);
    }
    return n;
}

TU_UNUSED static int tu_f_fdatasync(void *arg, int fd)
{
    tu_fault_t *f = tu_fault_of(arg);
    pthread_mutex_lock(&f->lock);
    f->fdatasyncs++;
    if (!f->first_sync_done && f->hold_first_sync_until_writes) {
        f->first_sync_done = true;
        struct timespec deadline;
        clock_gettime(CLOCK_REALTIME, &deadline);
        deadline.tv_sec += 10;
        while (f->record_writes < f->hold_first_sync_until_writes &&
               pthread_cond_timedwait(&f->cond, &f->lock, &deadline) == 0)
            ;
    }
    f->gate_waiting++;
    pthread_cond_broadcast(&f->cond);
    while (f->gate_closed)
        pthread_cond_wait(&f->cond, &f->lock);
    f->gate_waiting--;
    uint64_t covered = f->last_written_seq;
    if (f->fail_fdatasync > 0) {
        f->fail_fdatasync--;
        pthread_mutex_unlock(&f->lock);
        errno = EIO;
        return -1;
    }
    pthread_mutex_unlock(&f->lock);
    int rc = fdatasync(fd);
    if (rc == 0) {
        pthread_mutex_lock(&f->lock);
        if (covered > f->durable_seq)
            f->durable_seq = covered;
        pthread_mutex_unlock(&f->lock);
    }
    return rc;
}

TU_UNUSED static int tu_f_fsync(void *arg, int fd)
{
    (void) arg;
    return fsync(fd);
}

TU_UNUSED static int tu_f_ftruncate(void *arg, int fd, off_t size)
{
    (void) arg;
    return ftruncate(fd, size);
}

TU_UNUSED static int tu_f_rename(void *arg, const char *from, const char *to)
{
    (void) arg;
    return rename(from, to);
}

TU_UNUSED static int tu_f_unlink(void *arg, const char *path)
{
    (void) arg;
    return unlink(path);
}

TU_UNUSED static void tu_fault_init(tu_fault_t *f)
{
    memset(f, 0, sizeof *f);
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    f->write_budget = -1;
    f->io = (zkit_spool_io_t){.open = tu_f_open,
                              .close = tu_f_close,
                              .pread = tu_f_pread,
                              .pwrite = tu_f_pwrite,
                              .fdatasync = tu_f_fdatasync,
                              .fsync = tu_f_fsync,
                              .ftruncate = tu_f_ftruncate,
                              .rename = tu_f_rename,
                              .unlink = tu_f_unlink,
                              .arg = f};
}

TU_UNUSED static void tu_fault_fini(tu_fault_t *f)
{
    pthread_cond_destroy(&f->cond);
    pthread_mutex_destroy(&f->lock);
}

/*  The disk from now on: bytes writes may still take before they fail with
    err (ENOSPC for a full disk), or budget -1 for space without limit.    */
TU_UNUSED static void tu_fault_disk_space(tu_fault_t *f, long long budget, int err)
{
    pthread_mutex_lock(&f->lock);
    f->write_budget = budget;
    f->write_errno = err;
    pthread_mutex_unlock(&f->lock);
}

TU_UNUSED static void tu_fault_set(tu_fault_t *f, int *field, int value)
{
    pthread_mutex_lock(&f->lock);
    *field = value;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

TU_UNUSED static void tu_fault_gate(tu_fault_t *f, bool closed)
{
    pthread_mutex_lock(&f->lock);
    f->gate_closed = closed;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

TU_UNUSED static int tu_fault_get(tu_fault_t *f, const int *field)
{
    pthread_mutex_lock(&f->lock);
    int v = *field;
    pthread_mutex_unlock(&f->lock);
    return v;
}

/* Waits (bounded) until n fdatasyncs are held at the gate. */
TU_UNUSED static int tu_fault_wait_gate(tu_fault_t *f, int n)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&f->lock);
    int rc = 0;
    while (f->gate_waiting < n && rc == 0)
        rc = pthread_cond_timedwait(&f->cond, &f->lock, &deadline);
    int ok = f->gate_waiting >= n;
    pthread_mutex_unlock(&f->lock);
    return ok ? 0 : -1;
}

/* ---- reading everything ------------------------------------------------------------ */

/* Reads every deliverable record from seq 1: fills seqs (up to cap) and
   returns the count, or -1 on a read error. Checks each payload with check
   (index = payload's first 8 bytes) when check is set. */
TU_UNUSED static int tu_read_all(zkit_spool_t *spool, uint64_t *seqs, int cap, bool check)
{
    zkit_spool_reader_t *reader = zkit_spool_reader_new(spool, 1, 0);
    if (!reader)
        return -1;
    zkit_spool_record_t rec;
    int n = 0, rc;
    while ((rc = zkit_spool_reader_next(reader, &rec)) == 1) {
        if (check) {
            uint64_t index = 0;
            if (rec.size >= 8)
                memcpy(&index, rec.data, 8);
            if (rec.size < 8 || !tu_payload_ok(rec.data, rec.size, index)) {
                n = -2;
                break;
            }
        }
        if (n < cap)
            seqs[n] = rec.seq;
        n++;
    }
    zkit_spool_reader_destroy(&reader);
    return rc < 0 ? -1 : n;
}

#endif
