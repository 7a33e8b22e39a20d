/*  envelope.c: the envelope's lifecycle, fixed fields, encoder, socket I/O
    and arena (see zkit_envelope.h; meta in envelope_meta.c, the decoder in
    envelope_decode.c, the shared layout in envelope_internal.h).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/envelope_internal.h"
#include "core/mpack.h"

/* What an empty body or an absent extra points at: never NULL, so callers and
   memcpy never see a null pointer. */
static const uint8_t s_empty[1] = {0};

/* Arena blocks start small (a typical meta fits) and double up to 1 MiB;
   a single larger request gets a block of its own size. */
#define S_ARENA_FIRST_BLOCK 1024
#define S_ARENA_MAX_BLOCK   (1024 * 1024)

/* ---- arena ---------------------------------------------------------------- */

void *zkit__arena_alloc(zkit_envelope_t *self, size_t size)
{
    zkit__arena_t *a = &self->arena;
    zkit__arena_block_t *b = a->cur;
    if (b && b->size - b->used >= size) {
        void *p = b->data + b->used;
        b->used += size;
        return p;
    }
    /* Blocks after cur are spare (kept from an earlier cycle): take the first
       one big enough. Skipped ones stay unused until the next reset. */
    zkit__arena_block_t *last = b;
    for (b = b ? b->next : NULL; b; b = b->next) {
        last = b;
        if (b->size >= size) {
            a->cur = b;
            b->used = size;
            return b->data;
        }
    }
    size_t want = last ? last->size * 2 : S_ARENA_FIRST_BLOCK;
    if (want > S_ARENA_MAX_BLOCK)
        want = S_ARENA_MAX_BLOCK;
    if (want < size)
        want = size;
    if (want > SIZE_MAX - sizeof(zkit__arena_block_t)) {
        errno = ENOMEM;
        return NULL;
    }
    b = malloc(sizeof(zkit__arena_block_t) + want);
    if (!b) {
        errno = ENOMEM;
        return NULL;
    }
    self->allocs++;
    a->blocks++;
    b->next = NULL;
    b->size = want;
    b->used = size;
    if (last)
        last->next = b;
    else
        a->head = b;
    a->cur = b;
    return b->data;
}

static void s_arena_clear(zkit__arena_t *a)
{
    a->cur = a->head;
    if (a->head)
        a->head->used = 0;
}

static void s_arena_free(zkit__arena_t *a)
{
    zkit__arena_block_t *b = a->head;
    while (b) {
        zkit__arena_block_t *next = b->next;
        free(b);
        b = next;
    }
    a->head = a->cur = NULL;
    a->blocks = 0;
}

