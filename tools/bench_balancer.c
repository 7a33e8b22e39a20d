/*  bench_balancer.c: `zkit bench balancer`, request round trips through the
    load-balancing device beside raw zmq_proxy(ROUTER, DEALER), in one run.

    Both sides have the same layout on tcp://127.0.0.1, threads of this
    process: a client (the bench's own thread: a DEALER sending
    [empty][envelope] and reading [empty][envelope]) -> the device -> one
    worker thread that echoes every request. The kit's device is a
    zkit_balancer with a zkit-dialect worker (READY with a credit as large as
    the pipelining window); the anchor's is zmq_proxy with a plain DEALER
    worker. The client encodes a fresh envelope (a new id) for every request
    on both sides, so the wire bytes and the client's work are equal: the
    difference is the device.

    Two figures (docs/performance.md):
    - round trip: one request outstanding at a time; the p50 and p99 of each
      round, the median over the rounds quoted. Closed loop: latency at the
      rate the loop allows, not at a fixed offered rate.
    - pipelined: `window` requests outstanding; messages per second and CPU
      ns per message (whole process), through zkit__bench_run_pair.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "zkit.h"
#include "zkit_cli.h"

#define S_SUITE            "balancer"
#define S_DEFAULT_MESSAGES 20000
#define S_QUICK_MESSAGES   1000
#define S_DEFAULT_WINDOW   64
#define S_MAX_WINDOW       1000 /* the protocol's limit on a worker's credit */
#define S_DEFAULT_SIZE     64
#define S_MAX_SIZE         (1024 * 1024)
#define S_WORKER_HB_MS     300 /* the kit worker's heartbeat; the balancer's is 1000 */
#define S_WAIT_MS          5000

/* Targets from docs/performance.md (informational): kit / anchor.          */
#define S_TARGET_P50  1.15
#define S_TARGET_P99  1.3
#define S_TARGET_RATE 0.8

typedef struct {
    bool kit;
    void *ctx;       /* this side's libzmq context for its raw sockets */
    void *proxy_ctx; /* anchor: the proxy's own, as the balancer has czmq's */
    void *client;    /* DEALER                                          */
    void *frontend;  /* anchor: the proxy's sockets, owned by its thread */
    void *backend;
    void *control; /* anchor: PAIR the proxy is steered with          */
    void *steer;   /* anchor: its peer, the proxy's end               */
    zkit_balancer_t *balancer;
    pthread_t proxy_thread, worker_thread;
    bool proxy_started, worker_started;
    char frontend_ep[256], backend_ep[256];
    atomic_int stop;
    int window;
    zkit_envelope_t *env;
    double *samples; /* round trips of the current round, ns */
} s_side_t;

typedef struct {
    zkit__bench_opts_t opts;
    size_t size;
    int window;
    double p50[2], p99[2]; /* kit, anchor: medians over the rounds, ns */
    zkit__bench_result_t rate;
} s_report_t;

/* ---- the other ends of the devices ------------------------------------------- */

/* A raw socket for the bench's own ends: no HWM (the window bounds what is
   queued), linger 0 (nothing is left to deliver when a side closes).       */
static void *s_socket(void *ctx, int type, const char *endpoint, bool bind)
{
    void *sock = zmq_socket(ctx, type);
    int linger = 0, hwm = 0;
    if (!sock)
        return NULL;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if ((bind ? zmq_bind(sock, endpoint) : zmq_connect(sock, endpoint)) == -1) {
        zmq_close(sock);
        return NULL;
    }
    return sock;
}

/* Echoes every request with its address frames until the side stops. The
   kit's worker first says READY with the window as its credit, and sends
   heartbeats so the balancer keeps it between rounds.                      */
