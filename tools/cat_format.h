/*  cat_format.h (internal to the zkit program): how `zkit cat` prints what it
    receives. A growable output buffer, a strict UTF-8 validator, JSON string
    escaping, base64 and hex, MessagePack rendered as JSON, and the JSON form
    of a whole envelope.

    Nothing here trusts its input: every function takes bytes a hostile peer
    chose and produces well-formed output or an error, never a crash.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_CAT_FORMAT_H_INCLUDED
#define ZKIT_CAT_FORMAT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cat_options.h"
#include "zkit_envelope.h"

/*  An output buffer. Appends never fail visibly: when memory runs out the
    buffer sets failed and ignores further appends; the caller checks failed
    once per message. Zero-initialise it; release it with buf_free.           */
typedef struct {
    char *data;
    size_t size;
    size_t capacity;
    bool failed;
} zkit__cat_buf_t;

void zkit__cat_buf_free(zkit__cat_buf_t *buf);
/*  Empties the buffer, keeping its memory and clearing failed.               */
void zkit__cat_buf_clear(zkit__cat_buf_t *buf);
void zkit__cat_buf_append(zkit__cat_buf_t *buf, const void *data, size_t size);
void zkit__cat_buf_puts(zkit__cat_buf_t *buf, const char *text);
void zkit__cat_buf_putc(zkit__cat_buf_t *buf, char c);
void zkit__cat_buf_printf(zkit__cat_buf_t *buf, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

/*  The length of the well-formed UTF-8 sequence at data[0..size), 1 to 4, or
    0 when the bytes there are not one (overlong forms, surrogates, code points
    above U+10FFFF, stray or missing continuation bytes). size must be > 0.   */
size_t zkit__cat_utf8_sequence(const uint8_t *data, size_t size);

/*  True when all size bytes are well-formed UTF-8 (RFC 3629, strict).       */
bool zkit__cat_utf8_valid(const void *data, size_t size);

/*  Appends a JSON string literal, quotes included: `"` and `\` escaped,
    control characters as \n, \t, ... or \u00XX, DEL as \u007f. Bytes that
    are not well-formed UTF-8 become U+FFFD (callers that must not lose bytes
    test utf8_valid first and use json_bytes).                               */
void zkit__cat_json_string(zkit__cat_buf_t *buf, const void *data, size_t size);

/*  Appends data as a JSON string when it is valid UTF-8, else as the object
    {"base64": "..."}.                                                        */
void zkit__cat_json_bytes(zkit__cat_buf_t *buf, const void *data, size_t size);

/*  Appends the standard base64 (RFC 4648, padded) or lowercase hex of data. */
void zkit__cat_base64(zkit__cat_buf_t *buf, const void *data, size_t size);
void zkit__cat_hex(zkit__cat_buf_t *buf, const void *data, size_t size);

/*  Appends count consecutive MessagePack values from data as JSON values,
    separated by commas (so count 1 gives one value). nil, bool, integers and
    floats map to their JSON forms (NaN and infinities to null), str to a JSON
    string (or {"base64"} when not UTF-8), bin to {"base64": ...}, ext to
    {"ext": type, "base64": ...}, arrays and maps to arrays and objects (a
    non-string map key is rendered as its JSON text in a string). Containers
    nested deeper than max_depth are replaced by the string "..." and skipped.
    Returns 0, or -1 when the bytes are not count complete values: the value
    that failed reads as null and the ones after it are left out, so what was
    appended is still valid JSON.                                            */
int zkit__cat_json_msgpack(zkit__cat_buf_t *buf, const void *data, size_t size, size_t count,
                           unsigned max_depth);

/*  Extra context for an envelope printed as JSON: the SUB topic frame and the
    ROUTER peer's routing id. NULL pointers are omitted.                     */
typedef struct {
    const void *frame_topic;
    size_t frame_topic_size;
    const void *peer;
    size_t peer_size;
} zkit__cat_context_t;

/*  Appends one JSON object for a decoded envelope (no newline): v, id, seq,
    ts, the meta keys present (src, ttl, att, topic, batch, reply, corr, ct,
    hdr), "unknown" (an object of the meta keys this version does not know),
    "extra" (an array of the elements past index 5), frame_topic and peer from
    context (which may be NULL), then body (a JSON string when the body is
    valid UTF-8) or body_base64.                                             */
void zkit__cat_json_envelope(zkit__cat_buf_t *buf, const zkit_envelope_t *env,
                             const zkit__cat_context_t *context);

/*  One record of output for a decoded envelope in the given format (a
    zkit__cat_format_t from cat_options.h): json, the body then a newline
    (raw), the hex of the whole envelope frame then a newline (hex), or the
    frame's bytes as they are (msgpack). frame is the frame env was decoded
    from.                                                                    */
void zkit__cat_format_envelope(zkit__cat_buf_t *buf, zkit__cat_format_t format,
                               const zkit_envelope_t *env, const void *frame, size_t frame_size,
                               const zkit__cat_context_t *context);

/*  One frame of a message printed undecoded (--raw).                        */
typedef struct {
    const void *data;
    size_t size;
} zkit__cat_frame_t;

/*  One record of output for a message received with --raw: json
    {"frames": [...], "peer": ...}, each frame then a newline (raw), frames in
    hex separated by spaces then a newline (hex), or the frames back to back
    (msgpack).                                                               */
void zkit__cat_format_frames(zkit__cat_buf_t *buf, zkit__cat_format_t format,
                             const zkit__cat_frame_t *frames, size_t count,
                             const zkit__cat_context_t *context);

#endif
