/*  zkit_envelope.h: the envelope v1 every zkit message carries.

    The wire contract is docs/envelope.md (from shared/design/envelope.md): one
    MessagePack array [version, id, seq, ts, body, meta?]. This class encodes it,
    decodes it without copying the body, and validates it against a hostile
    peer: a decoder error never crashes, never leaves a partial envelope, and
    no allocation is ever sized from a count the input declares.

    An envelope is reusable: encode, send and decode keep the memory they have
    grown, so a loop that reuses one envelope allocates nothing per message in
    steady state. An envelope is not thread-safe; use one per thread.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_ENVELOPE_H_INCLUDED
#define ZKIT_ENVELOPE_H_INCLUDED

#include <sys/types.h>
#include <zmq.h>

#include "zkit_library.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ZKIT_ENVELOPE_VERSION 1
#define ZKIT_ID_SIZE          16

typedef struct _zkit_envelope_t zkit_envelope_t;

/*  What a decoder accepts. A frame outside these limits fails with ZKIT_ETOOBIG
    (frame size) or ZKIT_ELIMIT (everything else).                              */
typedef struct {
    size_t max_frame;          /* bytes in one envelope frame                   */
    uint32_t max_meta_entries; /* entries in the meta map, unknown ones included */
    uint32_t max_headers;      /* entries in the hdr map                         */
    uint32_t max_string;       /* bytes in any meta string or key (not the body) */
    uint32_t max_depth;        /* nesting of unknown meta values / extra elements */
} zkit_envelope_limits_t;

#define ZKIT_ENVELOPE_LIMITS_DEFAULT                                                               \
    {                                                                                              \
        .max_frame = 16u * 1024 * 1024, .max_meta_entries = 64, .max_headers = 64,                 \
        .max_string = 64u * 1024, .max_depth = 16                                                  \
    }

/*  Meta keys with a defined meaning. Presence is tested with zkit_envelope_has. */
typedef enum {
    ZKIT_META_SRC,   /* str: producer name; (src, seq) identifies a stream    */
    ZKIT_META_TTL,   /* uint: ms after ts when the message expires            */
    ZKIT_META_ATT,   /* uint: delivery attempt, 1 on first delivery           */
    ZKIT_META_TOPIC, /* str                                                   */
    ZKIT_META_BATCH, /* bin or str: the batch a task belongs to               */
    ZKIT_META_REPLY, /* str: where a reply goes                               */
    ZKIT_META_CORR,  /* bin or str: correlation id of the request this answers */
    ZKIT_META_CT,    /* str: content type of the body                         */
    ZKIT_META_HDR,   /* map of str to str, bin or int: user headers           */
    ZKIT_META_COUNT_
} zkit_meta_key_t;

/*  A header value, or a borrowed view of a bin-or-str meta field. data points
    into the envelope and stays valid until the envelope is next changed,
    decoded into, reset or destroyed.                                          */
typedef enum { ZKIT_VALUE_STR = 1, ZKIT_VALUE_BIN, ZKIT_VALUE_INT } zkit_value_type_t;

typedef struct {
    zkit_value_type_t type;
    const void *data; /* STR and BIN: the bytes (a STR is not NUL-terminated) */
    size_t size;      /* STR and BIN: byte count                              */
    int64_t i;        /* INT                                                  */
} zkit_value_t;

/*  Creates an envelope with a fresh id (zkit_id_generate), ts = now, seq 0, an
    empty body and no meta. Returns NULL when out of memory.                   */
ZKIT_EXPORT zkit_envelope_t *zkit_envelope_new(void);

/*  Destroys the envelope and sets *self_p to NULL. Safe when either is NULL.  */
ZKIT_EXPORT void zkit_envelope_destroy(zkit_envelope_t **self_p);

/*  Clears every field as zkit_envelope_new would (fresh id, ts = now), keeping
    the memory already grown and the limits. Releases a decoded frame.        */
ZKIT_EXPORT void zkit_envelope_reset(zkit_envelope_t *self);

/*  Returns a deep copy that owns all its bytes, or NULL when out of memory.  */
ZKIT_EXPORT zkit_envelope_t *zkit_envelope_dup(const zkit_envelope_t *self);

/*  Replaces the decoder limits (copied). Encoding is not limited by them.     */
ZKIT_EXPORT void zkit_envelope_set_limits(zkit_envelope_t *self,
                                          const zkit_envelope_limits_t *limits);

/* ---- fixed fields --------------------------------------------------------- */

/*  The version of a decoded envelope (1), or ZKIT_ENVELOPE_VERSION for one
    built here.                                                                */
ZKIT_EXPORT unsigned zkit_envelope_version(const zkit_envelope_t *self);

/*  The 16-byte id. The pointer is valid as long as the envelope.              */
ZKIT_EXPORT const uint8_t *zkit_envelope_id(const zkit_envelope_t *self);
ZKIT_EXPORT void zkit_envelope_set_id(zkit_envelope_t *self, const uint8_t id[ZKIT_ID_SIZE]);

ZKIT_EXPORT uint64_t zkit_envelope_seq(const zkit_envelope_t *self);
ZKIT_EXPORT void zkit_envelope_set_seq(zkit_envelope_t *self, uint64_t seq);

