/*  control_stats.c: the STATS builder and its MessagePack encoder (see
    control.h; the schema is docs/control-protocol.md, section 4).

    Samples of a metric are kept sorted by their label values, so a lookup is
    a binary search and the encoder can emit the nested label maps in one
    pass: samples that share a prefix of label values are contiguous.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "core/control.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/mpack.h"
#include "zkit_library.h"

typedef struct {
    char *values[ZKIT__STATS_MAX_LABELS]; /* NULL past the metric's labels */
    union {
        uint64_t u; /* counters */
        int64_t i;  /* gauges */
    } v;
} s_sample_t;

typedef struct {
    char name[ZKIT__STATS_MAX_NAME + 1];
    bool gauge;
    size_t label_count;
    char labels[ZKIT__STATS_MAX_LABELS][ZKIT__STATS_MAX_LABEL + 1];
    s_sample_t *samples; /* sorted by values; kept across resets */
    size_t count;
    size_t capacity;
    char *help;
} s_metric_t;

typedef struct {
    char id[ZKIT__STATS_MAX_VALUE + 1];
    uint64_t last_seen_us;
} s_peer_t;

struct zkit__stats_t {
    char component[ZKIT__STATS_MAX_NAME + 1];
    char name[ZKIT__STATS_MAX_VALUE + 1];
    uint64_t uptime_us;
    uint64_t time_us; /* 0: take the clock at encode */
    s_metric_t *metrics;
    size_t metric_count;    /* in use */
    size_t metric_capacity; /* allocated and zero-initialised */
    size_t sample_count;    /* all metrics together */
    s_peer_t *peers;
    size_t peer_count;
    size_t peer_capacity;
    uint64_t peers_omitted;
};

/* ---- validation --------------------------------------------------------------- */

