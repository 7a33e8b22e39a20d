/*  subscriber.c: zkit_subscriber, a SUB socket with per-source gap detection
    and recovery (see zkit_subscriber.h and docs/pubsub-protocol.md).

    The actor thread owns the SUB socket and a DEALER per replay endpoint
    (recovery.c). Each message from either goes through zkit__sub_process:
    decode, look the source up in the gap detector, classify, deliver if it
    is new, then let recovery.c ask for whatever is missing.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "zkit_subscriber.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/actor.h"
#include "core/ops.h"
#include "core/socket.h"
#include "pubsub/subscriber_internal.h"

/* Live messages handled per wake-up before replies and timers get a turn. */
#define S_RECV_BATCH 1024

struct _zkit_subscriber_t {
    zactor_t *actor;
    zkit__ops_t *ops;
    zkit__sub_t *state; /* the actor's, set before it signals; read by the ops
                           callbacks on the actor's thread                  */
};

typedef struct {
    zkit_subscriber_t *self;
    const zkit_subscriber_opts_t *opts;
    int rc;
    int err;
} s_init_t;

static const char *const s_kind_names[] = {"live", "late", "recovered", "snapshot", "untracked"};
static const char *const s_reason_names[] = {"none",    "evicted",  "no-replay", "timeout",
                                             "restart", "overflow", "bad"};
static const char *const s_event_names[] = {"?", "gap", "recovered", "lost", "restart"};

const char *zkit_delivery_kind_name(zkit_delivery_kind_t kind)
{
    return (unsigned) kind < sizeof s_kind_names / sizeof *s_kind_names ? s_kind_names[kind] : "?";
}

const char *zkit_lost_reason_name(zkit_lost_reason_t reason)
{
    return (unsigned) reason < sizeof s_reason_names / sizeof *s_reason_names
               ? s_reason_names[reason]
               : "?";
}

const char *zkit_stream_event_name(zkit_stream_event_kind_t kind)
{
    return (unsigned) kind < sizeof s_event_names / sizeof *s_event_names ? s_event_names[kind]
                                                                          : "?";
}

/* ---- processing ------------------------------------------------------------------ */

void zkit__sub_bad(zkit__sub_t *a, zkit__pubsub_bad_t why, const char *where)
{
    a->stats.bad++;
    if ((unsigned) why < ZKIT__PUBSUB_BAD_REASONS_) {
        if (streq(where, "feed"))
            a->bad_feed[why]++;
        else
            a->bad_replay[why]++;
    }
    zkit__pubsub_log_bad(&a->bad_log, where, why);
}

static void s_on_gaps_event(zkit__gaps_stream_t *stream, const zkit_stream_event_t *event,
                            void *arg)
{
    zkit__sub_t *a = arg;
    switch (event->kind) {
    case ZKIT_STREAM_GAP:
        a->stats.gaps++;
        a->stats.missing += event->to - event->from + 1;
        break;
    case ZKIT_STREAM_LOST:
        if (event->to != UINT64_MAX)
            a->stats.lost += event->to - event->from + 1;
        break;
    case ZKIT_STREAM_RESTART:
        a->stats.restarts++;
        if (stream->user)
            zkit__sub_source_reset(a, stream->user);
        break;
    default: break;
    }
    if (a->opts.on_event)
        a->opts.on_event(event, a->opts.event_arg);
}

void zkit__sub_deliver(zkit__sub_t *a, zmq_msg_t *topic, zkit__gaps_stream_t *stream,
                       zkit_delivery_kind_t kind)
{
    size_t size = zmq_msg_size(topic);
    if (size + 1 > a->topic_capacity) {
        char *grown = realloc(a->topic_buf, size + 1);
        if (!grown) {
            zsys_error("ZKIT-SUB-NOMEM: cannot deliver a message with a %zu-byte topic", size);
            return;
        }
        a->topic_buf = grown;
        a->topic_capacity = size + 1;
    }
    memcpy(a->topic_buf, zmq_msg_data(topic), size);
    a->topic_buf[size] = '\0';
    zkit__sub_source_t *source = stream ? stream->user : NULL;
    zkit_delivery_t d = {.topic = a->topic_buf,
                         .topic_size = size,
                         .kind = kind,
                         .src = stream ? stream->src : NULL,
                         .epoch = stream ? stream->epoch : 0,
                         .seq = zkit_envelope_seq(a->env),
                         .resume_from = stream ? zkit__gaps_low_water(stream) : 0,
                         .replay = source && source->link ? source->link->endpoint : NULL};
    a->stats.delivered++;
    switch (kind) {
    case ZKIT_DELIVERY_LATE: a->stats.late++; break;
    case ZKIT_DELIVERY_RECOVERED: a->stats.recovered++; break;
    case ZKIT_DELIVERY_SNAPSHOT: a->stats.snapshot++; break;
    case ZKIT_DELIVERY_UNTRACKED: a->stats.untracked++; break;
    default: break;
    }
    if (a->opts.handler)
        a->opts.handler(a->env, &d, a->opts.handler_arg);
}

