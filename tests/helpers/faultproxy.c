/*  faultproxy: a TCP proxy for tests that can pause, drop, reset and delay
    the connections it carries.

        faultproxy [--listen [HOST:]PORT] TARGET_HOST:PORT

    It listens (default 127.0.0.1, a port the kernel picks), prints
    "listening PORT" on stdout once it accepts connections, and forwards each
    connection to TARGET. Commands arrive on stdin, one per line; each is
    answered on stdout with "ok COMMAND" once it has taken effect, so a test
    can wait for that line instead of sleeping:

        pause      stop forwarding both ways; connections stay open (new ones
                   are accepted and connected, but carry nothing)
        resume     forward again, starting with what was held back
        drop       close every current connection, both sides, discarding
                   what is queued (the peers see an orderly close; the kernel
                   sends a reset instead where the proxy had unread data)
        reset      the same with SO_LINGER 0: both peers get a TCP RST
        delay MS   hold every chunk read from now on MS milliseconds before
                   it is written (0 turns delaying off)
        status     prints "status connections=N accepted=N paused=0|1
                   delay=MS" (instead of "ok")
        quit       exits; so does the end of stdin

    One thread and poll(): every socket is non-blocking, writes may be
    partial (what is left stays queued), and an end of stream on one side is
    passed on as a shutdown of the other once the queue towards it is empty.
    A connection closes when both directions have ended; an error on either
    side resets both, so a peer that was reset is seen as a reset through
    the proxy too. At most 1 MiB is queued per direction: beyond that the
    proxy stops reading from the sender, as TCP itself would.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define S_CHUNK     65536
#define S_MAX_QUEUE (1024 * 1024)
#define S_LINE_MAX  256

typedef struct s_chunk {
    struct s_chunk *next;
    int64_t due_ms; /* not written before this time */
    size_t offset;  /* bytes already written */
    size_t size;
    char data[];
} s_chunk_t;

/*  Side 0 is the client that connected to us, side 1 our connection to the
    target. queue[i] holds what is to be written to side i.               */
typedef struct {
    int fd[2];
    bool connecting; /* side 1's connect is in progress */
    s_chunk_t *head[2], *tail[2];
    size_t queued[2];
    bool eof[2];     /* read the end of stream from side i */
    bool shut_wr[2]; /* shut down writing to side i */
    bool broken;     /* reset and remove at the end of this round */
} s_conn_t;

