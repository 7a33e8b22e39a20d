/*  hashsvc.c: a load-balanced hash service that survives a crashed worker.

    Workers answer "hash this" requests with a 64-bit FNV-1a digest of the
    body, iterated to make each request cost a little CPU. Clients check
    every answer against their own computation. With no arguments the
    program runs the whole demo on one host:

        hashsvc                          balancer in this process, 3 worker
                                         processes, 4 client threads doing
                                         250 requests each; one worker is
                                         killed with SIGKILL a third of the
                                         way through. Prints the tally and
                                         exits 0 when no client saw a failure.

    The roles also run on their own, against `zkit balancer`:

        zkit balancer --frontend tcp://0.0.0.0:5555 --backend tcp://0.0.0.0:5556
        hashsvc --worker tcp://HOST:5556 [--credit N]        (x N)
        hashsvc --client tcp://HOST:5555 [--count N]

    and with the operations options (zkit_ops_opts_t) on both roles:
    --curve-secret FILE --curve-server FILE make the connection a CURVE
    client (keys from `zkit keygen`; the balancer runs with --curve-secret
    and --curve-allow), and a worker's --control EP answers `zkit stats`.
    A client's --timeout MS and --retries N bound how long it tries.

    Uses only the public API (#include <zkit.h>).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zkit.h>

#define WORKERS   3
#define CLIENTS   4
#define REQUESTS  250  /* per client */
#define ROUNDS    2000 /* FNV passes per request: the "work" */
#define HEARTBEAT 250  /* ms, balancer and workers alike */

extern char **environ;

/* ---- the service ---------------------------------------------------------------- */

static uint64_t s_hash(const void *data, size_t size)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (int round = 0; round < ROUNDS; round++)
        for (size_t i = 0; i < size; i++) {
            h ^= ((const uint8_t *) data)[i];
            h *= 0x100000001b3ull;
        }
    return h;
}

static int s_handler(const zkit_envelope_t *request, zkit_envelope_t *reply, void *arg)
{
    (void) arg;
    size_t size;
    const void *body = zkit_envelope_body(request, &size);
    char digest[17];
    snprintf(digest, sizeof digest, "%016" PRIx64, s_hash(body, size));
    return zkit_envelope_set_body(reply, digest, 16);
}

/* SIGINT and SIGTERM are blocked in every thread and taken by sigwait, so
   no handler (ours or a library's) races with the threads.                  */
static sigset_t s_stop_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    return set;
}

/* What the command line gave besides the role.                            */
typedef struct {
    uint32_t credit;
    int count;
    uint32_t timeout_ms;
    uint32_t retries;
    zkit_ops_opts_t ops;
} s_args_t;

static int s_run_worker(const char *endpoint, const s_args_t *args)
{
    sigset_t set = s_stop_signals();
    zkit_service_worker_opts_t opts = ZKIT_SERVICE_WORKER_OPTS_DEFAULT;
    opts.connect = endpoint;
    opts.handler = s_handler;
    opts.credit = args->credit;
    opts.heartbeat_ms = HEARTBEAT;
    opts.ops = args->ops;
    zkit_service_worker_t *worker = zkit_service_worker_new(&opts);
    if (!worker) {
        fprintf(stderr, "hashsvc: cannot start a worker: %s\n", zkit_strerror(errno));
        return 1;
    }
    if (zkit_service_worker_control(worker))
        fprintf(stderr, "hashsvc worker: control %s\n", zkit_service_worker_control(worker));
    fflush(stderr);
    int signum;
    sigwait(&set, &signum);
    zkit_service_worker_stats_t stats;
    if (zkit_service_worker_stats(worker, &stats) == 0)
        fprintf(stderr, "hashsvc worker %d: %" PRIu64 " replies\n", (int) getpid(), stats.replies);
    zkit_service_worker_destroy(&worker);
    return 0;
}

/* ---- clients ------------------------------------------------------------------------ */

typedef struct {
    const char *endpoint;
    int index;
    int count;
    atomic_int *done;
    atomic_int failures;
    const s_args_t *args; /* NULL: the demo's defaults */
} s_client_arg_t;

/* Sends count requests one after the other and checks each answer.        */
static void *s_client_thread(void *args)
{
    s_client_arg_t *arg = args;
    zkit_client_opts_t opts = ZKIT_CLIENT_OPTS_DEFAULT;
    opts.connect = arg->endpoint;
    opts.timeout_ms = 2000;
    opts.retries = 5;
    if (arg->args) {
        opts.timeout_ms = arg->args->timeout_ms;
        opts.retries = arg->args->retries;
        opts.ops = arg->args->ops;
    }
    zkit_client_t *client = zkit_client_new(&opts);
    if (!client) {
        atomic_fetch_add(&arg->failures, arg->count);
        return NULL;
    }
    for (int i = 0; i < arg->count; i++) {
        char body[64], expected[17];
        int size = snprintf(body, sizeof body, "client %d request %d", arg->index, i);
        snprintf(expected, sizeof expected, "%016" PRIx64, s_hash(body, (size_t) size));
        zkit_envelope_t *reply = zkit_client_request(client, body, (size_t) size);
        size_t got_size = 0;
        const void *got = reply ? zkit_envelope_body(reply, &got_size) : NULL;
        if (!reply || got_size != 16 || memcmp(got, expected, 16) != 0) {
            fprintf(stderr, "hashsvc: client %d request %d failed: %s %s\n", arg->index, i,
                    reply ? "wrong digest" : zkit_strerror(errno), zkit_client_error(client));
            atomic_fetch_add(&arg->failures, 1);
        }
        zkit_envelope_destroy(&reply);
        if (arg->done)
            atomic_fetch_add(arg->done, 1);
    }
    zkit_client_destroy(&client);
    return NULL;
}

