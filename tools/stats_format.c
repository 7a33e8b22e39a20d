/*  stats_format.c: prints a STATS reply (see stats_format.h).

    The reply is first parsed into a flat list of samples (metric, kind,
    label names and values, value) that points into the reply's bytes; the
    three printers then work from that list. Nested label maps are at most
    ZKIT__STATS_MAX_LABELS deep, as the schema allows, and every count is
    bounded, so a hostile reply costs bounded time and memory.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "stats_format.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/control.h"
#include "core/mpack.h"

#define S_MAX_SAMPLES 65536 /* more than any zkit component sends */
#define S_MAX_PEERS   65536
#define S_MAX_HELP    4096
#define S_SKIP_DEPTH  16 /* nesting allowed inside keys we do not know */
#define S_TABLE_WIDTH 64 /* widest series name column in the table */

typedef struct {
    const uint8_t *data;
    uint32_t size;
} s_str_t;

typedef struct {
    s_str_t metric;
    bool gauge;
    size_t label_count;
    s_str_t label_names[ZKIT__STATS_MAX_LABELS];
    s_str_t label_values[ZKIT__STATS_MAX_LABELS];
    bool negative; /* then i holds the value, else u */
    uint64_t u;
    int64_t i;
} s_sample_t;

typedef struct {
    s_str_t metric;
    s_str_t text;
} s_help_t;

typedef struct {
    s_str_t id;
    uint64_t last_seen_us;
} s_peer_t;

typedef struct {
    uint64_t schema, time_us, uptime_us, peers_omitted;
    s_str_t component, name;
    unsigned seen; /* bit per required key */
    s_sample_t *samples;
    size_t sample_count, sample_capacity;
    s_help_t *help;
    size_t help_count, help_capacity;
    s_peer_t *peers;
    size_t peer_count, peer_capacity;
} s_stats_t;

enum {
    S_SEEN_SCHEMA = 1,
    S_SEEN_COMPONENT = 2,
    S_SEEN_NAME = 4,
    S_SEEN_TIME = 8,
    S_SEEN_UPTIME = 16,
    S_SEEN_COUNTERS = 32,
    S_SEEN_GAUGES = 64,
    S_SEEN_PEERS = 128,
    S_SEEN_ALL = 255
};

int zkit__stats_format_parse(const char *text, zkit__stats_format_t *out)
{
    if (!strcmp(text, "table"))
        *out = ZKIT__STATS_FORMAT_TABLE;
    else if (!strcmp(text, "json"))
        *out = ZKIT__STATS_FORMAT_JSON;
    else if (!strcmp(text, "prometheus"))
        *out = ZKIT__STATS_FORMAT_PROMETHEUS;
    else
        return -1;
    return 0;
}

/* ---- parsing -------------------------------------------------------------------- */

/*  Grows *array (of elements of size bytes) to hold one more. 0 or -1.    */
static int s_grow(void **array, size_t *capacity, size_t count, size_t size, size_t max)
{
    if (count < *capacity)
        return 0;
    if (count >= max)
        return -1;
    size_t grown = *capacity ? *capacity * 2 : 16;
    void *p = realloc(*array, grown * size);
    if (!p)
        return -1;
    *array = p;
    *capacity = grown;
    return 0;
}

static bool s_read_str(mpack_reader_t *r, s_str_t *out)
{
    mpack_item_t it;
    if (mpack_read(r, &it) != MPACK_OK || it.type != MPACK_STR)
        return false;
    out->data = it.data;
    out->size = it.count;
    return true;
}

static bool s_read_uint(mpack_reader_t *r, uint64_t *out)
{
    mpack_item_t it;
    if (mpack_read(r, &it) != MPACK_OK || it.type != MPACK_UINT)
        return false;
    *out = it.u;
    return true;
}

static bool s_key_is(const s_str_t *key, const char *name)
{
    size_t n = strlen(name);
    return key->size == n && !memcmp(key->data, name, n);
}

static bool s_str_equal(const s_str_t *a, const s_str_t *b)
{
    return a->size == b->size && !memcmp(a->data, b->data, a->size);
}