int zkit__bytes_set(zkit_envelope_t *self, zkit__bytes_t *b, bool was_owned, const void *data,
                    size_t len)
{
    /* cap counts the NUL too and is a uint32_t, as MessagePack lengths are. */
    if (len >= UINT32_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    uint8_t *dst;
    if (was_owned && b->cap > len)
        dst = (uint8_t *) b->ptr; /* owned by us: the cast only drops our own const */
    else {
        dst = zkit__arena_alloc(self, len + 1);
        if (!dst)
            return -1;
        b->cap = (uint32_t) len + 1;
    }
    if (len)
        memmove(dst, data, len);
    dst[len] = '\0';
    b->ptr = dst;
    b->len = (uint32_t) len;
    return 0;
}

/* Entry tables grow by doubling as entries actually arrive, never to a size a
   frame declares. */
static int s_grow(zkit_envelope_t *self, void **table, uint32_t *cap, size_t entry_size)
{
    if (*cap > UINT32_MAX / 2) {
        errno = ENOMEM;
        return -1;
    }
    uint32_t want = *cap ? *cap * 2 : 8;
    void *grown = realloc(*table, (size_t) want * entry_size);
    if (!grown) {
        errno = ENOMEM;
        return -1;
    }
    self->allocs++;
    *table = grown;
    *cap = want;
    return 0;
}

int zkit__envelope_grow_headers(zkit_envelope_t *self)
{
    if (self->hdr_count < self->hdr_cap)
        return 0;
    void *table = self->hdr;
    int rc = s_grow(self, &table, &self->hdr_cap, sizeof(zkit__header_t));
    self->hdr = table;
    return rc;
}

int zkit__envelope_grow_unknown(zkit_envelope_t *self)
{
    if (self->unknown_count < self->unknown_cap)
        return 0;
    void *table = self->unknown;
    int rc = s_grow(self, &table, &self->unknown_cap, sizeof(zkit__unknown_t));
    self->unknown = table;
    return rc;
}

void zkit__envelope_clear_meta(zkit_envelope_t *self)
{
    self->present = 0;
    self->is_str = 0;
    self->hdr_count = 0;
    self->unknown_count = 0;
    self->extra = s_empty;
    self->extra_size = 0;
    self->extra_count = 0;
    s_arena_clear(&self->arena);
}

size_t zkit__envelope_arena_blocks(const zkit_envelope_t *self)
{
    return self->arena.blocks;
}

size_t zkit__envelope_allocs(const zkit_envelope_t *self)
{
    return self->allocs;
}

/* ---- lifecycle ------------------------------------------------------------ */

static void s_release_frame(zkit_envelope_t *self)
{
    /* zmq_msg_close can fail only on a corrupt message, which we never hold. */
    zmq_msg_close(&self->frame);
    zmq_msg_init(&self->frame);
}

ZKIT_EXPORT zkit_envelope_t *zkit_envelope_new(void)
{
    static const zkit_envelope_limits_t defaults = ZKIT_ENVELOPE_LIMITS_DEFAULT;
    zkit_envelope_t *self = calloc(1, sizeof *self);
    if (!self) {
        errno = ENOMEM;
        return NULL;
    }
    self->limits = defaults;
    self->error = "no error";
    zmq_msg_init(&self->frame);
    zkit_envelope_reset(self);
    return self;
}

ZKIT_EXPORT void zkit_envelope_destroy(zkit_envelope_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    zkit_envelope_t *self = *self_p;
    zmq_msg_close(&self->frame);
    s_arena_free(&self->arena);
    free(self->hdr);
    free(self->unknown);
    free(self->body_buf);
    free(self);
    *self_p = NULL;
}

ZKIT_EXPORT void zkit_envelope_reset(zkit_envelope_t *self)
{
    assert(self);
    zkit__envelope_clear_meta(self);
    s_release_frame(self);
    zkit_id_generate(self->id);
    self->ts = zkit_clock_usec();
    self->seq = 0;
    self->body = s_empty;
    self->body_size = 0;
}

ZKIT_EXPORT zkit_envelope_t *zkit_envelope_dup(const zkit_envelope_t *self)
{
    assert(self);
    zkit_envelope_t *copy = zkit_envelope_new();
    if (!copy)
        return NULL;
    copy->limits = self->limits;
    memcpy(copy->id, self->id, ZKIT_ID_SIZE);
    copy->seq = self->seq;
    copy->ts = self->ts;
    if (zkit_envelope_set_body(copy, self->body, self->body_size))
        goto err;
    copy->ttl = self->ttl;
    copy->att = self->att;
    copy->present = self->present;
    copy->is_str = self->is_str;
    for (int key = 0; key < ZKIT_META_COUNT_; key++) {
        if (key == ZKIT_META_TTL || key == ZKIT_META_ATT || key == ZKIT_META_HDR ||
            !(self->present & ZKIT__BIT(key)))
            continue;
        if (zkit__bytes_set(copy, &copy->text[key], false, self->text[key].ptr,
                            self->text[key].len))
            goto err;
    }
    for (uint32_t i = 0; i < self->hdr_count; i++) {
        if (zkit__envelope_grow_headers(copy))
            goto err;
        const zkit__header_t *from = &self->hdr[i];
        zkit__header_t *to = &copy->hdr[i];
        *to = (zkit__header_t){.type = from->type, .i = from->i};
        if (zkit__bytes_set(copy, &to->key, false, from->key.ptr, from->key.len))
            goto err;
        if (from->type != ZKIT_VALUE_INT &&
            zkit__bytes_set(copy, &to->val, false, from->val.ptr, from->val.len))
            goto err;
        copy->hdr_count++;
    }
    for (uint32_t i = 0; i < self->unknown_count; i++) {
        if (zkit__envelope_grow_unknown(copy))
            goto err;
        const zkit__unknown_t *from = &self->unknown[i];
        uint8_t *bytes = zkit__arena_alloc(copy, (size_t) from->key_size + from->raw_size);
        if (!bytes)
            goto err;
        memcpy(bytes, from->key, from->key_size);
        memcpy(bytes + from->key_size, from->raw, from->raw_size);
        copy->unknown[i] = *from;
        copy->unknown[i].key = bytes;
        copy->unknown[i].raw = bytes + from->key_size;
        copy->unknown_count++;
    }
    if (self->extra_size) {
        uint8_t *bytes = zkit__arena_alloc(copy, self->extra_size);
        if (!bytes)
            goto err;
        memcpy(bytes, self->extra, self->extra_size);
        copy->extra = bytes;
        copy->extra_size = self->extra_size;
    }
    copy->extra_count = self->extra_count;
    return copy;
err:
    zkit_envelope_destroy(&copy);
    errno = ENOMEM;
    return NULL;
}

ZKIT_EXPORT void zkit_envelope_set_limits(zkit_envelope_t *self,
                                          const zkit_envelope_limits_t *limits)
{
    assert(self);
    assert(limits);
    self->limits = *limits;
}

/* ---- fixed fields --------------------------------------------------------- */

ZKIT_EXPORT unsigned zkit_envelope_version(const zkit_envelope_t *self)
{
    (void) self; /* version 1 is the only one a decode accepts */
    return ZKIT_ENVELOPE_VERSION;
}

ZKIT_EXPORT const uint8_t *zkit_envelope_id(const zkit_envelope_t *self)
{
    return self->id;
}

ZKIT_EXPORT void zkit_envelope_set_id(zkit_envelope_t *self, const uint8_t id[ZKIT_ID_SIZE])
{
    memcpy(self->id, id, ZKIT_ID_SIZE);
}

ZKIT_EXPORT uint64_t zkit_envelope_seq(const zkit_envelope_t *self)
{
    return self->seq;
}

ZKIT_EXPORT void zkit_envelope_set_seq(zkit_envelope_t *self, uint64_t seq)
{
    self->seq = seq;
}

ZKIT_EXPORT uint64_t zkit_envelope_ts(const zkit_envelope_t *self)
{
    return self->ts;
}

ZKIT_EXPORT void zkit_envelope_set_ts(zkit_envelope_t *self, uint64_t ts)
{
    self->ts = ts;
}

ZKIT_EXPORT const void *zkit_envelope_body(const zkit_envelope_t *self, size_t *size)
{
    if (size)
        *size = self->body_size;
    return self->body;
}

ZKIT_EXPORT int zkit_envelope_set_body(zkit_envelope_t *self, const void *data, size_t size)
{
    assert(self);
    assert(data || !size);
    /* bin32 is the largest MessagePack byte string. */
    if (size > UINT32_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    if (size > self->body_cap) {
        /* Grow by half again so a slowly growing body does not allocate each
           time; allocate before freeing so a failure keeps the old body. */
        size_t want = self->body_cap + self->body_cap / 2;
        if (want < size)
            want = size;
        uint8_t *buf = malloc(want);
        if (!buf) {
            errno = ENOMEM;
            return -1;
        }
        self->allocs++;
        free(self->body_buf);
        self->body_buf = buf;
        self->body_cap = want;
    }
    if (size)
        memmove(self->body_buf, data, size);
    self->body = size ? self->body_buf : s_empty;
    self->body_size = size;
    return 0;
}

ZKIT_EXPORT void zkit_envelope_set_body_ref(zkit_envelope_t *self, const void *data, size_t size)
{
    assert(self);
    assert(data || !size);
    self->body = size ? data : s_empty;
    self->body_size = size;
}

/* ---- encode --------------------------------------------------------------- */

static inline bool s_has_map(const zkit_envelope_t *self)
{
    return (self->present | self->unknown_count | self->extra_count) != 0;
}

ZKIT_EXPORT size_t zkit_envelope_encoded_size(const zkit_envelope_t *self)
{
    /* version (1) + id as bin8 (2 + 16) + seq + ts + body */
    size_t size = 1 + 2 + ZKIT_ID_SIZE + mpack_size_uint(self->seq) + mpack_size_uint(self->ts) +
                  mpack_size_bin_header(self->body_size) + self->body_size;
    if (!s_has_map(self))
        return size + 1; /* fixarray of 5 */
    return size + mpack_size_container_header((size_t) 6 + self->extra_count) +
           zkit__meta_size(self) + self->extra_size;
}

static uint8_t *s_write(const zkit_envelope_t *self, uint8_t *p)
{
    bool map = s_has_map(self);
    if (map)
        p = mpack_write_array_header(p, 6 + self->extra_count);
    else
        *p++ = 0x95;
    *p++ = ZKIT_ENVELOPE_VERSION;
    *p++ = 0xc4; /* bin8: the smallest form that holds 16 bytes */
    *p++ = ZKIT_ID_SIZE;
    memcpy(p, self->id, ZKIT_ID_SIZE);
    p += ZKIT_ID_SIZE;
    p = mpack_write_uint(p, self->seq);
    p = mpack_write_uint(p, self->ts);
    p = mpack_write_bin_header(p, (uint32_t) self->body_size);
    memcpy(p, self->body, self->body_size);
    p += self->body_size;
    if (map) {
        p = zkit__meta_write(self, p);
        memcpy(p, self->extra, self->extra_size);
        p += self->extra_size;
    }
    return p;
}

ZKIT_EXPORT ssize_t zkit_envelope_encode_to(const zkit_envelope_t *self, void *buf, size_t capacity)
{
    assert(self);
    /* Only a body given by reference can be this long (the setters refuse). */
    if (self->body_size > UINT32_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    size_t size = zkit_envelope_encoded_size(self);
    if (capacity < size) {
        errno = ENOBUFS;
        return -1;
    }
    uint8_t *end = s_write(self, buf);
    assert((size_t) (end - (uint8_t *) buf) == size);
    (void) end;
    return (ssize_t) size;
}

ZKIT_EXPORT int zkit_envelope_encode(const zkit_envelope_t *self, zmq_msg_t *msg)
{
    assert(self);
    assert(msg);
    if (self->body_size > UINT32_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    size_t size = zkit_envelope_encoded_size(self);
    if (zmq_msg_init_size(msg, size) == -1) {
        errno = ENOMEM;
        return -1;
    }
    uint8_t *end = s_write(self, zmq_msg_data(msg));
    assert((size_t) (end - (uint8_t *) zmq_msg_data(msg)) == size);
    (void) end;
    return 0;
}

/* ---- decode --------------------------------------------------------------- */

static int s_decode(zkit_envelope_t *self, const uint8_t *data, size_t size)
{
    if (size == 0) {
        self->error = "envelope: the frame is empty";
        errno = ZKIT_EEMPTY;
        return -1;
    }
    if (size > self->limits.max_frame) {
        self->error = "envelope: the frame is larger than max_frame";
        errno = ZKIT_ETOOBIG;
        return -1;
    }
    return zkit__envelope_parse(self, data, size);
}

/* After a failure: no partial envelope, but the reason survives the reset. */
static void s_reset_after_failure(zkit_envelope_t *self)
{
    int err = errno;
    zkit_envelope_reset(self);
    errno = err;
}

ZKIT_EXPORT int zkit_envelope_decode(zkit_envelope_t *self, zmq_msg_t *msg)
{
    assert(self);
    assert(msg);
    /* Take the frame first and parse it where it will stay: a small frame
       lives inside the zmq_msg_t itself, so a move after parsing would leave
       every pointer into it dangling. On failure the frame goes back. */
    if (zmq_msg_move(&self->frame, msg) == -1)
        return -1; /* EFAULT: msg is not an initialised message */
    const uint8_t *data = zmq_msg_data(&self->frame);
    if (s_decode(self, data, zmq_msg_size(&self->frame)) == 0)
        return 0;
    int err = errno;
    zmq_msg_move(msg, &self->frame);
    zkit_envelope_reset(self);
    errno = err;
    return -1;
}

ZKIT_EXPORT int zkit_envelope_decode_bytes(zkit_envelope_t *self, const void *data, size_t size)
{
    assert(self);
    assert(data || !size);
    s_release_frame(self);
    if (s_decode(self, data, size) == 0)
        return 0;
    s_reset_after_failure(self);
    return -1;
}

ZKIT_EXPORT const char *zkit_envelope_error_detail(const zkit_envelope_t *self)
{
    return self->error;
}

/* ---- sockets -------------------------------------------------------------- */

ZKIT_EXPORT int zkit_envelope_send(zkit_envelope_t **self_p, void *socket, int flags)
{
    assert(self_p && *self_p);
    assert(socket);
    zmq_msg_t msg;
    if (zkit_envelope_encode(*self_p, &msg))
        return -1;
    if (zmq_msg_send(&msg, zsock_resolve(socket), flags) == -1) {
        int err = errno;
        zmq_msg_close(&msg);
        errno = err;
        return -1;
    }
    zkit_envelope_destroy(self_p);
    return 0;
}

ZKIT_EXPORT int zkit_envelope_recv(zkit_envelope_t *self, void *socket, int flags)
{
    assert(self);
    assert(socket);
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    /* Receive into a local message so a failed receive leaves self as it was. */
    int rc = zmq_msg_recv(&msg, zsock_resolve(socket), flags);
    if (rc != -1)
        rc = zkit_envelope_decode(self, &msg);
    int err = errno;
    zmq_msg_close(&msg);
    errno = err;
    return rc == -1 ? -1 : 0;
}
