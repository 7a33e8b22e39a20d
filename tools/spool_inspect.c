/*  spool_inspect.c: `zkit spool inspect` and `zkit spool verify`, and the
    time and size helpers the spool tools share (spool_cli.h).

    Both open the spool read-only: no lock, nothing on disk changes, so they
    are safe on the directory of a running device (which may then show a
    record being written as a torn tail: reported, not an error).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "zkit.h"
#include "bench.h"
#include "spool/segment.h"
#include "spool_cli.h"
#include "zkit_cli.h"

/* ---- shared helpers --------------------------------------------------------------- */

const char *zkit__spool_fmt_time(uint64_t usec, char *buf, size_t size)
{
    if (!usec) {
        snprintf(buf, size, "-");
        return buf;
    }
    time_t secs = (time_t) (usec / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char date[24];
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%06uZ", date, (unsigned) (usec % 1000000));
    return buf;
}

/* Digits into *out; advances *p. Returns the digit count.                   */
static int s_digits(const char **p, int max, uint64_t *out)
{
    int n = 0;
    *out = 0;
    while (n < max && **p >= '0' && **p <= '9') {
        *out = *out * 10 + (uint64_t) (**p - '0');
        (*p)++;
        n++;
    }
    return n;
}

/* A fraction after '.' as microseconds (digits beyond 6 are ignored).     */
static int s_fraction(const char **p, uint64_t *usec)
{
    *usec = 0;
    if (**p != '.')
        return 0;
    (*p)++;
    int n = 0;
    uint64_t scale = 100000;
    while (**p >= '0' && **p <= '9') {
        *usec += scale * (uint64_t) (**p - '0');
        scale /= 10;
        (*p)++;
        n++;
    }
    return n ? 0 : -1;
}

int zkit__spool_parse_time(const char *text, uint64_t *usec)
{
    const char *p = text;
    uint64_t v, frac;
    if (!text || !*text)
        return -1;
    if (!strchr(text, '-')) { /* Unix seconds */
        if (!s_digits(&p, 12, &v) || s_fraction(&p, &frac) || *p)
            return -1;
        *usec = v * 1000000 + frac;
        return 0;
    }
    uint64_t f[6];
    static const char seps[] = "--T::";
    for (int i = 0; i < 6; i++) {
        if (s_digits(&p, i ? 2 : 4, &f[i]) != (i ? 2 : 4))
            return -1;
        if (i < 5) {
            if (*p != seps[i] && !(i == 2 && (*p == 't' || *p == ' ')))
                return -1;
            p++;
        }
    }
    if (s_fraction(&p, &frac))
        return -1;
    int64_t offset = 0;
    if (*p == 'Z' || *p == 'z')
        p++;
    else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        uint64_t hh, mm;
        p++;
        if (s_digits(&p, 2, &hh) != 2 || *p++ != ':' || s_digits(&p, 2, &mm) != 2)
            return -1;
        offset = sign * (int64_t) (hh * 3600 + mm * 60);
    }
    else
        return -1;
    if (*p || f[1] < 1 || f[1] > 12 || f[2] < 1 || f[2] > 31 || f[3] > 23 || f[4] > 59 || f[5] > 60)
        return -1;
    struct tm tm = {.tm_year = (int) f[0] - 1900,
                    .tm_mon = (int) f[1] - 1,
                    .tm_mday = (int) f[2],
                    .tm_hour = (int) f[3],
                    .tm_min = (int) f[4],
                    .tm_sec = (int) f[5]};
    int64_t secs = (int64_t) timegm(&tm) - offset;
    if (secs < 0)
        return -1;
    *usec = (uint64_t) secs * 1000000 + frac;
    return 0;
}

int zkit__spool_parse_bytes(const char *text, uint64_t max, uint64_t *out)
{
    const char *p = text;
    uint64_t v;
    if (!text || !s_digits(&p, 19, &v))
        return -1;
    unsigned shift = 0;
    if (*p == 'k' || *p == 'K')
        shift = 10;
    else if (*p == 'm' || *p == 'M')
        shift = 20;
    else if (*p == 'g' || *p == 'G')
        shift = 30;
    if (shift)
        p++;
    if (*p || v > (max >> shift))
        return -1;
    *out = v << shift;
    return 0;
}

