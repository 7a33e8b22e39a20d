/*  exec_handler.c: one shell command per task, for `zkit worker --exec` and
    the workers of `zkit run`.

    fork, then exec /bin/sh -c COMMAND with three pipes. The worker is
    multi-threaded (libzmq's I/O threads, the actor, the handler threads), so
    the child only makes async-signal-safe calls between fork and exec, and
    every descriptor is created close-on-exec: a command that inherited
    another task's stdin pipe would keep it open and that task's command
    would never see the end of its input.

    The parent writes stdin and reads stdout and stderr in one poll loop, so
    a command that prints before it has read all of a large body cannot
    deadlock against us. The child gets its own process group: a timeout
    kills the shell and everything it started. Its exit is watched through a
    pidfd (Linux 5.3 and later), or by polling every few milliseconds where
    that is not available; the group is killed while the exited child is
    still a zombie, so its process-group id cannot have been reused yet.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#define _GNU_SOURCE /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "exec_handler.h"
#include "zkit_batch.h"

extern char **environ;

/* stderr bytes kept for the reason; the rest is read and dropped.            */
#define S_STDERR_KEEP 512
/* Longest stderr excerpt put in a reason: the dead-letter report shows ~160. */
#define S_STDERR_EXCERPT 100
/* Bytes written to stdin per write call, so a slow reader cannot stall us.  */
#define S_WRITE_CHUNK (64 * 1024)
/* How often a wait looks at the stop flag.                                   */
#define S_STOP_CHECK_MS 100

typedef struct {
    pid_t pid;
    int pidfd;  /* -1 when the kernel has no pidfd_open */
    int in_fd;  /* our end of the command's stdin, -1 once closed   */
    int out_fd; /* our end of its stdout, -1 at end of file         */
    int err_fd; /* our end of its stderr, -1 at end of file         */
    bool exited;
    char err[S_STDERR_KEEP];
    size_t err_size;
} s_child_t;

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_close(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/*  The command's environment: ours, with extra_env added (replacing a
    variable of the same name). Built before fork, since the child may not
    allocate. Returns a malloc'ed array of borrowed strings, or NULL.        */
static char **s_build_env(char *const extra_env[])
{
    size_t extras = 0;
    while (extra_env && extra_env[extras])
        extras++;
    size_t count = 0;
    while (environ && environ[count])
        count++;
    char **envp = malloc((count + extras + 1) * sizeof *envp);
    if (!envp)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < count; i++) {
        bool replaced = false;
        for (size_t j = 0; j < extras && !replaced; j++) {
            size_t name = strcspn(extra_env[j], "=");
            replaced = !strncmp(environ[i], extra_env[j], name) && environ[i][name] == '=';
        }
        if (!replaced)
            envp[n++] = environ[i];
    }
    for (size_t j = 0; j < extras; j++)
        envp[n++] = extra_env[j];
    envp[n] = NULL;
    return envp;
}

/*  In the child, between fork and exec: async-signal-safe calls only.       */
static void s_exec_child(int in_fd, int out_fd, int err_fd, const char *command, char **envp)
{
    setpgid(0, 0);
    /* Handler threads may block signals, and the worker ignores SIGPIPE;
       both would be inherited across exec and make commands misbehave
       (`yes | head` would never end). */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    const int reset[] = {SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGCHLD};
    for (size_t i = 0; i < sizeof reset / sizeof reset[0]; i++)
        sigaction(reset[i], &dfl, NULL);

    /* Move the pipe ends above 2 first, so no dup2 below overwrites another
       (they can be 0, 1 or 2 when the worker was started with those closed). */
    int fds[3] = {fcntl(in_fd, F_DUPFD_CLOEXEC, 3), fcntl(out_fd, F_DUPFD_CLOEXEC, 3),
                  fcntl(err_fd, F_DUPFD_CLOEXEC, 3)};
    for (int i = 0; i < 3; i++)
        if (fds[i] < 0 || dup2(fds[i], i) < 0)
            _exit(126);
#ifdef SYS_close_range
    /* Everything else is close-on-exec already; this also covers descriptors
       a library opened without the flag. Failure (old kernel) is harmless. */
    syscall(SYS_close_range, 3u, ~0u, 0u);
#endif
    char *argv[] = {"sh", "-c", (char *) command, NULL};
    execve("/bin/sh", argv, envp);
    static const char msg[] = "zkit worker: cannot execute /bin/sh\n";
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    (void) ignored;
    _exit(127);
}

/*  Starts the command. Returns 0, or -1 with a reason written.              */
static int s_spawn(s_child_t *child, const char *command, char *const extra_env[], char *reason,
                   size_t reason_size)
{
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    char **envp = NULL;
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
        snprintf(reason, reason_size, "cannot create pipes: %s", strerror(errno));
        goto fail;
    }
    envp = s_build_env(extra_env);
    if (!envp) {
        snprintf(reason, reason_size, "out of memory");
        goto fail;
    }
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(reason, reason_size, "cannot fork: %s", strerror(errno));
        goto fail;
    }
    if (pid == 0)
        s_exec_child(in[0], out[1], err[1], command, envp);

    /* Also here, so the group exists before we might signal it (EACCES
       once the child has exec'd: it then did it itself). */
    setpgid(pid, pid);
    free(envp);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    child->pid = pid;
    child->in_fd = in[1];
    child->out_fd = out[0];
    child->err_fd = err[0];
    fcntl(child->in_fd, F_SETFL, O_NONBLOCK);
    fcntl(child->out_fd, F_SETFL, O_NONBLOCK);
    fcntl(child->err_fd, F_SETFL, O_NONBLOCK);
    child->pidfd = -1;
