/*  ratelimit.c: one log line per second at most (see ratelimit.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "core/ratelimit.h"

#include <stddef.h>

bool zkit__ratelimit(zkit__ratelimit_t *self, int64_t now_ms, uint64_t *suppressed)
{
    if (self->logged && now_ms - self->last_ms < ZKIT__RATELIMIT_INTERVAL_MS) {
        self->suppressed++;
        return false;
    }
    if (suppressed)
        *suppressed = self->suppressed;
    self->suppressed = 0;
    self->last_ms = now_ms;
    self->logged = true;
    return true;
}
