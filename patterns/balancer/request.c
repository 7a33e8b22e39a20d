/*  request.c: a request the balancer holds, and the two dialects (see
    request.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include "balancer/request.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Frames of the biggest message built here: a route, a delimiter, content.  */
#define S_OUT_MAX (ZKIT__BAL_ROUTE_MAX + 3 + ZKIT__BAL_PARTS_MAX)

static void s_close_all(zmq_msg_t *frames, size_t count)
{
    for (size_t i = 0; i < count; i++)
        zmq_msg_close(&frames[i]);
}

static zkit__bal_frame_t s_view(zmq_msg_t *frame)
{
    zkit__bal_frame_t view = {zmq_msg_data(frame), zmq_msg_size(frame)};
    return view;
}

/* ---- life cycle ---------------------------------------------------------------- */

zkit__bal_request_t *zkit__bal_request_new(zkit__bal_msg_t *msg, const zkit__bal_client_msg_t *cm,
                                           const uint8_t id[ZKIT_ID_SIZE], bool enveloped)
{
    zkit__bal_request_t *self = calloc(1, sizeof *self + cm->parts * sizeof(zmq_msg_t));
    zmq_msg_t *route = calloc(cm->route, sizeof *route);
    if (!self || !route) {
        free(self);
        free(route);
        errno = ENOMEM;
        return NULL;
    }
    memcpy(self->id, id, ZKIT_ID_SIZE);
    self->enveloped = enveloped;
    self->route = route;
    self->route_count = (uint8_t) cm->route;
    self->part_count = (uint8_t) cm->parts;
    for (size_t i = 0; i < cm->route; i++) {
        zmq_msg_init(&route[i]);
        zmq_msg_move(&route[i], &msg->part[i]);
    }
    for (size_t i = 0; i < cm->parts; i++) {
        zmq_msg_init(&self->part[i]);
        zmq_msg_move(&self->part[i], &msg->part[cm->first_part + i]);
    }
    return self;
}

void zkit__bal_request_destroy(zkit__bal_request_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zkit__bal_request_t *self = *self_p;
    s_close_all(self->route, self->route_count);
    s_close_all(self->part, self->part_count);
    free(self->route);
    free(self);
    *self_p = NULL;
}

void zkit__bal_request_free(void *payload, void *arg)
{
    (void) arg;
    zkit__bal_request_t *self = payload;
    zkit__bal_request_destroy(&self);
}

void zkit__bal_request_swap_route(zkit__bal_request_t *a, zkit__bal_request_t *b)
{
    zmq_msg_t *route = a->route;
    uint8_t count = a->route_count;
    a->route = b->route;
    a->route_count = b->route_count;
    b->route = route;
    b->route_count = count;
}

/* ---- dialects ---------------------------------------------------------------------- */

int zkit__bal_wrap(zkit_envelope_t *env, const zkit__bal_frame_t *parts, size_t count)
{
    zkit_envelope_reset(env);
    /* No content frame at all is an empty body, never a read past parts. */
    if (count == 0)
        return 0;
    zkit_envelope_set_body_ref(env, parts[0].data, parts[0].size);
    for (size_t i = 1; i < count; i++) {
        char key[32];
        snprintf(key, sizeof key, ZKIT__BAL_HDR_PART "%zu", i + 1);
        if (zkit_envelope_set_header_bin(env, key, parts[i].data, parts[i].size))
            return -1;
    }
    return 0;
}

size_t zkit__bal_unwrap(const zkit_envelope_t *env, zkit__bal_frame_t parts[ZKIT__BAL_PARTS_MAX])
{
    parts[0].data = zkit_envelope_body(env, &parts[0].size);
    size_t n = 1;
    /* Looked up only when there are headers: the common reply has none.    */
    while (n < ZKIT__BAL_PARTS_MAX && zkit_envelope_header_count(env) > 0) {
        char key[32];
        zkit_value_t value;
        snprintf(key, sizeof key, ZKIT__BAL_HDR_PART "%zu", n + 1);
        if (zkit_envelope_header(env, key, &value) || value.type == ZKIT_VALUE_INT)
            break;
        parts[n].data = value.data;
        parts[n].size = value.size;
        n++;
    }
    return n;
}

