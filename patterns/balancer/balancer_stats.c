/*  balancer_stats.c: what a balancer's control endpoint answers (see
    balancer_internal.h and docs/balancer-protocol.md, "Control endpoint
    metrics"): every field of zkit_balancer_stats_t as a counter or gauge,
    messages and bytes in and out of the frontend and the backend,
    the registered workers as peers, and PAUSE/RESUME.

    The callbacks run in the actor thread, between two turns of its loop.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <czmq.h>
#include <stddef.h>
#include <string.h>

#include "balancer/balancer_internal.h"

void zkit__bal_snapshot(zkit__bal_state_t *self, zkit_balancer_stats_t *out)
{
    const zkit__dispatcher_counters_t *c = zkit__dispatcher_counters(self->dispatcher);
    *out = self->stats;
    out->dispatched = c->dispatched;
    out->requeued = c->requeued;
    out->queued = c->queued;
    out->in_flight = c->in_flight;
}

/* The plain fields of zkit_balancer_stats_t: name, where, help, and
   whether it is a gauge (a current value) rather than a counter (a total). */
typedef struct {
    const char *name;
    size_t offset;
    bool gauge;
    const char *help;
} s_field_t;

#define S_FIELD(field, gauge, help)                                                                \
    {                                                                                              \
#field, offsetof(zkit_balancer_stats_t, field), gauge, help                                \
    }

static const s_field_t s_fields[] = {
    S_FIELD(requests, false, "Requests accepted from clients"),
    S_FIELD(duplicates, false,
            "Resends of a request still held (same envelope id), not queued again"),
    S_FIELD(dispatched, false, "Attempts sent to workers"),
    S_FIELD(replies, false, "Replies sent to clients"),
    S_FIELD(unroutable, false, "Replies and errors whose client was gone or not reading"),
    S_FIELD(late_replies, false, "Replies for requests already answered, dropped"),
    S_FIELD(requeued, false, "Failed attempts put back in the queue"),
    S_FIELD(nacks, false, "Attempts a zkit worker gave back"),
    S_FIELD(dead_letters, false,
            "Requests given up on (max attempts or ttl) and answered with an error"),
    S_FIELD(dead_letter_errors, false, "Dead letters the store failed to write (still logged)"),
    S_FIELD(overloaded, false, "Requests refused with an error because max_requests was reached"),
    S_FIELD(workers_ready, false, "READY commands received from workers"),
    S_FIELD(workers_expired, false, "Workers presumed dead: no heartbeat for heartbeat x liveness"),
    S_FIELD(workers_gone, false, "Workers that said DISCONNECT or could not be reached"),
    S_FIELD(unknown_worker, false, "Heartbeats and commands from workers not registered"),
    S_FIELD(workers, true, "Workers registered now"),
    S_FIELD(queued, true, "Requests waiting for a worker"),
    S_FIELD(in_flight, true, "Requests a worker holds now"),
};

/* The label values of the drop reasons, in zkit_balancer_bad_t order.      */
static const char *const s_reasons[ZKIT_BALANCER_BAD_REASONS_] = {"frames", "command", "field",
                                                                  "route", "envelope"};

void zkit__bal_stats_fn(zkit__stats_t *stats, void *arg)
{
    zkit__bal_state_t *self = arg;
    zkit_balancer_stats_t s;
    zkit__bal_snapshot(self, &s);
    /* The builder refuses only what this file would get wrong (a bad name,
       a limit), so failures are ignored: a missing metric shows in a test. */
    for (size_t i = 0; i < sizeof s_fields / sizeof s_fields[0]; i++) {
        const s_field_t *f = &s_fields[i];
        uint64_t v;
        memcpy(&v, (const char *) &s + f->offset, sizeof v);
        if (f->gauge)
            zkit__stats_gauge(stats, f->name, v > INT64_MAX ? INT64_MAX : (int64_t) v);
        else
            zkit__stats_counter(stats, f->name, v);
        zkit__stats_help(stats, f->name, f->help);
    }
    for (int side = 0; side < 2; side++) {
        const uint64_t *bad = side == 0 ? s.bad_frontend : s.bad_backend;
        for (int why = 0; why < ZKIT_BALANCER_BAD_REASONS_; why++) {
            zkit__stats_label_t labels[2] = {{"socket", side == 0 ? "frontend" : "backend"},
                                             {"reason", s_reasons[why]}};
            zkit__stats_counter_labels(stats, "bad_messages", labels, 2, bad[why]);
        }
    }
    zkit__stats_help(stats, "bad_messages",
                     "Malformed messages dropped, by socket (frontend: clients, backend: "
                     "workers) and reason");
    zkit__traffic_report(stats, "frontend", &self->fe_traffic);
    zkit__traffic_report(stats, "backend", &self->be_traffic);
    zkit__stats_gauge(stats, "paused", self->paused ? 1 : 0);
    zkit__stats_help(stats, "paused", "1 while dispatching is paused (control PAUSE), else 0");

    /* Peers: the registered workers, with the last time anything came from
       each (the dispatcher's monotonic clock, turned into wall time).       */
    uint64_t now_us = zkit_clock_usec();
    int64_t now_ms = zclock_mono();
    for (zkit__dlink_t *link = self->list.next; link != &self->list; link = link->next) {
        const zkit__bal_worker_t *w = ZKIT__DLIST_CONTAINER(link, zkit__bal_worker_t, link);
        zkit__dispatcher_peer_info_t info;
        uint64_t seen_us = now_us;
        if (zkit__dispatcher_peer_info(self->dispatcher, w->rid, w->size, &info) == 0 &&
            info.last_seen_ms <= now_ms) {
            uint64_t ago_us = (uint64_t) (now_ms - info.last_seen_ms) * 1000;
            seen_us = ago_us < now_us ? now_us - ago_us : 0;
        }
        zkit__stats_peer(stats, w->rid, w->size, seen_us);
    }
}

zkit__control_result_t zkit__bal_command_fn(const char *command, const char *args, char *reply,
                                            size_t reply_size, void *arg)
{
    zkit__bal_state_t *self = arg;
    char who[ZKIT__BAL_NAME_MAX + 16];
    snprintf(who, sizeof who, "balancer %s", self->name);
    /* Nothing else to do on a change: the next turn of the loop dispatches
       or not according to the flag.                                          */
    return zkit__control_pause_resume(command, args, reply, reply_size, &self->paused, who,
                                      "dispatching");
}
