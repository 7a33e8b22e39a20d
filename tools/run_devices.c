/*  run_devices.c: starts and stops the devices of a `zkit run` topology.

    Each kind starts the library component its own command starts, with
    the options the topology file gave. The worker runs a shell command per
    task with the handler `zkit worker --exec` uses (exec_handler.h); the
    sink appends one line per result to its output file, written out before
    the sink may acknowledge the result, as `zkit sink` does.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "run_devices.h"

#define S_LOG_PREFIX "zkit run: "

/* ---- sink: one line per result --------------------------------------------- */

typedef struct {
    int fd;
    off_t offset; /* end of the last complete line */
    bool regular;
    const char *path;
    int64_t last_error_ms;
} s_output_t;

/*  The sink's result handler: the line is written out of the process
    before the sink acknowledges the result; a torn line is cut off again
    and the result refused (the worker resends it).                         */
static int s_store(const zkit_envelope_t *result, void *arg)
{
    s_output_t *out = arg;
    size_t size;
    const char *body = zkit_envelope_body(result, &size);
    char *line = malloc(size + 1);
    if (!line)
        return -1;
    memcpy(line, body, size);
    line[size] = '\n';
    size_t done = 0;
    int rc = 0;
    while (done < size + 1) {
        ssize_t n = write(out->fd, line + done, size + 1 - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int err = n < 0 ? errno : EIO;
            if (done && out->regular && ftruncate(out->fd, out->offset) == 0)
                lseek(out->fd, out->offset, SEEK_SET);
            int64_t now = zclock_mono();
            if (!out->last_error_ms || now - out->last_error_ms >= 1000) {
                out->last_error_ms = now;
                zsys_error("ZKIT-RUN-SINK-WRITE: cannot write %s: %s; results are refused until "
                           "it works again (workers resend them)",
                           out->path, strerror(err));
            }
            rc = -1;
            break;
        }
        done += (size_t) n;
    }
    if (rc == 0)
        out->offset += (off_t) (size + 1);
    free(line);
    return rc;
}

static s_output_t *s_output_open(const char *path)
{
    s_output_t *out = calloc(1, sizeof *out);
    if (!out)
        return NULL;
    out->path = path;
    out->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
    if (out->fd < 0) {
        int err = errno;
        free(out);
        errno = err;
        return NULL;
    }
    struct stat st;
    out->regular = fstat(out->fd, &st) == 0 && S_ISREG(st.st_mode);
    out->offset = out->regular ? st.st_size : 0;
    return out;
}

static void s_output_close(s_output_t **out_p)
{
    s_output_t *out = *out_p;
    if (!out)
        return;
    close(out->fd);
    free(out);
    *out_p = NULL;
}

/* ---- start and stop -------------------------------------------------------- */

/*  Creates dev's component (its own opts, prepared by the caller). Returns
    it, or NULL with errno set.                                             */
static void *s_new(zkit__run_device_t *dev)
{
    switch (dev->kind) {
    case ZKIT__RUN_FORWARDER: return zkit_forwarder_new(&dev->u.forwarder);
    case ZKIT__RUN_BALANCER: return zkit_balancer_new(&dev->u.balancer);
    case ZKIT__RUN_SPOOL: return zkit_spool_device_new(&dev->u.spool);
    case ZKIT__RUN_WORKER: return zkit_worker_new(&dev->u.worker.opts);
    case ZKIT__RUN_SINK: return zkit_sink_new(&dev->u.sink.opts);
    default: errno = EINVAL; return NULL;
    }
}

/*  Destroys dev's component (waits for what its destroy waits for).       */
static void s_destroy(zkit__run_device_t *dev)
{
#define S_DESTROY(type, destroy)                                                                   \
    do {                                                                                           \
        type *instance = dev->instance;                                                            \
        destroy(&instance);                                                                        \
    } while (0)
    switch (dev->kind) {
    case ZKIT__RUN_FORWARDER: S_DESTROY(zkit_forwarder_t, zkit_forwarder_destroy); break;
    case ZKIT__RUN_BALANCER: S_DESTROY(zkit_balancer_t, zkit_balancer_destroy); break;
    case ZKIT__RUN_SPOOL: S_DESTROY(zkit_spool_device_t, zkit_spool_device_destroy); break;
    case ZKIT__RUN_WORKER: S_DESTROY(zkit_worker_t, zkit_worker_destroy); break;
    case ZKIT__RUN_SINK: S_DESTROY(zkit_sink_t, zkit_sink_destroy); break;
    default: break;
    }
#undef S_DESTROY
    dev->instance = NULL;
}

/*  The control endpoint dev's component resolved (NULL: none).            */
static const char *s_control_endpoint(const zkit__run_device_t *dev)
{
    switch (dev->kind) {
    case ZKIT__RUN_FORWARDER: return zkit_forwarder_control(dev->instance);
    case ZKIT__RUN_BALANCER: return zkit_balancer_control(dev->instance);
    case ZKIT__RUN_SPOOL: return zkit_spool_device_control(dev->instance);
    case ZKIT__RUN_WORKER: return zkit_worker_control(dev->instance);
    case ZKIT__RUN_SINK: return zkit_sink_control(dev->instance);
    default: return NULL;
    }
}