/* Copies views into frames[*n...]. Returns 0 or -1 (ENOMEM).                */
static int s_copy_views(zmq_msg_t *frames, size_t *n, const zkit__bal_frame_t *views, size_t count)
{
    for (size_t i = 0; i < count; i++)
        if (zkit__bal_frame_set(&frames[(*n)++], views[i].data, views[i].size)) {
            (*n)--;
            return -1;
        }
    return 0;
}

/* Encodes codec->env into frames[*n] and resets it (it may point into
   frames that are about to go).                                            */
static int s_encode(zkit__bal_codec_t *codec, zmq_msg_t *frames, size_t *n)
{
    int rc = zkit_envelope_encode(codec->env, &frames[*n]);
    if (rc == 0)
        (*n)++;
    zkit_envelope_reset(codec->env);
    return rc;
}

/* The request's own envelope into codec->env: decoded (enveloped) or
   wrapped around its raw parts with its id. src and seq are the balancer's
   for a wrapped one.                                                        */
static int s_request_envelope(zkit__bal_request_t *self, zkit__bal_codec_t *codec)
{
    if (self->enveloped) {
        /* It decoded when it arrived and the bytes have not changed.        */
        zkit__bal_frame_t body = s_view(&self->part[0]);
        return zkit_envelope_decode_bytes(codec->env, body.data, body.size);
    }
    zkit__bal_frame_t views[ZKIT__BAL_PARTS_MAX];
    for (size_t i = 0; i < self->part_count; i++)
        views[i] = s_view(&self->part[i]);
    if (zkit__bal_wrap(codec->env, views, self->part_count))
        return -1;
    zkit_envelope_set_id(codec->env, self->id);
    zkit_envelope_set_seq(codec->env, ++codec->seq);
    return zkit_envelope_set_src(codec->env, codec->name);
}

/* [route...][empty] into frames; returns the count or -1 (ENOMEM).        */
static int s_route_frames(zkit__bal_request_t *self, zmq_msg_t *frames, size_t *n)
{
    for (size_t i = 0; i < self->route_count; i++) {
        zmq_msg_init(&frames[*n]);
        if (zmq_msg_copy(&frames[*n], &self->route[i]) == -1) {
            zmq_msg_close(&frames[*n]);
            errno = ENOMEM;
            return -1;
        }
        (*n)++;
    }
    zmq_msg_init(&frames[(*n)++]);
    return 0;
}

int zkit__bal_request_dispatch(zkit__bal_request_t *self, void *backend, const void *rid,
                               size_t rid_size, bool zkit_worker, uint32_t attempts,
                               zkit__bal_codec_t *codec, zkit__traffic_t *traffic)
{
    zmq_msg_t frames[S_OUT_MAX];
    size_t n = 0;
    int rc = 0;
    if (zkit__bal_frame_set(&frames[n++], rid, rid_size) ||
        zkit__bal_frame_set(&frames[n++], self->id, ZKIT_ID_SIZE)) {
        n--;
        goto err;
    }
    zmq_msg_init(&frames[n++]);

    if (zkit_worker && self->enveloped && attempts <= 1) {
        /* The client's own bytes, untouched (libzmq shares large frames).   */
        zmq_msg_init(&frames[n]);
        if (zmq_msg_copy(&frames[n], &self->part[0]) == -1)
            goto err;
        n++;
    }
    else if (zkit_worker) {
        if (s_request_envelope(self, codec))
            goto err_env;
        zkit_envelope_set_att(codec->env, attempts);
        if (s_encode(codec, frames, &n))
            goto err;
    }
    else if (!self->enveloped) {
        for (size_t i = 0; i < self->part_count; i++) {
            zmq_msg_init(&frames[n]);
            if (zmq_msg_copy(&frames[n], &self->part[i]) == -1)
                goto err;
            n++;
        }
    }
    else {
        zkit__bal_frame_t views[ZKIT__BAL_PARTS_MAX];
        if (s_request_envelope(self, codec))
            goto err_env;
        size_t count = zkit__bal_unwrap(codec->env, views);
        rc = s_copy_views(frames, &n, views, count);
        zkit_envelope_reset(codec->env);
        if (rc)
            goto err;
    }
    return zkit__bal_send(backend, frames, n, traffic);

err_env:
    zkit_envelope_reset(codec->env);
err:
    s_close_all(frames, n);
    errno = ENOMEM;
    return -1;
}

