/*  bench_spool.h (internal to the zkit program): the workloads of
    `zkit bench spool` (bench_spool_work.c, bench_spool_redis.c), shared
    with the suite itself (bench_spool.c).

    Every workload is a zkit__bench_fn_t: it does `messages` appends (or
    reads) and, where it means something, records the latency of each one,
    so the suite can quote p50 and p99 per round beside the rate.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_BENCH_SPOOL_H_INCLUDED
#define ZKIT_BENCH_SPOOL_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench.h"
#include "zkit.h"

#define ZKIT__BSPOOL_NAME "spool"

/*  Per-operation latencies of the calls of one workload: the p50 and p99 of
    each call are kept, and their medians quoted.                            */
typedef struct {
    double *ns;        /* latencies of the current call                  */
    uint64_t cap;      /* room in ns                                     */
    double *p50, *p99; /* one per call                                  */
    int calls, calls_cap;
} zkit__bspool_lat_t;

/*  The medians of the per-call p50 and p99 (the first call, a warm-up, is
    left out when there were more). NAN when nothing was measured.         */
void zkit__bspool_lat_summary(const zkit__bspool_lat_t *lat, double *p50, double *p99);
void zkit__bspool_lat_free(zkit__bspool_lat_t *lat);

/*  Makes room for n latencies. Returns 0 or -1.                            */
int zkit__bspool_lat_reserve(zkit__bspool_lat_t *lat, uint64_t n);

/*  Ends a call of n operations (their latencies in lat->ns): keeps its p50
    and p99. Returns 0 or -1.                                                */
int zkit__bspool_lat_call(zkit__bspool_lat_t *lat, uint64_t n);

/*  One producer's share of a call: operations [from, from + count).       */
typedef struct {
    void *self;
    int index;
    uint64_t from, count;
    int rc; /* set to -1 by fn on failure */
} zkit__bspool_task_t;

/*  Runs fn (given a zkit__bspool_task_t *) for producers (1 to 64) slices of
    messages: on threads, or inline for one. Returns 0, or -1 when one
    failed.                                                                  */
int zkit__bspool_spread(void *self, int producers, uint64_t messages, void *(*fn)(void *) );

/*  The kit: producers threads appending size-byte records to a spool with
    the given fsync policy, each append's latency recorded.                 */
typedef struct {
    zkit_spool_t *spool;
    int producers;
    size_t size;
    uint8_t *payload;
    zkit__bspool_lat_t lat;
} zkit__bspool_kit_t;

int zkit__bspool_kit_open(zkit__bspool_kit_t *self, const char *dir, const char *policy,
                          int producers, size_t size, uint64_t max_messages);
void zkit__bspool_kit_close(zkit__bspool_kit_t *self);
int zkit__bspool_kit_run(void *self, uint64_t messages);

/*  The anchors: one thread writing the same on-disk record size with pwrite
    into a plain file, with an fdatasync after each (sync) or without.     */
typedef struct {
    int fd;
    bool sync;
    size_t record; /* bytes per record, as the spool lays it out */
    uint8_t *buf;
    uint64_t offset;
    zkit__bspool_lat_t lat;
} zkit__bspool_raw_t;

int zkit__bspool_raw_open(zkit__bspool_raw_t *self, const char *dir, bool sync, size_t record,
                          uint64_t max_messages);
void zkit__bspool_raw_close(zkit__bspool_raw_t *self);
int zkit__bspool_raw_run(void *self, uint64_t messages);

/*  The device: zkit_spool_device (fsync always) on tcp loopback, producers
    threads each with a DEALER sending PUT and waiting for its CONFIRMED.   */
typedef struct {
    zkit_spool_device_t *device;
    void *ctx;
    void **socks;
    int producers;
    uint8_t **frames; /* one encoded envelope per producer */
    size_t frame_size;
    zkit__bspool_lat_t lat;
} zkit__bspool_device_t;

int zkit__bspool_device_open(zkit__bspool_device_t *self, const char *dir, int producers,
                             size_t size, uint64_t max_messages);
void zkit__bspool_device_close(zkit__bspool_device_t *self);
int zkit__bspool_device_run(void *self, uint64_t messages);

/*  Replay: a spool reader over the first messages records of a spool, and
    its anchor, a plain sequential read of the same segment files.         */
typedef struct {
    zkit_spool_t *spool;
    char dir[4096];
    uint8_t *buf;
    size_t record;
} zkit__bspool_replay_t;

int zkit__bspool_replay_open(zkit__bspool_replay_t *self, const char *dir, size_t size,
                             uint64_t messages);
void zkit__bspool_replay_close(zkit__bspool_replay_t *self);
int zkit__bspool_replay_run(void *self, uint64_t messages);
int zkit__bspool_read_run(void *self, uint64_t messages);

/*  redis-server with appendonly yes and appendfsync always, started for the
    bench in dir, and producers connections each sending LPUSH and waiting
    for the reply (no pipelining).                                           */
typedef struct {
    int pid;
    int port;
    int producers;
    int *fds;
    char *command; /* one LPUSH, ready to write */
    size_t command_size;
    zkit__bspool_lat_t lat;
} zkit__bspool_redis_t;

/*  Where a redis-server binary is, or NULL.                                 */
const char *zkit__bspool_redis_server(void);
int zkit__bspool_redis_open(zkit__bspool_redis_t *self, const char *server, const char *dir,
                            int producers, size_t size, uint64_t max_messages);
void zkit__bspool_redis_close(zkit__bspool_redis_t *self);
int zkit__bspool_redis_run(void *self, uint64_t messages);

/*  Runs kit and anchor alternating for rounds rounds (kit first in even
    rounds) after a warm-up of each, with different message counts per
    side (an fdatasync per message is slow: the anchor may do fewer), and
    fills result with per-message medians as zkit__bench_run_pair does.
    Returns 0, or -1 when a workload failed.                                */
int zkit__bspool_pair(zkit__bench_fn_t kit, void *kit_ctx, uint64_t kit_messages,
                      zkit__bench_fn_t anchor, void *anchor_ctx, uint64_t anchor_messages,
                      int rounds, zkit__bench_result_t *result);

/*  The record's size on disk for a payload of size bytes.                   */
size_t zkit__bspool_record_size(size_t size);

#endif
