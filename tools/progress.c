/*  progress.c: a batch's progress on stderr, as a bar or as plain lines.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <inttypes.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "progress.h"

/* A bar is redrawn at most this often; a plain line is printed this often.  */
#define S_BAR_INTERVAL_MS  100
#define S_LINE_INTERVAL_MS 1000
/* The rate is measured over this much recent history.                        */
#define S_RATE_WINDOW_MS 5000
/* Samples are taken at most this often, so the ring spans the window.       */
#define S_SAMPLE_INTERVAL_MS 100
/* Columns kept for " 12345/12345 100%  1234/s, ETA 1:02:03  12 dead".     */
#define S_TAIL_ROOM 50

int zkit__progress_parse(const char *text, zkit__progress_mode_t *mode)
{
    static const struct {
        const char *name;
        zkit__progress_mode_t mode;
    } names[] = {{"auto", ZKIT__PROGRESS_AUTO},
                 {"bar", ZKIT__PROGRESS_BAR},
                 {"lines", ZKIT__PROGRESS_LINES},
                 {"none", ZKIT__PROGRESS_NONE}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(text, names[i].name)) {
            *mode = names[i].mode;
            return 0;
        }
    return -1;
}

void zkit__progress_init(zkit__progress_t *self, zkit__progress_mode_t mode, FILE *out,
                         const char *prefix)
{
    memset(self, 0, sizeof *self);
    if (mode == ZKIT__PROGRESS_AUTO)
        mode = isatty(fileno(out)) ? ZKIT__PROGRESS_BAR : ZKIT__PROGRESS_LINES;
    self->mode = mode;
    self->out = out;
    self->prefix = prefix;
}

void zkit__progress_duration(uint64_t seconds, char *buf, size_t size)
{
    if (seconds >= 3600)
        snprintf(buf, size, "%" PRIu64 ":%02u:%02u", seconds / 3600, (unsigned) (seconds / 60 % 60),
                 (unsigned) (seconds % 60));
    else
        snprintf(buf, size, "%u:%02u", (unsigned) (seconds / 60), (unsigned) (seconds % 60));
}

/*  Results (and dead letters) per second over the recent window, or over the
    whole batch while the window is still short. Records a sample.           */
static double s_rate(zkit__progress_t *self, const zkit_batch_report_t *r, int64_t now_ms)
{
    uint64_t count = r->done + r->dead;
    size_t newest = (self->head + ZKIT__PROGRESS_SAMPLES - 1) % ZKIT__PROGRESS_SAMPLES;
    if (self->count == 0 || now_ms - self->samples[newest].ms >= S_SAMPLE_INTERVAL_MS) {
        self->samples[self->head].ms = now_ms;
        self->samples[self->head].count = count;
        self->head = (self->head + 1) % ZKIT__PROGRESS_SAMPLES;
        if (self->count < ZKIT__PROGRESS_SAMPLES)
            self->count++;
    }
    /* The oldest sample still inside the window. */
    size_t oldest = (self->head + ZKIT__PROGRESS_SAMPLES - self->count) % ZKIT__PROGRESS_SAMPLES;
    for (size_t i = 0; i < self->count; i++) {
        size_t at = (oldest + i) % ZKIT__PROGRESS_SAMPLES;
        if (now_ms - self->samples[at].ms <= S_RATE_WINDOW_MS) {
            oldest = at;
            break;
        }
    }
    int64_t span = now_ms - self->samples[oldest].ms;
    if (span >= 1000 && count >= self->samples[oldest].count)
        return (double) (count - self->samples[oldest].count) * 1000.0 / (double) span;
    if (r->elapsed_us >= 100000)
        return (double) count * 1e6 / (double) r->elapsed_us;
    return 0.0;
}

/*  "850/s, ETA 0:01" (or without the ETA when it cannot be known).          */
static void s_rate_text(double rate, const zkit_batch_report_t *r, char *buf, size_t size)
{
    uint64_t count = r->done + r->dead;
    char eta[32] = "";
    if (r->total && count < r->total && rate > 0.0) {
        char duration[24];
        zkit__progress_duration((uint64_t) ((double) (r->total - count) / rate + 0.5), duration,
                                sizeof duration);
        snprintf(eta, sizeof eta, ", ETA %s", duration);
    }
    snprintf(buf, size, "%.0f/s%s", rate, eta);
}