static void *s_worker(void *arg)
{
    s_side_t *side = arg;
    void *sock = s_socket(side->ctx, ZMQ_DEALER, side->backend_ep, false);
    if (!sock)
        return NULL;
    uint64_t next_hb = 0;
    if (side->kit) {
        char credit[16];
        snprintf(credit, sizeof credit, "%d", side->window);
        zmq_send(sock, "\x01", 1, ZMQ_SNDMORE);
        zmq_send(sock, credit, strlen(credit), 0);
    }
    while (!atomic_load(&side->stop)) {
        uint64_t now = zkit__bench_wall_ns() / 1000000;
        if (side->kit && now >= next_hb) {
            zmq_send(sock, "\x02", 1, ZMQ_DONTWAIT);
            next_hb = now + S_WORKER_HB_MS;
        }
        zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&item, 1, 50) <= 0)
            continue;
        /* Drain what is there: one wake-up per message would measure the
           poll, not the devices.                                            */
        for (;;) {
            zmq_msg_t frames[8];
            int n = 0, more = 1;
            while (more && n < 8) {
                zmq_msg_init(&frames[n]);
                if (zmq_msg_recv(&frames[n], sock, n ? 0 : ZMQ_DONTWAIT) == -1) {
                    zmq_msg_close(&frames[n]);
                    break;
                }
                more = zmq_msg_more(&frames[n]);
                n++;
            }
            if (n == 0)
                break;
            if (n < 3 || more) { /* the balancer's heartbeat */
                for (int i = 0; i < n; i++)
                    zmq_msg_close(&frames[i]);
                continue;
            }
            for (int i = 0; i < n; i++)
                zmq_msg_send(&frames[i], sock, i + 1 < n ? ZMQ_SNDMORE : 0);
        }
    }
    zmq_close(sock);
    return NULL;
}

static void *s_proxy(void *arg)
{
    s_side_t *side = arg;
    zmq_proxy_steerable(side->frontend, side->backend, NULL, side->steer);
    zmq_close(side->frontend);
    zmq_close(side->backend);
    zmq_close(side->steer);
    return NULL;
}

/* ---- the client ------------------------------------------------------------------ */

static int s_send(s_side_t *side)
{
    uint8_t id[ZKIT_ID_SIZE];
    zmq_msg_t frame;
    zkit_id_generate(id);
    zkit_envelope_set_id(side->env, id);
    if (zkit_envelope_encode(side->env, &frame))
        return -1;
    if (zmq_send(side->client, "", 0, ZMQ_SNDMORE) == -1 ||
        zmq_msg_send(&frame, side->client, 0) == -1) {
        zmq_msg_close(&frame);
        return -1;
    }
    return 0;
}

static int s_recv(s_side_t *side)
{
    zmq_msg_t frame;
    int rc = 0;
    for (int i = 0; i < 2; i++) {
        zmq_msg_init(&frame);
        if (zmq_msg_recv(&frame, side->client, 0) == -1)
            rc = -1;
        bool more = zmq_msg_more(&frame);
        zmq_msg_close(&frame);
        if (rc || (i == 0 && !more))
            return -1;
    }
    return rc;
}

static int s_round_trip(s_side_t *side, double *ns)
{
    uint64_t start = zkit__bench_wall_ns();
    if (s_send(side) || s_recv(side)) {
        fprintf(stderr, "zkit bench %s: no reply from the %s side: %s\n", S_SUITE,
                side->kit ? "balancer" : "zmq_proxy", zmq_strerror(errno));
        return -1;
    }
    *ns = (double) (zkit__bench_wall_ns() - start);
    return 0;
}

/* The pipelined workload for zkit__bench_run_pair.                         */
static int s_pipelined(void *ctx, uint64_t messages)
{
    s_side_t *side = ctx;
    uint64_t sent = 0, received = 0;
    while (received < messages) {
        while (sent < messages && sent - received < (uint64_t) side->window) {
            if (s_send(side))
                return -1;
            sent++;
        }
        if (s_recv(side)) {
            fprintf(stderr, "zkit bench %s: reply missing on the %s side\n", S_SUITE,
                    side->kit ? "balancer" : "zmq_proxy");
            return -1;
        }
        received++;
    }
    return 0;
}

/* ---- sides ----------------------------------------------------------------------- */

static void s_side_close(s_side_t *side)
{
    atomic_store(&side->stop, 1);
    if (side->worker_started)
        pthread_join(side->worker_thread, NULL);
    if (side->proxy_started) {
        zmq_send(side->control, "TERMINATE", 9, 0);
        pthread_join(side->proxy_thread, NULL);
    }
    else {
        if (side->frontend)
            zmq_close(side->frontend);
        if (side->backend)
            zmq_close(side->backend);
        if (side->steer)
            zmq_close(side->steer);
    }
    if (side->control)
        zmq_close(side->control);
    if (side->client)
        zmq_close(side->client);
    zkit_balancer_destroy(&side->balancer);
    if (side->ctx)
        zmq_ctx_term(side->ctx);
    if (side->proxy_ctx)
        zmq_ctx_term(side->proxy_ctx);
    zkit_envelope_destroy(&side->env);
    free(side->samples);
    memset(side, 0, sizeof *side);
}