/* ---- options shared by inspect and verify ------------------------------------------ */

typedef struct {
    const char *dir;
    bool json;
} s_opts_t;

static int s_parse(const char *sub, const char *usage, int argc, char **argv, s_opts_t *o)
{
    memset(o, 0, sizeof *o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return ZKIT_EXIT_OK;
        }
        if (!strcmp(a, "--format") || !strncmp(a, "--format=", 9)) {
            const char *v = a[8] == '=' ? a + 9 : (i + 1 < argc ? argv[++i] : "");
            if (strcmp(v, "json") && strcmp(v, "text")) {
                fprintf(stderr, "zkit spool %s: --format is text or json, not '%s'\n", sub, v);
                return ZKIT_EXIT_USAGE;
            }
            o->json = !strcmp(v, "json");
        }
        else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "zkit spool %s: unknown option '%s' (see 'zkit spool %s --help')\n",
                    sub, a, sub);
            return ZKIT_EXIT_USAGE;
        }
        else if (!o->dir)
            o->dir = a;
        else {
            fprintf(stderr, "zkit spool %s: unexpected argument '%s'\n", sub, a);
            return ZKIT_EXIT_USAGE;
        }
    }
    if (!o->dir || !*o->dir) {
        fprintf(stderr, "zkit spool %s: which directory? (see 'zkit spool %s --help')\n", sub, sub);
        return ZKIT_EXIT_USAGE;
    }
    return -1;
}

/* Opens the spool read-only; logs go to stderr. NULL after a message.     */
static zkit_spool_t *s_open(const char *sub, const char *dir)
{
    zsys_init();
    zsys_set_logstream(stderr);
    struct stat st;
    if (stat(dir, &st) || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "zkit spool %s: %s is not a directory\n", sub, dir);
        return NULL;
    }
    zkit_spool_opts_t opts = ZKIT_SPOOL_OPTS_DEFAULT;
    opts.read_only = true;
    zkit_spool_t *spool = zkit_spool_new(dir, &opts);
    if (!spool)
        fprintf(stderr, "zkit spool %s: cannot open the spool in %s: %s\n", sub, dir,
                zkit_strerror(errno));
    return spool;
}

/* ---- inspect ------------------------------------------------------------------------- */

static const char s_inspect_usage[] =
    "usage: zkit spool inspect DIR [--format text|json]\n"
    "\n"
    "Describes the spool in DIR without changing it: its segment files (first and\n"
    "last seq, bytes, creation time), the records it holds (seq span), the oldest\n"
    "and newest seq with their times, the cursor file (acknowledged floor,\n"
    "ranges, when written) and how many records are not yet acknowledged, plus\n"
    "what recovery would repair (torn tail, quarantined regions).\n";

typedef struct {
    uint64_t first_seq;
    uint64_t bytes;
    uint64_t created;
    bool header_ok;
} s_seginfo_t;

static int s_cmp_seg(const void *a, const void *b)
{
    uint64_t x = ((const s_seginfo_t *) a)->first_seq, y = ((const s_seginfo_t *) b)->first_seq;
    return (x > y) - (x < y);
}

/* The segment files of dir, sorted, from their names and headers.         */
static s_seginfo_t *s_list_segments(const char *dir, size_t *count)
{
    *count = 0;
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    s_seginfo_t *list = NULL;
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        uint64_t first;
        if (!zkit__seg_parse_name(e->d_name, &first))
            continue;
        if (*count == cap) {
            cap = cap ? cap * 2 : 16;
            s_seginfo_t *grown = realloc(list, cap * sizeof *list);
            if (!grown)
                break;
            list = grown;
        }
        s_seginfo_t *s = &list[(*count)++];
        memset(s, 0, sizeof *s);
        s->first_seq = first;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        struct stat st;
        if (fstat(fd, &st) == 0)
            s->bytes = (uint64_t) st.st_size;
        uint8_t hdr[ZKIT__SEG_HDR_SIZE];
        zkit__seghdr_t h;
        const char *why;
        if (pread(fd, hdr, sizeof hdr, 0) == (ssize_t) sizeof hdr &&
            zkit__seghdr_decode(hdr, sizeof hdr, &h, &why) == 0 && h.first_seq == first) {
            s->header_ok = true;
            s->created = h.create_ts;
        }
        close(fd);
    }
    closedir(d);
    if (*count)
        qsort(list, *count, sizeof *list, s_cmp_seg);
    return list;
}