/*  Follows the replay endpoint a source announces in its hdr, unless a
    fetch is out on the current one (its answer must come from there).     */
static void s_learn_replay(zkit__sub_t *a, zkit__sub_source_t *source)
{
    zkit_value_t v;
    if (zkit_envelope_header(a->env, ZKIT__PUBSUB_HDR_REPLAY, &v) == -1 ||
        v.type != ZKIT_VALUE_STR || v.size == 0 || v.size > ZKIT_ENDPOINT_MAX)
        return;
    if (source->link && strlen(source->link->endpoint) == v.size &&
        !memcmp(source->link->endpoint, v.data, v.size))
        return;
    if (source->in_flight)
        return;
    char endpoint[ZKIT_ENDPOINT_MAX + 1];
    memcpy(endpoint, v.data, v.size);
    endpoint[v.size] = '\0';
    if (memchr(endpoint, 0, v.size))
        return;
    zkit__sub_link_t *link = zkit__sub_link(a, endpoint, true);
    if (link) {
        source->link = link;
        source->announced = true;
    }
}

/*  True when topic matches a prefix this subscriber subscribes to now.     */
static bool s_subscribed(zkit__sub_t *a, zmq_msg_t *topic)
{
    const void *data = zmq_msg_data(topic);
    size_t size = zmq_msg_size(topic);
    for (const char *p = zlistx_first(a->subscriptions); p; p = zlistx_next(a->subscriptions))
        if (zkit__pubsub_prefix_match(p, strlen(p), data, size))
            return true;
    return false;
}

int zkit__sub_process(zkit__sub_t *a, zmq_msg_t *topic, zmq_msg_t *envelope,
                      zkit__sub_origin_t origin)
{
    if (zkit_envelope_decode(a->env, envelope) == -1) {
        zkit__sub_bad(a, ZKIT__PUBSUB_BAD_ENVELOPE, origin == ZKIT__SUB_LIVE ? "feed" : "replay");
        zmq_msg_close(topic);
        zmq_msg_close(envelope);
        return -1;
    }
    zmq_msg_close(envelope);
    const char *src = zkit_envelope_src(a->env);
    uint64_t seq = zkit_envelope_seq(a->env);
    zkit__gaps_stream_t *stream = src && *src && seq ? zkit__gaps_stream(a->gaps, src, true) : NULL;
    zkit__sub_source_t *source = stream ? zkit__sub_source(stream) : NULL;
    if (!source) {
        if (origin == ZKIT__SUB_LIVE)
            zkit__sub_deliver(a, topic, NULL, ZKIT_DELIVERY_UNTRACKED);
        else
            zkit__sub_bad(a, ZKIT__PUBSUB_BAD_ENVELOPE, "replay");
        zmq_msg_close(topic);
        return 0;
    }
    zkit_value_t v;
    uint64_t epoch = 0;
    if (zkit_envelope_header(a->env, ZKIT__PUBSUB_HDR_EPOCH, &v) == 0 && v.type == ZKIT_VALUE_INT &&
        v.i > 0)
        epoch = (uint64_t) v.i;
    if (a->opts.learn_replay)
        s_learn_replay(a, source);
    if (!source->link)
        source->link = a->default_link;
    source->heard_ms = zclock_mono();
    bool wanted = origin != ZKIT__SUB_REPLAY || s_subscribed(a, topic);

    zkit__gaps_verdict_t verdict =
        zkit__gaps_observe(a->gaps, stream, epoch, seq, origin != ZKIT__SUB_LIVE);
    zkit_delivery_kind_t kind = ZKIT_DELIVERY_LIVE;
    switch (verdict) {
    case ZKIT__GAPS_NEW:
    case ZKIT__GAPS_GAP:
        kind = origin == ZKIT__SUB_LIVE ? ZKIT_DELIVERY_LIVE : ZKIT_DELIVERY_RECOVERED;
        break;
    case ZKIT__GAPS_FILL:
        kind = origin == ZKIT__SUB_LIVE ? ZKIT_DELIVERY_LATE : ZKIT_DELIVERY_RECOVERED;
        break;
    case ZKIT__GAPS_DUPLICATE: a->stats.duplicates++; break;
    case ZKIT__GAPS_STALE: a->stats.stale++; break;
    }
    bool fresh = verdict != ZKIT__GAPS_DUPLICATE && verdict != ZKIT__GAPS_STALE;
    if (fresh && origin == ZKIT__SUB_REPLAY && source->in_flight)
        source->delivered++;
    if (fresh && !wanted)
        /* It filled a gap the topic filter made: not a loss, not ours. */
        a->stats.filtered++;
    else if (fresh)
        zkit__sub_deliver(a, topic, stream, kind);
    zmq_msg_close(topic);
    zkit__sub_schedule(a, stream);
    return 0;
}

