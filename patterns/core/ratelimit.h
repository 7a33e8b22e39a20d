/*  ratelimit.h (internal): at most one log line per second for a recurring
    event, with a count of the ones it left out.

    Every component logs hostile input "at most once per second"; this is the
    one place that rule is kept. A zeroed zkit__ratelimit_t has never logged,
    so a limiter inside a calloc'ed or {0}-initialised state needs no setup.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_RATELIMIT_H_INCLUDED
#define ZKIT_RATELIMIT_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>

#define ZKIT__RATELIMIT_INTERVAL_MS 1000

typedef struct {
    int64_t last_ms;     /* when the last line was allowed (monotonic ms)      */
    uint64_t suppressed; /* events since then that were not logged            */
    bool logged;         /* false until the first line: any now_ms is then due */
} zkit__ratelimit_t;

/*  Counts one event at now_ms. Returns true when the caller should log it:
    the first event, or one a full interval after the last logged one; then
    *suppressed (may be NULL) receives how many events were not logged in
    between, and the count restarts. Returns false otherwise. Can't fail.    */
bool zkit__ratelimit(zkit__ratelimit_t *self, int64_t now_ms, uint64_t *suppressed);

#endif
