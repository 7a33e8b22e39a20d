/*  fanout.c: a price feed fanned out through two chained forwarders to three
    subscribers, one of them deliberately slow.

        ticker --tcp--> forwarder A --tcp--> forwarder B --inproc--> fast-1
        (publisher,                          (drop policy)    \\--> fast-2
         replay buffer)                                         \\--> slow
           ^                                                         |
           `------------------- replay (FETCH) ----------------------'

    The slow subscriber cannot keep up: forwarder B's queue to it overflows
    and drops ticks for it alone (the drop policy). Its gap detector reports
    every gap as it happens and fetches the missing ticks from the ticker's
    replay buffer, so in the end it has all of them, once each. The fast
    subscribers never see a gap. Everything runs in this one process, using
    only zkit's public API; the same components run as separate programs with
    `zkit publisher`, `zkit forwarder` and `zkit subscriber`.

        build/bin/fanout [TICKS]     (default 20000; exit 0 when all is well)

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zkit.h"

#define TICK_RATE     20000 /* ticks per second the ticker publishes        */
#define SLOW_WORK_US  100   /* what the slow subscriber spends on each tick  */
#define WAIT_LIMIT_MS 60000

static const char *const s_symbols[] = {"prices.ACME", "prices.GLOBEX", "prices.INITECH"};

typedef struct {
    const char *name;
    bool slow;
} subscriber_t;

static void sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&ts, NULL);
}

static void on_tick(const zkit_envelope_t *env, const zkit_delivery_t *d, void *arg)
{
    subscriber_t *sub = arg;
    (void) env;
    (void) d;
    if (sub->slow)
        sleep_us(SLOW_WORK_US); /* e.g. it writes every tick to a slow disk */
}

static void on_event(const zkit_stream_event_t *ev, void *arg)
{
    subscriber_t *sub = arg;
    if (ev->kind == ZKIT_STREAM_GAP)
        printf("  %-7s gap       ticks %" PRIu64 "..%" PRIu64 " missed\n", sub->name, ev->from,
               ev->to);
    else if (ev->kind == ZKIT_STREAM_RECOVERED)
        printf("  %-7s recovered ticks %" PRIu64 "..%" PRIu64 " from the replay buffer\n",
               sub->name, ev->from, ev->to);
    else if (ev->kind == ZKIT_STREAM_LOST)
        printf("  %-7s LOST      ticks %" PRIu64 "..%" PRIu64 " (%s)\n", sub->name, ev->from,
               ev->to, zkit_lost_reason_name(ev->reason));
    fflush(stdout);
}

static int64_t now_ms(void)
{
    return (int64_t) (zkit_clock_usec() / 1000);
}