/*  One value tree: an integer, or {label: {value: tree}} (section 4.3). */
static const char *s_parse_tree(mpack_reader_t *r, s_stats_t *st, s_sample_t sample)
{
    mpack_item_t it = {0};
    if (mpack_read(r, &it) != MPACK_OK)
        return "truncated or invalid MessagePack";
    if (it.type == MPACK_UINT || (it.type == MPACK_INT && sample.gauge)) {
        sample.negative = it.type == MPACK_INT;
        sample.u = it.u;
        sample.i = it.i;
        if (s_grow((void **) &st->samples, &st->sample_capacity, st->sample_count,
                   sizeof *st->samples, S_MAX_SAMPLES) == -1)
            return "too many samples";
        st->samples[st->sample_count++] = sample;
        return NULL;
    }
    if (it.type != MPACK_MAP || it.count != 1)
        return "a metric value is neither an integer nor a one-key label map";
    if (sample.label_count == ZKIT__STATS_MAX_LABELS)
        return "labels nested too deep";
    s_str_t label;
    if (!s_read_str(r, &label))
        return "a label name is not a string";
    if (mpack_read(r, &it) != MPACK_OK || it.type != MPACK_MAP)
        return "label values are not a map";
    size_t n = sample.label_count++;
    sample.label_names[n] = label;
    for (uint32_t k = 0; k < it.count; k++) {
        if (!s_read_str(r, &sample.label_values[n]))
            return "a label value is not a string";
        const char *error = s_parse_tree(r, st, sample);
        if (error)
            return error;
    }
    return NULL;
}

static const char *s_parse_metrics(mpack_reader_t *r, s_stats_t *st, bool gauge)
{
    mpack_item_t it;
    if (mpack_read(r, &it) != MPACK_OK || it.type != MPACK_MAP)
        return gauge ? "gauges is not a map" : "counters is not a map";
    for (uint32_t k = 0; k < it.count; k++) {
        s_sample_t sample;
        memset(&sample, 0, sizeof sample);
        sample.gauge = gauge;
        if (!s_read_str(r, &sample.metric))
            return "a metric name is not a string";
        const char *error = s_parse_tree(r, st, sample);
        if (error)
            return error;
    }
    return NULL;
}

static const char *s_parse_help(mpack_reader_t *r, s_stats_t *st)
{
    mpack_item_t it;
    if (mpack_read(r, &it) != MPACK_OK || it.type != MPACK_MAP)
        return "help is not a map";
    for (uint32_t k = 0; k < it.count; k++) {
        s_help_t help;
        if (!s_read_str(r, &help.metric) || !s_read_str(r, &help.text))
            return "help is not a map of strings";
        if (s_grow((void **) &st->help, &st->help_capacity, st->help_count, sizeof *st->help,
                   S_MAX_HELP) == -1)
            return "too many help texts";
        st->help[st->help_count++] = help;
    }
    return NULL;
}

static const char *s_parse_peers(mpack_reader_t *r, s_stats_t *st)
{
    mpack_item_t it;
    if (mpack_read(r, &it) != MPACK_OK || it.type != MPACK_ARRAY)
        return "peers is not an array";
    for (uint32_t k = 0; k < it.count; k++) {
        mpack_item_t map;
        if (mpack_read(r, &map) != MPACK_OK || map.type != MPACK_MAP)
            return "a peer is not a map";
        s_peer_t peer;
        unsigned seen = 0;
        for (uint32_t j = 0; j < map.count; j++) {
            s_str_t key;
            if (!s_read_str(r, &key))
                return "a peer key is not a string";
            if (s_key_is(&key, "id")) {
                if (!s_read_str(r, &peer.id))
                    return "a peer id is not a string";
                seen |= 1;
            }
            else if (s_key_is(&key, "last_seen_us")) {
                if (!s_read_uint(r, &peer.last_seen_us))
                    return "last_seen_us is not an unsigned integer";
                seen |= 2;
            }
            else if (mpack_skip(r, 1, S_SKIP_DEPTH) != MPACK_OK)
                return "truncated or invalid MessagePack";
        }
        if (seen != 3)
            return "a peer lacks id or last_seen_us";
        if (s_grow((void **) &st->peers, &st->peer_capacity, st->peer_count, sizeof *st->peers,
                   S_MAX_PEERS) == -1)
            return "too many peers";
        st->peers[st->peer_count++] = peer;
    }
    return NULL;
}

