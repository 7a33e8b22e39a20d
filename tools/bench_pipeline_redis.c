/*  bench_pipeline_redis.c: redis as the queue a user might pick instead of
    the pipeline, in the same layout: the producer LPUSHes tasks, the relay
    BRPOPs a task and LPUSHes a copy of it as a result, the consumer BRPOPs
    results. One command at a time per connection (no pipelining): the way
    a worker loop over a redis list is usually written.

    The bench starts its own redis-server (no persistence, loopback only, a
    free port) and stops it at the end; it never touches a server it did not
    start. The server is another process, so its CPU time is read from
    /proc and added to ours: CPU ns per message then covers all the work.
    The client speaks RESP itself, to need no client library.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "bench_pipeline.h"

#define S_TASKS       "zkit:bench:tasks"
#define S_RESULTS     "zkit:bench:results"
#define S_START_MS    5000 /* the server must answer PING within this      */
#define S_READ_BUFFER (64 * 1024)
#define S_STALL_S     (ZKIT__PIPE_STALL_MS / 1000) /* BRPOP's timeout, seconds */

/*  One connection to the server, with a read buffer.                        */
typedef struct {
    int fd;
    char *in;
    size_t start, end; /* unread bytes are in[start..end)                 */
    char *out;         /* a command being built                            */
    size_t out_size, out_capacity;
    char *bulk; /* the last bulk string read                                */
    size_t bulk_size, bulk_capacity;
} s_conn_t;

typedef struct {
    pid_t pid;
    int port;
    s_conn_t producer, relay, consumer;
    size_t payload_size;
    uint8_t *payload;
} s_redis_t;

/* ---- finding and starting the server --------------------------------------- */

const char *zkit__pipe_redis_server(void)
{
    static char found[4096];
    const char *path = getenv("PATH");
    if (!path)
        return NULL;
    while (*path) {
        size_t len = strcspn(path, ":");
        if (len && len + sizeof "/redis-server" < sizeof found) {
            memcpy(found, path, len);
            strcpy(found + len, "/redis-server");
            if (access(found, X_OK) == 0)
                return found;
        }
        path += len + (path[len] == ':');
    }
    return NULL;
}

/*  A loopback port nobody listens on now (the kernel's choice). The server
    binds it a moment later; another process taking it first in between is
    possible but unlikely, and the start then fails with a message.        */
static int s_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    int port = -1;
    if (fd >= 0 && !bind(fd, (struct sockaddr *) &addr, sizeof addr) &&
        !getsockname(fd, (struct sockaddr *) &addr, &len))
        port = ntohs(addr.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static pid_t s_start_server(const char *server, int port)
{
    char port_text[16];
    snprintf(port_text, sizeof port_text, "%d", port);
    pid_t pid = fork();
    if (pid != 0)
        return pid; /* the parent, or -1 */
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
    }
    execl(server, server, "--port", port_text, "--bind", "127.0.0.1", "--save", "", "--appendonly",
          "no", "--daemonize", "no", "--loglevel", "warning", (char *) NULL);
    _exit(127);
}

/*  CPU time (user + system) the server used so far, from /proc, in ns.     */
static uint64_t s_server_cpu_ns(void *self)
{
    s_redis_t *redis = self;
    char path[64], text[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int) redis->pid);
    FILE *file = fopen(path, "r");
    if (!file)
        return 0;
    size_t n = fread(text, 1, sizeof text - 1, file);
    fclose(file);
    text[n] = 0;
    /* Fields after the command name, which is in parentheses and may hold
       spaces: state is field 3, utime and stime are fields 14 and 15.     */
    const char *p = strrchr(text, ')');
    unsigned long long utime = 0, stime = 0;
    if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                     &stime) != 2)
        return 0;
    long ticks = sysconf(_SC_CLK_TCK);
    return ticks > 0 ? (uint64_t) (utime + stime) * 1000000000u / (uint64_t) ticks : 0;
}

/* ---- RESP ------------------------------------------------------------------ */

static int s_conn_open(s_conn_t *c, int port)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    c->in = malloc(S_READ_BUFFER);
    if (c->fd < 0 || !c->in)
        return -1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t) port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *) &addr, sizeof addr))
        return -1;
    int one = 1;
    struct timeval timeout = {.tv_sec = S_STALL_S + 2}; /* beyond BRPOP's own */
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    return 0;
}

static void s_conn_close(s_conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->in);
    free(c->out);
    free(c->bulk);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

static int s_out_append(s_conn_t *c, const void *data, size_t size)
{
    if (c->out_size + size > c->out_capacity) {
        size_t capacity = (c->out_size + size) * 2;
        char *out = realloc(c->out, capacity);
        if (!out)
            return -1;
        c->out = out;
        c->out_capacity = capacity;
    }
    memcpy(c->out + c->out_size, data, size);
    c->out_size += size;
    return 0;
}