/*  Receives one [topic][envelope] from the SUB. Returns 1 for a message in
 *topic and *envelope, 0 for a bad one (consumed), -1 when nothing waits. */
static int s_recv_feed(zkit__sub_t *a, zmq_msg_t *topic, zmq_msg_t *envelope)
{
    zkit__pubsub_frames_t frames;
    if (zkit__pubsub_recv(a->sub, &frames, ZMQ_DONTWAIT) == -1)
        return -1;
    zkit__traffic_in(&a->feed_traffic, frames.bytes);
    if (frames.count != 2 || frames.dropped) {
        zkit__pubsub_frames_close(&frames);
        zkit__sub_bad(a, ZKIT__PUBSUB_BAD_FRAMES, "feed");
        return 0;
    }
    *topic = frames.part[0];
    *envelope = frames.part[1];
    return 1;
}

static void s_handle_feed(zkit__sub_t *a)
{
    for (int i = 0; i < S_RECV_BATCH; i++) {
        zmq_msg_t topic, envelope;
        int rc = s_recv_feed(a, &topic, &envelope);
        if (rc == -1)
            return;
        if (rc == 0)
            continue;
        a->stats.received++;
        if (a->buffering) {
            zkit__sub_held_t *held = malloc(sizeof *held);
            if (held) {
                held->topic = topic;
                held->envelope = envelope;
                zlistx_add_end(a->held, held);
            }
            else {
                zmq_msg_close(&topic);
                zmq_msg_close(&envelope);
            }
            if (zlistx_size(a->held) >= ZKIT__SUB_BUFFER_MAX) {
                zsys_warning("ZKIT-SUB-SNAPSHOT: %d live messages held waiting for a snapshot; "
                             "delivering them without it",
                             ZKIT__SUB_BUFFER_MAX);
                a->snapshot_deadline_ms = 0;
                zkit__sub_tick(a);
            }
            continue;
        }
        zkit__sub_process(a, &topic, &envelope, ZKIT__SUB_LIVE);
    }
}

/* ---- commands ---------------------------------------------------------------------- */

typedef struct {
    zkit_stream_position_t *out;
    size_t count;
    uint64_t pending;
    bool unsettled;
} s_walk_t;

static void s_walk_position(zkit__gaps_stream_t *stream, void *arg)
{
    s_walk_t *w = arg;
    w->pending += stream->missing_now;
    if (stream->nmissing)
        w->unsettled = true;
    zkit__sub_source_t *source = stream->user;
    if (source && source->in_flight && !source->probing)
        w->unsettled = true;
    if (!w->out || stream->next == 0)
        return;
    zkit_stream_position_t *p = &w->out[w->count++];
    memset(p, 0, sizeof *p);
    snprintf(p->src, sizeof p->src, "%s", stream->src);
    p->epoch = stream->epoch;
    p->next = zkit__gaps_low_water(stream);
    if (source && source->link)
        snprintf(p->replay, sizeof p->replay, "%s", source->link->endpoint);
}

