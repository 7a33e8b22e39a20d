/*  bench_spool_work.c: the workloads of `zkit bench spool` (bench_spool.h):
    spool appenders, the raw write(+fdatasync) anchors, producers through the
    device, replay, and the pair runner with a message count per side.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_spool.h"

#define S_SEGMENT   (4u * 1024 * 1024) /* small: acked segments are deleted */
#define S_READ_SIZE (256 * 1024)

/* ---- latencies ---------------------------------------------------------------- */

int zkit__bspool_lat_reserve(zkit__bspool_lat_t *l, uint64_t n)
{
    if (n <= l->cap)
        return 0;
    double *grown = realloc(l->ns, n * sizeof *grown);
    if (!grown)
        return -1;
    l->ns = grown;
    l->cap = n;
    return 0;
}

static int s_compare(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

static double s_percentile(const double *sorted, uint64_t n, double p)
{
    uint64_t index = (uint64_t) ceil(p * (double) n);
    return sorted[index ? index - 1 : 0];
}

int zkit__bspool_lat_call(zkit__bspool_lat_t *l, uint64_t n)
{
    if (!n)
        return 0;
    if (l->calls == l->calls_cap) {
        int cap = l->calls_cap ? l->calls_cap * 2 : 16;
        double *p50 = realloc(l->p50, (size_t) cap * sizeof *p50);
        if (p50)
            l->p50 = p50;
        double *p99 = realloc(l->p99, (size_t) cap * sizeof *p99);
        if (p99)
            l->p99 = p99;
        if (!p50 || !p99)
            return -1;
        l->calls_cap = cap;
    }
    qsort(l->ns, n, sizeof *l->ns, s_compare);
    l->p50[l->calls] = s_percentile(l->ns, n, 0.50);
    l->p99[l->calls] = s_percentile(l->ns, n, 0.99);
    l->calls++;
    return 0;
}

void zkit__bspool_lat_summary(const zkit__bspool_lat_t *l, double *p50, double *p99)
{
    *p50 = *p99 = NAN;
    if (!l->calls)
        return;
    int skip = l->calls > 1; /* the warm-up */
    int n = l->calls - skip;
    double *tmp = malloc((size_t) n * 2 * sizeof *tmp);
    if (!tmp)
        return;
    memcpy(tmp, l->p50 + skip, (size_t) n * sizeof *tmp);
    memcpy(tmp + n, l->p99 + skip, (size_t) n * sizeof *tmp);
    *p50 = zkit__bench_median(tmp, n);
    *p99 = zkit__bench_median(tmp + n, n);
    free(tmp);
}

void zkit__bspool_lat_free(zkit__bspool_lat_t *l)
{
    free(l->ns);
    free(l->p50);
    free(l->p99);
    memset(l, 0, sizeof *l);
}

size_t zkit__bspool_record_size(size_t size)
{
    return 32 + ((size + 7) & ~(size_t) 7);
}

/* ---- threads ---------------------------------------------------------------------- */

int zkit__bspool_spread(void *self, int producers, uint64_t messages, void *(*fn)(void *) )
{
    zkit__bspool_task_t tasks[64];
    pthread_t threads[64];
    uint64_t per = messages / (uint64_t) producers, extra = messages % (uint64_t) producers;
    uint64_t from = 0;
    int started = 0, rc = 0;
    for (int i = 0; i < producers; i++) {
        uint64_t count = per + ((uint64_t) i < extra);
        tasks[i] = (zkit__bspool_task_t){self, i, from, count, 0};
        from += count;
    }
    if (producers < 1 || producers > 64)
        return -1;
    if (producers == 1) {
        fn(&tasks[0]);
        return tasks[0].rc;
    }
    for (; started < producers; started++)
        if (pthread_create(&threads[started], NULL, fn, &tasks[started]))
            break;
    for (int i = 0; i < started; i++) {
        pthread_join(threads[i], NULL);
        rc |= tasks[i].rc;
    }
    return started == producers ? rc : -1;
}

/* ---- the kit: spool appenders -------------------------------------------------------- */

static void *s_appender(void *arg)
{
    zkit__bspool_task_t *t = arg;
    zkit__bspool_kit_t *kit = t->self;
    for (uint64_t i = 0; i < t->count; i++) {
        uint64_t start = zkit__bench_wall_ns();
        if (zkit_spool_append(kit->spool, kit->payload, kit->size, NULL)) {
            fprintf(stderr, "zkit bench spool: append: %s\n", zkit_strerror(errno));
            t->rc = -1;
            return NULL;
        }
        kit->lat.ns[t->from + i] = (double) (zkit__bench_wall_ns() - start);
    }
    return NULL;
}

int zkit__bspool_kit_open(zkit__bspool_kit_t *self, const char *dir, const char *policy,
                          int producers, size_t size, uint64_t max_messages)
{
    memset(self, 0, sizeof *self);
    zkit_spool_opts_t opts = ZKIT_SPOOL_OPTS_DEFAULT;
    if (zkit_spool_parse_fsync(policy, &opts))
        return -1;
    opts.segment_size = S_SEGMENT;
    opts.cursor_interval_ms = 3600000;
    self->producers = producers;
    self->size = size;
    self->payload = malloc(size ? size : 1);
    if (!self->payload || zkit__bspool_lat_reserve(&self->lat, max_messages))
        return -1;
    for (size_t i = 0; i < size; i++)
        self->payload[i] = (uint8_t) (i * 131 + 7);
    self->spool = zkit_spool_new(dir, &opts);
    if (!self->spool) {
        fprintf(stderr, "zkit bench spool: cannot open a spool in %s: %s\n", dir,
                zkit_strerror(errno));
        return -1;
    }
    return 0;
}

void zkit__bspool_kit_close(zkit__bspool_kit_t *self)
{
    zkit_spool_destroy(&self->spool);
    free(self->payload);
    zkit__bspool_lat_free(&self->lat);
}

int zkit__bspool_kit_run(void *arg, uint64_t messages)
{
    zkit__bspool_kit_t *self = arg;
    if (zkit__bspool_lat_reserve(&self->lat, messages))
        return -1;
    int rc = zkit__bspool_spread(self, self->producers, messages, s_appender);
    if (rc == 0)
        rc = zkit__bspool_lat_call(&self->lat, messages);
    /* Acknowledge everything, so that retention deletes the sealed segments
       and the spool does not grow round after round. Cheap: the cursor file
       is not written (cursor_interval_ms is an hour).                       */
    zkit_spool_stats_t st;
    zkit_spool_stats(self->spool, &st);
    if (st.newest_seq)
        zkit_spool_ack_upto(self->spool, st.newest_seq);
    return rc;
}

/* ---- the anchors: raw writes ------------------------------------------------------------ */

int zkit__bspool_raw_open(zkit__bspool_raw_t *self, const char *dir, bool sync, size_t record,
                          uint64_t max_messages)
{
    memset(self, 0, sizeof *self);
    char path[4200];
    snprintf(path, sizeof path, "%s/raw-%s.bin", dir, sync ? "sync" : "append");
    self->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    self->sync = sync;
    self->record = record;
    self->buf = calloc(1, record);
    if (self->fd < 0 || !self->buf || zkit__bspool_lat_reserve(&self->lat, max_messages)) {
        fprintf(stderr, "zkit bench spool: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < record; i++)
        self->buf[i] = (uint8_t) (i * 131 + 7);
    return 0;
}

void zkit__bspool_raw_close(zkit__bspool_raw_t *self)
{
    if (self->fd >= 0)
        close(self->fd);
    self->fd = -1;
    free(self->buf);
    zkit__bspool_lat_free(&self->lat);
}

int zkit__bspool_raw_run(void *arg, uint64_t messages)
{
    zkit__bspool_raw_t *self = arg;
    if (zkit__bspool_lat_reserve(&self->lat, messages))
        return -1;
    /* The file restarts at 0 when it passes the spool's segment size, as a
       spool moves to a new segment: both sides write the same amount.    */
    for (uint64_t i = 0; i < messages; i++) {
        uint64_t start = zkit__bench_wall_ns();
        if (self->offset + self->record > S_SEGMENT)
            self->offset = 0;
        if (pwrite(self->fd, self->buf, self->record, (off_t) self->offset) !=
                (ssize_t) self->record ||
            (self->sync && fdatasync(self->fd))) {
            fprintf(stderr, "zkit bench spool: raw write: %s\n", strerror(errno));
            return -1;
        }
        self->offset += self->record;
        self->lat.ns[i] = (double) (zkit__bench_wall_ns() - start);
    }
    return zkit__bspool_lat_call(&self->lat, messages);
}

/* ---- the device ----------------------------------------------------------------------- */

static void *s_device_producer(void *arg)
{
    zkit__bspool_task_t *t = arg;
    zkit__bspool_device_t *self = t->self;
    void *sock = self->socks[t->index];
    uint8_t *frame = self->frames[t->index];
    char reply[32];
    uint8_t ids[16 * 1024];
    for (uint64_t i = 0; i < t->count; i++) {
        zkit_id_generate(frame + 4); /* a fresh id: the device de-duplicates */
        uint64_t start = zkit__bench_wall_ns();
        if (zmq_send(sock, "PUT", 3, ZMQ_SNDMORE) == -1 ||
            zmq_send(sock, frame, self->frame_size, 0) == -1)
            goto fail;
        int n = zmq_recv(sock, reply, sizeof reply, 0);
        if (n != 9 || memcmp(reply, "CONFIRMED", 9) || zmq_recv(sock, ids, sizeof ids, 0) != 16 ||
            memcmp(ids, frame + 4, 16))
            goto fail;
        self->lat.ns[t->from + i] = (double) (zkit__bench_wall_ns() - start);
    }
    return NULL;
fail:
    fprintf(stderr, "zkit bench spool: no CONFIRMED from the device: %s\n", zmq_strerror(errno));
    t->rc = -1;
    return NULL;
}

int zkit__bspool_device_open(zkit__bspool_device_t *self, const char *dir, int producers,
                             size_t size, uint64_t max_messages)
{
    memset(self, 0, sizeof *self);
    self->producers = producers;
    zkit_spool_device_opts_t opts = ZKIT_SPOOL_DEVICE_OPTS_DEFAULT;
    opts.dir = dir;
    opts.in = "tcp://127.0.0.1:*";
    opts.out = "tcp://127.0.0.1:*";
    opts.spool.segment_size = S_SEGMENT;
    self->device = zkit_spool_device_new(&opts);
    self->ctx = zmq_ctx_new();
    self->socks = calloc((size_t) producers, sizeof *self->socks);
    self->frames = calloc((size_t) producers, sizeof *self->frames);
    zkit_envelope_t *env = zkit_envelope_new();
    uint8_t *body = calloc(1, size ? size : 1);
    int rc = -1;
    if (!self->device || !self->ctx || !self->socks || !self->frames || !env || !body ||
        zkit__bspool_lat_reserve(&self->lat, max_messages))
        goto done;
    zkit_envelope_set_body(env, body, size);
    self->frame_size = zkit_envelope_encoded_size(env);
    int timeout = 10000, linger = 0;
    for (int i = 0; i < producers; i++) {
        self->frames[i] = malloc(self->frame_size);
        self->socks[i] = zmq_socket(self->ctx, ZMQ_DEALER);
        if (!self->frames[i] || !self->socks[i] ||
            zkit_envelope_encode_to(env, self->frames[i], self->frame_size) < 0)
            goto done;
        zmq_setsockopt(self->socks[i], ZMQ_RCVTIMEO, &timeout, sizeof timeout);
        zmq_setsockopt(self->socks[i], ZMQ_LINGER, &linger, sizeof linger);
        if (zmq_connect(self->socks[i], zkit_spool_device_in(self->device)))
            goto done;
    }
    rc = 0;
done:
    if (rc)
        fprintf(stderr, "zkit bench spool: cannot set up the device: %s\n", zkit_strerror(errno));
    zkit_envelope_destroy(&env);
    free(body);
    return rc;
}

void zkit__bspool_device_close(zkit__bspool_device_t *self)
{
    for (int i = 0; self->socks && i < self->producers; i++)
        if (self->socks[i])
            zmq_close(self->socks[i]);
    for (int i = 0; self->frames && i < self->producers; i++)
        free(self->frames[i]);
    free(self->socks);
    free(self->frames);
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    zkit_spool_device_destroy(&self->device);
    zkit__bspool_lat_free(&self->lat);
}

int zkit__bspool_device_run(void *arg, uint64_t messages)
{
    zkit__bspool_device_t *self = arg;
    if (zkit__bspool_lat_reserve(&self->lat, messages))
        return -1;
    int rc = zkit__bspool_spread(self, self->producers, messages, s_device_producer);
    return rc ? rc : zkit__bspool_lat_call(&self->lat, messages);
}

/* ---- replay ----------------------------------------------------------------------------- */

int zkit__bspool_replay_open(zkit__bspool_replay_t *self, const char *dir, size_t size,
                             uint64_t messages)
{
    memset(self, 0, sizeof *self);
    snprintf(self->dir, sizeof self->dir, "%s", dir);
    zkit_spool_opts_t opts = ZKIT_SPOOL_OPTS_DEFAULT;
    opts.fsync = ZKIT_SPOOL_FSYNC_NEVER;
    opts.segment_size = (uint64_t) 1 << 40; /* one file, for the plain read */
    self->record = zkit__bspool_record_size(size);
    self->buf = malloc(S_READ_SIZE > size ? S_READ_SIZE : size);
    self->spool = zkit_spool_new(dir, &opts);
    if (!self->spool || !self->buf)
        return -1;
    memset(self->buf, 'r', size);
    for (uint64_t i = 0; i < messages; i++)
        if (zkit_spool_append(self->spool, self->buf, size, NULL))
            return -1;
    return 0;
}

void zkit__bspool_replay_close(zkit__bspool_replay_t *self)
{
    zkit_spool_destroy(&self->spool);
    free(self->buf);
    self->buf = NULL;
}

int zkit__bspool_replay_run(void *arg, uint64_t messages)
{
    zkit__bspool_replay_t *self = arg;
    zkit_spool_reader_t *reader = zkit_spool_reader_new(self->spool, 1, 0);
    if (!reader)
        return -1;
    zkit_spool_record_t rec;
    uint64_t n = 0, sum = 0;
    while (n < messages && zkit_spool_reader_next(reader, &rec) == 1) {
        sum += rec.size + ((const uint8_t *) rec.data)[0];
        n++;
    }
    zkit_spool_reader_destroy(&reader);
    zkit__bench_consume(sum);
    return n == messages ? 0 : -1;
}

int zkit__bspool_read_run(void *arg, uint64_t messages)
{
    zkit__bspool_replay_t *self = arg;
    char path[4200];
    snprintf(path, sizeof path, "%s/0000000000000001.zseg", self->dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    uint64_t want = messages * self->record, done = 0, sum = 0;
    while (done < want) {
        size_t chunk = want - done < S_READ_SIZE ? (size_t) (want - done) : S_READ_SIZE;
        ssize_t n = pread(fd, self->buf, chunk, (off_t) (64 + done));
        if (n <= 0)
            break;
        sum += self->buf[0];
        done += (uint64_t) n;
    }
    close(fd);
    zkit__bench_consume(sum);
    return done == want ? 0 : -1;
}

/* ---- pairs with a message count per side ---------------------------------------------------- */

static int s_timed(zkit__bench_fn_t fn, void *ctx, uint64_t messages, double *wall, double *cpu)
{
    uint64_t w0 = zkit__bench_wall_ns(), c0 = zkit__bench_cpu_ns(ZKIT__BENCH_CPU_PROCESS);
    int rc = fn(ctx, messages);
    uint64_t c1 = zkit__bench_cpu_ns(ZKIT__BENCH_CPU_PROCESS), w1 = zkit__bench_wall_ns();
    *wall = (double) (w1 - w0) / (double) messages;
    *cpu = (double) (c1 - c0) / (double) messages;
    return rc;
}

static void s_side(zkit__bench_side_t *side, double *wall, double *cpu, int n)
{
    double lo = wall[0], hi = wall[0];
    for (int i = 1; i < n; i++) {
        lo = wall[i] < lo ? wall[i] : lo;
        hi = wall[i] > hi ? wall[i] : hi;
    }
    side->wall_min_ns = lo;
    side->wall_max_ns = hi;
    side->wall_ns = zkit__bench_median(wall, n);
    side->cpu_ns = zkit__bench_median(cpu, n);
    side->allocs = NAN;
}

int zkit__bspool_pair(zkit__bench_fn_t kit, void *kit_ctx, uint64_t kit_messages,
                      zkit__bench_fn_t anchor, void *anchor_ctx, uint64_t anchor_messages,
                      int rounds, zkit__bench_result_t *result)
{
    double *s = calloc((size_t) rounds * 4, sizeof *s);
    if (!s)
        return -1;
    zkit__bench_fn_t fn[2] = {kit, anchor};
    void *ctx[2] = {kit_ctx, anchor_ctx};
    uint64_t n[2] = {kit_messages, anchor_messages};
    double *wall[2] = {s, s + rounds}, *cpu[2] = {s + 2 * rounds, s + 3 * rounds};
    int rc = 0;
    for (int k = 0; k < 2 && !rc; k++)
        rc = fn[k](ctx[k], n[k] / 10 ? n[k] / 10 : 1); /* warm-up */
    for (int r = 0; r < rounds && !rc; r++)
        for (int k = 0; k < 2 && !rc; k++) {
            int side = r % 2 ? 1 - k : k;
            rc = s_timed(fn[side], ctx[side], n[side], &wall[side][r], &cpu[side][r]);
        }
    if (!rc) {
        s_side(&result->kit, wall[0], cpu[0], rounds);
        s_side(&result->anchor, wall[1], cpu[1], rounds);
        result->ratio = result->kit.wall_ns / result->anchor.wall_ns;
        result->faster = result->anchor.wall_ns / result->kit.wall_ns;
    }
    free(s);
    return rc ? -1 : 0;
}
