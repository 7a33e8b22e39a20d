/*  recovery.c: how a zkit_subscriber gets back what it missed: FETCH over a
    DEALER to the publisher's replay endpoint, catch-up after a resume, and
    the last-value snapshot at start (docs/pubsub-protocol.md, sections 4
    and 5).

    One FETCH per source is out at a time, for the lowest missing range (at
    most fetch_batch seqs). Its answer is the REPLAY messages, in seq order,
    then END saying what the publisher no longer had (lost_to) and what it
    sent (served_to). Replayed messages go through the gap detector like live
    ones, so a message that arrives both ways is delivered once.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/socket.h"
#include "pubsub/subscriber_internal.h"

/* ---- links ------------------------------------------------------------------ */

zkit__sub_link_t *zkit__sub_link(zkit__sub_t *a, const char *endpoint, bool create)
{
    for (size_t i = 0; i < a->nlinks; i++)
        if (streq(a->links[i]->endpoint, endpoint))
            return a->links[i];
    if (!create || !*endpoint || strlen(endpoint) > ZKIT_ENDPOINT_MAX)
        return NULL;
    if (a->nlinks == ZKIT__SUB_LINKS_MAX) {
        if (!a->links_full_logged)
            zsys_warning("ZKIT-SUB-LINKS: %d replay endpoints already; not connecting %s",
                         ZKIT__SUB_LINKS_MAX, endpoint);
        a->links_full_logged = true;
        return NULL;
    }
    zkit__sub_link_t *link = calloc(1, sizeof *link);
    if (!link)
        return NULL;
    snprintf(link->endpoint, sizeof link->endpoint, "%s", endpoint);
    zkit__socket_opts_t so = ZKIT__SOCKET_OPTS_DEFAULT;
    so.linger_ms = 0; /* requests are retried, never worth waiting for */
    so.sndhwm = 100;
    /* The publisher bounds each answer (fetch_batch, its cache size) and we
       ask one at a time per source; this only caps a hostile publisher. */
    so.rcvhwm = 100000;
    link->dealer = zkit__socket_new(ZMQ_DEALER, &so);
    link->values = zlistx_new();
    if (!link->dealer || !link->values || zkit__ops_attach(a->ops, link->dealer, endpoint, false)) {
        zkit__socket_close(&link->dealer, 0);
        zlistx_destroy(&link->values);
        free(link);
        return NULL;
    }
    zlistx_set_destructor(link->values, zkit__sub_held_free);
    a->links[a->nlinks++] = link;
    return link;
}

void zkit__sub_links_destroy(zkit__sub_t *a)
{
    for (size_t i = 0; i < a->nlinks; i++) {
        zkit__socket_close(&a->links[i]->dealer, 0);
        zlistx_destroy(&a->links[i]->values);
        free(a->links[i]);
    }
    a->nlinks = 0;
}

static void s_held_destroy(zkit__sub_held_t *held)
{
    zmq_msg_close(&held->topic);
    zmq_msg_close(&held->envelope);
    free(held);
}

void zkit__sub_held_free(void **item)
{
    if (*item)
        s_held_destroy((zkit__sub_held_t *) *item);
    *item = NULL;
}

zkit__sub_source_t *zkit__sub_source(zkit__gaps_stream_t *stream)
{
    if (!stream->user)
        stream->user = calloc(1, sizeof(zkit__sub_source_t));
    return stream->user;
}

/* ---- fetching -------------------------------------------------------------- */

static void s_fetch_done(zkit__sub_t *a, zkit__sub_source_t *source)
{
    if (source->in_flight && a->in_flight)
        a->in_flight--;
    source->in_flight = false;
    source->probing = false;
    source->sent = false;
}

void zkit__sub_source_reset(zkit__sub_t *a, zkit__sub_source_t *source)
{
    s_fetch_done(a, source);
}

/*  Queues the request described in source (a FETCH or a PROBE) on its link.
    Not being able to queue it (no connection yet) is not an attempt: it is
    tried again shortly.                                                     */
