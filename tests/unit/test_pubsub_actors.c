/*  test_pubsub_actors: publisher, forwarder and subscriber running together
    in one process over loopback TCP: delivery and counters, waiting for a
    subscriber, a live gap recovered from the replay buffer, a resumed
    subscriber catching up with exactly the evicted part reported LOST, the
    last-value snapshot given only to the subscriber that asks, a publisher
    restart, the forwarder's tap, and constructors refusing bad options.

    Waits poll the components' counters with a deadline; nothing sleeps for
    a fixed time and hopes.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <czmq.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "zkit.h"

#define ANY    "tcp://127.0.0.1:*"
#define S_WAIT 10000 /* ms any single wait may take */
#define S_SEQS 4096
/*  The silence after which a subscriber PROBEs its sources, far beyond any
    test. A PROBE is answered over the replay channel, which can overtake the
    feed; left at its 1 s default, a test stalled by a loaded machine would
    see live messages still on their way turn into a gap and come back
    RECOVERED. A test that asserts which path a message took must not race
    it. Long rather than 0 so the silence timer still runs: a stream it
    wrongly takes for silent (one started by a snapshot) is still probed. */
#define S_PROBE_NEVER 600000

/* ---- what a subscriber saw (written on its thread) ------------------------------ */

typedef struct {
    pthread_mutex_t lock;
    uint32_t kind_of[S_SEQS]; /* per seq: 0 never, else kind + 1 */
    uint32_t times[S_SEQS];   /* deliveries per seq                */
    char last_topic[64];
    zkit_stream_event_t events[64];
    int nevents;
    uint64_t delivered;
} s_seen_t;

static void s_seen_init(s_seen_t *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
}

static void s_on_message(const zkit_envelope_t *env, const zkit_delivery_t *d, void *arg)
{
    s_seen_t *s = arg;
    pthread_mutex_lock(&s->lock);
    uint64_t seq = zkit_envelope_seq(env);
    if (seq < S_SEQS) {
        s->kind_of[seq] = (uint32_t) d->kind + 1;
        s->times[seq]++;
    }
    snprintf(s->last_topic, sizeof s->last_topic, "%s", d->topic);
    s->delivered++;
    pthread_mutex_unlock(&s->lock);
}

static void s_on_event(const zkit_stream_event_t *ev, void *arg)
{
    s_seen_t *s = arg;
    pthread_mutex_lock(&s->lock);
    if (s->nevents < 64)
        s->events[s->nevents++] = *ev;
    pthread_mutex_unlock(&s->lock);
}

/*  Polls until the subscriber delivered at least n messages and is settled. */
static void s_wait_delivered(zkit_subscriber_t *sub, uint64_t n)
{
    int64_t end = zclock_mono() + S_WAIT;
    zkit_subscriber_stats_t st;
    while (true) {
        assert_int_equal(zkit_subscriber_stats(sub, &st), 0);
        if (st.delivered >= n && zkit_subscriber_settled(sub))
            return;
        if (zclock_mono() > end)
            fail_msg("delivered %llu of %llu (gaps %llu, lost %llu, pending %llu)",
                     (unsigned long long) st.delivered, (unsigned long long) n,
                     (unsigned long long) st.gaps, (unsigned long long) st.lost,
                     (unsigned long long) st.pending);
        zclock_sleep(5);
    }
}

static zkit_publisher_t *s_publisher(const char *name, bool lvc, size_t capacity, uint64_t epoch,
                                     const char *connect)
{
    zkit_publisher_opts_t o = ZKIT_PUBLISHER_OPTS_DEFAULT;
    o.name = name;
    o.bind = connect ? NULL : ANY;
    o.connect = connect;
    o.replay_bind = ANY;
    o.replay_capacity = capacity;
    o.lvc = lvc;
    o.epoch = epoch;
    o.linger_ms = 0;
    zkit_publisher_t *pub = zkit_publisher_new(&o);
    assert_non_null(pub);
    return pub;
}

