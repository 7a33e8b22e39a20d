/*  progress.h (internal to the zkit program): a batch's progress on stderr.

    On a terminal, a bar redrawn in place at most 10 times a second; in a
    pipe or a log file, one plain line per second that scripts and tests can
    read:

        zkit sink: progress 1234/2000 (61%), 1 dead, 850/s, ETA 0:01

    The rate is measured over the last few seconds, so the ETA follows a
    batch that slows down when a worker dies.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_PROGRESS_H_INCLUDED
#define ZKIT_PROGRESS_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "zkit_batch.h"

typedef enum {
    ZKIT__PROGRESS_AUTO, /* BAR on a terminal, else LINES */
    ZKIT__PROGRESS_BAR,
    ZKIT__PROGRESS_LINES,
    ZKIT__PROGRESS_NONE
} zkit__progress_mode_t;

#define ZKIT__PROGRESS_SAMPLES 64

typedef struct {
    zkit__progress_mode_t mode; /* resolved: BAR, LINES or NONE */
    FILE *out;
    const char *prefix; /* "zkit sink" */
    bool bar_shown;     /* the bar is on screen: end its line before printing */
    bool line_shown;    /* LINES: at least one line printed */
    bool first_shown;   /* LINES: a line with a result in it was printed */
    int64_t seen_ms;    /* when the batch was first seen */
    int64_t last_draw_ms;
    struct {
        int64_t ms;
        uint64_t count; /* done + dead */
    } samples[ZKIT__PROGRESS_SAMPLES];
    size_t head, count;
} zkit__progress_t;

/*  Parses "auto", "bar", "lines" or "none". Returns 0, or -1.               */
int zkit__progress_parse(const char *text, zkit__progress_mode_t *mode);

/*  Sets up a display on out; AUTO becomes BAR when out is a terminal.       */
void zkit__progress_init(zkit__progress_t *self, zkit__progress_mode_t mode, FILE *out,
                         const char *prefix);

/*  Shows report if a redraw is due at now_ms (a monotonic clock). Nothing is
    shown before the batch has a result, a dead letter or a total.           */
void zkit__progress_update(zkit__progress_t *self, const zkit_batch_report_t *report,
                           int64_t now_ms);

/*  Draws the bar a last time with report (may be NULL) and ends its line,
    so what is printed next starts on a line of its own. Call before printing
    anything else to the same stream.                                         */
void zkit__progress_finish(zkit__progress_t *self, const zkit_batch_report_t *report,
                           int64_t now_ms);

/*  "1:05", "2:03:04": a duration in seconds for a human.                    */
void zkit__progress_duration(uint64_t seconds, char *buf, size_t size);

#endif