typedef struct {
    bool present, valid;
    uint64_t floor, ranges, written;
} s_cursor_t;

static void s_read_cursor(const char *dir, s_cursor_t *c)
{
    memset(c, 0, sizeof *c);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, ZKIT__CURSOR_NAME);
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    c->present = true;
    uint8_t h[ZKIT__CURSOR_HDR_SIZE];
    if (fread(h, 1, sizeof h, f) == sizeof h && !memcmp(h, ZKIT__CURSOR_MAGIC, 8)) {
        c->valid = true;
        c->ranges = zkit__get_le32(h + 12);
        c->floor = zkit__get_le64(h + 16);
        c->written = zkit__get_le64(h + 24);
    }
    fclose(f);
}

static void s_inspect_json(const char *dir, const zkit_spool_stats_t *s, const s_cursor_t *c,
                           const s_seginfo_t *segs, size_t nsegs)
{
    char t[40];
    zkit__bench_json_t j;
    zkit__bench_json_init(&j, stdout);
    zkit__bench_json_object(&j, NULL);
    zkit__bench_json_str(&j, "dir", dir);
    zkit__bench_json_uint(&j, "segments", s->segments);
    zkit__bench_json_uint(&j, "bytes", s->bytes);
    zkit__bench_json_uint(&j, "records", s->records);
    zkit__bench_json_uint(&j, "oldest_seq", s->oldest_seq);
    zkit__bench_json_uint(&j, "newest_seq", s->newest_seq);
    zkit__bench_json_uint(&j, "oldest_ts", s->oldest_ts);
    zkit__bench_json_str(&j, "oldest_time", zkit__spool_fmt_time(s->oldest_ts, t, sizeof t));
    zkit__bench_json_uint(&j, "newest_ts", s->newest_ts);
    zkit__bench_json_str(&j, "newest_time", zkit__spool_fmt_time(s->newest_ts, t, sizeof t));
    zkit__bench_json_uint(&j, "next_seq", s->next_seq);
    zkit__bench_json_uint(&j, "ack_floor", s->ack_floor);
    zkit__bench_json_uint(&j, "unacked", s->unacked);
    zkit__bench_json_object(&j, "cursor");
    zkit__bench_json_bool(&j, "present", c->present);
    zkit__bench_json_bool(&j, "valid", c->valid);
    zkit__bench_json_uint(&j, "floor", c->floor);
    zkit__bench_json_uint(&j, "ranges", c->ranges);
    zkit__bench_json_uint(&j, "written_ts", c->written);
    zkit__bench_json_end(&j, '}');
    zkit__bench_json_uint(&j, "torn_bytes", s->torn_bytes);
    zkit__bench_json_uint(&j, "quarantined_regions", s->quarantined_regions);
    zkit__bench_json_uint(&j, "quarantined_records", s->quarantined_records);
    zkit__bench_json_uint(&j, "bad_segments", s->bad_segments);
    zkit__bench_json_array(&j, "segment_files");
    for (size_t i = 0; i < nsegs; i++) {
        char name[ZKIT__SEG_NAME_SIZE];
        zkit__seg_name(name, sizeof name, segs[i].first_seq);
        zkit__bench_json_object(&j, NULL);
        zkit__bench_json_str(&j, "file", name);
        zkit__bench_json_uint(&j, "first_seq", segs[i].first_seq);
        zkit__bench_json_uint(&j, "bytes", segs[i].bytes);
        zkit__bench_json_bool(&j, "header_ok", segs[i].header_ok);
        zkit__bench_json_uint(&j, "created_ts", segs[i].created);
        zkit__bench_json_str(&j, "created", zkit__spool_fmt_time(segs[i].created, t, sizeof t));
        zkit__bench_json_end(&j, '}');
    }
    zkit__bench_json_end(&j, ']');
    zkit__bench_json_end(&j, '}');
    fputc('\n', stdout);
}