static zkit_subscriber_t *s_subscriber(const char *connect, const char *topic, s_seen_t *seen,
                                       const zkit_stream_position_t *resume, const char *replay,
                                       bool snapshot)
{
    zkit_subscriber_opts_t o = ZKIT_SUBSCRIBER_OPTS_DEFAULT;
    const char *topics[] = {topic};
    o.connect = connect;
    o.topics = topics;
    o.topic_count = 1;
    o.handler = s_on_message;
    o.handler_arg = seen;
    o.on_event = s_on_event;
    o.event_arg = seen;
    o.resume = resume;
    o.resume_count = resume ? 1 : 0;
    o.replay = replay;
    o.snapshot = snapshot;
    o.probe_ms = S_PROBE_NEVER;
    /* No retry within a wait: a FETCH answered twice would replay twice. */
    o.fetch_timeout_ms = S_WAIT;
    zkit_subscriber_t *sub = zkit_subscriber_new(&o);
    assert_non_null(sub);
    return sub;
}

static void s_publish_range(zkit_publisher_t *pub, const char *topic, int n)
{
    for (int i = 0; i < n; i++)
        assert_int_equal(zkit_publisher_publish(pub, topic, "tick", 4, 0), 0);
}

/* ---- tests ----------------------------------------------------------------------- */

static void test_options_refused(void **state)
{
    (void) state;
    zkit_publisher_opts_t po = ZKIT_PUBLISHER_OPTS_DEFAULT;
    po.bind = ANY; /* no name */
    errno = 0;
    assert_null(zkit_publisher_new(&po));
    assert_int_equal(errno, EINVAL);
    po.name = "p";
    po.lvc = true; /* a cache nobody can ask */
    assert_null(zkit_publisher_new(&po));
    po.lvc = false;
    po.bind = "nonsense://x";
    assert_null(zkit_publisher_new(&po));
    assert_int_not_equal(errno, 0);

    zkit_subscriber_opts_t so = ZKIT_SUBSCRIBER_OPTS_DEFAULT;
    assert_null(zkit_subscriber_new(&so)); /* no endpoint */
    so.connect = "tcp://127.0.0.1:1";
    so.fetch_batch = 0;
    assert_null(zkit_subscriber_new(&so));

    zkit_forwarder_opts_t fo = ZKIT_FORWARDER_OPTS_DEFAULT;
    fo.frontend = ANY;
    assert_null(zkit_forwarder_new(&fo)); /* no backend */
    fo.backend = ANY;
    fo.tap = ANY;
    fo.tap_type = ZMQ_SUB;
    assert_null(zkit_forwarder_new(&fo));
    zkit_forwarder_t *f = NULL;
    zkit_forwarder_destroy(&f);
    zkit_subscriber_t *s = NULL;
    zkit_subscriber_destroy(&s);
    zkit_publisher_t *p = NULL;
    zkit_publisher_destroy(&p);
}