static const char *s_parse(const void *data, size_t size, s_stats_t *st)
{
    mpack_reader_t r;
    mpack_reader_init(&r, data, size);
    mpack_item_t it;
    if (mpack_read(&r, &it) != MPACK_OK || it.type != MPACK_MAP)
        return "the reply is not a MessagePack map";
    for (uint32_t k = 0; k < it.count; k++) {
        s_str_t key;
        const char *error = NULL;
        if (!s_read_str(&r, &key))
            return "a key is not a string";
        if (s_key_is(&key, "schema")) {
            if (!s_read_uint(&r, &st->schema))
                return "schema is not an unsigned integer";
            st->seen |= S_SEEN_SCHEMA;
        }
        else if (s_key_is(&key, "component") || s_key_is(&key, "name")) {
            bool component = s_key_is(&key, "component");
            if (!s_read_str(&r, component ? &st->component : &st->name))
                return "component or name is not a string";
            st->seen |= component ? S_SEEN_COMPONENT : S_SEEN_NAME;
        }
        else if (s_key_is(&key, "time_us") || s_key_is(&key, "uptime_us")) {
            bool time = s_key_is(&key, "time_us");
            if (!s_read_uint(&r, time ? &st->time_us : &st->uptime_us))
                return "time_us or uptime_us is not an unsigned integer";
            st->seen |= time ? S_SEEN_TIME : S_SEEN_UPTIME;
        }
        else if (s_key_is(&key, "peers_omitted")) {
            if (!s_read_uint(&r, &st->peers_omitted))
                return "peers_omitted is not an unsigned integer";
        }
        else if (s_key_is(&key, "counters") || s_key_is(&key, "gauges")) {
            bool gauges = s_key_is(&key, "gauges");
            error = s_parse_metrics(&r, st, gauges);
            st->seen |= gauges ? S_SEEN_GAUGES : S_SEEN_COUNTERS;
        }
        else if (s_key_is(&key, "help"))
            error = s_parse_help(&r, st);
        else if (s_key_is(&key, "peers")) {
            error = s_parse_peers(&r, st);
            st->seen |= S_SEEN_PEERS;
        }
        else if (mpack_skip(&r, 1, S_SKIP_DEPTH) != MPACK_OK)
            return "truncated or invalid MessagePack";
        if (error)
            return error;
    }
    if (mpack_remaining(&r) != 0)
        return "bytes after the map";
    if (st->seen != S_SEEN_ALL)
        return "a required key is missing";
    if (st->schema != ZKIT__STATS_SCHEMA)
        return "schema version not supported by this zkit";
    return NULL;
}

static void s_stats_free(s_stats_t *st)
{
    free(st->samples);
    free(st->help);
    free(st->peers);
}

/* ---- text, escaped for where it goes ------------------------------------------- */

/*  For a terminal: valid UTF-8 stays, control bytes and invalid sequences
    become \xNN, so a peer cannot send escape sequences to the screen.    */
static void s_put_text(zkit__cat_buf_t *buf, const s_str_t *s)
{
    size_t i = 0;
    while (i < s->size) {
        uint8_t c = s->data[i];
        size_t n = c >= 0x80 ? zkit__cat_utf8_sequence(s->data + i, s->size - i) : 1;
        if (c < 0x20 || c == 0x7f || n == 0) {
            zkit__cat_buf_printf(buf, "\\x%02x", c);
            i++;
        }
        else {
            zkit__cat_buf_append(buf, s->data + i, n);
            i += n;
        }
    }
}

/*  Prometheus label values and HELP text: backslash and line feed escaped
    (and the double quote in label values), invalid UTF-8 as U+FFFD.      */
static void s_put_prom_escaped(zkit__cat_buf_t *buf, const s_str_t *s, bool quote)
{
    size_t i = 0;
    while (i < s->size) {
        uint8_t c = s->data[i];
        size_t n = c >= 0x80 ? zkit__cat_utf8_sequence(s->data + i, s->size - i) : 1;
        if (n == 0) {
            zkit__cat_buf_puts(buf, "\xef\xbf\xbd");
            i++;
            continue;
        }
        if (c == '\\')
            zkit__cat_buf_puts(buf, "\\\\");
        else if (c == '\n')
            zkit__cat_buf_puts(buf, "\\n");
        else if (c == '"' && quote)
            zkit__cat_buf_puts(buf, "\\\"");
        else
            zkit__cat_buf_append(buf, s->data + i, n);
        i += n;
    }
}

