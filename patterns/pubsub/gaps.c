/*  gaps.c: the per-source gap detector (see gaps.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "pubsub/gaps.h"

#include <czmq.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct _zkit__gaps_t {
    zhashx_t *streams; /* src -> zkit__gaps_stream_t                        */
    size_t max_sources;
    size_t max_gaps;
    zkit__gaps_event_fn *on_event;
    void *arg;
    void (*free_user)(void *user);
};

static void s_stream_free(void **item)
{
    /* Installed as the table's destructor; the user pointer is released by
       zkit__gaps_destroy, which knows free_user. */
    zkit__gaps_stream_t *stream = (zkit__gaps_stream_t *) *item;
    if (!stream)
        return;
    free(stream->src);
    free(stream->missing);
    free(stream);
    *item = NULL;
}

zkit__gaps_t *zkit__gaps_new(size_t max_sources, size_t max_gaps, zkit__gaps_event_fn *on_event,
                             void *arg, void (*free_user)(void *user))
{
    if (max_sources == 0 || max_gaps == 0) {
        errno = EINVAL;
        return NULL;
    }
    zkit__gaps_t *self = calloc(1, sizeof *self);
    if (!self || !(self->streams = zhashx_new())) {
        free(self);
        errno = ENOMEM;
        return NULL;
    }
    zhashx_set_destructor(self->streams, s_stream_free);
    self->max_sources = max_sources;
    self->max_gaps = max_gaps;
    self->on_event = on_event;
    self->arg = arg;
    self->free_user = free_user;
    return self;
}

void zkit__gaps_destroy(zkit__gaps_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zkit__gaps_t *self = *self_p;
    if (self->free_user)
        for (zkit__gaps_stream_t *s = zhashx_first(self->streams); s;
             s = zhashx_next(self->streams)) {
            if (s->user)
                self->free_user(s->user);
            s->user = NULL;
        }
    zhashx_destroy(&self->streams);
    free(self);
    *self_p = NULL;
}

zkit__gaps_stream_t *zkit__gaps_stream(zkit__gaps_t *self, const char *src, bool create)
{
    zkit__gaps_stream_t *stream = zhashx_lookup(self->streams, src);
    if (stream || !create || zhashx_size(self->streams) >= self->max_sources)
        return stream;
    stream = calloc(1, sizeof *stream);
    if (!stream)
        return NULL;
    stream->src = strdup(src);
    if (!stream->src || zhashx_insert(self->streams, src, stream) != 0) {
        free(stream->src);
        free(stream);
        return NULL;
    }
    return stream;
}

size_t zkit__gaps_count(const zkit__gaps_t *self)
{
    return zhashx_size(self->streams);
}

void zkit__gaps_foreach(zkit__gaps_t *self, void (*fn)(zkit__gaps_stream_t *stream, void *arg),
                        void *arg)
{
    /* zhashx_first/next keep a cursor in the table: collect first so fn may
       look streams up. */
    size_t n = zhashx_size(self->streams);
    if (n == 0)
        return;
    zkit__gaps_stream_t **all = malloc(n * sizeof *all);
    if (!all)
        return;
    size_t i = 0;
    for (zkit__gaps_stream_t *s = zhashx_first(self->streams); s && i < n;
         s = zhashx_next(self->streams))
        all[i++] = s;
    for (size_t k = 0; k < i; k++)
        fn(all[k], arg);
    free(all);
}

static void s_emit(zkit__gaps_t *self, zkit__gaps_stream_t *stream, zkit_stream_event_t *event)
{
    event->src = stream->src;
    if (self->on_event)
        self->on_event(stream, event, self->arg);
}

static void s_emit_lost(zkit__gaps_t *self, zkit__gaps_stream_t *stream, uint64_t from, uint64_t to,
                        zkit_lost_reason_t reason)
{
    if (to != UINT64_MAX)
        stream->counters.lost += to - from + 1;
    zkit_stream_event_t event = {
        .kind = ZKIT_STREAM_LOST, .epoch = stream->epoch, .from = from, .to = to, .reason = reason};
    s_emit(self, stream, &event);
}

