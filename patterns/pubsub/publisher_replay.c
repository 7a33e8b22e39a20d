/*  publisher_replay.c: how a zkit_publisher serves its replay endpoint:
    FETCH from the replay buffer, PROBE, and SNAPSHOT from the last-value
    cache (docs/pubsub-protocol.md, section 4).

    Answers are sent without waiting (ROUTER_MANDATORY): an asker whose
    queue is full gets its answer cut short and asks again after its
    timeout; the publisher never blocks on one subscriber.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pubsub/protocol.h"
#include "pubsub/publisher_internal.h"

typedef struct {
    uint64_t seq;
    zmq_msg_t envelope;
} zkit__pub_lvc_entry_t;

/* ---- the last-value cache ------------------------------------------------------ */

static void s_lvc_free(void **item)
{
    zkit__pub_lvc_entry_t *entry = (zkit__pub_lvc_entry_t *) *item;
    if (entry) {
        zmq_msg_close(&entry->envelope);
        free(entry);
        *item = NULL;
    }
}

void zkit__pub_lvc_update(zkit__pub_actor_t *a, uint64_t seq, zmq_msg_t *topic, zmq_msg_t *envelope)
{
    char key[ZKIT_TOPIC_MAX + 1];
    size_t size = zmq_msg_size(topic);
    if (size > ZKIT_TOPIC_MAX)
        return;
    memcpy(key, zmq_msg_data(topic), size);
    key[size] = '\0';
    zkit__pub_lvc_entry_t *entry = zhashx_lookup(a->lvc, key);
    if (!entry) {
        if (zhashx_size(a->lvc) >= a->opts.lvc_max_topics) {
            a->stats.lvc_refused++;
            return;
        }
        entry = calloc(1, sizeof *entry);
        if (!entry)
            return;
        zmq_msg_init(&entry->envelope);
        if (zhashx_insert(a->lvc, key, entry) != 0) {
            zmq_msg_close(&entry->envelope);
            free(entry);
            return;
        }
    }
    entry->seq = seq;
    zmq_msg_copy(&entry->envelope, envelope);
}

zhashx_t *zkit__pub_lvc_new(void)
{
    zhashx_t *lvc = zhashx_new();
    if (lvc)
        zhashx_set_destructor(lvc, s_lvc_free);
    return lvc;
}

/* ---- requests ------------------------------------------------------------------ */

/*  Sends one REPLAY. Returns 0, or -1 when the asker's queue is full (it
    asked for more than one batch at once) or it is gone: it times out and
    asks again.                                                              */
static int s_replay_one(zkit__pub_actor_t *a, const void *id, size_t id_size, zmq_msg_t *topic,
                        zmq_msg_t *envelope)
{
    zkit__pubsub_msg_t item;
    memset(&item, 0, sizeof item);
    item.cmd = ZKIT__PUBSUB_REPLAY;
    item.topic = topic;
    item.envelope = envelope;
    if (zkit__pubsub_send_counted(a->replay, id, id_size, &item, &a->replay_traffic) == -1) {
        a->stats.replay_failed++;
        return -1;
    }
    a->stats.replayed++;
    return 0;
}

/*  The part of a FETCH older than the ring, from the replay spool: fills
    reply->lost_to and reply->served_to as far as it went, and *from with
    where the ring takes over (above to: the ring has nothing to add).
    Returns -1 when the answer must stop here (batch cap, a full asker).    */