#ifdef SYS_pidfd_open
    child->pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
    if (child->pidfd >= 0)
        fcntl(child->pidfd, F_SETFD, FD_CLOEXEC);
#endif
    return 0;

fail:
    free(envp);
    for (int i = 0; i < 2; i++) {
        s_close(&in[i]);
        s_close(&out[i]);
        s_close(&err[i]);
    }
    return -1;
}

/*  Notes whether the child has exited, leaving it a zombie (WNOWAIT) so its
    pid and process-group id stay reserved until we reap it.                 */
static void s_check_exit(s_child_t *child)
{
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(P_PID, (id_t) child->pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == child->pid)
        child->exited = true;
}

/*  Reads what is there from fd into out (or into the stderr excerpt when out
    is NULL). Returns 0, or -1 when out would pass max bytes.               */
static int s_drain(s_child_t *child, int *fd, zkit__exec_output_t *out, size_t max)
{
    char scratch[4096];
    while (*fd >= 0) {
        char *dest = scratch;
        size_t room = sizeof scratch;
        if (out) {
            if (out->capacity - out->size < 4096) {
                size_t capacity = out->capacity ? out->capacity * 2 : 8192;
                char *grown = realloc(out->data, capacity);
                if (!grown)
                    return -1;
                out->data = grown;
                out->capacity = capacity;
            }
            dest = out->data + out->size;
            room = out->capacity - out->size;
        }
        ssize_t n = read(*fd, dest, room);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                s_close(fd); /* treat a broken pipe as its end */
            return 0;
        }
        if (n == 0) {
            s_close(fd);
            return 0;
        }
        if (out) {
            out->size += (size_t) n;
            if (out->size > max)
                return -1;
        }
        else {
            size_t keep = S_STDERR_KEEP - child->err_size;
            if (keep > (size_t) n)
                keep = (size_t) n;
            memcpy(child->err + child->err_size, scratch, keep);
            child->err_size += keep;
        }
    }
    return 0;
}

/*  Writes the next piece of input. The command may exit or close stdin
    without reading everything (`head -1`): that is its business, not an
    error, so EPIPE just ends the input.                                      */
static void s_feed(s_child_t *child, const char *input, size_t size, size_t *written)
{
    while (child->in_fd >= 0 && *written < size) {
        size_t chunk = size - *written;
        if (chunk > S_WRITE_CHUNK)
            chunk = S_WRITE_CHUNK;
        ssize_t n = write(child->in_fd, input + *written, chunk);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                s_close(&child->in_fd);
            return;
        }
        *written += (size_t) n;
    }
    if (*written >= size)
        s_close(&child->in_fd);
}