/*  Index of the first range whose `to` is >= seq (nmissing when none).      */
static size_t s_find(const zkit__gaps_stream_t *stream, uint64_t seq)
{
    size_t lo = 0, hi = stream->nmissing;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (stream->missing[mid].to < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

bool zkit__gaps_is_missing(const zkit__gaps_stream_t *stream, uint64_t seq)
{
    size_t i = s_find(stream, seq);
    return i < stream->nmissing && stream->missing[i].from <= seq;
}

uint64_t zkit__gaps_low_water(const zkit__gaps_stream_t *stream)
{
    return stream->nmissing ? stream->missing[0].from : stream->next;
}

static void s_remove_range_at(zkit__gaps_stream_t *stream, size_t i)
{
    memmove(&stream->missing[i], &stream->missing[i + 1],
            (stream->nmissing - i - 1) * sizeof *stream->missing);
    stream->nmissing--;
}

/*  Makes room for one more range, giving up the oldest when the stream has
    max_gaps already. Returns 0, or -1 when out of memory.                   */
static int s_reserve(zkit__gaps_t *self, zkit__gaps_stream_t *stream)
{
    while (stream->nmissing >= self->max_gaps) {
        zkit__range_t oldest = stream->missing[0];
        s_remove_range_at(stream, 0);
        stream->missing_now -= oldest.to - oldest.from + 1;
        s_emit_lost(self, stream, oldest.from, oldest.to, ZKIT_LOST_OVERFLOW);
    }
    if (stream->nmissing < stream->missing_capacity)
        return 0;
    size_t want = stream->missing_capacity ? stream->missing_capacity * 2 : 8;
    if (want > self->max_gaps)
        want = self->max_gaps;
    zkit__range_t *grown = realloc(stream->missing, want * sizeof *grown);
    if (!grown)
        return -1;
    stream->missing = grown;
    stream->missing_capacity = want;
    return 0;
}

static void s_add_gap(zkit__gaps_t *self, zkit__gaps_stream_t *stream, uint64_t from, uint64_t to)
{
    uint64_t n = to - from + 1;
    stream->counters.gaps++;
    stream->counters.missing += n;
    zkit_stream_event_t event = {
        .kind = ZKIT_STREAM_GAP, .epoch = stream->epoch, .from = from, .to = to};
    s_emit(self, stream, &event);
    if (s_reserve(self, stream) == -1) {
        /* Out of memory: the range cannot be tracked, so it cannot be
           recovered; say so rather than forget it. */
        s_emit_lost(self, stream, from, to, ZKIT_LOST_OVERFLOW);
        return;
    }
    stream->missing[stream->nmissing++] = (zkit__range_t){from, to};
    stream->missing_now += n;
}

/*  Removes seq from the missing range at index i (which holds it).          */
static void s_fill(zkit__gaps_t *self, zkit__gaps_stream_t *stream, size_t i, uint64_t seq)
{
    zkit__range_t *r = &stream->missing[i];
    stream->missing_now--;
    if (r->from == r->to) {
        s_remove_range_at(stream, i);
        return;
    }
    if (seq == r->from) {
        r->from++;
        return;
    }
    if (seq == r->to) {
        r->to--;
        return;
    }
    /* A fill in the middle splits the range in two. */
    zkit__range_t upper = {seq + 1, r->to};
    r->to = seq - 1;
    if (s_reserve(self, stream) == -1) {
        /* Cannot split: give the upper part up rather than track it wrong. */
        stream->missing_now -= upper.to - upper.from + 1;
        s_emit_lost(self, stream, upper.from, upper.to, ZKIT_LOST_OVERFLOW);
        return;
    }
    /* s_reserve may have dropped ranges from the front: find ours again. */
    i = s_find(stream, seq);
    memmove(&stream->missing[i + 1], &stream->missing[i],
            (stream->nmissing - i) * sizeof *stream->missing);
    stream->missing[i] = upper;
    stream->nmissing++;
}

bool zkit__gaps_extend(zkit__gaps_t *self, zkit__gaps_stream_t *stream, uint64_t last)
{
    if (stream->next == 0 || last < stream->next || last == UINT64_MAX)
        return false;
    uint64_t from = stream->next;
    stream->next = last + 1;
    s_add_gap(self, stream, from, last);
    return true;
}

void zkit__gaps_set_position(zkit__gaps_stream_t *stream, uint64_t epoch, uint64_t next)
{
    stream->epoch = epoch;
    stream->next = next ? next : 1;
    stream->nmissing = 0;
    stream->missing_now = 0;
}

void zkit__gaps_restart(zkit__gaps_t *self, zkit__gaps_stream_t *stream, uint64_t new_epoch)
{
    while (stream->nmissing) {
        zkit__range_t r = stream->missing[0];
        s_remove_range_at(stream, 0);
        stream->missing_now -= r.to - r.from + 1;
        s_emit_lost(self, stream, r.from, r.to, ZKIT_LOST_RESTART);
    }
    stream->counters.restarts++;
    zkit_stream_event_t event = {.kind = ZKIT_STREAM_RESTART,
                                 .epoch = stream->epoch,
                                 .from = stream->next,
                                 .to = stream->next,
                                 .new_epoch = new_epoch};
    s_emit(self, stream, &event);
    zkit__gaps_set_position(stream, new_epoch, 1);
}

zkit__gaps_verdict_t zkit__gaps_observe(zkit__gaps_t *self, zkit__gaps_stream_t *stream,
                                        uint64_t epoch, uint64_t seq, bool replayed)
{
    if (stream->next == 0) {
        /* First message of a source never seen: a late joiner starts here,
           there is nothing before it to miss. */
        stream->epoch = epoch;
        stream->next = seq + 1;
        stream->counters.in_order++;
        return ZKIT__GAPS_NEW;
    }
    if (epoch != stream->epoch) {
        if (epoch < stream->epoch) {
            stream->counters.stale++;
            return ZKIT__GAPS_STALE;
        }
        zkit__gaps_restart(self, stream, epoch);
    }
    else if (epoch == 0 && seq == 1 && stream->next > 2)
        zkit__gaps_restart(self, stream, 0);

    if (seq == stream->next) {
        stream->next++;
        stream->counters.in_order++;
        return ZKIT__GAPS_NEW;
    }
    if (seq > stream->next) {
        s_add_gap(self, stream, stream->next, seq - 1);
        stream->next = seq + 1;
        return ZKIT__GAPS_GAP;
    }
    size_t i = s_find(stream, seq);
    if (i < stream->nmissing && stream->missing[i].from <= seq) {
        s_fill(self, stream, i, seq);
        if (replayed)
            stream->counters.recovered++;
        else
            stream->counters.late++;
        return ZKIT__GAPS_FILL;
    }
    stream->counters.duplicates++;
    return ZKIT__GAPS_DUPLICATE;
}

void zkit__gaps_declare_lost(zkit__gaps_t *self, zkit__gaps_stream_t *stream, uint64_t from,
                             uint64_t to, zkit_lost_reason_t reason)
{
    if (from == 0 || from > to || stream->next == 0)
        return;
    /* The missing ranges that meet [from, to], lowest first. */
    size_t i = s_find(stream, from);
    while (i < stream->nmissing && stream->missing[i].from <= to) {
        zkit__range_t *r = &stream->missing[i];
        uint64_t lo = r->from > from ? r->from : from;
        uint64_t hi = r->to < to ? r->to : to;
        stream->missing_now -= hi - lo + 1;
        if (lo == r->from && hi == r->to)
            s_remove_range_at(stream, i);
        else if (lo == r->from) {
            r->from = hi + 1;
            i++;
        }
        else if (hi == r->to) {
            r->to = lo - 1;
            i++;
        }
        else {
            /* [from, to] inside one range: keep both ends of it. */
            zkit__range_t upper = {hi + 1, r->to};
            r->to = lo - 1;
            if (s_reserve(self, stream) == 0) {
                size_t at = s_find(stream, upper.from);
                memmove(&stream->missing[at + 1], &stream->missing[at],
                        (stream->nmissing - at) * sizeof *stream->missing);
                stream->missing[at] = upper;
                stream->nmissing++;
            }
            else {
                stream->missing_now -= upper.to - upper.from + 1;
                s_emit_lost(self, stream, upper.from, upper.to, ZKIT_LOST_OVERFLOW);
            }
            s_emit_lost(self, stream, lo, hi, reason);
            return;
        }
        s_emit_lost(self, stream, lo, hi, reason);
    }
    /* What was never seen at all: at and above next. */
    if (to >= stream->next) {
        uint64_t lo = from > stream->next ? from : stream->next;
        s_emit_lost(self, stream, lo, to, reason);
        if (to != UINT64_MAX)
            stream->next = to + 1;
    }
}
