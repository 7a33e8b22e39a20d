/*  cmd_run.c: `zkit run TOPOLOGY.zpl`, several devices in one process.

    Loads and validates the whole topology (run_config.c) before starting
    anything, starts the devices downstream first, and waits. SIGINT and
    SIGTERM stop them upstream first: a device stops only after what feeds
    it, so what a feeder flushes at its stop (its linger) still finds its
    consumer running, and a spool device stops last of its chain, with
    everything it confirmed on disk. SIGHUP rescans the CURVE allow
    directories and reloads the file: added devices start, removed ones
    stop, changed ones restart, the others are not touched; a file that
    does not validate is logged and ignored.

    "Feeds" is read from the endpoints: a device whose output endpoint
    (forwarder backend, balancer backend, spool out, worker sink) is an
    input endpoint of another (forwarder frontend, balancer frontend, spool
    in, worker connect, sink bind) feeds it; tcp endpoints match by port,
    others by the whole string. Devices not linked keep their file order.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <czmq.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_config.h"
#include "run_devices.h"
#include "run_schema.h"
#include "device_common.h"
#include "zkit_cli.h"

#define S_CMD       "run"
#define S_TICK_MS   200
#define S_ERROR_MAX 1024

static const char s_usage_head[] =
    "usage: zkit run [--check] TOPOLOGY.zpl\n"
    "\n"
    "Starts the devices a topology file describes, in one process, and runs\n"
    "them until SIGINT or SIGTERM. The file is ZPL (ZeroMQ RFC 4): a section per\n"
    "device kind, holding a section per device, named; each key is the device\n"
    "command's long option with '-' spelled '_'. A 'defaults' section holds keys\n"
    "applied to every device whose kind takes them (typically the operations\n"
    "keys). The whole file is validated before anything starts.\n"
    "\n"
    "  forwarder\n"
    "      root\n"
    "          frontend = tcp://*:6000\n"
    "          backend = tcp://*:6001\n"
    "  spool\n"
    "      buffer\n"
    "          in = tcp://*:5570\n"
    "          out = tcp://*:5571\n"
    "          dir = /var/lib/zkit/buffer\n"
    "\n"
    "options:\n"
    "      --check            validate the file and exit (0 valid, 2 not)\n"
    "  -h, --help             this text\n"
    "\n"
    "Signals: SIGINT, SIGTERM stop every device, what feeds another first, and\n"
    "exit 0. SIGHUP rescans the CURVE allow directories and reloads the file:\n"
    "devices added start, removed ones stop, changed ones restart, unchanged ones\n"
    "are not touched; a file that does not validate is logged and ignored.\n"
    "Lines on stderr: 'zkit run: started KIND NAME ...' with the resolved\n"
    "endpoints, 'zkit run: stopped KIND NAME', 'zkit run: reload: ...'.\n"
    "Exit status: 0 stopped by a signal (--check: valid); 1 a device could not\n"
    "start; 2 usage or an invalid file. More: docs/operating.md.\n"
    "\n"
    "keys (every kind also takes control, curve_secret, curve_server,\n"
    "curve_allow, ip_allow, ip_deny):\n";

static void s_usage(void)
{
    fputs(s_usage_head, stdout);
    for (int k = 0; k < ZKIT__RUN_KINDS_; k++) {
        printf("  %s\n", zkit__run_schema[k].name);
        for (const zkit__run_key_t *key = zkit__run_schema[k].keys; key->name; key++) {
            if (!strcmp(key->name, "control"))
                break; /* the operations keys close every table */
            printf("      %-17s %s%s\n", key->name, key->help, key->required ? " (required)" : "");
        }
    }
}

/* ---- order ----------------------------------------------------------------- */

/*  The last ':' in text[0..length), or NULL.                               */
static const char *s_last_colon(const char *text, size_t length)
{
    while (length-- > 0)
        if (text[length] == ':')
            return text + length;
    return NULL;
}

/*  Compares one endpoint of each list: tcp by port, else whole strings.   */
static bool s_endpoint_match(const char *a, size_t a_len, const char *b, size_t b_len)
{
    if (a_len > 6 && b_len > 6 && !strncmp(a, "tcp://", 6) && !strncmp(b, "tcp://", 6)) {
        const char *pa = s_last_colon(a, a_len), *pb = s_last_colon(b, b_len);
        if (!pa || !pb || pa < a + 6 || pb < b + 6)
            return false;
        size_t la = a_len - (size_t) (pa - a), lb = b_len - (size_t) (pb - b);
        return la == lb && la > 1 && pa[1] != '*' && !memcmp(pa, pb, la);
    }
    return a_len == b_len && !memcmp(a, b, a_len);
}