static s_conn_t **s_conns = NULL;
static size_t s_count = 0, s_capacity = 0;
static bool s_paused = false;
static int64_t s_delay_ms = 0;
static uint64_t s_accepted = 0;

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void s_close_fd(int fd, bool reset)
{
    if (fd < 0)
        return;
    if (reset) {
        struct linger l = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    close(fd);
}

static void s_conn_free(s_conn_t *c, bool reset)
{
    for (int i = 0; i < 2; i++) {
        s_close_fd(c->fd[i], reset);
        while (c->head[i]) {
            s_chunk_t *next = c->head[i]->next;
            free(c->head[i]);
            c->head[i] = next;
        }
    }
    free(c);
}

/*  Closes every connection: reset sends RSTs, else orderly closes.       */
static void s_close_all(bool reset)
{
    for (size_t i = 0; i < s_count; i++)
        s_conn_free(s_conns[i], reset);
    s_count = 0;
}

static int s_resolve(const char *text, bool passive, struct addrinfo **out)
{
    char host[256];
    const char *colon = strrchr(text, ':');
    const char *port = colon ? colon + 1 : text;
    size_t n = colon ? (size_t) (colon - text) : 0;
    if (n >= sizeof host)
        return -1;
    memcpy(host, text, n);
    host[n] = '\0';
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    return getaddrinfo(n ? host : (passive ? "127.0.0.1" : NULL), port, &hints, out) ? -1 : 0;
}

static void s_accept(int listener, const struct addrinfo *target)
{
    while (true) {
        int client = accept(listener, NULL, NULL);
        if (client == -1)
            return; /* EAGAIN: all taken; anything else: try next round */
        int upstream = socket(target->ai_family, SOCK_STREAM, 0);
        if (upstream == -1) {
            s_close_fd(client, true);
            continue;
        }
        s_nonblock(client);
        s_nonblock(upstream);
        int one = 1;
        setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(upstream, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        int rc = connect(upstream, target->ai_addr, target->ai_addrlen);
        s_conn_t *c = calloc(1, sizeof *c);
        if ((rc == -1 && errno != EINPROGRESS) || !c ||
            (s_count == s_capacity &&
             !(s_conns = realloc(s_conns, (s_capacity = s_capacity ? 2 * s_capacity : 16) *
                                              sizeof *s_conns)))) {
            s_close_fd(client, true);
            s_close_fd(upstream, true);
            free(c);
            if (!s_conns)
                exit(3);
            continue;
        }
        c->fd[0] = client;
        c->fd[1] = upstream;
        c->connecting = rc == -1;
        s_conns[s_count++] = c;
        s_accepted++;
    }
}

/*  Reads what side i has and queues it towards the other side.          */
static void s_read(s_conn_t *c, int i, int64_t now)
{
    static char buf[S_CHUNK];
    ssize_t n = recv(c->fd[i], buf, sizeof buf, 0);
    if (n == 0) {
        c->eof[i] = true;
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            c->broken = true;
        return;
    }
    s_chunk_t *chunk = malloc(sizeof *chunk + (size_t) n);
    if (!chunk)
        exit(3);
    memcpy(chunk->data, buf, (size_t) n);
    chunk->next = NULL;
    chunk->due_ms = now + s_delay_ms;
    chunk->offset = 0;
    chunk->size = (size_t) n;
    int to = 1 - i;
    if (c->tail[to])
        c->tail[to]->next = chunk;
    else
        c->head[to] = chunk;
    c->tail[to] = chunk;
    c->queued[to] += (size_t) n;
}

/*  Writes what is due to side i, as much as it takes.                   */
static void s_write(s_conn_t *c, int i, int64_t now)
{
    while (c->head[i] && c->head[i]->due_ms <= now) {
        s_chunk_t *chunk = c->head[i];
        ssize_t n =
            send(c->fd[i], chunk->data + chunk->offset, chunk->size - chunk->offset, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                c->broken = true;
            return;
        }
        chunk->offset += (size_t) n;
        c->queued[i] -= (size_t) n;
        if (chunk->offset < chunk->size)
            return; /* partial: the socket is full */
        c->head[i] = chunk->next;
        if (!c->head[i])
            c->tail[i] = NULL;
        free(chunk);
    }
}

/*  Passes ends of stream on and says whether the connection is over.    */
static bool s_finished(s_conn_t *c)
{
    for (int i = 0; i < 2; i++)
        if (c->eof[1 - i] && !c->head[i] && !c->shut_wr[i]) {
            shutdown(c->fd[i], SHUT_WR);
            c->shut_wr[i] = true;
        }
    return c->shut_wr[0] && c->shut_wr[1];
}

static void s_reply(const char *text)
{
    printf("%s\n", text);
    fflush(stdout);
}

static bool s_command(char *line)
{
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\r' || line[n - 1] == ' '))
        line[--n] = '\0';
    if (!strcmp(line, "pause"))
        s_paused = true;
    else if (!strcmp(line, "resume"))
        s_paused = false;
    else if (!strcmp(line, "drop"))
        s_close_all(false);
    else if (!strcmp(line, "reset"))
        s_close_all(true);
    else if (!strncmp(line, "delay ", 6)) {
        char *end;
        long ms = strtol(line + 6, &end, 10);
        if (*end || end == line + 6 || ms < 0 || ms > 3600000) {
            s_reply("error delay needs milliseconds");
            return true;
        }
        s_delay_ms = ms;
    }
    else if (!strcmp(line, "status")) {
        printf("status connections=%zu accepted=%" PRIu64 " paused=%d delay=%" PRId64 "\n", s_count,
               s_accepted, s_paused ? 1 : 0, s_delay_ms);
        fflush(stdout);
        return true;
    }
    else if (!strcmp(line, "quit"))
        return false;
    else {
        s_reply("error unknown command");
        return true;
    }
    printf("ok %s\n", line);
    fflush(stdout);
    return true;
}

/*  Reads stdin and runs every complete line. False once stdin ended or
    asked to quit.                                                          */
static bool s_stdin(void)
{
    static char line[S_LINE_MAX + 1];
    static size_t used = 0;
    char buf[4096];
    ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
        return false;
    for (ssize_t k = 0; k < n; k++) {
        if (buf[k] != '\n') {
            if (used < S_LINE_MAX)
                line[used++] = buf[k];
            continue;
        }
        line[used] = '\0';
        used = 0;
        if (!s_command(line))
            return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    const char *listen_at = "127.0.0.1:0", *target_at = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--listen") && i + 1 < argc)
            listen_at = argv[++i];
        else if (argv[i][0] != '-' && !target_at)
            target_at = argv[i];
        else
            target_at = NULL, i = argc;
    }
    struct addrinfo *target = NULL, *local = NULL;
    if (!target_at || s_resolve(target_at, false, &target) || s_resolve(listen_at, true, &local)) {
        fprintf(stderr, "usage: faultproxy [--listen [HOST:]PORT] TARGET_HOST:PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int listener = socket(local->ai_family, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (listener == -1 || bind(listener, local->ai_addr, local->ai_addrlen) == -1 ||
        listen(listener, 128) == -1) {
        fprintf(stderr, "faultproxy: cannot listen on %s: %s\n", listen_at, strerror(errno));
        return 1;
    }
    s_nonblock(listener);
    struct sockaddr_storage bound;
    socklen_t bound_size = sizeof bound;
    getsockname(listener, (struct sockaddr *) &bound, &bound_size);
    int port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *) &bound)->sin6_port
                                                 : ((struct sockaddr_in *) &bound)->sin_port);
    printf("listening %d\n", port);
    fflush(stdout);

    struct pollfd *fds = NULL;
    size_t fds_capacity = 0;
    bool running = true;
    while (running) {
        int64_t now = s_now_ms();
        size_t need = 2 + 2 * s_count;
        if (need > fds_capacity) {
            fds_capacity = need * 2;
            fds = realloc(fds, fds_capacity * sizeof *fds);
            if (!fds)
                return 3;
        }
        fds[0] = (struct pollfd){listener, POLLIN, 0};
        fds[1] = (struct pollfd){STDIN_FILENO, POLLIN, 0};
        int64_t wake = -1; /* the next delayed chunk that falls due */
        for (size_t k = 0; k < s_count; k++) {
            s_conn_t *c = s_conns[k];
            for (int i = 0; i < 2; i++) {
                short events = 0;
                if (c->connecting)
                    events = i == 1 ? POLLOUT : 0;
                else if (!s_paused) {
                    if (!c->eof[i] && c->queued[1 - i] < S_MAX_QUEUE)
                        events |= POLLIN;
                    if (c->head[i]) {
                        if (c->head[i]->due_ms <= now)
                            events |= POLLOUT;
                        else if (wake == -1 || c->head[i]->due_ms < wake)
                            wake = c->head[i]->due_ms;
                    }
                }
                /* Nothing wanted: a negative fd, or poll would keep
                   reporting a hang-up we are not ready to act on (paused). */
                fds[2 + 2 * k + (size_t) i] = (struct pollfd){events ? c->fd[i] : -1, events, 0};
            }
        }
        int timeout = wake == -1 ? -1 : (int) (wake > now ? wake - now : 0);
        if (poll(fds, (nfds_t) need, timeout) == -1 && errno != EINTR)
            return 1;
        now = s_now_ms();
        /* Connections first: the indexes of fds match s_conns only until a
           command or an accept changes the table. */
        for (size_t k = 0; k < s_count; k++) {
            s_conn_t *c = s_conns[k];
            struct pollfd *p = &fds[2 + 2 * k];
            if (c->connecting) {
                if (p[1].revents) {
                    int err = 0;
                    socklen_t len = sizeof err;
                    getsockopt(c->fd[1], SOL_SOCKET, SO_ERROR, &err, &len);
                    c->connecting = false;
                    c->broken = err != 0; /* the target refused: so do we */
                }
                continue;
            }
            for (int i = 0; i < 2 && !c->broken; i++) {
                if (p[i].revents & (POLLIN | POLLHUP | POLLERR))
                    s_read(c, i, now);
                if (p[i].revents & (POLLOUT | POLLERR))
                    s_write(c, i, now);
            }
        }
        for (size_t k = 0; k < s_count;) {
            s_conn_t *c = s_conns[k];
            bool over = c->broken || (!c->connecting && s_finished(c));
            if (!over) {
                k++;
                continue;
            }
            s_conn_free(c, c->broken);
            s_conns[k] = s_conns[--s_count];
        }
        if (fds[0].revents & POLLIN)
            s_accept(listener, target);
        if (fds[1].revents & (POLLIN | POLLHUP | POLLERR))
            running = s_stdin();
    }
    s_close_all(false);
    free(s_conns);
    free(fds);
    close(listener);
    freeaddrinfo(target);
    freeaddrinfo(local);
    return 0;
}