static void s_send_request(zkit__sub_t *a, zkit__gaps_stream_t *stream, zkit__sub_source_t *source)
{
    zkit__pubsub_msg_t req;
    memset(&req, 0, sizeof req);
    req.cmd = source->probing ? ZKIT__PUBSUB_PROBE : ZKIT__PUBSUB_FETCH;
    snprintf(req.src, sizeof req.src, "%s", stream->src);
    req.epoch = source->epoch;
    req.from = source->from;
    req.to = source->to;
    int64_t now = zclock_mono();
    if (zkit__pubsub_send_counted(source->link->dealer, NULL, 0, &req, &a->replay_traffic) == 0) {
        if (!source->probing)
            a->stats.fetches++;
        source->sent = true;
        source->retry_at_ms = now + a->opts.fetch_timeout_ms;
    }
    else
        source->retry_at_ms = now + ZKIT__SUB_RETRY_UNSENT_MS;
}

static void s_start(zkit__sub_t *a, zkit__gaps_stream_t *stream, zkit__sub_source_t *source,
                    bool probe, uint64_t from, uint64_t to)
{
    source->in_flight = true;
    source->probing = probe;
    source->sent = false;
    source->epoch = stream->epoch;
    source->from = from;
    source->to = to;
    source->delivered = 0;
    source->first_try_ms = zclock_mono();
    a->in_flight++;
    s_send_request(a, stream, source);
}

void zkit__sub_schedule(zkit__sub_t *a, zkit__gaps_stream_t *stream)
{
    zkit__sub_source_t *source = stream->user;
    if (!source || source->in_flight)
        return;
    if (!a->opts.recover || !source->link) {
        /* Nothing can fetch them: say so now rather than hold them. */
        while (stream->nmissing)
            zkit__gaps_declare_lost(a->gaps, stream, stream->missing[0].from, stream->missing[0].to,
                                    ZKIT_LOST_NO_REPLAY);
        source->probe_wanted = false;
        return;
    }
    if (stream->nmissing) {
        zkit__range_t r = stream->missing[0];
        uint64_t batch = a->opts.fetch_batch;
        uint64_t to = r.to - r.from >= batch ? r.from + batch - 1 : r.to;
        s_start(a, stream, source, false, r.from, to);
    }
    else if (source->probe_wanted && stream->next) {
        source->probe_wanted = false;
        s_start(a, stream, source, true, 0, 0);
    }
}

static void s_give_up(zkit__sub_t *a, zkit__gaps_stream_t *stream, zkit__sub_source_t *source)
{
    a->stats.fetch_timeouts++;
    uint64_t from = source->from, to = source->to;
    bool probe = source->probing;
    /* An unanswered probe proves nothing is missing: say so once per
       silence, and report no loss for it. */
    if (!probe || !source->silent_logged)
        zsys_warning("ZKIT-SUB-FETCH: %s did not answer for source '%s'", source->link->endpoint,
                     stream->src);
    if (probe)
        source->silent_logged = true;
    s_fetch_done(a, source);
    if (!probe)
        zkit__gaps_declare_lost(a->gaps, stream, from, to, ZKIT_LOST_TIMEOUT);
    zkit__sub_schedule(a, stream);
}

/*  The answer to a request is for the one out, from where it was sent.    */
static zkit__gaps_stream_t *s_answered(zkit__sub_t *a, zkit__sub_link_t *link, const char *src,
                                       bool probe)
{
    zkit__gaps_stream_t *stream = zkit__gaps_stream(a->gaps, src, false);
    zkit__sub_source_t *source = stream ? stream->user : NULL;
    if (!source || !source->in_flight || source->probing != probe || source->link != link)
        return NULL;
    return stream;
}

/*  The publisher restarted: the epoch asked about is gone for good.        */
static void s_epoch_gone(zkit__sub_t *a, zkit__gaps_stream_t *stream, uint64_t new_epoch)
{
    zkit__sub_source_t *source = stream->user;
    if (new_epoch <= stream->epoch)
        return;
    /* What it sent after the newest seq seen cannot be known or fetched. */
    zkit__gaps_declare_lost(a->gaps, stream, stream->next, UINT64_MAX, ZKIT_LOST_RESTART);
    zkit__gaps_restart(a->gaps, stream, new_epoch);
    source->probe_wanted = true; /* how far has the new run got? */
}