static void s_handle_pipe(zkit__sub_t *a)
{
    zmsg_t *msg = zmsg_recv(a->pipe);
    if (!msg) {
        a->terminated = true;
        return;
    }
    char *command = zmsg_popstr(msg);
    if (!command)
        ;
    else if (streq(command, "$TERM"))
        a->terminated = true;
    else if (streq(command, "STATS") || streq(command, "SETTLED")) {
        s_walk_t w = {0};
        zkit__gaps_foreach(a->gaps, s_walk_position, &w);
        if (streq(command, "STATS")) {
            zkit_subscriber_stats_t st = a->stats;
            st.pending = w.pending;
            st.sources = zkit__gaps_count(a->gaps);
            st.links = a->nlinks;
            st.paused = a->paused;
            zkit__actor_reply(a->pipe, &st, sizeof st);
        }
        else
            zstr_send(a->pipe, !w.unsettled && !a->buffering ? "1" : "0");
    }
    else if (streq(command, "POSITIONS")) {
        size_t n = zkit__gaps_count(a->gaps);
        s_walk_t w = {.out = calloc(n ? n : 1, sizeof(zkit_stream_position_t))};
        if (w.out)
            zkit__gaps_foreach(a->gaps, s_walk_position, &w);
        zframe_t *frame = zframe_new(w.out, w.count * sizeof(zkit_stream_position_t));
        zframe_send(&frame, a->pipe, 0);
        free(w.out);
    }
    else if (streq(command, "SUBSCRIBE") || streq(command, "UNSUBSCRIBE")) {
        char *prefix = zmsg_popstr(msg);
        if (!prefix)
            prefix = strdup("");
        if (streq(command, "SUBSCRIBE")) {
            zsock_set_subscribe(a->sub, prefix);
            zlistx_add_end(a->subscriptions, prefix);
        }
        else {
            zsock_set_unsubscribe(a->sub, prefix);
            /* libzmq counts subscriptions: one unsubscribe undoes one. */
            void *handle = zlistx_find(a->subscriptions, prefix);
            if (handle)
                zlistx_delete(a->subscriptions, handle);
        }
        free(prefix);
        zstr_send(a->pipe, "OK");
    }
    else
        zsys_error("ZKIT-SUB-COMMAND: unknown actor command '%s'", command);
    free(command);
    zmsg_destroy(&msg);
}

/* ---- the control endpoint --------------------------------------------------------- */

typedef struct {
    zkit__stats_t *stats;
    int64_t now_mono;
    uint64_t now_us;
} s_peer_walk_t;

static void s_walk_peer(zkit__gaps_stream_t *stream, void *arg)
{
    s_peer_walk_t *w = arg;
    zkit__sub_source_t *source = stream->user;
    uint64_t ago_us = source && source->heard_ms && w->now_mono > source->heard_ms
                          ? (uint64_t) (w->now_mono - source->heard_ms) * 1000
                          : 0;
    zkit__stats_peer(w->stats, stream->src, strlen(stream->src),
                     w->now_us > ago_us ? w->now_us - ago_us : 0);
}

/*  The control endpoint's STATS: every field of zkit_subscriber_stats_t,
    and each source as a peer (its src, when it was last heard from).      */