static int s_side_open(s_side_t *side, bool kit, size_t size, int window, uint64_t messages)
{
    memset(side, 0, sizeof *side);
    side->kit = kit;
    side->window = window;
    side->ctx = zmq_ctx_new();
    side->env = zkit_envelope_new();
    side->samples = calloc(messages, sizeof *side->samples);
    char *body = malloc(size ? size : 1);
    if (!side->ctx || !side->env || !side->samples || !body)
        goto err;
    memset(body, 'x', size);
    zkit_envelope_set_body(side->env, body, size);
    free(body);
    body = NULL;
    size_t len;
    if (kit) {
        zkit_balancer_opts_t opts = ZKIT_BALANCER_OPTS_DEFAULT;
        opts.frontend = "tcp://127.0.0.1:*";
        opts.backend = "tcp://127.0.0.1:*";
        side->balancer = zkit_balancer_new(&opts);
        if (!side->balancer)
            goto err;
        snprintf(side->frontend_ep, sizeof side->frontend_ep, "%s",
                 zkit_balancer_frontend(side->balancer));
        snprintf(side->backend_ep, sizeof side->backend_ep, "%s",
                 zkit_balancer_backend(side->balancer));
    }
    else {
        /* Made and bound here, in a context of their own (the balancer's
           sockets live in czmq's); the proxy thread takes them over.       */
        side->proxy_ctx = zmq_ctx_new();
        if (!side->proxy_ctx)
            goto err;
        side->frontend = s_socket(side->proxy_ctx, ZMQ_ROUTER, "tcp://127.0.0.1:*", true);
        side->backend = s_socket(side->proxy_ctx, ZMQ_DEALER, "tcp://127.0.0.1:*", true);
        side->control = s_socket(side->proxy_ctx, ZMQ_PAIR, "inproc://control", true);
        side->steer = s_socket(side->proxy_ctx, ZMQ_PAIR, "inproc://control", false);
        if (!side->frontend || !side->backend || !side->control || !side->steer)
            goto err;
        len = sizeof side->frontend_ep;
        zmq_getsockopt(side->frontend, ZMQ_LAST_ENDPOINT, side->frontend_ep, &len);
        len = sizeof side->backend_ep;
        zmq_getsockopt(side->backend, ZMQ_LAST_ENDPOINT, side->backend_ep, &len);
        side->proxy_started = pthread_create(&side->proxy_thread, NULL, s_proxy, side) == 0;
        if (!side->proxy_started)
            goto err;
    }
    side->worker_started = pthread_create(&side->worker_thread, NULL, s_worker, side) == 0;
    side->client = s_socket(side->ctx, ZMQ_DEALER, side->frontend_ep, false);
    if (!side->worker_started || !side->client)
        goto err;
    int timeout = S_WAIT_MS;
    zmq_setsockopt(side->client, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    /* Ready when one request went through: the worker is there and, for the
       kit, registered (before that the balancer holds the request).        */
    double ns;
    if (s_round_trip(side, &ns))
        goto err_quiet;
    return 0;
err:
    fprintf(stderr, "zkit bench %s: cannot set up the %s side: %s\n", S_SUITE,
            kit ? "balancer" : "zmq_proxy", zmq_strerror(errno));
err_quiet:
    free(body);
    s_side_close(side);
    return -1;
}

/* ---- measuring ------------------------------------------------------------------- */

static double s_percentile(double *sorted, uint64_t n, double p)
{
    uint64_t index = (uint64_t) ceil(p * (double) n);
    return sorted[index ? index - 1 : 0];
}

static int s_compare(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

/* Round trips: warm-up, then rounds alternating which side goes first.     */
static int s_measure_latency(s_side_t sides[2], s_report_t *r)
{
    uint64_t n = r->opts.messages;
    int rounds = r->opts.rounds;
    double *p50 = calloc((size_t) rounds * 4, sizeof *p50);
    if (!p50)
        return -1;
    double *p99 = p50 + 2 * rounds;
    for (int s = 0; s < 2; s++)
        for (uint64_t i = 0; i < n / 10 + 1; i++)
            if (s_round_trip(&sides[s], &sides[s].samples[0]))
                goto err;
    for (int round = 0; round < rounds; round++)
        for (int k = 0; k < 2; k++) {
            int s = round % 2 ? 1 - k : k;
            for (uint64_t i = 0; i < n; i++)
                if (s_round_trip(&sides[s], &sides[s].samples[i]))
                    goto err;
            qsort(sides[s].samples, n, sizeof(double), s_compare);
            p50[s * rounds + round] = s_percentile(sides[s].samples, n, 0.50);
            p99[s * rounds + round] = s_percentile(sides[s].samples, n, 0.99);
        }
    for (int s = 0; s < 2; s++) {
        r->p50[s] = zkit__bench_median(p50 + s * rounds, rounds);
        r->p99[s] = zkit__bench_median(p99 + s * rounds, rounds);
    }
    free(p50);
    return 0;
err:
    free(p50);
    return -1;
}

/* ---- output ------------------------------------------------------------------------ */

static void s_print_table(const s_report_t *r)
{
    char b[6][32];
    printf("zkit bench balancer: request round trips, one client and one echo worker on\n"
           "tcp://127.0.0.1, %s envelope body, %d rounds x %" PRIu64 " requests, median\n"
           "round quoted. kit = zkit_balancer; anchor = zmq_proxy(ROUTER, DEALER).\n\n",
           zkit__bench_fmt_bytes(b[0], sizeof b[0], r->size), r->opts.rounds, r->opts.messages);
    static const zkit__bench_col_t cols[] = {
        {"", 34}, {"kit", 10}, {"anchor", 10}, {"kit/anchor", 10}, {"target", 8}};
    zkit__bench_table_header(stdout, cols, 5);
    const char *row[5];
    row[0] = "round trip p50 (us)";
    row[1] = zkit__bench_fmt(b[0], r->p50[0] / 1000, 1);
    row[2] = zkit__bench_fmt(b[1], r->p50[1] / 1000, 1);
    row[3] = zkit__bench_fmt(b[2], r->p50[0] / r->p50[1], 2);
    row[4] = "<= 1.15";
    zkit__bench_table_row(stdout, cols, 5, row);
    row[0] = "round trip p99 (us)";
    row[1] = zkit__bench_fmt(b[0], r->p99[0] / 1000, 1);
    row[2] = zkit__bench_fmt(b[1], r->p99[1] / 1000, 1);
    row[3] = zkit__bench_fmt(b[2], r->p99[0] / r->p99[1], 2);
    row[4] = "<= 1.3";
    zkit__bench_table_row(stdout, cols, 5, row);
    char label[64];
    snprintf(label, sizeof label, "pipelined, window %d (k msg/s)", r->window);
    row[0] = label;
    row[1] = zkit__bench_fmt(b[0], 1e6 / r->rate.kit.wall_ns, 1);
    row[2] = zkit__bench_fmt(b[1], 1e6 / r->rate.anchor.wall_ns, 1);
    row[3] = zkit__bench_fmt(b[2], r->rate.faster, 2);
    row[4] = ">= 0.8";
    zkit__bench_table_row(stdout, cols, 5, row);
    row[0] = "pipelined, CPU ns per request";
    row[1] = zkit__bench_fmt(b[0], r->rate.kit.cpu_ns, 0);
    row[2] = zkit__bench_fmt(b[1], r->rate.anchor.cpu_ns, 0);
    row[3] = zkit__bench_fmt(b[2], r->rate.kit.cpu_ns / r->rate.anchor.cpu_ns, 2);
    row[4] = "";
    zkit__bench_table_row(stdout, cols, 5, row);
    printf("\nTargets (docs/performance.md) are informational. Round trips are closed-loop\n"
           "(one request outstanding), not at a fixed offered rate.\n");
}

static void s_print_json(const s_report_t *r)
{
    zkit__bench_json_t j;
    zkit__bench_json_init(&j, stdout);
    zkit__bench_json_object(&j, NULL);
    zkit__bench_json_str(&j, "suite", S_SUITE);
    zkit__bench_json_uint(&j, "rounds", (uint64_t) r->opts.rounds);
    zkit__bench_json_uint(&j, "messages", r->opts.messages);
    zkit__bench_json_bool(&j, "quick", r->opts.quick);
    zkit__bench_json_uint(&j, "body_bytes", r->size);
    zkit__bench_json_uint(&j, "window", (uint64_t) r->window);
    zkit__bench_json_object(&j, "round_trip_ns");
    zkit__bench_json_num(&j, "kit_p50", r->p50[0]);
    zkit__bench_json_num(&j, "anchor_p50", r->p50[1]);
    zkit__bench_json_num(&j, "ratio_p50", r->p50[0] / r->p50[1]);
    zkit__bench_json_num(&j, "target_p50", S_TARGET_P50);
    zkit__bench_json_num(&j, "kit_p99", r->p99[0]);
    zkit__bench_json_num(&j, "anchor_p99", r->p99[1]);
    zkit__bench_json_num(&j, "ratio_p99", r->p99[0] / r->p99[1]);
    zkit__bench_json_num(&j, "target_p99", S_TARGET_P99);
    zkit__bench_json_end(&j, '}');
    zkit__bench_json_object(&j, "pipelined");
    zkit__bench_json_side(&j, "kit", &r->rate.kit);
    zkit__bench_json_side(&j, "anchor", &r->rate.anchor);
    zkit__bench_json_num(&j, "rate_ratio", r->rate.faster);
    zkit__bench_json_num(&j, "target_rate_ratio", S_TARGET_RATE);
    zkit__bench_json_end(&j, '}');
    zkit__bench_json_end(&j, '}');
    fputc('\n', stdout);
}

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: zkit bench balancer [OPTIONS]\n"
            "\n"
            "Request round trips through zkit_balancer beside raw zmq_proxy(ROUTER, DEALER):\n"
            "one client, one echo worker, tcp loopback. Prints round-trip p50 and p99\n"
            "(one request outstanding) and pipelined requests per second (WINDOW\n"
            "outstanding) with CPU ns per request, and the ratios kit / anchor.\n"
            "\n"
            "options:\n"
            "  --size BYTES   envelope body size (default %d)\n"
            "  --window N     requests outstanding in the pipelined run, 1-%d (default %d)\n"
            "%s"
            "\n"
            "Defaults: %d rounds x %d requests (--quick: %d x %d).\n",
            S_DEFAULT_SIZE, S_MAX_WINDOW, S_DEFAULT_WINDOW, ZKIT__BENCH_COMMON_HELP,
            ZKIT__BENCH_DEFAULT_ROUNDS, S_DEFAULT_MESSAGES, ZKIT__BENCH_QUICK_ROUNDS,
            S_QUICK_MESSAGES);
}

