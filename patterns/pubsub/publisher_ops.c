/*  publisher_ops.c: what a zkit_publisher answers on its control endpoint:
    STATS (every field of zkit_publisher_stats_t, by the metric names of
    docs/pubsub-protocol.md section 9.2) and PAUSE/RESUME. Runs on the
    publisher's actor thread, the one that owns the counters.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <stdio.h>

#include "pubsub/protocol.h"
#include "pubsub/publisher_internal.h"

void zkit__pub_stats_get(zkit__pub_actor_t *a, zkit_publisher_stats_t *st)
{
    *st = a->stats;
    st->published = a->feed_traffic.msgs_out;
    st->bytes = a->feed_traffic.bytes_out;
    st->last_seq = a->last_seq;
    if (a->ring) {
        st->replay_first = zkit__replay_count(a->ring) ? zkit__replay_first(a->ring) : 0;
        st->replay_count = zkit__replay_count(a->ring);
        st->replay_bytes = zkit__replay_bytes(a->ring);
        st->replay_evicted = zkit__replay_evicted(a->ring);
    }
    st->lvc_topics = a->lvc ? zhashx_size(a->lvc) : 0;
    st->prefixes = a->prefixes ? zlistx_size(a->prefixes) : 0;
    st->paused = a->paused;
}

/*  The control endpoint's STATS: every field of zkit_publisher_stats_t.    */
void zkit__pub_ops_stats(zkit__stats_t *stats, void *arg)
{
    zkit__pub_actor_t *a = *(zkit__pub_actor_t **) arg;
    zkit_publisher_stats_t st;
    zkit__pub_stats_get(a, &st);
    /* published and bytes are messages and bytes{socket="feed",dir="out"}. */
    zkit__traffic_report(stats, "feed", &a->feed_traffic);
    if (a->replay)
        zkit__traffic_report(stats, "replay", &a->replay_traffic);
    const zkit__pubsub_metric_t plain[] = {
        {"last_seq", true, st.last_seq, "Newest seq handed out"},
        {"epoch", true, a->epoch, "The stream's epoch (microseconds since the Unix epoch)"},
        {"replay_first", true, st.replay_first, "Oldest seq the replay buffer holds (0: none)"},
        {"replay_messages", true, st.replay_count, "Messages the replay buffer holds"},
        {"replay_bytes", true, st.replay_bytes, "Bytes of frames the replay buffer holds"},
        {"replay_evicted", false, st.replay_evicted, "Messages evicted from the replay buffer"},
        {"replayed", false, st.replayed, "REPLAY messages sent"},
        {"replay_failed", false, st.replay_failed, "Answers cut short: the asker's queue was full"},
        {"lvc_topics", true, st.lvc_topics, "Topics in the last-value cache"},
        {"lvc_refused", false, st.lvc_refused, "Messages not cached: the cache was full"},
        {"prefixes", true, st.prefixes, "Subscription prefixes held now (tracked ones)"},
        {"paused", true, st.paused, "1 while PAUSEd: the application's messages wait"},
    };
    zkit__pubsub_metrics(stats, plain, sizeof plain / sizeof plain[0]);
    zkit__stats_counter1(stats, "requests", "command", "fetch", st.fetches);
    zkit__stats_counter1(stats, "requests", "command", "probe", st.probes);
    zkit__stats_counter1(stats, "requests", "command", "snapshot", st.snapshots);
    zkit__stats_help(stats, "requests", "Replay requests answered");
    zkit__stats_counter1(stats, "subscriptions", "op", "subscribe", st.subscribe);
    zkit__stats_counter1(stats, "subscriptions", "op", "unsubscribe", st.unsubscribe);
    zkit__stats_help(stats, "subscriptions", "Subscription messages read from the XPUB");
    zkit__stats_label_t labels[2];
    for (int i = 0; i < ZKIT__PUBSUB_BAD_REASONS_; i++) {
        labels[0] = (zkit__stats_label_t){"socket", "replay"};
        labels[1] =
            (zkit__stats_label_t){"reason", zkit__pubsub_bad_reason((zkit__pubsub_bad_t) i)};
        zkit__stats_counter_labels(stats, "bad_input", labels, 2, a->bad_replay[i]);
    }
    for (int i = ZKIT__PUBSUB_SUB_MULTIPART; i < ZKIT__PUBSUB_SUB_REASONS_; i++) {
        labels[0] = (zkit__stats_label_t){"socket", "feed"};
        labels[1] =
            (zkit__stats_label_t){"reason", zkit__pubsub_sub_reason((zkit__pubsub_sub_t) i)};
        zkit__stats_counter_labels(stats, "bad_input", labels, 2, a->bad_feed[i]);
    }
    zkit__stats_help(stats, "bad_input",
                     "Malformed messages dropped: replay requests that do not parse, feed "
                     "messages that are not a subscription");
}

/*  PAUSE stops taking messages from the application (they wait in the data
    pipe, then the caller's sends block); RESUME goes on.                   */
zkit__control_result_t zkit__pub_ops_command(const char *command, const char *args, char *reply,
                                             size_t reply_size, void *arg)
{
    zkit__pub_actor_t *a = *(zkit__pub_actor_t **) arg;
    char who[sizeof "publisher " + ZKIT_SRC_MAX];
    snprintf(who, sizeof who, "publisher %s", a->name);
    return zkit__control_pause_resume(command, args, reply, reply_size, &a->paused, who,
                                      "publishing");
}