static void s_inspect_text(const char *dir, const zkit_spool_stats_t *s, const s_cursor_t *c,
                           const s_seginfo_t *segs, size_t nsegs)
{
    char t[40], b[32];
    printf("spool %s\n", dir);
    printf("  segments     %" PRIu64 " (%s)\n", s->segments,
           zkit__bench_fmt_bytes(b, sizeof b, s->bytes));
    printf("  records      %" PRIu64 " (seq span)\n", s->records);
    printf("  oldest       seq %" PRIu64 ", %s\n", s->oldest_seq,
           zkit__spool_fmt_time(s->oldest_ts, t, sizeof t));
    printf("  newest       seq %" PRIu64 ", %s\n", s->newest_seq,
           zkit__spool_fmt_time(s->newest_ts, t, sizeof t));
    printf("  next seq     %" PRIu64 "\n", s->next_seq);
    if (!c->present)
        printf("  cursor       none (nothing acknowledged yet)\n");
    else if (!c->valid)
        printf("  cursor       damaged (ignored: everything is redelivered)\n");
    else
        printf("  cursor       floor %" PRIu64 ", %" PRIu64 " ranges above it, written %s\n",
               c->floor, c->ranges, zkit__spool_fmt_time(c->written, t, sizeof t));
    printf("  unacked      %" PRIu64 "\n", s->unacked);
    printf("  repairs      torn tail %" PRIu64 " bytes, %" PRIu64 " quarantined regions (%" PRIu64
           " records), %" PRIu64 " bad segment files\n",
           s->torn_bytes, s->quarantined_regions, s->quarantined_records, s->bad_segments);
    printf("\n  %-22s %20s %20s %12s  %s\n", "segment file", "first seq", "last seq", "bytes",
           "created");
    for (size_t i = 0; i < nsegs; i++) {
        char name[ZKIT__SEG_NAME_SIZE];
        zkit__seg_name(name, sizeof name, segs[i].first_seq);
        uint64_t last = i + 1 < nsegs ? segs[i + 1].first_seq - 1 : s->newest_seq;
        printf("  %-22s %20" PRIu64 " %20" PRIu64 " %12" PRIu64 "  %s\n", name, segs[i].first_seq,
               last, segs[i].bytes,
               segs[i].header_ok ? zkit__spool_fmt_time(segs[i].created, t, sizeof t)
                                 : "bad header");
    }
}

int zkit__spool_inspect(int argc, char **argv)
{
    s_opts_t o;
    int rc = s_parse("inspect", s_inspect_usage, argc, argv, &o);
    if (rc != -1)
        return rc;
    zkit_spool_t *spool = s_open("inspect", o.dir);
    if (!spool)
        return ZKIT_EXIT_FAILURE;
    zkit_spool_stats_t stats;
    zkit_spool_stats(spool, &stats);
    s_cursor_t cursor;
    s_read_cursor(o.dir, &cursor);
    size_t nsegs;
    s_seginfo_t *segs = s_list_segments(o.dir, &nsegs);
    if (o.json)
        s_inspect_json(o.dir, &stats, &cursor, segs, nsegs);
    else
        s_inspect_text(o.dir, &stats, &cursor, segs, nsegs);
    free(segs);
    zkit_spool_destroy(&spool);
    return fflush(stdout) == 0 ? ZKIT_EXIT_OK : ZKIT_EXIT_FAILURE;
}

/* ---- verify -------------------------------------------------------------------------- */

static const char s_verify_usage[] =
    "usage: zkit spool verify DIR [--format text|json]\n"
    "\n"
    "Reads every record of every segment and checks its CRCs, without changing\n"
    "anything. Each bad region is reported on stdout as\n"
    "  BAD SEGMENT_FILE offset OFFSET size BYTES seqs FIRST-LAST: REASON\n"
    "(a record there is skipped by the device and by replay, never delivered).\n"
    "A torn tail (a write a crash interrupted; cut at the next read-write open)\n"
    "and segment files with a bad header are reported too.\n"
    "\n"
    "Exit status: 0 every record is good; 1 bad regions or bad segment files\n"
    "were found, or the spool could not be read; 2 usage.\n";

typedef struct {
    const char *dir;
    bool json;
    zkit__bench_json_t *j;
} s_verify_ctx_t;