int zkit__bench_balancer(int argc, char **argv)
{
    s_report_t r;
    memset(&r, 0, sizeof r);
    r.size = S_DEFAULT_SIZE;
    r.window = S_DEFAULT_WINDOW;
    for (int i = 1; i < argc;) {
        const char *value;
        uint64_t v;
        int rc = zkit__bench_parse_common(S_SUITE, argc, argv, &i, &r.opts);
        if (rc < 0)
            return ZKIT_EXIT_USAGE;
        if (rc > 0)
            continue;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            s_usage(stdout);
            return ZKIT_EXIT_OK;
        }
        if ((value = zkit__bench_option_value(argc, argv, &i, "--size"))) {
            if (zkit__bench_parse_u64(S_SUITE, "--size", value, 0, S_MAX_SIZE, &v))
                return ZKIT_EXIT_USAGE;
            r.size = (size_t) v;
        }
        else if ((value = zkit__bench_option_value(argc, argv, &i, "--window"))) {
            if (zkit__bench_parse_u64(S_SUITE, "--window", value, 1, S_MAX_WINDOW, &v))
                return ZKIT_EXIT_USAGE;
            r.window = (int) v;
        }
        else {
            fprintf(stderr, "zkit bench %s: unknown option '%s'\n", S_SUITE, argv[i]);
            s_usage(stderr);
            return ZKIT_EXIT_USAGE;
        }
    }
    zkit__bench_opts_finish(&r.opts, S_DEFAULT_MESSAGES, S_QUICK_MESSAGES);

    s_side_t sides[2];
    if (s_side_open(&sides[0], true, r.size, r.window, r.opts.messages))
        return ZKIT_EXIT_FAILURE;
    if (s_side_open(&sides[1], false, r.size, r.window, r.opts.messages)) {
        s_side_close(&sides[0]);
        return ZKIT_EXIT_FAILURE;
    }
    int rc = s_measure_latency(sides, &r);
    if (rc == 0) {
        zkit__bench_pair_t pair = {.kit = s_pipelined,
                                   .kit_ctx = &sides[0],
                                   .anchor = s_pipelined,
                                   .anchor_ctx = &sides[1],
                                   .cpu = ZKIT__BENCH_CPU_PROCESS,
                                   .count_allocs = false};
        rc = zkit__bench_run_pair(&pair, &r.opts, &r.rate);
    }
    s_side_close(&sides[0]);
    s_side_close(&sides[1]);
    if (rc)
        return ZKIT_EXIT_FAILURE;
    if (r.opts.json)
        s_print_json(&r);
    else
        s_print_table(&r);
    return ZKIT_EXIT_OK;
}