/*  [a-z][a-z0-9_]{0,max-1}                                                   */
static bool s_valid_ident(const char *text, size_t max)
{
    if (!text || !(*text >= 'a' && *text <= 'z'))
        return false;
    size_t n = 0;
    for (const char *p = text; *p; p++, n++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return n <= max;
}

/*  Strict UTF-8 (RFC 3629): no overlongs, surrogates or values past U+10FFFF.
    With no_controls, C0 controls and DEL are refused too.                   */
static bool s_valid_utf8(const char *text, size_t max, bool no_controls)
{
    if (!text)
        return false;
    const uint8_t *p = (const uint8_t *) text;
    size_t n = strlen(text);
    if (n > max)
        return false;
    const uint8_t *end = p + n;
    while (p < end) {
        uint8_t b = *p;
        if (b < 0x80) {
            if (no_controls && (b < 0x20 || b == 0x7f))
                return false;
            p++;
            continue;
        }
        size_t len = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc2 ? 2 : 0;
        if (len == 0 || b > 0xf4 || (size_t) (end - p) < len)
            return false;
        for (size_t k = 1; k < len; k++)
            if ((p[k] & 0xc0) != 0x80)
                return false;
        if ((b == 0xe0 && p[1] < 0xa0) || (b == 0xed && p[1] > 0x9f) ||
            (b == 0xf0 && p[1] < 0x90) || (b == 0xf4 && p[1] > 0x8f))
            return false;
        p += len;
    }
    return true;
}

static bool s_valid_metric_name(const char *name)
{
    if (!s_valid_ident(name, ZKIT__STATS_MAX_NAME))
        return false;
    size_t n = strlen(name);
    return !(n >= 6 && !strcmp(name + n - 6, "_total"));
}

static bool s_valid_label_name(const char *name)
{
    return s_valid_ident(name, ZKIT__STATS_MAX_LABEL) && strcmp(name, "name") &&
           strcmp(name, "peer");
}

/* ---- life cycle ----------------------------------------------------------------- */

zkit__stats_t *zkit__stats_new(const char *component, const char *name)
{
    if (!name)
        name = component;
    if (!s_valid_ident(component, ZKIT__STATS_MAX_NAME) ||
        !s_valid_utf8(name, ZKIT__STATS_MAX_VALUE, true) || !*name) {
        errno = EINVAL;
        return NULL;
    }
    zkit__stats_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    strcpy(self->component, component);
    strcpy(self->name, name);
    return self;
}

static void s_metric_clear(s_metric_t *m)
{
    for (size_t i = 0; i < m->count; i++)
        for (size_t k = 0; k < ZKIT__STATS_MAX_LABELS; k++)
            free(m->samples[i].values[k]);
    m->count = 0;
    free(m->help);
    m->help = NULL;
}

void zkit__stats_reset(zkit__stats_t *self)
{
    for (size_t i = 0; i < self->metric_count; i++)
        s_metric_clear(&self->metrics[i]);
    self->metric_count = 0;
    self->sample_count = 0;
    self->peer_count = 0;
    self->peers_omitted = 0;
    self->uptime_us = 0;
    self->time_us = 0;
}

void zkit__stats_destroy(zkit__stats_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zkit__stats_t *self = *self_p;
    zkit__stats_reset(self);
    for (size_t i = 0; i < self->metric_capacity; i++)
        free(self->metrics[i].samples);
    free(self->metrics);
    free(self->peers);
    free(self);
    *self_p = NULL;
}

void zkit__stats_set_times(zkit__stats_t *self, uint64_t uptime_us, uint64_t time_us)
{
    self->uptime_us = uptime_us;
    self->time_us = time_us;
}

/* ---- metrics -------------------------------------------------------------------- */

static s_metric_t *s_metric_find(zkit__stats_t *self, const char *name)
{
    for (size_t i = 0; i < self->metric_count; i++)
        if (!strcmp(self->metrics[i].name, name))
            return &self->metrics[i];
    return NULL;
}

/*  Finds the metric, or creates it with these label names. NULL with errno
    EINVAL when it exists with another kind or other labels.                 */
static s_metric_t *s_metric_get(zkit__stats_t *self, const char *name, bool gauge,
                                const zkit__stats_label_t *labels, size_t count)
{
    s_metric_t *m = s_metric_find(self, name);
    if (m) {
        bool same = m->gauge == gauge && m->label_count == count;
        for (size_t k = 0; same && k < count; k++)
            same = !strcmp(m->labels[k], labels[k].name);
        if (!same) {
            errno = EINVAL;
            return NULL;
        }
        return m;
    }
    if (self->metric_count == ZKIT__STATS_MAX_METRICS) {
        errno = ENOSPC;
        return NULL;
    }
    if (self->metric_count == self->metric_capacity) {
        size_t capacity = self->metric_capacity ? self->metric_capacity * 2 : 16;
        s_metric_t *grown = realloc(self->metrics, capacity * sizeof *grown);
        if (!grown) {
            errno = ENOMEM;
            return NULL;
        }
        memset(grown + self->metric_capacity, 0,
               (capacity - self->metric_capacity) * sizeof *grown);
        self->metrics = grown;
        self->metric_capacity = capacity;
    }
    m = &self->metrics[self->metric_count];
    strcpy(m->name, name);
    m->gauge = gauge;
    m->label_count = count;
    for (size_t k = 0; k < count; k++)
        strcpy(m->labels[k], labels[k].name);
    m->count = 0;
    m->help = NULL;
    self->metric_count++;
    return m;
}

/*  Orders samples by their label values, then by how many there are.       */
static int s_compare_values(char *const *a, char *const *b)
{
    for (size_t k = 0; k < ZKIT__STATS_MAX_LABELS; k++) {
        if (!a[k] || !b[k])
            return (a[k] != NULL) - (b[k] != NULL);
        int c = strcmp(a[k], b[k]);
        if (c)
            return c;
    }
    return 0;
}

/*  Binary search: the index of the sample with these values, or where it
    would go; *found says which.                                             */
static size_t s_sample_search(const s_metric_t *m, char *const *values, bool *found)
{
    size_t lo = 0, hi = m->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = s_compare_values(m->samples[mid].values, values);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

/*  The sample of m with these label values, created (zero) when missing.   */
static s_sample_t *s_sample_get(zkit__stats_t *self, s_metric_t *m,
                                const zkit__stats_label_t *labels, size_t count)
{
    char *key[ZKIT__STATS_MAX_LABELS] = {NULL};
    for (size_t k = 0; k < count; k++)
        key[k] = (char *) labels[k].value;
    bool found;
    size_t at = s_sample_search(m, key, &found);
    if (found)
        return &m->samples[at];
    if (self->sample_count == ZKIT__STATS_MAX_SAMPLES) {
        errno = ENOSPC;
        return NULL;
    }
    if (m->count == m->capacity) {
        size_t capacity = m->capacity ? m->capacity * 2 : 4;
        s_sample_t *grown = realloc(m->samples, capacity * sizeof *grown);
        if (!grown) {
            errno = ENOMEM;
            return NULL;
        }
        m->samples = grown;
        m->capacity = capacity;
    }
    s_sample_t fresh;
    memset(&fresh, 0, sizeof fresh);
    for (size_t k = 0; k < count; k++) {
        fresh.values[k] = strdup(labels[k].value);
        if (!fresh.values[k]) {
            for (size_t j = 0; j < k; j++)
                free(fresh.values[j]);
            errno = ENOMEM;
            return NULL;
        }
    }
    memmove(&m->samples[at + 1], &m->samples[at], (m->count - at) * sizeof *m->samples);
    m->samples[at] = fresh;
    m->count++;
    self->sample_count++;
    return &m->samples[at];
}

static int s_add(zkit__stats_t *self, const char *name, bool gauge,
                 const zkit__stats_label_t *labels, size_t count, uint64_t u, int64_t i)
{
    if (!self || !s_valid_metric_name(name) || count > ZKIT__STATS_MAX_LABELS ||
        (count && !labels)) {
        errno = EINVAL;
        return -1;
    }
    for (size_t k = 0; k < count; k++) {
        if (!s_valid_label_name(labels[k].name) ||
            !s_valid_utf8(labels[k].value, ZKIT__STATS_MAX_VALUE, false)) {
            errno = EINVAL;
            return -1;
        }
        for (size_t j = 0; j < k; j++)
            if (!strcmp(labels[j].name, labels[k].name)) {
                errno = EINVAL;
                return -1;
            }
    }
    /* Remember whether the metric is new, so a failed sample leaves no
       empty metric behind. */
    size_t metrics_before = self->metric_count;
    s_metric_t *m = s_metric_get(self, name, gauge, labels, count);
    if (!m)
        return -1;
    s_sample_t *sample = s_sample_get(self, m, labels, count);
    if (!sample) {
        if (self->metric_count > metrics_before)
            self->metric_count--;
        return -1;
    }
    if (gauge)
        sample->v.i = i;
    else
        sample->v.u += u;
    return 0;
}

int zkit__stats_counter_labels(zkit__stats_t *self, const char *name,
                               const zkit__stats_label_t *labels, size_t count, uint64_t value)
{
    return s_add(self, name, false, labels, count, value, 0);
}

int zkit__stats_counter(zkit__stats_t *self, const char *name, uint64_t value)
{
    return s_add(self, name, false, NULL, 0, value, 0);
}

int zkit__stats_counter1(zkit__stats_t *self, const char *name, const char *label,
                         const char *label_value, uint64_t value)
{
    zkit__stats_label_t l = {label, label_value};
    return s_add(self, name, false, &l, 1, value, 0);
}

int zkit__stats_gauge_labels(zkit__stats_t *self, const char *name,
                             const zkit__stats_label_t *labels, size_t count, int64_t value)
{
    return s_add(self, name, true, labels, count, 0, value);
}

int zkit__stats_gauge(zkit__stats_t *self, const char *name, int64_t value)
{
    return s_add(self, name, true, NULL, 0, 0, value);
}

int zkit__stats_gauge1(zkit__stats_t *self, const char *name, const char *label,
                       const char *label_value, int64_t value)
{
    zkit__stats_label_t l = {label, label_value};
    return s_add(self, name, true, &l, 1, 0, value);
}

int zkit__stats_help(zkit__stats_t *self, const char *name, const char *text)
{
    s_metric_t *m = self && name ? s_metric_find(self, name) : NULL;
    if (!m || !s_valid_utf8(text, ZKIT__STATS_MAX_HELP, true)) {
        errno = EINVAL;
        return -1;
    }
    char *copy = strdup(text);
    if (!copy) {
        errno = ENOMEM;
        return -1;
    }
    free(m->help);
    m->help = copy;
    return 0;
}

/* ---- peers ---------------------------------------------------------------------- */

int zkit__stats_peer(zkit__stats_t *self, const void *id, size_t id_size, uint64_t last_seen_us)
{
    if (!self || (!id && id_size)) {
        errno = EINVAL;
        return -1;
    }
    if (self->peer_count == ZKIT__STATS_MAX_PEERS) {
        self->peers_omitted++;
        errno = ENOSPC;
        return -1;
    }
    if (self->peer_count == self->peer_capacity) {
        size_t capacity = self->peer_capacity ? self->peer_capacity * 2 : 16;
        s_peer_t *grown = realloc(self->peers, capacity * sizeof *grown);
        if (!grown) {
            errno = ENOMEM;
            return -1;
        }
        self->peers = grown;
        self->peer_capacity = capacity;
    }
    s_peer_t *peer = &self->peers[self->peer_count++];
    const uint8_t *bytes = id;
    bool printable = id_size > 0;
    for (size_t k = 0; k < id_size && printable; k++)
        printable = bytes[k] >= 0x20 && bytes[k] <= 0x7e;
    if (printable) {
        size_t n = id_size < ZKIT__STATS_MAX_VALUE ? id_size : ZKIT__STATS_MAX_VALUE;
        memcpy(peer->id, bytes, n);
        peer->id[n] = '\0';
    }
    else {
        static const char hex[] = "0123456789abcdef";
        size_t n = 0;
        peer->id[n++] = '0';
        peer->id[n++] = 'x';
        for (size_t k = 0; k < id_size && n + 2 <= ZKIT__STATS_MAX_VALUE; k++) {
            peer->id[n++] = hex[bytes[k] >> 4];
            peer->id[n++] = hex[bytes[k] & 15];
        }
        peer->id[n] = '\0';
    }
    peer->last_seen_us = last_seen_us;
    return 0;
}

/* ---- encoding ------------------------------------------------------------------- */

typedef struct {
    uint8_t *data;
    size_t size;
    size_t capacity;
    bool failed;
} s_out_t;

/*  Room for n more bytes at data + size, or NULL (and failed) when memory
    runs out; every writer below then does nothing.                          */
static uint8_t *s_room(s_out_t *out, size_t n)
{
    if (out->failed)
        return NULL;
    if (out->capacity - out->size < n) {
        size_t capacity = out->capacity ? out->capacity : 1024;
        while (capacity - out->size < n)
            capacity *= 2;
        uint8_t *grown = realloc(out->data, capacity);
        if (!grown) {
            out->failed = true;
            return NULL;
        }
        out->data = grown;
        out->capacity = capacity;
    }
    return out->data + out->size;
}

static void s_put_uint(s_out_t *out, uint64_t v)
{
    uint8_t *p = s_room(out, 9);
    if (p)
        out->size = (size_t) (mpack_write_uint(p, v) - out->data);
}

static void s_put_int(s_out_t *out, int64_t v)
{
    uint8_t *p = s_room(out, 9);
    if (p)
        out->size = (size_t) (mpack_write_int(p, v) - out->data);
}

static void s_put_str(s_out_t *out, const char *text)
{
    size_t n = strlen(text);
    uint8_t *p = s_room(out, 5 + n);
    if (!p)
        return;
    p = mpack_write_str_header(p, (uint32_t) n);
    memcpy(p, text, n);
    out->size = (size_t) (p + n - out->data);
}

static void s_put_map(s_out_t *out, size_t n)
{
    uint8_t *p = s_room(out, 5);
    if (p)
        out->size = (size_t) (mpack_write_map_header(p, (uint32_t) n) - out->data);
}

static void s_put_array(s_out_t *out, size_t n)
{
    uint8_t *p = s_room(out, 5);
    if (p)
        out->size = (size_t) (mpack_write_array_header(p, (uint32_t) n) - out->data);
}

/*  The value tree of samples [lo, hi) of m at label depth `level`: the value
    itself once every label is consumed, else {label: {value: subtree}}.     */
static void s_put_tree(s_out_t *out, const s_metric_t *m, size_t lo, size_t hi, size_t level)
{
    /* label_count never exceeds the array (the builder refuses more); the
       second test states that bound where the indexing happens. */
    if (level >= m->label_count || level >= ZKIT__STATS_MAX_LABELS) {
        if (m->gauge)
            s_put_int(out, m->samples[lo].v.i);
        else
            s_put_uint(out, m->samples[lo].v.u);
        return;
    }
    size_t groups = 0;
    for (size_t i = lo; i < hi; i++)
        if (i == lo || strcmp(m->samples[i].values[level], m->samples[i - 1].values[level]))
            groups++;
    s_put_map(out, 1);
    s_put_str(out, m->labels[level]);
    s_put_map(out, groups);
    size_t start = lo;
    for (size_t i = lo + 1; i <= hi; i++) {
        if (i < hi && !strcmp(m->samples[i].values[level], m->samples[start].values[level]))
            continue;
        s_put_str(out, m->samples[start].values[level]);
        s_put_tree(out, m, start, i, level + 1);
        start = i;
    }
}

static void s_put_metrics(s_out_t *out, const zkit__stats_t *self, bool gauges)
{
    size_t n = 0;
    for (size_t i = 0; i < self->metric_count; i++)
        n += self->metrics[i].gauge == gauges;
    s_put_map(out, n);
    for (size_t i = 0; i < self->metric_count; i++) {
        const s_metric_t *m = &self->metrics[i];
        if (m->gauge != gauges)
            continue;
        s_put_str(out, m->name);
        s_put_tree(out, m, 0, m->count, 0);
    }
}

int zkit__stats_encode(const zkit__stats_t *self, uint8_t **data, size_t *size)
{
    s_out_t out = {NULL, 0, 0, false};
    s_put_map(&out, 10);
    s_put_str(&out, "schema");
    s_put_uint(&out, ZKIT__STATS_SCHEMA);
    s_put_str(&out, "component");
    s_put_str(&out, self->component);
    s_put_str(&out, "name");
    s_put_str(&out, self->name);
    s_put_str(&out, "time_us");
    s_put_uint(&out, self->time_us ? self->time_us : zkit_clock_usec());
    s_put_str(&out, "uptime_us");
    s_put_uint(&out, self->uptime_us);
    s_put_str(&out, "counters");
    s_put_metrics(&out, self, false);
    s_put_str(&out, "gauges");
    s_put_metrics(&out, self, true);

    size_t helps = 0;
    for (size_t i = 0; i < self->metric_count; i++)
        helps += self->metrics[i].help != NULL;
    s_put_str(&out, "help");
    s_put_map(&out, helps);
    for (size_t i = 0; i < self->metric_count; i++)
        if (self->metrics[i].help) {
            s_put_str(&out, self->metrics[i].name);
            s_put_str(&out, self->metrics[i].help);
        }

    s_put_str(&out, "peers");
    s_put_array(&out, self->peer_count);
    for (size_t i = 0; i < self->peer_count; i++) {
        s_put_map(&out, 2);
        s_put_str(&out, "id");
        s_put_str(&out, self->peers[i].id);
        s_put_str(&out, "last_seen_us");
        s_put_uint(&out, self->peers[i].last_seen_us);
    }
    s_put_str(&out, "peers_omitted");
    s_put_uint(&out, self->peers_omitted);

    if (out.failed) {
        free(out.data);
        errno = ENOMEM;
        return -1;
    }
    *data = out.data;
    *size = out.size;
    return 0;
}