static void s_on_bad(const zkit_spool_bad_region_t *r, void *arg)
{
    s_verify_ctx_t *ctx = arg;
    if (ctx->json) {
        zkit__bench_json_object(ctx->j, NULL);
        zkit__bench_json_str(ctx->j, "segment", r->segment);
        zkit__bench_json_uint(ctx->j, "offset", r->offset);
        zkit__bench_json_uint(ctx->j, "size", r->size);
        zkit__bench_json_uint(ctx->j, "lost_start", r->lost_start);
        zkit__bench_json_uint(ctx->j, "lost_end", r->lost_end);
        zkit__bench_json_str(ctx->j, "reason", r->reason);
        zkit__bench_json_end(ctx->j, '}');
        return;
    }
    if (r->lost_end > r->lost_start)
        printf("BAD %s/%s offset %" PRIu64 " size %" PRIu64 " seqs %" PRIu64 "-%" PRIu64 ": %s\n",
               ctx->dir, r->segment, r->offset, r->size, r->lost_start, r->lost_end - 1, r->reason);
    else
        printf("BAD %s/%s offset %" PRIu64 " size %" PRIu64 " seqs none: %s\n", ctx->dir,
               r->segment, r->offset, r->size, r->reason);
}

int zkit__spool_verify(int argc, char **argv)
{
    s_opts_t o;
    int rc = s_parse("verify", s_verify_usage, argc, argv, &o);
    if (rc != -1)
        return rc;
    zkit_spool_t *spool = s_open("verify", o.dir);
    if (!spool)
        return ZKIT_EXIT_FAILURE;
    zkit__bench_json_t j;
    s_verify_ctx_t ctx = {o.dir, o.json, &j};
    if (o.json) {
        zkit__bench_json_init(&j, stdout);
        zkit__bench_json_object(&j, NULL);
        zkit__bench_json_str(&j, "dir", o.dir);
        zkit__bench_json_array(&j, "bad_regions");
    }
    zkit_spool_verify_t report;
    int vrc = zkit_spool_verify_regions(spool, &report, s_on_bad, &ctx);
    int err = errno;
    zkit_spool_stats_t stats;
    zkit_spool_stats(spool, &stats);
    /* Segment files whose header is bad were set aside at open; list them
       by name too.                                                          */
    size_t nsegs;
    s_seginfo_t *segs = s_list_segments(o.dir, &nsegs);
    uint64_t bad_files = 0;
    for (size_t i = 0; i < nsegs; i++)
        if (!segs[i].header_ok) {
            char name[ZKIT__SEG_NAME_SIZE];
            zkit__seg_name(name, sizeof name, segs[i].first_seq);
            bad_files++;
            if (!o.json)
                printf("BAD %s/%s offset 0 size %" PRIu64 ": segment-header\n", o.dir, name,
                       segs[i].bytes);
        }
    free(segs);
    bool bad = vrc == 1 || bad_files > 0;
    if (o.json) {
        zkit__bench_json_end(&j, ']');
        zkit__bench_json_uint(&j, "segments", report.segments);
        zkit__bench_json_uint(&j, "records", report.records);
        zkit__bench_json_uint(&j, "bytes", report.bytes);
        zkit__bench_json_uint(&j, "bad_records", report.bad_records);
        zkit__bench_json_uint(&j, "bad_segment_files", bad_files);
        zkit__bench_json_uint(&j, "torn_bytes", stats.torn_bytes);
        zkit__bench_json_bool(&j, "ok", vrc == 0 && !bad);
        zkit__bench_json_end(&j, '}');
        fputc('\n', stdout);
    }
    else if (vrc >= 0) {
        if (stats.torn_bytes)
            printf("torn tail: %" PRIu64 " bytes after the last complete record of the newest "
                   "segment (a write a crash interrupted, or one in progress; not an error)\n",
                   stats.torn_bytes);
        printf("%s: %" PRIu64 " segments, %" PRIu64 " records, %" PRIu64 " bytes; %" PRIu64
               " bad regions (%" PRIu64 " records lost), %" PRIu64 " bad segment files\n",
               bad ? "CORRUPT" : "OK", report.segments, report.records, report.bytes,
               report.bad_regions, report.bad_records, bad_files);
    }
    zkit_spool_destroy(&spool);
    if (vrc < 0) {
        fprintf(stderr, "zkit spool verify: cannot read %s: %s\n", o.dir, zkit_strerror(err));
        return ZKIT_EXIT_FAILURE;
    }
    fflush(stdout);
    return bad ? ZKIT_EXIT_FAILURE : ZKIT_EXIT_OK;
}