/*  Sends one command of argc bulk strings. Returns 0 or -1.                 */
static int s_command(s_conn_t *c, int argc, const void *const *argv, const size_t *sizes)
{
    char head[32];
    c->out_size = 0;
    snprintf(head, sizeof head, "*%d\r\n", argc);
    if (s_out_append(c, head, strlen(head)))
        return -1;
    for (int i = 0; i < argc; i++) {
        snprintf(head, sizeof head, "$%zu\r\n", sizes[i]);
        if (s_out_append(c, head, strlen(head)) || s_out_append(c, argv[i], sizes[i]) ||
            s_out_append(c, "\r\n", 2))
            return -1;
    }
    for (size_t done = 0; done < c->out_size;) {
        ssize_t n = write(c->fd, c->out + done, c->out_size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        done += (size_t) n;
    }
    return 0;
}

/*  Makes at least want bytes readable in the buffer. Returns 0 or -1.       */
static int s_fill(s_conn_t *c, size_t want)
{
    if (want > S_READ_BUFFER)
        return -1; /* a reply line never gets this long */
    if (c->start + want > S_READ_BUFFER) {
        memmove(c->in, c->in + c->start, c->end - c->start);
        c->end -= c->start;
        c->start = 0;
    }
    while (c->end - c->start < want) {
        ssize_t n = read(c->fd, c->in + c->end, S_READ_BUFFER - c->end);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        c->end += (size_t) n;
    }
    return 0;
}

/*  Reads one line of a reply, without its CRLF, into line[size].           */
static int s_line(s_conn_t *c, char *line, size_t size)
{
    for (size_t want = 1;; want++) {
        if (s_fill(c, want))
            return -1;
        if (want >= 2 && c->in[c->start + want - 2] == '\r' && c->in[c->start + want - 1] == '\n') {
            if (want - 2 >= size)
                return -1;
            memcpy(line, c->in + c->start, want - 2);
            line[want - 2] = 0;
            c->start += want;
            return 0;
        }
    }
}

/*  Reads a bulk string of a known length (and its CRLF) into c->bulk.      */
static int s_bulk(s_conn_t *c, size_t size)
{
    if (size > c->bulk_capacity) {
        char *bulk = realloc(c->bulk, size);
        if (!bulk)
            return -1;
        c->bulk = bulk;
        c->bulk_capacity = size;
    }
    for (size_t done = 0; done < size;) {
        if (c->start == c->end && s_fill(c, 1))
            return -1;
        size_t n = c->end - c->start;
        if (n > size - done)
            n = size - done;
        memcpy(c->bulk + done, c->in + c->start, n);
        c->start += n;
        done += n;
    }
    c->bulk_size = size;
    char crlf[4];
    return s_line(c, crlf, sizeof crlf) || crlf[0] ? -1 : 0;
}

/*  Reads a reply that must be a simple string, an integer or an error-free
    status. Returns 0, or -1 on an error reply or a broken connection.     */
static int s_simple_reply(s_conn_t *c)
{
    char line[256];
    if (s_line(c, line, sizeof line))
        return -1;
    return line[0] == '+' || line[0] == ':' ? 0 : -1;
}

/*  Reads BRPOP's reply [key, value] into c->bulk. Returns 0, 1 when the
    wait timed out, or -1.                                                   */
static int s_brpop_reply(s_conn_t *c)
{
    char line[64];
    if (s_line(c, line, sizeof line))
        return -1;
    if (!strcmp(line, "*-1") || !strcmp(line, "_"))
        return 1;
    if (strcmp(line, "*2"))
        return -1;
    for (int i = 0; i < 2; i++) {
        char *end = NULL;
        if (s_line(c, line, sizeof line) || line[0] != '$')
            return -1;
        unsigned long long size = strtoull(line + 1, &end, 10);
        if (*end || s_bulk(c, (size_t) size))
            return -1;
    }
    return 0;
}

static int s_lpush(s_conn_t *c, const char *key, const void *data, size_t size)
{
    const void *argv[] = {"LPUSH", key, data};
    size_t sizes[] = {5, strlen(key), size};
    return s_command(c, 3, argv, sizes) || s_simple_reply(c) ? -1 : 0;
}

static int s_brpop(s_conn_t *c, const char *key)
{
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", S_STALL_S);
    const void *argv[] = {"BRPOP", key, timeout};
    size_t sizes[] = {5, strlen(key), strlen(timeout)};
    if (s_command(c, 3, argv, sizes))
        return -1;
    return s_brpop_reply(c);
}

/* ---- the run --------------------------------------------------------------- */

typedef struct {
    s_redis_t *redis;
    uint64_t messages;
    const char *error; /* NULL when the stage did its part */
} s_stage_t;

static void *s_relay(void *arg)
{
    s_stage_t *stage = arg;
    s_conn_t *c = &stage->redis->relay;
    for (uint64_t i = 0; i < stage->messages && !stage->error; i++) {
        int rc = s_brpop(c, S_TASKS);
        if (rc)
            stage->error = rc > 0 ? "relay: stalled (nothing moved for 10 s)" : "relay: BRPOP";
        else if (s_lpush(c, S_RESULTS, c->bulk, c->bulk_size))
            stage->error = "relay: LPUSH";
    }
    return NULL;
}

static void *s_consume(void *arg)
{
    s_stage_t *stage = arg;
    s_conn_t *c = &stage->redis->consumer;
    uint64_t acc = 0;
    for (uint64_t i = 0; i < stage->messages && !stage->error; i++) {
        int rc = s_brpop(c, S_RESULTS);
        if (rc)
            stage->error =
                rc > 0 ? "consumer: stalled (nothing moved for 10 s)" : "consumer: BRPOP";
        else
            acc += c->bulk_size + (c->bulk_size ? (uint8_t) c->bulk[0] : 0);
    }
    zkit__bench_consume(acc);
    return NULL;
}

static int s_redis_run(void *self, uint64_t messages, uint64_t *lost)
{
    s_redis_t *redis = self;
    s_stage_t relay = {redis, messages, NULL}, consumer = {redis, messages, NULL};
    s_stage_t producer = {redis, messages, NULL};
    pthread_t relay_thread, consumer_thread;
    *lost = 0;
    if (pthread_create(&consumer_thread, NULL, s_consume, &consumer)) {
        fprintf(stderr, "zkit bench " ZKIT__PIPE_NAME ": cannot start a thread\n");
        return -1;
    }
    if (pthread_create(&relay_thread, NULL, s_relay, &relay)) {
        fprintf(stderr, "zkit bench " ZKIT__PIPE_NAME ": cannot start a thread\n");
        pthread_join(consumer_thread, NULL); /* ends at its BRPOP timeout */
        return -1;
    }
    for (uint64_t i = 0; i < messages && !producer.error; i++)
        if (s_lpush(&redis->producer, S_TASKS, redis->payload, redis->payload_size))
            producer.error = "producer: LPUSH";
    pthread_join(relay_thread, NULL);
    pthread_join(consumer_thread, NULL);
    const s_stage_t *stages[] = {&producer, &relay, &consumer};
    int rc = 0;
    for (int i = 0; i < 3; i++) {
        if (stages[i]->error) {
            fprintf(stderr, "zkit bench " ZKIT__PIPE_NAME ": redis, %zu B: %s failed\n",
                    redis->payload_size, stages[i]->error);
            rc = -1;
        }
    }
    return rc;
}

/* ---- setup ----------------------------------------------------------------- */

static void s_redis_destroy(void *self)
{
    s_redis_t *redis = self;
    if (!redis)
        return;
    s_conn_close(&redis->producer);
    s_conn_close(&redis->relay);
    s_conn_close(&redis->consumer);
    if (redis->pid > 0) {
        kill(redis->pid, SIGTERM);
        while (waitpid(redis->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    free(redis->payload);
    free(redis);
}

/*  Connects c once the server answers PING, trying for S_START_MS.        */
static int s_connect_when_up(s_redis_t *redis, s_conn_t *c)
{
    for (int waited = 0; waited < S_START_MS; waited += 10) {
        if (!s_conn_open(c, redis->port)) {
            const void *argv[] = {"PING"};
            size_t sizes[] = {4};
            if (!s_command(c, 1, argv, sizes) && !s_simple_reply(c))
                return 0;
        }
        s_conn_close(c);
        if (waitpid(redis->pid, NULL, WNOHANG) == redis->pid) {
            redis->pid = -1; /* it exited: port taken, or not a redis-server */
            return -1;
        }
        struct timespec ms10 = {.tv_nsec = 10 * 1000000};
        nanosleep(&ms10, NULL);
    }
    return -1;
}

int zkit__pipe_redis_open(zkit__pipe_side_t *side, const char *server, size_t payload)
{
    const char *what = "out of memory";
    s_redis_t *redis = calloc(1, sizeof *redis);
    if (!redis)
        goto fail;
    redis->producer.fd = redis->relay.fd = redis->consumer.fd = -1;
    redis->payload_size = payload;
    redis->payload = malloc(payload ? payload : 1);
    if (!redis->payload)
        goto fail;
    for (size_t i = 0; i < payload; i++)
        redis->payload[i] = (uint8_t) (i * 31 + 7);
    what = "cannot start it";
    redis->port = s_free_port();
    if (redis->port <= 0 || (redis->pid = s_start_server(server, redis->port)) <= 0)
        goto fail;
    what = "it did not answer PING on a loopback port";
    if (s_connect_when_up(redis, &redis->producer) || s_conn_open(&redis->relay, redis->port) ||
        s_conn_open(&redis->consumer, redis->port))
        goto fail;
    const void *argv[] = {"DEL", S_TASKS, S_RESULTS};
    size_t sizes[] = {3, strlen(S_TASKS), strlen(S_RESULTS)};
    what = "DEL failed";
    if (s_command(&redis->producer, 3, argv, sizes) || s_simple_reply(&redis->producer))
        goto fail;
    side->self = redis;
    side->run = s_redis_run;
    side->destroy = s_redis_destroy;
    side->outside_cpu_ns = s_server_cpu_ns;
    return 0;
fail:
    fprintf(stderr, "zkit bench " ZKIT__PIPE_NAME ": redis-server %s: %s\n", server, what);
    s_redis_destroy(redis);
    return -1;
}