static int s_fetch_spool(zkit__pub_actor_t *a, const void *id, size_t id_size,
                         zkit__pubsub_msg_t *reply, uint64_t *from, uint64_t to, size_t *budget)
{
    uint64_t ring_first =
        zkit__replay_count(a->ring) ? zkit__replay_first(a->ring) : a->last_seq + 1;
    if (*from >= ring_first)
        return 0;
    uint64_t upto = to < ring_first - 1 ? to : ring_first - 1;
    uint64_t first = zkit__pub_spool_first(a->spool);
    uint64_t seq = *from;
    if (!first || first > upto) {
        reply->lost_to = upto;
        seq = upto + 1;
    }
    else if (first > seq) {
        reply->lost_to = first - 1;
        seq = first;
    }
    for (; seq <= upto; seq++) {
        if (*budget == 0)
            return -1;
        zmq_msg_t topic, envelope;
        if (zkit__pub_spool_get(a->spool, seq, &topic, &envelope) == -1) {
            /* Lost only while nothing was served: lost, then served, is all
               an END can say. The asker asks again from here.              */
            if (reply->served_to)
                return -1;
            reply->lost_to = seq;
            continue;
        }
        int rc = s_replay_one(a, id, id_size, &topic, &envelope);
        zmq_msg_close(&topic);
        zmq_msg_close(&envelope);
        if (rc == -1)
            return -1;
        reply->served_to = seq;
        (*budget)--;
    }
    *from = upto + 1;
    return 0;
}

static void s_answer_fetch(zkit__pub_actor_t *a, zmq_msg_t *rid, const zkit__pubsub_msg_t *req)
{
    const void *id = zmq_msg_data(rid);
    size_t id_size = zmq_msg_size(rid);
    zkit__pubsub_msg_t reply;
    memset(&reply, 0, sizeof reply);
    if (strcmp(req->src, a->name) != 0) {
        reply.cmd = ZKIT__PUBSUB_ERROR;
        /* The name may be as long as the text allows: cut it, it is advice. */
        snprintf(reply.text, sizeof reply.text, "unknown source: this is '%.200s'", a->name);
        zkit__pubsub_send_counted(a->replay, id, id_size, &reply, &a->replay_traffic);
        return;
    }
    a->stats.fetches++;
    reply.cmd = ZKIT__PUBSUB_END;
    strcpy(reply.src, a->name);
    reply.epoch = a->epoch;
    reply.from = req->from;
    reply.to = req->to;
    reply.last = a->last_seq;
    if (req->epoch != 0 && req->epoch != a->epoch) {
        /* An older (or newer) run of this publisher: its messages are not
           here, and never will be. */
        reply.lost_to = req->to;
    }
    else {
        uint64_t from = req->from;
        size_t budget = a->opts.replay_batch;
        if (a->spool && s_fetch_spool(a, id, id_size, &reply, &from, req->to, &budget) == -1)
            goto end;
        if (from > req->to || budget == 0)
            goto end;
        zkit__replay_plan_t plan;
        zkit__replay_plan(a->ring, from, req->to, budget, &plan);
        if (plan.lost_to) {
            /* A gap after what the spool served: the next FETCH reports it. */
            if (reply.served_to)
                goto end;
            reply.lost_to = plan.lost_to;
        }
        for (uint64_t seq = plan.serve_from; plan.serve_to && seq <= plan.serve_to; seq++) {
            const zkit__replay_entry_t *entry = zkit__replay_get(a->ring, seq);
            if (s_replay_one(a, id, id_size, (zmq_msg_t *) &entry->topic,
                             (zmq_msg_t *) &entry->envelope) == -1)
                return;
            reply.served_to = seq;
        }
    }
end:
    if (zkit__pubsub_send_counted(a->replay, id, id_size, &reply, &a->replay_traffic) == -1)
        a->stats.replay_failed++;
}

static void s_answer_probe(zkit__pub_actor_t *a, zmq_msg_t *rid, const zkit__pubsub_msg_t *req)
{
    zkit__pubsub_msg_t reply;
    memset(&reply, 0, sizeof reply);
    if (strcmp(req->src, a->name) != 0) {
        reply.cmd = ZKIT__PUBSUB_ERROR;
        snprintf(reply.text, sizeof reply.text, "unknown source: this is '%.200s'", a->name);
    }
    else {
        a->stats.probes++;
        reply.cmd = ZKIT__PUBSUB_STATUS;
        strcpy(reply.src, a->name);
        reply.epoch = a->epoch;
        reply.last = a->last_seq;
        /* An empty ring (a restart on a spool) holds nothing from 1 on.   */
        reply.first = zkit__replay_count(a->ring) ? zkit__replay_first(a->ring) : a->last_seq + 1;
        uint64_t spooled = zkit__pub_spool_first(a->spool);
        if (spooled && spooled < reply.first)
            reply.first = spooled;
    }
    if (zkit__pubsub_send_counted(a->replay, zmq_msg_data(rid), zmq_msg_size(rid), &reply,
                                  &a->replay_traffic) == -1)
        a->stats.replay_failed++;
}