/*  Creation time, microseconds since the Unix epoch.                          */
ZKIT_EXPORT uint64_t zkit_envelope_ts(const zkit_envelope_t *self);
ZKIT_EXPORT void zkit_envelope_set_ts(zkit_envelope_t *self, uint64_t ts);

/*  The body bytes; *size receives their count (size may be NULL). Never NULL
    itself: an empty body gives a valid pointer and size 0. After a decode it
    points into the received frame, which the envelope keeps alive.           */
ZKIT_EXPORT const void *zkit_envelope_body(const zkit_envelope_t *self, size_t *size);

/*  Copies size bytes into the envelope as its body. Returns 0, or -1 with
    errno ENOMEM, or EMSGSIZE for 4 GiB or more (MessagePack's limit); the
    previous body is then kept.                                                */
ZKIT_EXPORT int zkit_envelope_set_body(zkit_envelope_t *self, const void *data, size_t size);

/*  Uses the caller's bytes as the body without copying them. The caller keeps
    them valid and unchanged until the envelope's body is next set, or the
    envelope is reset, decoded into or destroyed.                              */
ZKIT_EXPORT void zkit_envelope_set_body_ref(zkit_envelope_t *self, const void *data, size_t size);

/* ---- meta ----------------------------------------------------------------- */

/*  True when the meta key is present.                                          */
ZKIT_EXPORT bool zkit_envelope_has(const zkit_envelope_t *self, zkit_meta_key_t key);

/*  Removes the meta key if present (ZKIT_META_HDR removes every header).       */
ZKIT_EXPORT void zkit_envelope_unset(zkit_envelope_t *self, zkit_meta_key_t key);

/*  String meta fields, NUL-terminated, or NULL when absent. A string received
    with an embedded NUL reads as truncated here; its full bytes are kept and
    re-encoded unchanged. The pointer lives until the field or envelope changes.
    The setters copy value (NUL-terminated) and return 0, or -1 with errno
    ENOMEM; value NULL unsets the field.                                       */
ZKIT_EXPORT const char *zkit_envelope_src(const zkit_envelope_t *self);
ZKIT_EXPORT int zkit_envelope_set_src(zkit_envelope_t *self, const char *value);
ZKIT_EXPORT const char *zkit_envelope_topic(const zkit_envelope_t *self);
ZKIT_EXPORT int zkit_envelope_set_topic(zkit_envelope_t *self, const char *value);
ZKIT_EXPORT const char *zkit_envelope_reply(const zkit_envelope_t *self);
ZKIT_EXPORT int zkit_envelope_set_reply(zkit_envelope_t *self, const char *value);
ZKIT_EXPORT const char *zkit_envelope_ct(const zkit_envelope_t *self);
ZKIT_EXPORT int zkit_envelope_set_ct(zkit_envelope_t *self, const char *value);

/*  Unsigned meta fields: 0 when absent (test presence with zkit_envelope_has). */
ZKIT_EXPORT uint64_t zkit_envelope_ttl(const zkit_envelope_t *self);
ZKIT_EXPORT void zkit_envelope_set_ttl(zkit_envelope_t *self, uint64_t ttl_ms);
ZKIT_EXPORT uint64_t zkit_envelope_att(const zkit_envelope_t *self);
ZKIT_EXPORT void zkit_envelope_set_att(zkit_envelope_t *self, uint64_t attempt);

/*  True when the envelope carries a ttl and now_usec is past ts + ttl.        */
ZKIT_EXPORT bool zkit_envelope_expired(const zkit_envelope_t *self, uint64_t now_usec);

/*  batch and corr are bin or str on the wire. The getters fill *value (type
    STR or BIN) and return 0, or return -1 with errno ENOENT when absent. The
    setters copy the bytes, as bin (set_batch) or str (set_batch_str, value
    must not be NULL: unset with zkit_envelope_unset), and return 0 or -1
    with errno ENOMEM, or EMSGSIZE for 4 GiB or more.                          */
ZKIT_EXPORT int zkit_envelope_batch(const zkit_envelope_t *self, zkit_value_t *value);
ZKIT_EXPORT int zkit_envelope_set_batch(zkit_envelope_t *self, const void *data, size_t size);
ZKIT_EXPORT int zkit_envelope_set_batch_str(zkit_envelope_t *self, const char *value);
ZKIT_EXPORT int zkit_envelope_corr(const zkit_envelope_t *self, zkit_value_t *value);
ZKIT_EXPORT int zkit_envelope_set_corr(zkit_envelope_t *self, const void *data, size_t size);
ZKIT_EXPORT int zkit_envelope_set_corr_str(zkit_envelope_t *self, const char *value);

/*  User headers (meta key hdr), in wire order. zkit_envelope_header looks a key
    up: 0 and *value filled, or -1 with errno ENOENT. header_at reads entry
    index < header_count: *key and *key_size get the key bytes (not NUL-terminated);
    -1 with errno EINVAL when index is out of range. The setters add or replace
    a key (replacing keeps its position) and return 0 or -1 with errno ENOMEM;
    remove_header returns 0, or -1 with errno ENOENT.                          */