static void test_through_forwarder_with_counters(void **state)
{
    (void) state;
    zkit_forwarder_opts_t fo = ZKIT_FORWARDER_OPTS_DEFAULT;
    fo.frontend = ANY;
    fo.backend = ANY;
    fo.tap = ANY;
    fo.tap_type = ZMQ_PUSH;
    fo.linger_ms = 0;
    zkit_forwarder_t *fwd = zkit_forwarder_new(&fo);
    assert_non_null(fwd);
    zsock_t *tap = zsock_new(ZMQ_PULL);
    zsock_set_rcvtimeo(tap, S_WAIT);
    assert_int_equal(zsock_connect(tap, "%s", zkit_forwarder_tap(fwd)), 0);

    zkit_publisher_t *pub = s_publisher("feed", false, 1000, 0, zkit_forwarder_frontend(fwd));
    s_seen_t seen;
    s_seen_init(&seen);
    zkit_subscriber_t *sub =
        s_subscriber(zkit_forwarder_backend(fwd), "prices.", &seen, NULL, NULL, false);

    /* nothing matches "news": the wait times out */
    errno = 0;
    assert_int_equal(zkit_publisher_wait_subscriber(pub, "news", 50), -1);
    assert_int_equal(errno, ETIMEDOUT);
    assert_int_equal(zkit_publisher_wait_subscriber(pub, "prices.ACME", S_WAIT), 0);
    s_publish_range(pub, "prices.ACME", 1000);
    s_wait_delivered(sub, 1000);

    zkit_subscriber_stats_t ss;
    zkit_subscriber_stats(sub, &ss);
    assert_int_equal(ss.received, 1000);
    assert_int_equal(ss.gaps, 0);
    assert_int_equal(ss.duplicates, 0);
    assert_int_equal(ss.sources, 1);
    for (int q = 1; q <= 1000; q++)
        assert_int_equal(seen.kind_of[q], ZKIT_DELIVERY_LIVE + 1);
    assert_string_equal(seen.last_topic, "prices.ACME");

    zkit_publisher_stats_t ps;
    zkit_publisher_stats(pub, &ps);
    assert_int_equal(ps.published, 1000);
    assert_int_equal(ps.last_seq, 1000);
    assert_int_equal(ps.replay_count, 1000);
    assert_int_equal(ps.replay_first, 1);

    zkit_forwarder_stats_t fs;
    assert_int_equal(zkit_forwarder_stats(fwd, &fs), 0);
    assert_int_equal(fs.msgs_in, 1000);
    assert_int_equal(fs.msgs_out, 1000);
    assert_int_equal(fs.bytes_in, ps.bytes);
    assert_int_equal(fs.bytes_out, ps.bytes);
    assert_int_equal(fs.drops_hwm, 0);
    assert_true(fs.subscribe >= 1);
    assert_int_equal(fs.tap_msgs + fs.tap_drops, 1000);

    /* the tap got the frames unchanged: topic, then an envelope */
    zmsg_t *copy = zmsg_recv(tap);
    assert_non_null(copy);
    assert_int_equal(zmsg_size(copy), 2);
    char *topic = zmsg_popstr(copy);
    assert_string_equal(topic, "prices.ACME");
    free(topic);
    zmsg_destroy(&copy);

    zkit_subscriber_destroy(&sub);
    zkit_publisher_destroy(&pub);
    zsock_destroy(&tap);
    zkit_forwarder_destroy(&fwd);
}

static void test_live_gap_recovered(void **state)
{
    (void) state;
    zkit_publisher_t *pub = s_publisher("gappy", false, 1000, 0, NULL);
    s_seen_t seen;
    s_seen_init(&seen);
    zkit_subscriber_t *sub =
        s_subscriber(zkit_publisher_endpoint(pub), "t", &seen, NULL, NULL, false);
    assert_int_equal(zkit_publisher_wait_subscriber(pub, "t", S_WAIT), 0);
    s_publish_range(pub, "t", 10);
    s_wait_delivered(sub, 10);

    /* The subscriber leaves the feed for a while: 11..20 go to nobody. */
    assert_int_equal(zkit_subscriber_unsubscribe(sub, "t"), 0);
    zkit_publisher_stats_t ps;
    int64_t end = zclock_mono() + S_WAIT;
    do {
        zkit_publisher_stats(pub, &ps);
        assert_true(zclock_mono() < end);
    } while (ps.unsubscribe < 1 && (zclock_sleep(5), true));
    s_publish_range(pub, "t", 10);
    /* Publishing only queues to the publisher's actor. Asking for its stats
       makes it send all 20 first, while nobody subscribes: otherwise the new
       subscription could overtake them and 11..20 arrive live. */
    zkit_publisher_stats(pub, &ps);
    assert_int_equal(ps.published, 20);
    assert_int_equal(zkit_subscriber_subscribe(sub, "t"), 0);
    assert_int_equal(zkit_publisher_wait_subscriber(pub, "t", S_WAIT), 0);
    s_publish_range(pub, "t", 10);
    s_wait_delivered(sub, 30);

    zkit_subscriber_stats_t ss;
    zkit_subscriber_stats(sub, &ss);
    assert_int_equal(ss.gaps, 1);
    assert_int_equal(ss.missing, 10);
    assert_int_equal(ss.recovered, 10);
    assert_int_equal(ss.lost, 0);
    assert_int_equal(ss.pending, 0);
    assert_true(ss.fetches >= 1);
    for (int q = 1; q <= 30; q++) {
        assert_int_equal(seen.times[q], 1);
        assert_int_equal(seen.kind_of[q],
                         (q >= 11 && q <= 20 ? ZKIT_DELIVERY_RECOVERED : ZKIT_DELIVERY_LIVE) + 1);
    }
    assert_int_equal(seen.events[0].kind, ZKIT_STREAM_GAP);
    assert_int_equal(seen.events[0].from, 11);
    assert_int_equal(seen.events[0].to, 20);
    assert_int_equal(seen.events[1].kind, ZKIT_STREAM_RECOVERED);
    assert_int_equal(seen.events[1].count, 10);
    assert_int_equal(seen.nevents, 2);
    zkit_publisher_stats(pub, &ps);
    assert_int_equal(ps.replayed, 10);
    assert_int_equal(ps.probes, 0); /* the gap showed by seq 21, not a probe */
    zkit_subscriber_destroy(&sub);
    zkit_publisher_destroy(&pub);
}