static void s_ops_stats(zkit__stats_t *stats, void *arg)
{
    zkit__sub_t *a = ((zkit_subscriber_t *) arg)->state;
    s_walk_t w = {0};
    zkit__gaps_foreach(a->gaps, s_walk_position, &w);
    const zkit_subscriber_stats_t *st = &a->stats;
    zkit__traffic_report(stats, "feed", &a->feed_traffic);
    zkit__traffic_report(stats, "replay", &a->replay_traffic);
    zkit__stats_counter(stats, "received", st->received);
    zkit__stats_help(stats, "received",
                     "Data messages read from the SUB socket ([topic][envelope]; messages "
                     "of another frame count are in messages{socket=\"feed\"} only)");
    uint64_t live = st->delivered - st->late - st->recovered - st->snapshot - st->untracked;
    const uint64_t kinds[] = {live, st->late, st->recovered, st->snapshot, st->untracked};
    for (int i = 0; i < 5; i++)
        zkit__stats_counter1(stats, "delivered", "kind", s_kind_names[i], kinds[i]);
    zkit__stats_help(stats, "delivered", "Messages handed to the handler, by how they came");
    zkit__stats_counter1(stats, "not_delivered", "reason", "duplicate", st->duplicates);
    zkit__stats_counter1(stats, "not_delivered", "reason", "stale", st->stale);
    zkit__stats_counter1(stats, "not_delivered", "reason", "filtered", st->filtered);
    zkit__stats_help(stats, "not_delivered",
                     "Messages not delivered: seen before, of an older epoch, or fetched for a "
                     "topic not subscribed to");
    const zkit__pubsub_metric_t plain[] = {
        {"gaps", false, st->gaps, "GAP events"},
        {"missing", false, st->missing, "Seqs that went missing"},
        {"lost", false, st->lost, "Seqs reported LOST (open-ended ranges not counted)"},
        {"pending", true, w.pending, "Seqs missing now, recovery not yet settled"},
        {"restarts", false, st->restarts, "RESTART events"},
        {"fetches", false, st->fetches, "FETCH requests sent"},
        {"fetch_timeouts", false, st->fetch_timeouts, "FETCH requests not answered in time"},
        {"sources", true, zkit__gaps_count(a->gaps), "Sources tracked now"},
        {"replay_links", true, a->nlinks, "Replay endpoints connected now"},
        {"paused", true, a->paused, "1 while PAUSEd: the feed is not read"},
    };
    zkit__pubsub_metrics(stats, plain, sizeof plain / sizeof plain[0]);
    zkit__stats_label_t labels[2];
    for (int i = 0; i < ZKIT__PUBSUB_BAD_REASONS_; i++) {
        const char *reason = zkit__pubsub_bad_reason((zkit__pubsub_bad_t) i);
        labels[0] = (zkit__stats_label_t){"socket", "feed"};
        labels[1] = (zkit__stats_label_t){"reason", reason};
        zkit__stats_counter_labels(stats, "bad_input", labels, 2, a->bad_feed[i]);
        labels[0].value = "replay";
        zkit__stats_counter_labels(stats, "bad_input", labels, 2, a->bad_replay[i]);
    }
    zkit__stats_help(stats, "bad_input",
                     "Messages dropped as malformed: feed (frame count, envelope), replay "
                     "answers that do not parse");
    s_peer_walk_t pw = {.stats = stats, .now_mono = zclock_mono(), .now_us = zkit_clock_usec()};
    zkit__gaps_foreach(a->gaps, s_walk_peer, &pw);
}

/*  PAUSE stops reading the feed (it waits in the SUB queue, then upstream
    drops or blocks); RESUME reads it again.                               */
static zkit__control_result_t s_ops_command(const char *command, const char *args, char *reply,
                                            size_t reply_size, void *arg)
{
    zkit__sub_t *a = ((zkit_subscriber_t *) arg)->state;
    return zkit__control_pause_resume(command, args, reply, reply_size, &a->paused, "subscriber",
                                      "reading the feed");
}

/* ---- the actor ------------------------------------------------------------------- */

static int s_setup(zkit__sub_t *a)
{
    const zkit_subscriber_opts_t *o = &a->opts;
    zkit__socket_opts_t so = ZKIT__SOCKET_OPTS_DEFAULT;
    so.linger_ms = 0; /* a SUB sends only subscriptions */
    so.rcvhwm = o->rcvhwm;
    if (!(a->sub = zkit__socket_new(ZMQ_SUB, &so)))
        return -1;
    a->sub_handle = zsock_resolve(a->sub);
    if (!(a->subscriptions = zlistx_new()))
        return -1;
    zlistx_set_duplicator(a->subscriptions, (zlistx_duplicator_fn *) strdup);
    zlistx_set_destructor(a->subscriptions, (zlistx_destructor_fn *) zstr_free);
    zlistx_set_comparator(a->subscriptions, (zlistx_comparator_fn *) strcmp);
    for (size_t i = 0; i < o->topic_count; i++) {
        snprintf(a->prefixes[i], sizeof a->prefixes[i], "%s", o->topics[i]);
        zsock_set_subscribe(a->sub, o->topics[i]);
        zlistx_add_end(a->subscriptions, (void *) o->topics[i]);
    }
    a->nprefixes = o->topic_count;
    if ((o->bind && zkit__ops_attach(a->ops, a->sub, o->bind, true) == -1) ||
        (o->connect && zkit__ops_attach(a->ops, a->sub, o->connect, false) == -1))
        return -1;
    if (!(a->gaps = zkit__gaps_new(o->max_sources, o->max_gaps, s_on_gaps_event, a, free)) ||
        !(a->env = zkit_envelope_new()) || !(a->held = zlistx_new()))
        return -1;
    zlistx_set_destructor(a->held, zkit__sub_held_free);
    return zkit__sub_start_recovery(a);
}