ZKIT_EXPORT int zkit_envelope_header(const zkit_envelope_t *self, const char *key,
                                     zkit_value_t *value);
ZKIT_EXPORT size_t zkit_envelope_header_count(const zkit_envelope_t *self);
ZKIT_EXPORT int zkit_envelope_header_at(const zkit_envelope_t *self, size_t index, const char **key,
                                        size_t *key_size, zkit_value_t *value);
ZKIT_EXPORT int zkit_envelope_set_header_str(zkit_envelope_t *self, const char *key,
                                             const char *value);
ZKIT_EXPORT int zkit_envelope_set_header_bin(zkit_envelope_t *self, const char *key,
                                             const void *data, size_t size);
ZKIT_EXPORT int zkit_envelope_set_header_int(zkit_envelope_t *self, const char *key, int64_t value);
ZKIT_EXPORT int zkit_envelope_remove_header(zkit_envelope_t *self, const char *key);

/*  Meta keys this version does not know, kept from a decoded frame and
    re-encoded unchanged after the known keys. unknown_at gives entry index:
    its key bytes and the raw MessagePack bytes of its value; -1 with errno
    EINVAL when index is out of range.                                         */
ZKIT_EXPORT size_t zkit_envelope_unknown_count(const zkit_envelope_t *self);
ZKIT_EXPORT int zkit_envelope_unknown_at(const zkit_envelope_t *self, size_t index,
                                         const char **key, size_t *key_size, const void **raw_value,
                                         size_t *raw_size);

/*  Array elements past index 5 in a decoded frame (a newer version's fields):
    their count and raw MessagePack bytes, re-encoded unchanged.               */
ZKIT_EXPORT size_t zkit_envelope_extra_count(const zkit_envelope_t *self);
ZKIT_EXPORT const void *zkit_envelope_extra_raw(const zkit_envelope_t *self, size_t *size);

/* ---- encode and decode ---------------------------------------------------- */

/*  The exact number of bytes zkit_envelope_encode_to will write.               */
ZKIT_EXPORT size_t zkit_envelope_encoded_size(const zkit_envelope_t *self);

/*  Writes the envelope's MessagePack bytes into buf. Returns the byte count, or
    -1 with errno ENOBUFS when capacity is smaller than encoded_size, or
    EMSGSIZE when a borrowed body is 4 GiB or more (nothing
    useful is written then). Never allocates.                                  */
ZKIT_EXPORT ssize_t zkit_envelope_encode_to(const zkit_envelope_t *self, void *buf,
                                            size_t capacity);

/*  Initialises msg (which must not be initialised) with the encoded envelope.
    Returns 0, or -1 with errno ENOMEM (msg is then not initialised). The
    caller sends or closes msg. libzmq allocates the frame, as for any send.   */
ZKIT_EXPORT int zkit_envelope_encode(const zkit_envelope_t *self, zmq_msg_t *msg);

/*  Decodes the frame in msg into self, replacing everything self held. On
    success returns 0 and takes msg's content (msg is left an empty message the
    caller still closes); the body then points into that frame, without a copy.
    On failure returns -1 with errno a ZKIT_E* code, leaves msg untouched and
    self reset (never a partial envelope); zkit_envelope_error_detail says which
    field failed.                                                              */
ZKIT_EXPORT int zkit_envelope_decode(zkit_envelope_t *self, zmq_msg_t *msg);

/*  As zkit_envelope_decode, from bytes the caller keeps valid and unchanged
    for as long as the envelope refers to them (until reset, decode, destroy). */
ZKIT_EXPORT int zkit_envelope_decode_bytes(zkit_envelope_t *self, const void *data, size_t size);

/*  After a failed decode: a static, human-readable account of what was wrong
    and where (e.g. "meta key 'ttl': expected an unsigned integer"). Never NULL. */
ZKIT_EXPORT const char *zkit_envelope_error_detail(const zkit_envelope_t *self);

/*  Encodes and sends the envelope as one frame on socket (a zsock_t, zactor_t
    or libzmq socket), with zmq_msg_send flags (ZMQ_SNDMORE, ZMQ_DONTWAIT).
    On success returns 0, destroys the envelope and nulls *self_p: ownership
    moved to the socket. On failure returns -1 with errno as set by libzmq
    (EAGAIN, ETERM, ...) or ENOMEM, and the caller still owns the envelope.
    To reuse one envelope per message, use zkit_envelope_encode instead.      */
ZKIT_EXPORT int zkit_envelope_send(zkit_envelope_t **self_p, void *socket, int flags);

/*  Receives one frame from socket and decodes it into self (see decode). With
    flags ZMQ_DONTWAIT returns -1/EAGAIN when nothing is waiting. A frame that
    fails to decode is consumed and reported as -1 with its ZKIT_E* errno; the
    caller may simply receive again. If the frame is followed by more frames
    (ZMQ_RCVMORE), they are left for the caller.                               */
ZKIT_EXPORT int zkit_envelope_recv(zkit_envelope_t *self, void *socket, int flags);

#ifdef __cplusplus
}
#endif

#endif