int main(int argc, char **argv)
{
    uint64_t ticks = argc > 1 ? strtoull(argv[1], NULL, 10) : 20000;
    if (ticks == 0) {
        fprintf(stderr, "usage: fanout [TICKS]\n");
        return 2;
    }

    /* Two forwarders, B fed by A. A subscriber that falls behind overflows
       its queue at B (1000 ticks, a twentieth of a second of feed) and the
       drop policy keeps that its own problem. */
    zkit_forwarder_opts_t fa = ZKIT_FORWARDER_OPTS_DEFAULT;
    fa.frontend = "tcp://127.0.0.1:*";
    fa.backend = "tcp://127.0.0.1:*";
    fa.linger_ms = 0;
    zkit_forwarder_t *fwd_a = zkit_forwarder_new(&fa);
    if (!fwd_a)
        return 1;
    zkit_forwarder_opts_t fb = ZKIT_FORWARDER_OPTS_DEFAULT;
    fb.frontend_connect = zkit_forwarder_backend(fwd_a);
    fb.backend = "inproc://fanout-b";
    fb.hwm = 1000;
    fb.linger_ms = 0;
    zkit_forwarder_t *fwd_b = zkit_forwarder_new(&fb);
    if (!fwd_b)
        return 1;

    /* The ticker keeps every tick for replay and never drops on its way to
       forwarder A (nodrop: A always has room, it never waits for anyone). */
    zkit_publisher_opts_t po = ZKIT_PUBLISHER_OPTS_DEFAULT;
    po.name = "ticker";
    po.connect = zkit_forwarder_frontend(fwd_a);
    po.replay_bind = "tcp://127.0.0.1:*";
    po.replay_capacity = ticks;
    po.nodrop = true;
    po.linger_ms = 0;
    zkit_publisher_t *ticker = zkit_publisher_new(&po);
    if (!ticker)
        return 1;

    subscriber_t subs[] = {{"fast-1", false}, {"fast-2", false}, {"slow", true}};
    enum { NSUBS = sizeof subs / sizeof subs[0] };
    zkit_subscriber_t *sub[NSUBS];
    const char *topics[] = {"prices."};
    for (int i = 0; i < NSUBS; i++) {
        zkit_subscriber_opts_t so = ZKIT_SUBSCRIBER_OPTS_DEFAULT;
        so.connect = "inproc://fanout-b";
        so.topics = topics;
        so.topic_count = 1;
        so.handler = on_tick;
        so.handler_arg = &subs[i];
        so.on_event = on_event;
        so.event_arg = &subs[i];
        /* The fast ones keep up, so they never need to ask a silent source
           what they missed; a probe answer, which comes straight from the
           publisher, could otherwise overtake the live feed. */
        if (!subs[i].slow)
            so.probe_ms = 600000;
        if (!(sub[i] = zkit_subscriber_new(&so)))
            return 1;
    }

    /* Start once all three subscriptions reached forwarder B, and B's
       reached the ticker: nothing is lost to the slow-joiner race. */
    zkit_forwarder_stats_t fs;
    int64_t limit = now_ms() + WAIT_LIMIT_MS;
    do {
        zkit_forwarder_stats(fwd_b, &fs);
        sleep_us(1000);
    } while (fs.subscribe < NSUBS && now_ms() < limit);
    if (zkit_publisher_wait_subscriber(ticker, s_symbols[0], WAIT_LIMIT_MS) == -1)
        return 1;

    printf("publishing %" PRIu64 " ticks at %d/s through two forwarders...\n", ticks, TICK_RATE);
    uint64_t start = zkit_clock_usec();
    for (uint64_t i = 0; i < ticks; i++) {
        char tick[64];
        double price = 100.0 + (double) (i % 500) / 100.0;
        int n = snprintf(tick, sizeof tick, "%s %.2f", s_symbols[i % 3] + 7, price);
        uint64_t due = start + i * 1000000 / TICK_RATE;
        uint64_t now = zkit_clock_usec();
        if (due > now + 500)
            sleep_us((long) (due - now));
        if (zkit_publisher_publish(ticker, s_symbols[i % 3], tick, (size_t) n, 0) == -1)
            return 1;
    }

    /* Wait until every subscriber has every tick, or has said which it
       lost, and has nothing left to recover. */
    zkit_subscriber_stats_t st[NSUBS];
    bool done = false;
    while (!done && now_ms() < limit) {
        done = true;
        for (int i = 0; i < NSUBS; i++) {
            zkit_subscriber_stats(sub[i], &st[i]);
            done = done && st[i].delivered + st[i].lost >= ticks && zkit_subscriber_settled(sub[i]);
        }
        if (!done)
            sleep_us(10000);
    }

    printf("\n%-8s %10s %10s %10s %6s %6s\n", "", "delivered", "live", "recovered", "gaps", "lost");
    bool ok = done;
    for (int i = 0; i < NSUBS; i++) {
        printf("%-8s %10" PRIu64 " %10" PRIu64 " %10" PRIu64 " %6" PRIu64 " %6" PRIu64 "\n",
               subs[i].name, st[i].delivered, st[i].delivered - st[i].recovered - st[i].late,
               st[i].recovered, st[i].gaps, st[i].lost);
        /* Every tick delivered once and none lost, for all. The slow one may
           also see a live copy of a tick it already recovered: that copy is
           dropped as a duplicate, never delivered twice. */
        ok = ok && st[i].delivered == ticks && st[i].lost == 0;
        if (!subs[i].slow)
            ok = ok && st[i].gaps == 0 && st[i].duplicates == 0;
    }
    zkit_forwarder_stats(fwd_b, &fs);
    printf("\nforwarder B: %" PRIu64 " ticks in, %" PRIu64 " times a full queue dropped one\n",
           fs.msgs_in, fs.drops_hwm);
    printf("%s\n", ok ? "every subscriber has every tick, once; the fast ones never saw a gap"
                      : "FAILED: see the table");

    for (int i = 0; i < NSUBS; i++)
        zkit_subscriber_destroy(&sub[i]);
    zkit_publisher_destroy(&ticker);
    zkit_forwarder_destroy(&fwd_b);
    zkit_forwarder_destroy(&fwd_a);
    return ok ? 0 : 1;
}