int zkit__bal_request_reply(zkit__bal_request_t *self, void *frontend, zmq_msg_t *parts,
                            size_t count, const zkit_envelope_t *reply, zkit__bal_codec_t *codec,
                            zkit__traffic_t *traffic)
{
    zmq_msg_t frames[S_OUT_MAX];
    size_t n = 0;
    if (s_route_frames(self, frames, &n))
        goto err;
    if (self->enveloped && reply) {
        /* A zkit worker's envelope goes to a zkit client byte for byte.     */
        zmq_msg_init(&frames[n]);
        zmq_msg_move(&frames[n++], &parts[0]);
    }
    else if (self->enveloped) {
        zkit__bal_frame_t views[ZKIT__BAL_PARTS_MAX];
        for (size_t i = 0; i < count; i++)
            views[i] = s_view(&parts[i]);
        if (zkit__bal_wrap(codec->env, views, count) ||
            zkit_envelope_set_corr(codec->env, self->id, ZKIT_ID_SIZE) ||
            zkit_envelope_set_src(codec->env, codec->name)) {
            zkit_envelope_reset(codec->env);
            goto err;
        }
        zkit_envelope_set_seq(codec->env, ++codec->seq);
        if (s_encode(codec, frames, &n))
            goto err;
    }
    else if (reply) {
        zkit__bal_frame_t views[ZKIT__BAL_PARTS_MAX];
        size_t vcount = zkit__bal_unwrap(reply, views);
        if (s_copy_views(frames, &n, views, vcount))
            goto err;
    }
    else {
        for (size_t i = 0; i < count; i++) {
            zmq_msg_init(&frames[n]);
            zmq_msg_move(&frames[n++], &parts[i]);
        }
    }
    return zkit__bal_send(frontend, frames, n, traffic);

err:
    s_close_all(frames, n);
    errno = ENOMEM;
    return -1;
}

int zkit__bal_request_error(zkit__bal_request_t *self, void *frontend, const char *reason,
                            uint32_t attempts, zkit__bal_codec_t *codec, zkit__traffic_t *traffic)
{
    zmq_msg_t frames[S_OUT_MAX];
    size_t n = 0;
    if (s_route_frames(self, frames, &n))
        goto err;
    if (self->enveloped) {
        zkit_envelope_t *env = codec->env;
        zkit_envelope_reset(env);
        zkit_envelope_set_seq(env, ++codec->seq);
        if (zkit_envelope_set_corr(env, self->id, ZKIT_ID_SIZE) ||
            zkit_envelope_set_src(env, codec->name) ||
            zkit_envelope_set_header_str(env, ZKIT__BAL_HDR_ERROR, reason) ||
            zkit_envelope_set_header_int(env, ZKIT__BAL_HDR_ATTEMPTS, attempts) ||
            s_encode(codec, frames, &n)) {
            zkit_envelope_reset(env);
            goto err;
        }
    }
    else {
        char text[96];
        int size = snprintf(text, sizeof text, ZKIT__BAL_ERROR_PREFIX " %s %u", reason, attempts);
        if (zkit__bal_frame_set(&frames[n++], text, (size_t) size)) {
            n--;
            goto err;
        }
    }
    return zkit__bal_send(frontend, frames, n, traffic);

err:
    s_close_all(frames, n);
    errno = ENOMEM;
    return -1;
}

int zkit__bal_request_record(zkit__bal_request_t *self, const char *reason, uint32_t attempts,
                             zkit__bal_codec_t *codec, zmq_msg_t *record)
{
    size_t n = 0;
    if (s_request_envelope(self, codec) ||
        zkit_envelope_set_header_str(codec->env, ZKIT__BAL_HDR_ERROR, reason) ||
        zkit_envelope_set_header_int(codec->env, ZKIT__BAL_HDR_ATTEMPTS, attempts)) {
        zkit_envelope_reset(codec->env);
        errno = ENOMEM;
        return -1;
    }
    if (s_encode(codec, record, &n)) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}
