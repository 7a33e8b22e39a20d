/*  envelope_internal.h (internal): the envelope's layout, shared by the three
    files that implement zkit_envelope.h, and the hooks white-box tests use.

    envelope.c         lifecycle, fixed fields, encoder, socket I/O, arena
    envelope_meta.c    meta accessors and the meta part of the encoder
    envelope_decode.c  the decoder

    Memory model. Every byte string the envelope refers to is a zkit__bytes_t:
    either borrowed from the decoded frame (cap 0: never written to), or owned
    in the arena (cap = bytes reserved at ptr, so a setter can overwrite it in
    place). The arena is a chain of blocks that never move and are kept on
    reset and decode, so a loop reusing one envelope allocates nothing once
    the blocks it needs exist.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_ENVELOPE_INTERNAL_H_INCLUDED
#define ZKIT_ENVELOPE_INTERNAL_H_INCLUDED

#include "zkit_envelope.h"

typedef struct zkit__arena_block {
    struct zkit__arena_block *next;
    size_t size; /* bytes in data */
    size_t used;
    uint8_t data[];
} zkit__arena_block_t;

typedef struct {
    zkit__arena_block_t *head; /* first block; NULL until something is stored */
    zkit__arena_block_t *cur;  /* block allocations come from; later ones are spare */
    size_t blocks;
} zkit__arena_t;

typedef struct {
    const uint8_t *ptr;
    uint32_t len;
    uint32_t cap; /* 0: borrowed (from the frame or a constant); else owned bytes */
} zkit__bytes_t;

typedef struct {
    zkit__bytes_t key;
    zkit__bytes_t val; /* STR and BIN */
    int64_t i;         /* INT */
    zkit_value_type_t type;
} zkit__header_t;

/* An unknown meta entry: its key and value exactly as they were on the wire. */
typedef struct {
    const uint8_t *key; /* the key's MessagePack bytes, header included */
    const uint8_t *raw; /* the value's MessagePack bytes */
    uint32_t key_size;
    uint32_t key_off; /* header bytes before the key's payload */
    uint32_t raw_size;
} zkit__unknown_t;

/* Bit of a meta key in zkit_envelope_t.present and .is_str. */
#define ZKIT__BIT(key) ((uint16_t) (1u << (key)))

struct _zkit_envelope_t {
    /* What every message has, first, so the hot path touches two cache lines. */
    uint64_t seq;
    uint64_t ts;
    const uint8_t *body;
    size_t body_size;
    uint8_t id[ZKIT_ID_SIZE];
    uint16_t present; /* ZKIT__BIT(key) set when a meta key is present */
    uint16_t is_str;  /* batch and corr: set when they hold a str, not a bin */
    uint32_t extra_count;
    const uint8_t *extra; /* array elements past index 5, raw */
    size_t extra_size;

    uint64_t ttl;
    uint64_t att;
    zkit__bytes_t text[ZKIT_META_COUNT_]; /* src topic batch reply corr ct */

    zkit__header_t *hdr;
    uint32_t hdr_count;
    uint32_t hdr_cap;
    zkit__unknown_t *unknown;
    uint32_t unknown_count;
    uint32_t unknown_cap;

    uint8_t *body_buf; /* set_body's copy; capacity kept */
    size_t body_cap;
    zkit__arena_t arena;
    zkit_envelope_limits_t limits;
    const char *error; /* static; the last decode failure */
    size_t allocs;     /* heap allocations made so far (white-box tests) */
    zmq_msg_t frame;   /* the decoded frame the body points into */
};

/* ---- envelope.c ----------------------------------------------------------- */

/*  Returns size bytes from the arena, or NULL with errno ENOMEM.              */
void *zkit__arena_alloc(zkit_envelope_t *self, size_t size);

/*  Copies len bytes plus a NUL into the arena as *b: in place when was_owned
    and the old owned slot is big enough, else into a new slot (the old one is
    reclaimed at the next reset). data may point into *b. Returns 0, or -1
    with errno ENOMEM (*b unchanged) or EMSGSIZE (len beyond 4 GiB - 2).      */
int zkit__bytes_set(zkit_envelope_t *self, zkit__bytes_t *b, bool was_owned, const void *data,
                    size_t len);

/*  Makes room for one more header / unknown entry. 0 or -1 with ENOMEM.      */
int zkit__envelope_grow_headers(zkit_envelope_t *self);
int zkit__envelope_grow_unknown(zkit_envelope_t *self);

/*  Drops every meta key, unknown entry and extra element, and recycles the
    arena. The fixed fields and the frame are left alone.                     */
void zkit__envelope_clear_meta(zkit_envelope_t *self);

/* ---- envelope_meta.c ------------------------------------------------------ */

/*  The meta map's encoded size / writes it (the map header included). Called
    only when the envelope has meta, unknown entries or extra elements.        */
size_t zkit__meta_size(const zkit_envelope_t *self);
uint8_t *zkit__meta_write(const zkit_envelope_t *self, uint8_t *p);

/*  The meta key of a wire name, or -1 when this version does not know it.   */
int zkit__meta_key(const uint8_t *name, uint32_t len);

/*  Index of the header named key (len bytes), or -1.                         */
int64_t zkit__header_find(const zkit_envelope_t *self, const void *key, size_t len);

/* ---- envelope_decode.c ---------------------------------------------------- */

/*  Parses data into self (which it clears first). Returns 0, or -1 with errno
    a ZKIT_E* code (or ENOMEM) and self->error set; self is then half-filled
    and the caller resets it.                                                  */
int zkit__envelope_parse(zkit_envelope_t *self, const uint8_t *data, size_t size);

/* ---- hooks for white-box tests -------------------------------------------- */

/*  Blocks in the envelope's arena.                                            */
size_t zkit__envelope_arena_blocks(const zkit_envelope_t *self);

/*  Heap allocations (malloc and realloc) the envelope has made since new.     */
size_t zkit__envelope_allocs(const zkit_envelope_t *self);

#endif