/*  A Prometheus name: [a-zA-Z0-9_] kept, anything else '_', a leading digit
    prefixed with '_'.                                                        */
static void s_put_prom_name(zkit__cat_buf_t *buf, const s_str_t *s)
{
    if (s->size == 0 || (s->data[0] >= '0' && s->data[0] <= '9'))
        zkit__cat_buf_putc(buf, '_');
    for (uint32_t i = 0; i < s->size; i++) {
        char c = (char) s->data[i];
        bool ok =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        zkit__cat_buf_putc(buf, ok ? c : '_');
    }
}

/*  A label name, renamed "exported_..." when it would clash with the labels
    this printer adds or with the reserved "__" prefix.                     */
static void s_put_prom_label(zkit__cat_buf_t *buf, const s_str_t *s)
{
    if (s_key_is(s, "name") || s_key_is(s, "peer") ||
        (s->size >= 2 && s->data[0] == '_' && s->data[1] == '_'))
        zkit__cat_buf_puts(buf, "exported_");
    s_put_prom_name(buf, s);
}

static void s_put_value(zkit__cat_buf_t *buf, const s_sample_t *sample)
{
    if (sample->negative)
        zkit__cat_buf_printf(buf, "%" PRId64, sample->i);
    else
        zkit__cat_buf_printf(buf, "%" PRIu64, sample->u);
}