static void s_handle_status(zkit__sub_t *a, zkit__sub_link_t *link, const zkit__pubsub_msg_t *st)
{
    zkit__gaps_stream_t *stream = s_answered(a, link, st->src, true);
    if (!stream)
        return;
    zkit__sub_source_t *source = stream->user;
    s_fetch_done(a, source);
    source->silent_logged = false;
    /* The source just said where it stands: its silence starts now, not at
       its last message (a resumed stream has none yet, and would be probed
       again at the next tick). */
    source->heard_ms = zclock_mono();
    if (st->epoch != stream->epoch)
        s_epoch_gone(a, stream, st->epoch);
    if (st->epoch == stream->epoch)
        zkit__gaps_extend(a->gaps, stream, st->last);
    zkit__sub_schedule(a, stream);
}

static void s_handle_end(zkit__sub_t *a, zkit__sub_link_t *link, const zkit__pubsub_msg_t *end)
{
    zkit__gaps_stream_t *stream = s_answered(a, link, end->src, false);
    zkit__sub_source_t *source = stream ? stream->user : NULL;
    if (!source || end->from != source->from || end->to != source->to) {
        /* The answer to a request given up on (timed out, or a restart
           since): what it replayed was handled, nothing else to do. */
        return;
    }
    uint64_t delivered = source->delivered;
    s_fetch_done(a, source);
    source->silent_logged = false;
    if (end->epoch != source->epoch) {
        zkit__gaps_declare_lost(a->gaps, stream, end->from, end->to, ZKIT_LOST_RESTART);
        s_epoch_gone(a, stream, end->epoch);
        zkit__sub_schedule(a, stream);
        return;
    }
    if (end->lost_to)
        zkit__gaps_declare_lost(a->gaps, stream, end->from, end->lost_to, ZKIT_LOST_EVICTED);
    uint64_t start = end->lost_to ? end->lost_to + 1 : end->from;
    if (end->served_to) {
        zkit_stream_event_t ev = {.kind = ZKIT_STREAM_RECOVERED,
                                  .src = stream->src,
                                  .epoch = stream->epoch,
                                  .from = start,
                                  .to = end->served_to,
                                  .count = delivered};
        if (a->opts.on_event)
            a->opts.on_event(&ev, a->opts.event_arg);
    }
    /* The publisher had the whole range (a later seq was seen), so what it
       neither reported lost nor sent is not coming: replies that did not
       decode, or a publisher that lost track. */
    uint64_t settled = end->served_to ? end->served_to : end->to;
    if (settled >= start)
        zkit__gaps_declare_lost(a->gaps, stream, start, settled, ZKIT_LOST_BAD);
    zkit__sub_schedule(a, stream);
}

/* ---- snapshots ----------------------------------------------------------------- */

static void s_send_snapshot(zkit__sub_t *a, zkit__sub_link_t *link)
{
    zkit__pubsub_msg_t req;
    memset(&req, 0, sizeof req);
    req.cmd = ZKIT__PUBSUB_SNAPSHOT;
    for (size_t i = 0; i < a->nprefixes; i++) {
        req.prefix_size[i] = strlen(a->prefixes[i]);
        memcpy(req.prefix[i], a->prefixes[i], req.prefix_size[i] + 1);
    }
    req.prefix_count = a->nprefixes;
    if (zkit__pubsub_send_counted(link->dealer, NULL, 0, &req, &a->replay_traffic) == 0)
        link->snapshot_sent = true;
}

static bool s_snapshots_pending(zkit__sub_t *a)
{
    for (size_t i = 0; i < a->nlinks; i++)
        if (a->links[i]->snapshot_pending)
            return true;
    return false;
}

void zkit__sub_flush_held(zkit__sub_t *a)
{
    a->buffering = false;
    zkit__sub_held_t *held;
    while ((held = zlistx_detach(a->held, NULL))) {
        zkit__sub_process(a, &held->topic, &held->envelope, ZKIT__SUB_LIVE);
        free(held);
    }
}

