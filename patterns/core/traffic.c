/*  traffic.c: messages and bytes per socket (see traffic.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "core/traffic.h"

size_t zkit__traffic_zmsg_size(zmsg_t *msg)
{
    return msg ? zmsg_content_size(msg) : 0;
}

static int s_sample(zkit__stats_t *stats, const char *name, const char *socket, const char *dir,
                    uint64_t value)
{
    zkit__stats_label_t labels[2] = {{"socket", socket}, {"dir", dir}};
    return zkit__stats_counter_labels(stats, name, labels, 2, value);
}

int zkit__traffic_report(zkit__stats_t *stats, const char *socket, const zkit__traffic_t *t)
{
    if (s_sample(stats, "messages", socket, "in", t->msgs_in) == -1 ||
        s_sample(stats, "messages", socket, "out", t->msgs_out) == -1 ||
        s_sample(stats, "bytes", socket, "in", t->bytes_in) == -1 ||
        s_sample(stats, "bytes", socket, "out", t->bytes_out) == -1)
        return -1;
    /* a second help for the same metric just replaces the text */
    if (zkit__stats_help(stats, "messages",
                         "whole messages received (in) and sent (out), "
                         "malformed ones included") == -1 ||
        zkit__stats_help(stats, "bytes", "bytes of all frames received (in) and sent (out)") == -1)
        return -1;
    return 0;
}