static void s_put_duration(zkit__cat_buf_t *buf, uint64_t us)
{
    uint64_t s = us / 1000000;
    if (s < 60)
        zkit__cat_buf_printf(buf, "%.1fs", (double) us / 1e6);
    else if (s < 3600)
        zkit__cat_buf_printf(buf, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
    else if (s < 86400)
        zkit__cat_buf_printf(buf, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, s / 60 % 60);
    else
        zkit__cat_buf_printf(buf, "%" PRIu64 "d%02" PRIu64 "h", s / 86400, s / 3600 % 24);
}

/* ---- table ---------------------------------------------------------------------- */

static void s_put_series(zkit__cat_buf_t *buf, const s_sample_t *sample)
{
    s_put_text(buf, &sample->metric);
    if (!sample->label_count)
        return;
    zkit__cat_buf_putc(buf, '{');
    for (size_t k = 0; k < sample->label_count; k++) {
        if (k)
            zkit__cat_buf_putc(buf, ',');
        s_put_text(buf, &sample->label_names[k]);
        zkit__cat_buf_putc(buf, '=');
        s_put_text(buf, &sample->label_values[k]);
    }
    zkit__cat_buf_putc(buf, '}');
}

static void s_pad(zkit__cat_buf_t *buf, size_t from, size_t width)
{
    while (buf->size - from < width)
        zkit__cat_buf_putc(buf, ' ');
}

static void s_table(zkit__cat_buf_t *buf, const s_stats_t *st)
{
    zkit__cat_buf_puts(buf, "component  ");
    s_put_text(buf, &st->component);
    zkit__cat_buf_puts(buf, "\nname       ");
    s_put_text(buf, &st->name);
    zkit__cat_buf_puts(buf, "\nuptime     ");
    s_put_duration(buf, st->uptime_us);
    time_t when = (time_t) (st->time_us / 1000000);
    struct tm tm;
    char stamp[32] = "?";
    if (gmtime_r(&when, &tm))
        strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
    zkit__cat_buf_printf(buf, "\ntime       %s\n", stamp);

    /* The series column is as wide as the widest name, within reason. */
    size_t width = 24;
    zkit__cat_buf_t scratch = {0};
    for (size_t i = 0; i < st->sample_count; i++) {
        zkit__cat_buf_clear(&scratch);
        s_put_series(&scratch, &st->samples[i]);
        if (scratch.size > width)
            width = scratch.size < S_TABLE_WIDTH ? scratch.size : S_TABLE_WIDTH;
    }
    zkit__cat_buf_free(&scratch);
    for (int gauges = 0; gauges < 2; gauges++) {
        zkit__cat_buf_putc(buf, '\n');
        size_t start = buf->size;
        zkit__cat_buf_puts(buf, gauges ? "GAUGE" : "COUNTER");
        s_pad(buf, start, width + 2);
        zkit__cat_buf_puts(buf, "VALUE\n");
        for (size_t i = 0; i < st->sample_count; i++) {
            const s_sample_t *sample = &st->samples[i];
            if (sample->gauge != (gauges == 1))
                continue;
            start = buf->size;
            s_put_series(buf, sample);
            s_pad(buf, start, width + 2);
            s_put_value(buf, sample);
            zkit__cat_buf_putc(buf, '\n');
        }
    }
    zkit__cat_buf_putc(buf, '\n');
    size_t start = buf->size;
    zkit__cat_buf_puts(buf, "PEER");
    s_pad(buf, start, width + 2);
    zkit__cat_buf_puts(buf, "LAST SEEN\n");
    for (size_t i = 0; i < st->peer_count; i++) {
        const s_peer_t *peer = &st->peers[i];
        start = buf->size;
        s_put_text(buf, &peer->id);
        s_pad(buf, start, width + 2);
        uint64_t age = st->time_us > peer->last_seen_us ? st->time_us - peer->last_seen_us : 0;
        s_put_duration(buf, age);
        zkit__cat_buf_puts(buf, " ago\n");
    }
    if (st->peers_omitted)
        zkit__cat_buf_printf(buf, "(%" PRIu64 " more peers not listed)\n", st->peers_omitted);
}

/* ---- Prometheus ------------------------------------------------------------------- */

typedef struct {
    zkit__cat_buf_t names; /* family names, each NUL-terminated */
} s_families_t;

/*  True when family was not written yet (and remembers it).              */
static bool s_family_new(s_families_t *f, const char *family)
{
    for (size_t at = 0; at < f->names.size; at += strlen(f->names.data + at) + 1)
        if (!strcmp(f->names.data + at, family))
            return false;
    zkit__cat_buf_append(&f->names, family, strlen(family) + 1);
    return true;
}

/*  Writes the HELP and TYPE lines of a family; false when it repeats one. */
static bool s_prom_family(zkit__cat_buf_t *buf, s_families_t *f, const char *family,
                          const char *type, const s_str_t *help)
{
    if (!family || !s_family_new(f, family))
        return false;
    zkit__cat_buf_printf(buf, "# HELP %s ", family);
    s_put_prom_escaped(buf, help, false);
    zkit__cat_buf_printf(buf, "\n# TYPE %s %s\n", family, type);
    return true;
}

/*  family{name="<instance>"  (the caller adds more labels and the brace). */
static void s_prom_series(zkit__cat_buf_t *buf, const char *family, const s_stats_t *st)
{
    zkit__cat_buf_printf(buf, "%s{name=\"", family);
    s_put_prom_escaped(buf, &st->name, true);
    zkit__cat_buf_putc(buf, '"');
}

static s_str_t s_cstr(const char *text)
{
    s_str_t s = {(const uint8_t *) text, (uint32_t) strlen(text)};
    return s;
}

static void s_prometheus(zkit__cat_buf_t *buf, const s_stats_t *st, size_t *skipped)
{
    s_families_t families = {{0}};
    zkit__cat_buf_t prefix = {0}, family = {0}, text = {0};
    zkit__cat_buf_puts(&prefix, "zkit_");
    s_put_prom_name(&prefix, &st->component);
    zkit__cat_buf_putc(&prefix, '_');
    if (prefix.failed) {
        buf->failed = true;
        zkit__cat_buf_free(&prefix);
        return;
    }
    /* The buffers keep a NUL after their bytes: .data is a C string. */
    zkit__cat_buf_printf(&family, "%suptime_seconds", prefix.data);
    s_str_t help = s_cstr("Seconds since the component started.");
    if (s_prom_family(buf, &families, family.data, "gauge", &help)) {
        s_prom_series(buf, family.data, st);
        zkit__cat_buf_printf(buf, "} %.6f\n", (double) st->uptime_us / 1e6);
    }
    zkit__cat_buf_clear(&family);
    zkit__cat_buf_printf(&family, "%speers", prefix.data);
    help = s_cstr("Peers the component knows, listed or not.");
    if (s_prom_family(buf, &families, family.data, "gauge", &help)) {
        s_prom_series(buf, family.data, st);
        zkit__cat_buf_printf(buf, "} %" PRIu64 "\n", st->peer_count + st->peers_omitted);
    }
    zkit__cat_buf_clear(&family);
    zkit__cat_buf_printf(&family, "%speer_last_seen_timestamp_seconds", prefix.data);
    help = s_cstr("When the peer was last seen, in seconds since the Unix epoch.");
    if (st->peer_count && s_prom_family(buf, &families, family.data, "gauge", &help)) {
        for (size_t i = 0; i < st->peer_count; i++) {
            s_prom_series(buf, family.data, st);
            zkit__cat_buf_puts(buf, ",peer=\"");
            s_put_prom_escaped(buf, &st->peers[i].id, true);
            zkit__cat_buf_printf(buf, "\"} %.6f\n", (double) st->peers[i].last_seen_us / 1e6);
        }
    }

    for (size_t i = 0; i < st->sample_count;) {
        const s_sample_t *first = &st->samples[i];
        size_t end = i + 1;
        while (end < st->sample_count && st->samples[end].gauge == first->gauge &&
               s_str_equal(&st->samples[end].metric, &first->metric))
            end++;
        zkit__cat_buf_clear(&family);
        zkit__cat_buf_puts(&family, prefix.data);
        s_put_prom_name(&family, &first->metric);
        if (!first->gauge &&
            !(family.size >= 6 && !memcmp(family.data + family.size - 6, "_total", 6)))
            zkit__cat_buf_puts(&family, "_total");
        if (family.failed || text.failed) {
            buf->failed = true;
            break;
        }
        zkit__cat_buf_clear(&text);
        help.size = 0;
        for (size_t h = 0; h < st->help_count && !help.size; h++)
            if (s_str_equal(&st->help[h].metric, &first->metric) && st->help[h].text.size)
                help = st->help[h].text;
        if (!help.size) {
            zkit__cat_buf_puts(&text, first->gauge ? "zkit gauge " : "zkit counter ");
            s_put_prom_name(&text, &first->metric);
            help.data = (const uint8_t *) text.data;
            help.size = (uint32_t) text.size;
        }
        if (!s_prom_family(buf, &families, family.data, first->gauge ? "gauge" : "counter",
                           &help)) {
            if (skipped)
                (*skipped)++;
            i = end;
            continue;
        }
        for (; i < end; i++) {
            const s_sample_t *sample = &st->samples[i];
            s_prom_series(buf, family.data, st);
            for (size_t k = 0; k < sample->label_count; k++) {
                zkit__cat_buf_putc(buf, ',');
                s_put_prom_label(buf, &sample->label_names[k]);
                zkit__cat_buf_puts(buf, "=\"");
                s_put_prom_escaped(buf, &sample->label_values[k], true);
                zkit__cat_buf_putc(buf, '"');
            }
            zkit__cat_buf_puts(buf, "} ");
            s_put_value(buf, sample);
            zkit__cat_buf_putc(buf, '\n');
        }
    }
    zkit__cat_buf_free(&families.names);
    zkit__cat_buf_free(&prefix);
    zkit__cat_buf_free(&family);
    zkit__cat_buf_free(&text);
}

int zkit__stats_format(zkit__cat_buf_t *buf, zkit__stats_format_t format, const void *data,
                       size_t size, const char **error, size_t *skipped)
{
    s_stats_t st;
    memset(&st, 0, sizeof st);
    *error = s_parse(data, size, &st);
    if (*error) {
        s_stats_free(&st);
        return -1;
    }
    switch (format) {
    case ZKIT__STATS_FORMAT_TABLE: s_table(buf, &st); break;
    case ZKIT__STATS_FORMAT_JSON:
        /* Checked above; the JSON is the map itself, unknown keys included. */
        zkit__cat_json_msgpack(buf, data, size, 1, S_SKIP_DEPTH + 8);
        zkit__cat_buf_putc(buf, '\n');
        break;
    case ZKIT__STATS_FORMAT_PROMETHEUS: s_prometheus(buf, &st, skipped); break;
    }
    s_stats_free(&st);
    return 0;
}
