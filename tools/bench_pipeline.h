/*  bench_pipeline.h (internal to the zkit program): the sides `zkit bench
    pipeline` compares. Each side is one way to move messages through the same
    three-stage layout (producer -> relay -> consumer, one thread each in this
    process, two hops over tcp://127.0.0.1) and is built once per payload size,
    then run for a number of messages in every round.

    bench_pipeline.c runs the rounds and prints the report;
    bench_pipeline_raw.c holds raw libzmq and "envelope on raw sockets";
    bench_pipeline_kit.c the zkit ventilator -> worker -> sink in both modes;
    bench_pipeline_redis.c redis LPUSH/BRPOP through a redis-server it starts.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_BENCH_PIPELINE_H_INCLUDED
#define ZKIT_BENCH_PIPELINE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ZKIT__PIPE_NAME "pipeline"

/*  No message moved for this long: the run is stalled and fails (raw,
    envelope, reliable, redis), or, in fast mode, what is missing is lost.   */
#define ZKIT__PIPE_STALL_MS 10000

/*  One side, built for one payload size. run moves messages through the
    three stages and returns 0 when they arrived, with *lost the number that
    did not (only fast mode may lose any), or -1 when the work failed (the
    reason is printed on stderr). destroy frees everything; safe on NULL.   */
typedef struct {
    void *self;
    int (*run)(void *self, uint64_t messages, uint64_t *lost);
    void (*destroy)(void *self);
    /* CPU time spent outside this process since the side was opened, in ns
       (a server's), added to the process's own; NULL when there is none. */
    uint64_t (*outside_cpu_ns)(void *self);
} zkit__pipe_side_t;

/*  Raw libzmq, PUSH -> PULL/PUSH relay -> PULL, frames of frame_bytes. With
    envelope, the producer sends a zkit envelope whose body is frame_bytes
    long, the relay decodes it and sends a new envelope with a copy of the
    body, the consumer decodes it. Returns 0, or -1 after printing why.      */
int zkit__pipe_raw_open(zkit__pipe_side_t *side, size_t frame_bytes, bool envelope);

/*  The size of the envelope frame the envelope side sends for a payload
    (its seq taken at a typical value for a run of messages).               */
size_t zkit__pipe_envelope_wire_bytes(size_t payload, uint64_t messages);

/*  zkit_ventilator -> zkit_worker (identity handler copying the body) ->
    zkit_sink, fast or reliable, with the worker's window. Returns 0, or -1
    after printing why.                                                      */
int zkit__pipe_kit_open(zkit__pipe_side_t *side, size_t payload, bool reliable, uint32_t window);

/*  Where a redis-server binary is (a static string), or NULL when there is
    none on PATH.                                                            */
const char *zkit__pipe_redis_server(void);

/*  redis: a redis-server started for the bench on a loopback port, producer
    LPUSH -> relay BRPOP + LPUSH -> consumer BRPOP, one command at a time.
    The server's CPU time (from /proc) is added to the process's. Returns 0,
    or -1 after printing why.                                                */
int zkit__pipe_redis_open(zkit__pipe_side_t *side, const char *server, size_t payload);

#endif