static void s_teardown(zkit__sub_t *a)
{
    zkit__gaps_destroy(&a->gaps);
    zkit__sub_links_destroy(a);
    zlistx_destroy(&a->held);
    zlistx_destroy(&a->subscriptions);
    zkit_envelope_destroy(&a->env);
    zkit__socket_close(&a->sub, 0);
    free(a->topic_buf);
}

static void s_actor(zsock_t *pipe, void *args)
{
    s_init_t *init = args;
    zkit__sub_t a;
    memset(&a, 0, sizeof a);
    a.pipe = pipe;
    a.opts = *init->opts;
    a.ops = init->self->ops;
    init->self->state = &a;
    init->rc = s_setup(&a);
    init->err = init->rc ? (errno ? errno : EINVAL) : 0;
    /* The caller's arrays are only valid while the constructor waits. */
    a.opts.topics = NULL;
    a.opts.resume = NULL;
    a.opts.resume_count = 0;
    a.opts.connect = a.opts.bind = a.opts.replay = NULL;
    int failed = init->rc;
    zsock_signal(pipe, 0);
    init = NULL;
    if (failed) {
        s_teardown(&a);
        zkit__actor_wait_term(pipe);
        return;
    }

    zmq_pollitem_t items[3 + ZKIT__SUB_LINKS_MAX];
    zkit__sub_link_t *polled[ZKIT__SUB_LINKS_MAX];
    int64_t next_tick = zclock_mono() + ZKIT__SUB_TICK_MS;
    while (!a.terminated) {
        int n = 0;
        items[n++] = (zmq_pollitem_t){zsock_resolve(a.pipe), 0, ZMQ_POLLIN, 0};
        items[n++] = (zmq_pollitem_t){a.sub_handle, 0, ZMQ_POLLIN, 0};
        size_t nlinks = a.nlinks;
        for (size_t i = 0; i < nlinks; i++) {
            polled[i] = a.links[i];
            items[n++] = (zmq_pollitem_t){zsock_resolve(a.links[i]->dealer), 0, ZMQ_POLLIN, 0};
        }
        int control_index = -1;
        if (zkit__ops_pollitem(a.ops, &items[n]) == 1)
            control_index = n++;
        /* Paused: the feed waits in the SUB queue (then upstream drops). */
        items[1].events = a.paused ? 0 : ZMQ_POLLIN;
        long timeout = -1;
        if (a.in_flight || a.buffering || (a.opts.probe_ms && a.opts.recover)) {
            timeout = (long) (next_tick - zclock_mono());
            if (timeout < 0)
                timeout = 0;
        }
        if (zmq_poll(items, n, timeout) == -1) {
            if (errno == ETERM)
                break;
            continue;
        }
        if (items[0].revents & ZMQ_POLLIN)
            s_handle_pipe(&a);
        for (size_t i = 0; i < nlinks; i++)
            if (items[2 + i].revents & ZMQ_POLLIN)
                zkit__sub_handle_link(&a, polled[i]);
        if (control_index >= 0 && (items[control_index].revents & ZMQ_POLLIN) &&
            zkit__ops_serve(a.ops) == -1)
            break;
        if (!a.paused && (items[1].revents & ZMQ_POLLIN))
            s_handle_feed(&a);
        if (zclock_mono() >= next_tick) {
            zkit__sub_tick(&a);
            next_tick = zclock_mono() + ZKIT__SUB_TICK_MS;
        }
    }
    s_teardown(&a);
}

/* ---- the caller's side -------------------------------------------------------------- */