/*  "exit status 3: <first line of stderr>".                                  */
static void s_describe(const s_child_t *child, int status, char *reason, size_t reason_size)
{
    int len;
    if (WIFEXITED(status))
        len = snprintf(reason, reason_size, "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        len = snprintf(reason, reason_size, "killed by signal %d", WTERMSIG(status));
    else
        len = snprintf(reason, reason_size, "ended with wait status %d", status);
    size_t line = 0;
    while (line < child->err_size && child->err[line] != '\n')
        line++;
    if (line == 0 || len < 0 || (size_t) len + 3 >= reason_size)
        return;
    bool cut = line > S_STDERR_EXCERPT;
    if (cut)
        line = S_STDERR_EXCERPT;
    snprintf(reason + len, reason_size - (size_t) len, ": %.*s%s", (int) line, child->err,
             cut ? "..." : "");
    /* Control characters would garble a one-line report. */
    for (char *c = reason + len; *c; c++)
        if ((unsigned char) *c < 0x20 || *c == 0x7f)
            *c = '?';
}

int zkit__exec_run(const zkit__exec_opts_t *opts, const void *input, size_t input_size,
                   char *const extra_env[], zkit__exec_output_t *out, char *reason,
                   size_t reason_size)
{
    s_child_t child = {.pid = -1, .pidfd = -1, .in_fd = -1, .out_fd = -1, .err_fd = -1};
    if (s_spawn(&child, opts->command, extra_env, reason, reason_size) == -1)
        return -1;

    int64_t start = s_now_ms();
    int64_t deadline = opts->timeout_ms ? start + opts->timeout_ms : INT64_MAX;
    size_t written = 0;
    int poll_backoff_ms = 1; /* without a pidfd: how long until we look again */
    bool failed = false;
    s_feed(&child, input, input_size, &written);

    while (child.out_fd >= 0 || child.err_fd >= 0 || !child.exited) {
        if (opts->stop && atomic_load(opts->stop)) {
            snprintf(reason, reason_size, "worker stopping");
            failed = true;
            break;
        }
        int64_t now = s_now_ms();
        if (now >= deadline) {
            snprintf(reason, reason_size, "timed out after %u ms", opts->timeout_ms);
            failed = true;
            break;
        }
        int64_t wait = deadline - now;
        if (wait > S_STOP_CHECK_MS)
            wait = S_STOP_CHECK_MS;

        struct pollfd fds[4];
        nfds_t n = 0;
        int in_at = -1, out_at = -1, err_at = -1, pid_at = -1;
        if (child.in_fd >= 0) {
            in_at = (int) n;
            fds[n++] = (struct pollfd){child.in_fd, POLLOUT, 0};
        }
        if (child.out_fd >= 0) {
            out_at = (int) n;
            fds[n++] = (struct pollfd){child.out_fd, POLLIN, 0};
        }
        if (child.err_fd >= 0) {
            err_at = (int) n;
            fds[n++] = (struct pollfd){child.err_fd, POLLIN, 0};
        }
        if (!child.exited && child.pidfd >= 0) {
            pid_at = (int) n;
            fds[n++] = (struct pollfd){child.pidfd, POLLIN, 0};
        }
        if (!child.exited && child.pidfd < 0) {
            /* No pidfd: look at the child now and then, sooner at first,
               since most commands end right after closing their output. */
            if (wait > poll_backoff_ms)
                wait = poll_backoff_ms;
            if (poll_backoff_ms < 16)
                poll_backoff_ms *= 2;
        }
        int rc = poll(fds, n, (int) wait);
        if (rc < 0 && errno != EINTR) {
            snprintf(reason, reason_size, "poll: %s", strerror(errno));
            failed = true;
            break;
        }
        if (rc > 0 && in_at >= 0 && fds[in_at].revents)
            s_feed(&child, input, input_size, &written);
        if (rc > 0 && out_at >= 0 && fds[out_at].revents &&
            s_drain(&child, &child.out_fd, out, opts->max_output) == -1) {
            if (out->size > opts->max_output)
                snprintf(reason, reason_size, "output larger than %zu bytes", opts->max_output);
            else
                snprintf(reason, reason_size, "out of memory");
            failed = true;
            break;
        }
        if (rc > 0 && err_at >= 0 && fds[err_at].revents)
            s_drain(&child, &child.err_fd, NULL, 0);
        if (!child.exited && (pid_at < 0 || (rc > 0 && fds[pid_at].revents))) {
            s_check_exit(&child);
            /* Whatever the command left running in its group would hold the
               pipes open: end it now, while the zombie keeps the group id. */
            if (child.exited)
                kill(-child.pid, SIGKILL);
        }
    }

    if (!child.exited)
        kill(-child.pid, SIGKILL);
    s_close(&child.in_fd);
    s_close(&child.out_fd);
    s_close(&child.err_fd);
    s_close(&child.pidfd);
    int status = 0;
    while (waitpid(child.pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (failed)
        return -1;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    s_describe(&child, status, reason, reason_size);
    return -1;
}

/*  "ZKIT_BATCH=name" when the batch name is printable text, else "".       */
static void s_batch_env(const zkit_envelope_t *task, char *buf, size_t size)
{
    buf[0] = '\0';
    zkit_value_t batch;
    if (zkit_envelope_batch(task, &batch) == -1 || batch.size > ZKIT_BATCH_NAME_MAX)
        return;
    const char *name = batch.data;
    for (size_t i = 0; i < batch.size; i++)
        if ((unsigned char) name[i] < 0x20 || name[i] == 0x7f)
            return;
    snprintf(buf, size, "ZKIT_BATCH=%.*s", (int) batch.size, name);
}

int zkit__exec_task_handler(const zkit_envelope_t *task, zkit_envelope_t *result, char *reason,
                            size_t reason_size, void *arg)
{
    const zkit__exec_opts_t *opts = arg;
    char seq[48], attempt[48], batch[ZKIT_BATCH_NAME_MAX + 16];
    /* A task's seq is its number in the batch (docs/pipeline-protocol.md). */
    snprintf(seq, sizeof seq, "ZKIT_TASK_SEQ=%" PRIu64, zkit_envelope_seq(task));
    uint64_t att = zkit_envelope_has(task, ZKIT_META_ATT) ? zkit_envelope_att(task) : 1;
    snprintf(attempt, sizeof attempt, "ZKIT_TASK_ATTEMPT=%" PRIu64, att);
    s_batch_env(task, batch, sizeof batch);
    char *env[] = {seq, attempt, batch[0] ? batch : NULL, NULL};

    size_t size;
    const void *body = zkit_envelope_body(task, &size);
    zkit__exec_output_t out = {NULL, 0, 0};
    int rc = zkit__exec_run(opts, body, size, env, &out, reason, reason_size);
    if (rc == 0) {
        if (out.size && out.data[out.size - 1] == '\n')
            out.size--;
        if (zkit_envelope_set_body(result, out.data ? out.data : "", out.size) == -1) {
            snprintf(reason, reason_size, "out of memory");
            rc = -1;
        }
    }
    free(out.data);
    return rc;
}