static void s_handle_snapend(zkit__sub_t *a, zkit__sub_link_t *link, const zkit__pubsub_msg_t *end)
{
    if (!link->snapshot_pending) {
        zlistx_purge(link->values);
        return;
    }
    link->snapshot_pending = false;
    zkit__gaps_stream_t *stream = zkit__gaps_stream(a->gaps, end->src, true);
    zkit__sub_source_t *source = stream ? zkit__sub_source(stream) : NULL;
    /* A snapshot only starts a stream this subscriber has no position in;
       a resumed one catches up message by message instead. */
    bool use = source && (stream->next == 0 || end->epoch > stream->epoch);
    zkit__sub_held_t *held;
    while ((held = zlistx_detach(link->values, NULL))) {
        if (use && zkit_envelope_decode(a->env, &held->envelope) == 0 &&
            zkit_envelope_src(a->env) && streq(zkit_envelope_src(a->env), end->src))
            zkit__sub_deliver(a, &held->topic, stream, ZKIT_DELIVERY_SNAPSHOT);
        else if (use)
            zkit__sub_bad(a, ZKIT__PUBSUB_BAD_ENVELOPE, "snapshot value");
        else
            a->stats.duplicates++;
        s_held_destroy(held);
    }
    if (use) {
        /* The values are the state as of seq `last`: the stream continues
           after it, and held live messages up to it are superseded. */
        zkit__gaps_set_position(stream, end->epoch, end->last + 1);
        if (!source->link)
            source->link = link;
        /* SNAPEND is news from the source. Left at 0, the stream would look
           silent for ever and be probed at the next tick; a STATUS overtaking
           the feed (the replay channel skips the forwarders) would then turn
           live messages still on their way into a gap, fetched and delivered
           as RECOVERED, the live copies dropped as duplicates. */
        source->heard_ms = zclock_mono();
    }
    if (a->buffering && !s_snapshots_pending(a))
        zkit__sub_flush_held(a);
}

/* ---- the link's socket ----------------------------------------------------------- */

void zkit__sub_handle_link(zkit__sub_t *a, zkit__sub_link_t *link)
{
    zkit__pubsub_frames_t frames;
    while (zkit__pubsub_recv(link->dealer, &frames, ZMQ_DONTWAIT) == 0) {
        zkit__traffic_in(&a->replay_traffic, frames.bytes);
        zkit__pubsub_msg_t msg;
        zkit__pubsub_bad_t why;
        if (zkit__pubsub_parse(&frames, 0, &msg, &why) == -1)
            zkit__sub_bad(a, why, link->endpoint);
        else if (msg.cmd == ZKIT__PUBSUB_REPLAY) {
            /* Count it for the fetch it answers before it is processed. */
            zmq_msg_t topic, envelope;
            zmq_msg_init(&topic);
            zmq_msg_init(&envelope);
            zmq_msg_move(&topic, msg.topic);
            zmq_msg_move(&envelope, msg.envelope);
            zkit__sub_process(a, &topic, &envelope, ZKIT__SUB_REPLAY);
        }
        else if (msg.cmd == ZKIT__PUBSUB_VALUE) {
            zkit__sub_held_t *held = calloc(1, sizeof *held);
            if (held && link->snapshot_pending) {
                zmq_msg_init(&held->topic);
                zmq_msg_init(&held->envelope);
                zmq_msg_move(&held->topic, msg.topic);
                zmq_msg_move(&held->envelope, msg.envelope);
                zlistx_add_end(link->values, held);
            }
            else
                free(held);
        }
        else if (msg.cmd == ZKIT__PUBSUB_END)
            s_handle_end(a, link, &msg);
        else if (msg.cmd == ZKIT__PUBSUB_SNAPEND)
            s_handle_snapend(a, link, &msg);
        else if (msg.cmd == ZKIT__PUBSUB_STATUS)
            s_handle_status(a, link, &msg);
        else if (msg.cmd == ZKIT__PUBSUB_ERROR) {
            /* A refusal (wrong source for this endpoint): the fetch times
               out and its range is reported LOST, as for silence. A peer
               can send many: logged at most once a second. */
            uint64_t suppressed = 0;
            if (zkit__ratelimit(&a->replay_error_log, zclock_mono(), &suppressed)) {
                /* The peer's text, made printable: a log line is not
                   the place for its control characters. */
                for (char *c = msg.text; *c; c++)
                    if ((unsigned char) *c < 0x20 || (unsigned char) *c > 0x7e)
                        *c = '?';
                zsys_warning("ZKIT-SUB-REPLAY-ERROR %s: %s (%llu more since the last line)",
                             link->endpoint, msg.text, (unsigned long long) suppressed);
            }
        }
        else
            zkit__sub_bad(a, ZKIT__PUBSUB_BAD_UNEXPECTED, link->endpoint);
        zkit__pubsub_frames_close(&frames);
    }
}