static int s_check_opts(const zkit_subscriber_opts_t *o)
{
    if (!o || (!o->connect && !o->bind) || o->topic_count > ZKIT_SUBSCRIBE_MAX ||
        (o->topic_count && !o->topics) || o->fetch_batch == 0 || o->fetch_batch > 10000 ||
        o->fetch_timeout_ms == 0 || o->max_sources == 0 || o->max_gaps == 0 ||
        (o->resume_count && !o->resume))
        return -1;
    for (size_t i = 0; i < o->topic_count; i++)
        if (!o->topics[i] || strlen(o->topics[i]) > ZKIT_TOPIC_MAX)
            return -1;
    return 0;
}

zkit_subscriber_t *zkit_subscriber_new(const zkit_subscriber_opts_t *opts)
{
    if (s_check_opts(opts) == -1) {
        zsys_error("ZKIT-SUB-OPTS: a subscriber needs an endpoint, at most %d prefixes of at "
                   "most %d bytes, and nonzero fetch and table limits",
                   ZKIT_SUBSCRIBE_MAX, ZKIT_TOPIC_MAX);
        errno = EINVAL;
        return NULL;
    }
    zkit_subscriber_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    s_init_t init = {.self = self, .opts = opts};
    zkit__ops_config_t config = {.opts = &opts->ops,
                                 .component = "subscriber",
                                 .stats_fn = s_ops_stats,
                                 .command_fn = s_ops_command,
                                 .arg = self};
    if (zkit__pubsub_start(&config, &self->ops, &self->actor, s_actor, &init, &init.rc,
                           &init.err) == 0)
        return self;
    int err = errno;
    free(self);
    errno = err;
    return NULL;
}

void zkit_subscriber_destroy(zkit_subscriber_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    /* The actor closes the sockets the ops secured before it ends. */
    zactor_destroy(&(*self_p)->actor);
    zkit__ops_destroy(&(*self_p)->ops);
    free(*self_p);
    *self_p = NULL;
}

/*  Sends command (and arg, when not NULL) and returns the reply frame.     */
static zframe_t *s_request(zkit_subscriber_t *self, const char *command, const char *arg)
{
    if (!self) {
        errno = EINVAL;
        return NULL;
    }
    int rc = arg ? zstr_sendx(self->actor, command, arg, NULL) : zstr_send(self->actor, command);
    zframe_t *frame = rc == 0 ? zframe_recv(self->actor) : NULL;
    if (!frame)
        errno = ECANCELED;
    return frame;
}

static int s_subscription(zkit_subscriber_t *self, const char *command, const char *prefix)
{
    if (!prefix || strlen(prefix) > ZKIT_TOPIC_MAX) {
        errno = EINVAL;
        return -1;
    }
    zframe_t *frame = s_request(self, command, prefix);
    if (!frame)
        return -1;
    zframe_destroy(&frame);
    return 0;
}

int zkit_subscriber_subscribe(zkit_subscriber_t *self, const char *prefix)
{
    return s_subscription(self, "SUBSCRIBE", prefix);
}

int zkit_subscriber_unsubscribe(zkit_subscriber_t *self, const char *prefix)
{
    return s_subscription(self, "UNSUBSCRIBE", prefix);
}

const char *zkit_subscriber_control(zkit_subscriber_t *self)
{
    return self ? zkit__ops_control_endpoint(self->ops) : NULL;
}

int zkit_subscriber_stats(zkit_subscriber_t *self, zkit_subscriber_stats_t *stats)
{
    if (!self || !stats) {
        errno = EINVAL;
        return -1;
    }
    return zkit__actor_query(self->actor, "STATS", stats, sizeof *stats);
}

ssize_t zkit_subscriber_positions(zkit_subscriber_t *self, zkit_stream_position_t *out, size_t max)
{
    if (!out && max) {
        errno = EINVAL;
        return -1;
    }
    zframe_t *frame = s_request(self, "POSITIONS", NULL);
    if (!frame)
        return -1;
    size_t count = zframe_size(frame) / sizeof(zkit_stream_position_t);
    if (max)
        memcpy(out, zframe_data(frame),
               (count < max ? count : max) * sizeof(zkit_stream_position_t));
    zframe_destroy(&frame);
    return (ssize_t) count;
}

bool zkit_subscriber_settled(zkit_subscriber_t *self)
{
    zframe_t *frame = s_request(self, "SETTLED", NULL);
    bool settled = frame && zframe_size(frame) == 1 && *(char *) zframe_data(frame) == '1';
    zframe_destroy(&frame);
    return settled;
}
