/*  bench_spool_redis.c: redis with appendfsync always, the store a user
    might pick instead of the spool, for `zkit bench spool`.

    The bench starts its own redis-server (appendonly yes, appendfsync
    always, its files in the bench's directory, loopback only, a free port)
    and stops it at the end; it never touches a server it did not start.
    Each producer is one connection sending LPUSH and waiting for the
    reply, as a client that needs each write durable before it goes on
    would. RESP is spoken directly, to need no client library.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_pipeline.h"
#include "bench_spool.h"

#define S_KEY      "zkit:bench:spool"
#define S_START_MS 5000

const char *zkit__bspool_redis_server(void)
{
    return zkit__pipe_redis_server();
}

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

static int s_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t) port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    struct timeval timeout = {.tv_sec = 10};
    if (connect(fd, (struct sockaddr *) &addr, sizeof addr)) {
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    return fd;
}

static int s_write_all(int fd, const char *data, size_t size)
{
    while (size) {
        ssize_t n = write(fd, data, size);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            return -1;
        }
        data += n;
        size -= (size_t) n;
    }
    return 0;
}

/* Reads one reply line ("+PONG", ":42") and checks its first byte.        */
static int s_reply(int fd, char want)
{
    char line[128];
    size_t n = 0;
    while (n < sizeof line) {
        ssize_t r = read(fd, line + n, 1);
        if (r <= 0) {
            if (r < 0 && errno == EINTR)
                continue;
            return -1;
        }
        if (line[n++] == '\n')
            return line[0] == want ? 0 : -1;
    }
    return -1;
}

static void *s_producer(void *arg)
{
    zkit__bspool_task_t *t = arg;
    zkit__bspool_redis_t *self = t->self;
    int fd = self->fds[t->index];
    for (uint64_t i = 0; i < t->count; i++) {
        uint64_t start = zkit__bench_wall_ns();
        if (s_write_all(fd, self->command, self->command_size) || s_reply(fd, ':')) {
            fprintf(stderr, "zkit bench spool: redis LPUSH failed\n");
            t->rc = -1;
            return NULL;
        }
        self->lat.ns[t->from + i] = (double) (zkit__bench_wall_ns() - start);
    }
    return NULL;
}

int zkit__bspool_redis_open(zkit__bspool_redis_t *self, const char *server, const char *dir,
                            int producers, size_t size, uint64_t max_messages)
{
    memset(self, 0, sizeof *self);
    self->pid = -1;
    self->producers = producers;
    self->fds = malloc((size_t) producers * sizeof *self->fds);
    char head[128];
    int head_size = snprintf(head, sizeof head, "*3\r\n$5\r\nLPUSH\r\n$%zu\r\n%s\r\n$%zu\r\n",
                             strlen(S_KEY), S_KEY, size);
    self->command_size = (size_t) head_size + size + 2;
    self->command = malloc(self->command_size);
    if (!self->fds || !self->command || zkit__bspool_lat_reserve(&self->lat, max_messages))
        return -1;
    for (int i = 0; i < producers; i++)
        self->fds[i] = -1;
    memcpy(self->command, head, (size_t) head_size);
    memset(self->command + head_size, 'x', size);
    memcpy(self->command + head_size + size, "\r\n", 2);

    self->port = s_free_port();
    char port[16];
    snprintf(port, sizeof port, "%d", self->port);
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            dup2(null, STDOUT_FILENO);
            dup2(null, STDERR_FILENO);
        }
        execl(server, server, "--port", port, "--bind", "127.0.0.1", "--save", "", "--dir", dir,
              "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no", "--loglevel",
              "warning", (char *) NULL);
        _exit(127);
    }
    if (pid < 0)
        return -1;
    self->pid = pid;
    /* Up once it answers PING.                                             */
    for (int waited = 0; waited < S_START_MS; waited += 10) {
        int fd = s_connect(self->port);
        if (fd >= 0 && s_write_all(fd, "*1\r\n$4\r\nPING\r\n", 14) == 0 && s_reply(fd, '+') == 0) {
            self->fds[0] = fd;
            break;
        }
        if (fd >= 0)
            close(fd);
        if (waitpid(pid, NULL, WNOHANG) == pid) {
            self->pid = -1;
            return -1;
        }
        struct timespec ms10 = {.tv_nsec = 10 * 1000000};
        nanosleep(&ms10, NULL);
    }
    if (self->fds[0] < 0)
        return -1;
    for (int i = 1; i < producers; i++)
        if ((self->fds[i] = s_connect(self->port)) < 0)
            return -1;
    return 0;
}

void zkit__bspool_redis_close(zkit__bspool_redis_t *self)
{
    for (int i = 0; self->fds && i < self->producers; i++)
        if (self->fds[i] >= 0)
            close(self->fds[i]);
    free(self->fds);
    free(self->command);
    if (self->pid > 0) {
        kill(self->pid, SIGTERM);
        while (waitpid(self->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    self->pid = -1;
    zkit__bspool_lat_free(&self->lat);
}

int zkit__bspool_redis_run(void *arg, uint64_t messages)
{
    zkit__bspool_redis_t *self = arg;
    if (zkit__bspool_lat_reserve(&self->lat, messages) ||
        zkit__bspool_spread(self, self->producers, messages, s_producer))
        return -1;
    return zkit__bspool_lat_call(&self->lat, messages);
}