static void s_answer_snapshot(zkit__pub_actor_t *a, zmq_msg_t *rid, const zkit__pubsub_msg_t *req)
{
    const void *id = zmq_msg_data(rid);
    size_t id_size = zmq_msg_size(rid);
    a->stats.snapshots++;
    uint64_t count = 0;
    if (a->lvc) {
        zkit__pubsub_msg_t item;
        memset(&item, 0, sizeof item);
        item.cmd = ZKIT__PUBSUB_VALUE;
        for (zkit__pub_lvc_entry_t *e = zhashx_first(a->lvc); e; e = zhashx_next(a->lvc)) {
            const char *topic = zhashx_cursor(a->lvc);
            size_t size = strlen(topic);
            bool wanted = false;
            for (size_t i = 0; i < req->prefix_count && !wanted; i++)
                wanted =
                    zkit__pubsub_prefix_match(req->prefix[i], req->prefix_size[i], topic, size);
            if (!wanted)
                continue;
            zmq_msg_t topic_frame;
            zmq_msg_init_size(&topic_frame, size);
            memcpy(zmq_msg_data(&topic_frame), topic, size);
            item.topic = &topic_frame;
            item.envelope = &e->envelope;
            int rc = zkit__pubsub_send_counted(a->replay, id, id_size, &item, &a->replay_traffic);
            zmq_msg_close(&topic_frame);
            if (rc == -1) {
                a->stats.replay_failed++;
                return;
            }
            count++;
        }
    }
    zkit__pubsub_msg_t end;
    memset(&end, 0, sizeof end);
    end.cmd = ZKIT__PUBSUB_SNAPEND;
    strcpy(end.src, a->name);
    end.epoch = a->epoch;
    end.last = a->last_seq;
    end.count = count;
    if (zkit__pubsub_send_counted(a->replay, id, id_size, &end, &a->replay_traffic) == -1)
        a->stats.replay_failed++;
}

void zkit__pub_handle_replay(zkit__pub_actor_t *a)
{
    zkit__pubsub_frames_t frames;
    /* A bounded batch: a flood of requests cannot starve the feed. */
    for (int n = 0; n < 1024 && zkit__pubsub_recv(a->replay, &frames, ZMQ_DONTWAIT) == 0; n++) {
        /* Answers must reflect every message handed over before the request
           arrived; the data pipe may hold some the XPUB has not seen. */
        zkit__pub_drain_data(a, false, 0);
        zkit__traffic_in(&a->replay_traffic, frames.bytes);
        zkit__pubsub_msg_t req;
        zkit__pubsub_bad_t why;
        if (zkit__pubsub_parse(&frames, 1, &req, &why) == -1) {
            a->stats.bad++;
            a->bad_replay[why]++;
            zkit__pubsub_log_bad(&a->bad_log, "publisher replay", why);
        }
        else if (req.cmd == ZKIT__PUBSUB_FETCH)
            s_answer_fetch(a, &frames.part[0], &req);
        else if (req.cmd == ZKIT__PUBSUB_SNAPSHOT)
            s_answer_snapshot(a, &frames.part[0], &req);
        else if (req.cmd == ZKIT__PUBSUB_PROBE)
            s_answer_probe(a, &frames.part[0], &req);
        else {
            a->stats.bad++;
            a->bad_replay[ZKIT__PUBSUB_BAD_UNEXPECTED]++;
            zkit__pubsub_log_bad(&a->bad_log, "publisher replay", ZKIT__PUBSUB_BAD_UNEXPECTED);
        }
        zkit__pubsub_frames_close(&frames);
    }
}