static void test_resume_reports_exactly_what_was_evicted(void **state)
{
    (void) state;
    /* 100 published to nobody; the buffer keeps the last 40 (61..100). */
    zkit_publisher_t *pub = s_publisher("hist", false, 40, 0, NULL);
    s_publish_range(pub, "t", 100);
    zkit_publisher_stats_t ps;
    zkit_publisher_stats(pub, &ps);
    assert_int_equal(ps.replay_first, 61);

    zkit_stream_position_t pos;
    memset(&pos, 0, sizeof pos);
    strcpy(pos.src, "hist");
    pos.epoch = zkit_publisher_epoch(pub);
    pos.next = 21; /* a subscriber that had 1..20 before it stopped */
    snprintf(pos.replay, sizeof pos.replay, "%s", zkit_publisher_replay_endpoint(pub));
    s_seen_t seen;
    s_seen_init(&seen);
    zkit_subscriber_t *sub =
        s_subscriber(zkit_publisher_endpoint(pub), "t", &seen, &pos, NULL, false);
    s_wait_delivered(sub, 40);
    zkit_subscriber_stats_t ss;
    zkit_subscriber_stats(sub, &ss);
    assert_int_equal(ss.recovered, 40);
    assert_int_equal(ss.lost, 40); /* 21..60, exactly */
    for (int q = 1; q <= 100; q++)
        assert_int_equal(seen.times[q], q >= 61 ? 1 : 0);
    bool found = false;
    for (int i = 0; i < seen.nevents; i++)
        if (seen.events[i].kind == ZKIT_STREAM_LOST) {
            assert_int_equal(seen.events[i].from, 21);
            assert_int_equal(seen.events[i].to, 60);
            assert_int_equal(seen.events[i].reason, ZKIT_LOST_EVICTED);
            found = true;
        }
    assert_true(found);

    /* and it keeps going live after the catch-up */
    assert_int_equal(zkit_publisher_wait_subscriber(pub, "t", S_WAIT), 0);
    s_publish_range(pub, "t", 5);
    s_wait_delivered(sub, 45);
    zkit_stream_position_t now;
    assert_int_equal(zkit_subscriber_positions(sub, &now, 1), 1);
    assert_string_equal(now.src, "hist");
    assert_int_equal(now.next, 106);
    assert_string_equal(now.replay, zkit_publisher_replay_endpoint(pub));
    zkit_subscriber_destroy(&sub);
    zkit_publisher_destroy(&pub);
}