static bool s_lists_match(const char *a, const char *b)
{
    for (const char *x = a; *x;) {
        size_t xl = strcspn(x, ",");
        for (const char *y = b; *y;) {
            size_t yl = strcspn(y, ",");
            if (s_endpoint_match(x, xl, y, yl))
                return true;
            y += yl + (y[yl] == ',');
        }
        x += xl + (x[xl] == ',');
    }
    return false;
}

static bool s_feeds(const zkit__run_device_t *from, const zkit__run_device_t *to)
{
    const char *outs[4], *ins[4];
    size_t no = zkit__run_endpoints(from, true, outs), ni = zkit__run_endpoints(to, false, ins);
    for (size_t i = 0; i < no; i++)
        for (size_t j = 0; j < ni; j++)
            if (s_lists_match(outs[i], ins[j]))
                return true;
    return false;
}

/*  Fills order[0..count) with device indexes: upstream first (a device
    after every device that feeds it) for stopping, or downstream first (a
    device after every device it feeds) for starting; ties in file order, a
    cycle broken in file order. Returns 0, or -1 (out of memory).          */
static int s_order(const zkit__run_topology_t *t, bool upstream_first, size_t *order)
{
    size_t n = t->count;
    bool *done = calloc(n ? n : 1, sizeof *done);
    if (!done)
        return -1;
    for (size_t placed = 0; placed < n; placed++) {
        size_t pick = n;
        for (size_t i = 0; i < n && pick == n; i++) {
            if (done[i])
                continue;
            bool waits = false; /* on a device not placed yet */
            for (size_t j = 0; j < n && !waits; j++)
                waits = j != i && !done[j] &&
                        (upstream_first ? s_feeds(t->devices[j], t->devices[i])
                                        : s_feeds(t->devices[i], t->devices[j]));
            if (!waits)
                pick = i;
        }
        for (size_t i = 0; i < n && pick == n; i++)
            if (!done[i])
                pick = i; /* a cycle: file order */
        done[pick] = true;
        order[placed] = pick;
    }
    free(done);
    return 0;
}

/*  Stops the devices of t that are running and for which pick (NULL: all)
    is true, upstream first.                                               */
static void s_stop(zkit__run_topology_t *t, const bool *pick)
{
    size_t *order = malloc((t->count ? t->count : 1) * sizeof *order);
    if (!order || s_order(t, true, order) == -1) {
        free(order);
        order = NULL;
    }
    for (size_t k = 0; k < t->count; k++) {
        size_t i = order ? order[k] : k;
        if (!pick || pick[i])
            zkit__run_device_stop(t->devices[i]);
    }
    free(order);
}

/*  Starts the devices of t for which pick (NULL: all) is true, downstream
    first. Returns how many failed.                                         */
static size_t s_start(zkit__run_topology_t *t, const bool *pick)
{
    size_t *order = malloc((t->count ? t->count : 1) * sizeof *order);
    if (!order || s_order(t, false, order) == -1) {
        free(order);
        order = NULL;
    }
    size_t failed = 0;
    for (size_t k = 0; k < t->count; k++) {
        size_t i = order ? order[k] : k;
        if ((!pick || pick[i]) && zkit__run_device_start(t->devices[i]) == -1)
            failed++;
    }
    free(order);
    return failed;
}

/* ---- reload ---------------------------------------------------------------- */

static zkit__run_device_t *s_find(zkit__run_topology_t *t, const char *name, size_t *index)
{
    for (size_t i = 0; i < t->count; i++)
        if (t->devices[i] && !strcmp(t->devices[i]->name, name)) {
            *index = i;
            return t->devices[i];
        }
    return NULL;
}