static void s_draw_line(zkit__progress_t *self, const zkit_batch_report_t *r, double rate)
{
    char speed[64];
    s_rate_text(rate, r, speed, sizeof speed);
    if (r->total)
        fprintf(self->out, "%s: progress %" PRIu64 "/%" PRIu64 " (%u%%), %" PRIu64 " dead, %s\n",
                self->prefix, r->done + r->dead, r->total,
                (unsigned) ((r->done + r->dead) * 100 / r->total), r->dead, speed);
    else
        fprintf(self->out, "%s: progress %" PRIu64 "/?, %" PRIu64 " dead, %s\n", self->prefix,
                r->done + r->dead, r->dead, speed);
    fflush(self->out);
    self->line_shown = true;
}

static int s_columns(FILE *out)
{
    struct winsize ws;
    if (ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col;
    return 80;
}

static void s_draw_bar(zkit__progress_t *self, const zkit_batch_report_t *r, double rate)
{
    uint64_t count = r->done + r->dead;
    char speed[64], tail[160];
    s_rate_text(rate, r, speed, sizeof speed);
    char dead[32] = "";
    if (r->dead)
        snprintf(dead, sizeof dead, "  %" PRIu64 " dead", r->dead);
    if (r->total)
        snprintf(tail, sizeof tail, " %" PRIu64 "/%" PRIu64 " %3u%%  %s%s", count, r->total,
                 (unsigned) (count * 100 / r->total), speed, dead);
    else
        snprintf(tail, sizeof tail, " %" PRIu64 "/?  %s%s", count, speed, dead);

    /* The bar takes what the line leaves after room for the longest tail, so
       its width does not change as the numbers grow. */
    int width = s_columns(self->out) - (int) strlen(self->prefix) - S_TAIL_ROOM;
    if (width > 40)
        width = 40;
    char bar[48] = "";
    if (width >= 10 && r->total) {
        int filled = (int) ((double) width * (double) count / (double) r->total);
        if (filled > width)
            filled = width;
        for (int i = 0; i < width; i++)
            bar[i] = i < filled ? '#' : '.';
        bar[width] = '\0';
    }
    /* \r back to the start of the line, \033[K clears what a longer line left. */
    if (bar[0])
        fprintf(self->out, "\r%s: [%s]%s\033[K", self->prefix, bar, tail);
    else
        fprintf(self->out, "\r%s:%s\033[K", self->prefix, tail);
    fflush(self->out);
    self->bar_shown = true;
}

void zkit__progress_update(zkit__progress_t *self, const zkit_batch_report_t *report,
                           int64_t now_ms)
{
    if (self->mode == ZKIT__PROGRESS_NONE)
        return;
    if (!report->total && !report->done && !report->dead)
        return; /* no batch yet: nothing worth a line */
    double rate = s_rate(self, report, now_ms);
    if (self->mode == ZKIT__PROGRESS_BAR) {
        if (self->bar_shown && now_ms - self->last_draw_ms < S_BAR_INTERVAL_MS)
            return;
        s_draw_bar(self, report, rate);
    }
    else {
        /* The first line comes with the first result, so a watcher learns at
           once that results flow; then one a second. */
        if (!self->seen_ms)
            self->seen_ms = now_ms;
        bool first = !self->first_shown && report->done + report->dead > 0;
        int64_t since = self->line_shown ? self->last_draw_ms : self->seen_ms;
        if (!first && now_ms - since < S_LINE_INTERVAL_MS)
            return;
        self->first_shown = self->first_shown || report->done + report->dead > 0;
        s_draw_line(self, report, rate);
    }
    self->last_draw_ms = now_ms;
}

void zkit__progress_finish(zkit__progress_t *self, const zkit_batch_report_t *report,
                           int64_t now_ms)
{
    if (self->mode != ZKIT__PROGRESS_BAR)
        return;
    if (report && (report->total || report->done || report->dead))
        s_draw_bar(self, report, s_rate(self, report, now_ms));
    if (self->bar_shown) {
        fputc('\n', self->out);
        fflush(self->out);
    }
    self->bar_shown = false;
}