/*  "zkit run: started KIND NAME ..." with the endpoints it resolved.       */
static void s_announce(const zkit__run_device_t *dev)
{
    switch (dev->kind) {
    case ZKIT__RUN_FORWARDER: {
        zkit_forwarder_t *fwd = dev->instance;
        const zkit_forwarder_opts_t *o = &dev->u.forwarder;
        fprintf(stderr, S_LOG_PREFIX "started forwarder %s %s %s %s %s policy %s", dev->name,
                zkit_forwarder_frontend(fwd) ? "frontend" : "frontend_connect",
                zkit_forwarder_frontend(fwd) ? zkit_forwarder_frontend(fwd) : o->frontend_connect,
                zkit_forwarder_backend(fwd) ? "backend" : "backend_connect",
                zkit_forwarder_backend(fwd) ? zkit_forwarder_backend(fwd) : o->backend_connect,
                zkit_forwarder_policy_name(o->policy));
        if (zkit_forwarder_tap(fwd))
            fprintf(stderr, " tap %s", zkit_forwarder_tap(fwd));
        fputc('\n', stderr);
        break;
    }
    case ZKIT__RUN_BALANCER:
        fprintf(stderr, S_LOG_PREFIX "started balancer %s frontend %s backend %s\n", dev->name,
                zkit_balancer_frontend(dev->instance), zkit_balancer_backend(dev->instance));
        break;
    case ZKIT__RUN_SPOOL: {
        zkit_spool_device_t *s = dev->instance;
        zkit_spool_device_stats_t st;
        memset(&st, 0, sizeof st);
        zkit_spool_device_stats(s, &st);
        fprintf(stderr,
                S_LOG_PREFIX "started spool %s in %s out %s%s%s dir %s unacked=%" PRIu64
                             " next_seq=%" PRIu64 "\n",
                dev->name, zkit_spool_device_in(s), zkit_spool_device_out(s),
                dev->u.spool.in_push ? " in_push " : "",
                dev->u.spool.in_push ? zkit_spool_device_in_push(s) : "", dev->u.spool.dir,
                st.spool.unacked, st.spool.next_seq);
        break;
    }
    case ZKIT__RUN_WORKER:
        fprintf(stderr, S_LOG_PREFIX "started worker %s connect %s sink %s window %u\n", dev->name,
                dev->u.worker.opts.connect, dev->u.worker.opts.sink, dev->u.worker.opts.window);
        break;
    case ZKIT__RUN_SINK:
        fprintf(stderr, S_LOG_PREFIX "started sink %s bind %s output %s\n", dev->name,
                zkit_sink_endpoint(dev->instance), dev->u.sink.output);
        break;
    default: break;
    }
    /* The control endpoint as resolved (a wildcard port becomes a number);
       the configured one when the component does not say. */
    const char *ep = s_control_endpoint(dev);
    if (!ep) {
        const zkit_ops_opts_t *ops = dev->kind == ZKIT__RUN_FORWARDER  ? &dev->u.forwarder.ops
                                     : dev->kind == ZKIT__RUN_BALANCER ? &dev->u.balancer.ops
                                     : dev->kind == ZKIT__RUN_SPOOL    ? &dev->u.spool.ops
                                     : dev->kind == ZKIT__RUN_WORKER   ? &dev->u.worker.opts.ops
                                                                       : &dev->u.sink.opts.ops;
        ep = ops->control;
    }
    if (ep)
        fprintf(stderr, S_LOG_PREFIX "%s %s: control %s\n", zkit__run_kind_name(dev->kind),
                dev->name, ep);
}

int zkit__run_device_start(zkit__run_device_t *dev)
{
    errno = 0;
    s_output_t *out = NULL;
    if (dev->kind == ZKIT__RUN_WORKER) {
        atomic_store(&dev->stop, 0);
        dev->u.worker.exec.stop = &dev->stop;
        dev->u.worker.opts.handler = zkit__exec_task_handler;
        dev->u.worker.opts.handler_arg = &dev->u.worker.exec;
    }
    else if (dev->kind == ZKIT__RUN_SINK) {
        out = s_output_open(dev->u.sink.output);
        dev->u.sink.opts.handler = s_store;
        dev->u.sink.opts.handler_arg = out;
    }
    if (dev->kind != ZKIT__RUN_SINK || out)
        dev->instance = s_new(dev);
    if (!dev->instance) {
        int err = errno ? errno : EINVAL;
        s_output_close(&out);
        fprintf(stderr, S_LOG_PREFIX "cannot start %s %s: %s\n", zkit__run_kind_name(dev->kind),
                dev->name, zkit_strerror(err));
        fflush(stderr);
        errno = err;
        return -1;
    }
    dev->output = out;
    s_announce(dev);
    fflush(stderr);
    return 0;
}

bool zkit__run_device_running(const zkit__run_device_t *dev)
{
    return dev->instance != NULL;
}

void zkit__run_device_stop(zkit__run_device_t *dev)
{
    if (!dev->instance)
        return;
    /* A worker's running commands are killed: their tasks go to other
       workers. */
    atomic_store(&dev->stop, 1);
    s_destroy(dev);
    s_output_t *out = dev->output;
    s_output_close(&out);
    dev->output = NULL;
    fprintf(stderr, S_LOG_PREFIX "stopped %s %s\n", zkit__run_kind_name(dev->kind), dev->name);
    fflush(stderr);
}