/*  Reloads path over *current: see the top of this file.                   */
static void s_reload(const char *path, zkit__run_topology_t **current)
{
    char error[S_ERROR_MAX];
    zkit__run_topology_t *next = zkit__run_load(path, error, sizeof error);
    if (!next) {
        fprintf(stderr, "zkit run: reload: %s; the running topology stays as it is\n", error);
        fflush(stderr);
        return;
    }
    zkit__run_topology_t *old = *current;
    bool *stop = calloc(old->count + 1, sizeof *stop);
    bool *start = calloc(next->count + 1, sizeof *start);
    if (!stop || !start) {
        fprintf(stderr, "zkit run: reload: out of memory; the running topology stays\n");
        free(stop);
        free(start);
        zkit__run_topology_destroy(&next);
        return;
    }
    size_t kept = 0, added = 0, removed = 0, changed = 0;
    for (size_t i = 0; i < old->count; i++) {
        zkit__run_device_t *was = old->devices[i];
        size_t j;
        zkit__run_device_t *now = s_find(next, was->name, &j);
        if (!now) {
            fprintf(stderr, "zkit run: reload: %s %s removed: stopping\n",
                    zkit__run_kind_name(was->kind), was->name);
            stop[i] = true;
            removed++;
        }
        else if (now->kind == was->kind && !strcmp(now->signature, was->signature) &&
                 zkit__run_device_running(was)) {
            /* Unchanged: the running device moves into the new topology. */
            was->order = now->order;
            next->devices[j] = was;
            old->devices[i] = now;
            kept++;
        }
        else {
            bool same = now->kind == was->kind && !strcmp(now->signature, was->signature);
            fprintf(stderr, "zkit run: reload: %s %s %s\n", zkit__run_kind_name(was->kind),
                    was->name, same ? "not running: starting" : "changed: restarting");
            stop[i] = true;
            start[j] = true;
            changed++;
        }
    }
    for (size_t j = 0; j < next->count; j++) {
        size_t i;
        if (!s_find(old, next->devices[j]->name, &i)) {
            fprintf(stderr, "zkit run: reload: %s %s added: starting\n",
                    zkit__run_kind_name(next->devices[j]->kind), next->devices[j]->name);
            start[j] = true;
            added++;
        }
    }
    fflush(stderr);
    s_stop(old, stop);
    size_t failed = s_start(next, start);
    fprintf(stderr, "zkit run: reload: %zu unchanged, %zu added, %zu removed, %zu restarted%s%s\n",
            kept, added, removed, changed, failed ? ", failed to start: " : "",
            failed ? "see above" : "");
    fflush(stderr);
    free(stop);
    free(start);
    *current = next;
    zkit__run_topology_destroy(&old);
}

/* ---- the command ----------------------------------------------------------- */

int zkit_cmd_run(int argc, char **argv)
{
    bool check = false;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            s_usage();
            return ZKIT_EXIT_OK;
        }
        if (!strcmp(arg, "--check"))
            check = true;
        else if (!strcmp(arg, "--") && i + 1 < argc && !path)
            path = argv[++i];
        else if (arg[0] == '-' && arg[1])
            return zkit__device_usage_error(S_CMD, "unknown option '%s'", arg);
        else if (path)
            return zkit__device_usage_error(S_CMD, "unexpected argument '%s'", arg);
        else
            path = arg;
    }
    if (!path)
        return zkit__device_usage_error(S_CMD, "the topology file is required");

    char error[S_ERROR_MAX];
    zkit__run_topology_t *topology = zkit__run_load(path, error, sizeof error);
    if (!topology) {
        fprintf(stderr, "zkit run: %s\n", error);
        return ZKIT_EXIT_USAGE;
    }
    if (check) {
        printf("%s: valid, %zu device%s:", path, topology->count, topology->count == 1 ? "" : "s");
        for (size_t i = 0; i < topology->count; i++)
            printf(" %s/%s", zkit__run_kind_name(topology->devices[i]->kind),
                   topology->devices[i]->name);
        printf("\n");
        zkit__run_topology_destroy(&topology);
        return ZKIT_EXIT_OK;
    }

    zkit__device_catch_signals();
    /* Past RLIMIT_FSIZE a spool write fails with EFBIG (REJECTED NOSPACE)
       instead of killing the whole topology.                               */
    signal(SIGXFSZ, SIG_IGN);
    zsys_set_logstream(stderr); /* czmq's init may have reset it */
    if (s_start(topology, NULL) > 0) {
        fprintf(stderr, "zkit run: a device could not start; stopping the others\n");
        s_stop(topology, NULL);
        zkit__run_topology_destroy(&topology);
        return ZKIT_EXIT_FAILURE;
    }
    fprintf(stderr, "zkit run: running %zu device%s from %s\n", topology->count,
            topology->count == 1 ? "" : "s", path);
    fflush(stderr);

    while (!zkit__device_stopping()) {
        /* Signals interrupt poll(); the timeout is only a safety net.       */
        poll(NULL, 0, S_TICK_MS);
        if (!zkit__device_stopping() && zkit__device_reload_pending()) {
            fprintf(stderr, "zkit run: SIGHUP: reloading %s\n", path);
            fflush(stderr);
            s_reload(path, &topology);
        }
    }
    fprintf(stderr, "zkit run: stopping %zu device%s\n", topology->count,
            topology->count == 1 ? "" : "s");
    fflush(stderr);
    s_stop(topology, NULL);
    zkit__run_topology_destroy(&topology);
    fprintf(stderr, "zkit run: stopped\n");
    return ZKIT_EXIT_OK;
}
