/*  stats_format.h (internal to the zkit program): how `zkit stats` prints a
    STATS reply (docs/control-protocol.md, section 4): a table for people,
    one JSON object, or the Prometheus text exposition format (version
    0.0.4) for node_exporter's textfile collector.

    The reply comes from the network: it is checked against the schema
    first, with bounded depth and counts, and every string is escaped for
    where it goes (terminal, JSON, Prometheus label or HELP text).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_STATS_FORMAT_H_INCLUDED
#define ZKIT_STATS_FORMAT_H_INCLUDED

#include <stddef.h>

#include "cat_format.h"

typedef enum {
    ZKIT__STATS_FORMAT_TABLE,
    ZKIT__STATS_FORMAT_JSON,
    ZKIT__STATS_FORMAT_PROMETHEUS
} zkit__stats_format_t;

/*  Parses "table", "json" or "prometheus". Returns 0, or -1.               */
int zkit__stats_format_parse(const char *text, zkit__stats_format_t *out);

/*  Appends the STATS map in data[0..size) to buf in the given format:
    table (several lines), json (one line: the map as a JSON object) or
    prometheus (# HELP / # TYPE / sample lines, metric names prefixed
    "zkit_<component>_", counters suffixed "_total", every sample labelled
    name="<instance>"). Returns 0, or -1 with a static description in
    *error when the bytes do not follow the schema; nothing is appended then.
    Metrics that would repeat a Prometheus metric family already written are
    left out of that format and counted in *skipped (may be NULL).          */
int zkit__stats_format(zkit__cat_buf_t *buf, zkit__stats_format_t format, const void *data,
                       size_t size, const char **error, size_t *skipped);

#endif