static void test_snapshot_only_to_the_asker(void **state)
{
    (void) state;
    zkit_publisher_t *pub = s_publisher("lvc", true, 1000, 0, NULL);
    s_seen_t old_seen, new_seen;
    s_seen_init(&old_seen);
    s_seen_init(&new_seen);
    zkit_subscriber_t *old_sub =
        s_subscriber(zkit_publisher_endpoint(pub), "px.", &old_seen, NULL, NULL, false);
    assert_int_equal(zkit_publisher_wait_subscriber(pub, "px.", S_WAIT), 0);
    assert_int_equal(zkit_publisher_publish(pub, "px.A", "a1", 2, 0), 0); /* 1 */
    assert_int_equal(zkit_publisher_publish(pub, "px.B", "b1", 2, 0), 0); /* 2 */
    assert_int_equal(zkit_publisher_publish(pub, "px.A", "a2", 2, 0), 0); /* 3 */
    assert_int_equal(zkit_publisher_publish(pub, "other", "o", 1, 0), 0); /* 4 */
    s_wait_delivered(old_sub, 3);

    zkit_subscriber_t *new_sub = s_subscriber(zkit_publisher_endpoint(pub), "px.", &new_seen, NULL,
                                              zkit_publisher_replay_endpoint(pub), true);
    s_wait_delivered(new_sub, 2);
    zkit_subscriber_stats_t ns;
    zkit_subscriber_stats(new_sub, &ns);
    assert_int_equal(ns.snapshot, 2);
    /* the current values: A as of seq 3, B as of seq 2, not "other" */
    assert_int_equal(new_seen.kind_of[3], ZKIT_DELIVERY_SNAPSHOT + 1);
    assert_int_equal(new_seen.kind_of[2], ZKIT_DELIVERY_SNAPSHOT + 1);
    assert_int_equal(new_seen.times[1], 0);
    assert_int_equal(new_seen.times[4], 0);

    /* the feed goes on from there, without a gap for the newcomer */
    s_publish_range(pub, "px.C", 3); /* 5..7 */
    s_wait_delivered(new_sub, 5);
    s_wait_delivered(old_sub, 6);
    zkit_subscriber_stats(new_sub, &ns);
    assert_int_equal(ns.gaps, 0);
    assert_int_equal(ns.lost, 0);
    for (int q = 5; q <= 7; q++) {
        assert_int_equal(new_seen.times[q], 1);
        assert_int_equal(new_seen.kind_of[q], ZKIT_DELIVERY_LIVE + 1);
    }
    /* the old subscriber got nothing twice: the snapshot was not for it */
    zkit_subscriber_stats_t os;
    zkit_subscriber_stats(old_sub, &os);
    assert_int_equal(os.delivered, 6);
    assert_int_equal(os.snapshot, 0);
    /* SNAPEND counts as news from the source: no PROBE followed it */
    zkit_publisher_stats_t ps;
    zkit_publisher_stats(pub, &ps);
    assert_int_equal(ps.probes, 0);
    zkit_subscriber_destroy(&new_sub);
    zkit_subscriber_destroy(&old_sub);
    zkit_publisher_destroy(&pub);
}

static void test_publisher_restart(void **state)
{
    (void) state;
    zkit_forwarder_opts_t fo = ZKIT_FORWARDER_OPTS_DEFAULT;
    fo.frontend = ANY;
    fo.backend = ANY;
    fo.linger_ms = 0;
    zkit_forwarder_t *fwd = zkit_forwarder_new(&fo);
    assert_non_null(fwd);
    s_seen_t seen;
    s_seen_init(&seen);
    zkit_subscriber_t *sub =
        s_subscriber(zkit_forwarder_backend(fwd), "", &seen, NULL, NULL, false);

    zkit_publisher_t *pub = s_publisher("svc", false, 100, 1000, zkit_forwarder_frontend(fwd));
    assert_int_equal(zkit_publisher_wait_subscriber(pub, "x", S_WAIT), 0);
    s_publish_range(pub, "x", 5);
    s_wait_delivered(sub, 5);
    zkit_publisher_destroy(&pub);

    pub = s_publisher("svc", false, 100, 2000, zkit_forwarder_frontend(fwd));
    assert_int_equal(zkit_publisher_wait_subscriber(pub, "x", S_WAIT), 0);
    s_publish_range(pub, "x", 3);
    s_wait_delivered(sub, 8);
    zkit_subscriber_stats_t ss;
    zkit_subscriber_stats(sub, &ss);
    assert_int_equal(ss.restarts, 1);
    assert_int_equal(ss.gaps, 0);
    assert_int_equal(ss.duplicates, 0);
    bool restart = false;
    for (int i = 0; i < seen.nevents; i++)
        if (seen.events[i].kind == ZKIT_STREAM_RESTART) {
            assert_int_equal(seen.events[i].epoch, 1000);
            assert_int_equal(seen.events[i].new_epoch, 2000);
            restart = true;
        }
    assert_true(restart);
    zkit_publisher_destroy(&pub);
    zkit_subscriber_destroy(&sub);
    zkit_forwarder_destroy(&fwd);
}

int main(void)
{
    zsys_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_refused),
        cmocka_unit_test(test_through_forwarder_with_counters),
        cmocka_unit_test(test_live_gap_recovered),
        cmocka_unit_test(test_resume_reports_exactly_what_was_evicted),
        cmocka_unit_test(test_snapshot_only_to_the_asker),
        cmocka_unit_test(test_publisher_restart),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    zsys_shutdown();
    return rc;
}