static int s_run_client(const char *endpoint, const s_args_t *args)
{
    int count = args->count;
    s_client_arg_t arg = {.endpoint = endpoint, .index = 0, .count = count, .args = args};
    s_client_thread(&arg);
    int failures = atomic_load(&arg.failures);
    printf("hashsvc: %d requests, %d failures\n", count, failures);
    return failures ? 1 : 0;
}

/* ---- the demo ------------------------------------------------------------------------- */

static pid_t s_spawn_worker(const char *backend)
{
    char *argv[] = {"hashsvc", "--worker", (char *) backend, "--credit", "2", NULL};
    pid_t pid;
    if (posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ) != 0)
        return -1;
    return pid;
}

static int s_run_demo(void)
{
    s_stop_signals();
    zkit_balancer_opts_t opts = ZKIT_BALANCER_OPTS_DEFAULT;
    opts.frontend = "tcp://127.0.0.1:*";
    opts.backend = "tcp://127.0.0.1:*";
    opts.heartbeat_ms = HEARTBEAT;
    zkit_balancer_t *balancer = zkit_balancer_new(&opts);
    if (!balancer) {
        fprintf(stderr, "hashsvc: cannot start the balancer: %s\n", zkit_strerror(errno));
        return 1;
    }
    pid_t workers[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        if ((workers[i] = s_spawn_worker(zkit_balancer_backend(balancer))) < 0) {
            fprintf(stderr, "hashsvc: cannot start a worker process\n");
            return 1;
        }

    atomic_int done = 0;
    s_client_arg_t args[CLIENTS];
    pthread_t threads[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        args[i] = (s_client_arg_t){.endpoint = zkit_balancer_frontend(balancer),
                                   .index = i,
                                   .count = REQUESTS,
                                   .done = &done};
        pthread_create(&threads[i], NULL, s_client_thread, &args[i]);
    }
    /* A third of the way through, the first worker crashes with whatever it
       holds: the balancer gives that to the others; no client notices.     */
    while (atomic_load(&done) < CLIENTS * REQUESTS / 3)
        usleep(1000);
    kill(workers[0], SIGKILL);
    waitpid(workers[0], NULL, 0);
    int failures = 0;
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(threads[i], NULL);
        failures += atomic_load(&args[i].failures);
    }
    zkit_balancer_stats_t stats;
    if (zkit_balancer_stats(balancer, &stats) == 0)
        printf("hashsvc: balancer: %" PRIu64 " requests, %" PRIu64 " replies, %" PRIu64
               " requeued, %" PRIu64 " workers lost, %" PRIu64 " dead letters\n",
               stats.requests, stats.replies, stats.requeued,
               stats.workers_gone + stats.workers_expired, stats.dead_letters);
    fflush(stdout);
    for (int i = 1; i < WORKERS; i++) {
        kill(workers[i], SIGTERM);
        waitpid(workers[i], NULL, 0);
    }
    zkit_balancer_destroy(&balancer);
    printf("hashsvc: %d requests, %d failures; worker %d killed mid-run\n", CLIENTS * REQUESTS,
           failures, (int) workers[0]);
    return failures ? 1 : 0;
}

static int s_usage(void)
{
    fprintf(stderr, "usage: hashsvc [--worker ENDPOINT [--credit N] [--control EP] | --client "
                    "ENDPOINT [--count N] [--timeout MS] [--retries N]] [--curve-secret FILE "
                    "--curve-server FILE]\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc == 1)
        return s_run_demo();
    if (argc < 3 || argc % 2 == 0)
        return s_usage();
    s_args_t args = {.credit = 1, .count = 100, .timeout_ms = 2000, .retries = 5};
    for (int i = 3; i + 1 < argc; i += 2) {
        const char *name = argv[i], *value = argv[i + 1];
        if (strcmp(name, "--credit") == 0)
            args.credit = atoi(value) > 0 ? (uint32_t) atoi(value) : 1;
        else if (strcmp(name, "--count") == 0)
            args.count = atoi(value) > 0 ? atoi(value) : 1;
        else if (strcmp(name, "--timeout") == 0)
            args.timeout_ms = atoi(value) > 0 ? (uint32_t) atoi(value) : 1;
        else if (strcmp(name, "--retries") == 0)
            args.retries = atoi(value) > 0 ? (uint32_t) atoi(value) : 0;
        else if (strcmp(name, "--control") == 0)
            args.ops.control = value;
        else if (strcmp(name, "--curve-secret") == 0)
            args.ops.curve_secret = value;
        else if (strcmp(name, "--curve-server") == 0)
            args.ops.curve_server = value;
        else
            return s_usage();
    }
    if (strcmp(argv[1], "--worker") == 0)
        return s_run_worker(argv[2], &args);
    if (strcmp(argv[1], "--client") == 0)
        return s_run_client(argv[2], &args);
    return s_usage();
}