/* ---- timers and start -------------------------------------------------------------- */

static void s_tick_source(zkit__gaps_stream_t *stream, void *arg)
{
    zkit__sub_t *a = arg;
    zkit__sub_source_t *source = stream->user;
    if (!source)
        return;
    int64_t now = zclock_mono();
    if (!source->in_flight) {
        /* Silent for a while: ask how far the source has published. A burst
           whose tail this subscriber missed (it was stalled, its queue
           overflowed) leaves no later seq to show the gap; this does. */
        if (a->opts.probe_ms && a->opts.recover && source->link && stream->next &&
            !stream->nmissing && now - source->heard_ms >= (int64_t) a->opts.probe_ms) {
            source->heard_ms = now;
            source->probe_wanted = true;
            zkit__sub_schedule(a, stream);
        }
        return;
    }
    if (now < source->retry_at_ms)
        return;
    int64_t budget = (int64_t) a->opts.fetch_timeout_ms * (a->opts.fetch_retries + 1);
    if (now - source->first_try_ms >= budget)
        s_give_up(a, stream, source);
    else
        s_send_request(a, stream, source);
}

void zkit__sub_tick(zkit__sub_t *a)
{
    if (a->in_flight || (a->opts.probe_ms && a->opts.recover))
        zkit__gaps_foreach(a->gaps, s_tick_source, a);
    if (!a->buffering)
        return;
    for (size_t i = 0; i < a->nlinks; i++)
        if (a->links[i]->snapshot_pending && !a->links[i]->snapshot_sent)
            s_send_snapshot(a, a->links[i]);
    if (zclock_mono() >= a->snapshot_deadline_ms) {
        for (size_t i = 0; i < a->nlinks; i++)
            if (a->links[i]->snapshot_pending) {
                zsys_warning("ZKIT-SUB-SNAPSHOT: no snapshot from %s; going on without it",
                             a->links[i]->endpoint);
                a->links[i]->snapshot_pending = false;
                zlistx_purge(a->links[i]->values);
            }
        zkit__sub_flush_held(a);
    }
}

int zkit__sub_start_recovery(zkit__sub_t *a)
{
    const zkit_subscriber_opts_t *o = &a->opts;
    if (o->replay) {
        char *list = strdup(o->replay);
        if (!list)
            return -1;
        char *save = NULL;
        for (char *ep = strtok_r(list, ",", &save); ep; ep = strtok_r(NULL, ",", &save)) {
            zkit__sub_link_t *link = zkit__sub_link(a, ep, true);
            if (!link) {
                free(list);
                errno = errno ? errno : EINVAL;
                return -1;
            }
            link->configured = true;
            if (!a->default_link)
                a->default_link = link;
        }
        free(list);
    }
    for (size_t i = 0; i < o->resume_count; i++) {
        const zkit_stream_position_t *p = &o->resume[i];
        if (!*p->src || p->next == 0)
            continue;
        zkit__gaps_stream_t *stream = zkit__gaps_stream(a->gaps, p->src, true);
        zkit__sub_source_t *source = stream ? zkit__sub_source(stream) : NULL;
        if (!source)
            continue;
        zkit__gaps_set_position(stream, p->epoch, p->next);
        source->link = *p->replay ? zkit__sub_link(a, p->replay, true) : a->default_link;
        if (!source->link)
            source->link = a->default_link;
        /* Whatever was published since is a gap, as soon as we know of it. */
        source->probe_wanted = true;
        zkit__sub_schedule(a, stream);
    }
    if (o->snapshot && a->nprefixes) {
        for (size_t i = 0; i < a->nlinks; i++)
            if (a->links[i]->configured) {
                a->links[i]->snapshot_pending = true;
                s_send_snapshot(a, a->links[i]);
                a->buffering = true;
            }
        a->snapshot_deadline_ms =
            zclock_mono() + (int64_t) o->fetch_timeout_ms * (o->fetch_retries + 1);
    }
    return 0;
}
