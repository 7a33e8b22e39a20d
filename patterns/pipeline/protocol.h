/*  protocol.h (internal): the command messages of ZKIT-PIPELINE/1.

    docs/pipeline-protocol.md is the contract; this file turns its tables into
    code. A message is received whole into a zkit__pipeline_frames_t (a fixed
    array of zmq_msg_t, so receiving allocates nothing per frame beyond what
    libzmq does), then parsed into a zkit__pipeline_msg_t with every field
    checked: the frame count for the command, decimal integers (digits only,
    no leading zero, at most 10 digits, range per field), 16-byte ids, batch
    names and reason texts. Nothing in a frame is trusted before it is checked;
    a message that fails is counted under one reason and dropped by the caller.

    Building goes the other way: a zkit__pipeline_msg_t becomes frames, which
    zkit__pipeline_send sends without blocking. The one thread that owns a
    socket also owns the frames it sends and receives.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_PIPELINE_PROTOCOL_H_INCLUDED
#define ZKIT_PIPELINE_PROTOCOL_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/ratelimit.h"
#include "core/recv.h"
#include "core/traffic.h"
#include "zkit_batch.h"
#include "zkit_envelope.h"

/* A message has at most a routing id plus DEAD's six frames. A longer one is
   read to its end (so the socket stays in step) and reported as truncated. */
#define ZKIT__PIPELINE_FRAMES_MAX 8

#define ZKIT__PIPELINE_WINDOW_MAX   10000
#define ZKIT__PIPELINE_REASON_MAX   1024 /* bytes of a FAIL or DEAD reason */
#define ZKIT__PIPELINE_DIGITS_MAX   10   /* digits of a decimal integer frame */
#define ZKIT__PIPELINE_TOKEN_MAX    (ZKIT_BATCH_NAME_MAX + 1 + ZKIT__PIPELINE_DIGITS_MAX)
#define ZKIT__PIPELINE_ATTEMPTS_MAX UINT32_MAX

typedef enum {
    ZKIT__PIPELINE_NONE = 0, /* a bare envelope (fast mode) */
    ZKIT__PIPELINE_READY,
    ZKIT__PIPELINE_HEARTBEAT,
    ZKIT__PIPELINE_DONE,
    ZKIT__PIPELINE_FAIL,
    ZKIT__PIPELINE_TASK,
    ZKIT__PIPELINE_DISCONNECT,
    ZKIT__PIPELINE_RESULT,
    ZKIT__PIPELINE_ACK,
    ZKIT__PIPELINE_BATCH,
    ZKIT__PIPELINE_DEAD,
    ZKIT__PIPELINE_OK,
    ZKIT__PIPELINE_COMPLETE,
    ZKIT__PIPELINE_COMMANDS_
} zkit__pipeline_cmd_t;

/*  Why a received message was dropped. Each component keeps one counter per
    reason (zkit__pipeline_bad_t).                                            */
typedef enum {
    ZKIT__PIPELINE_BAD_FRAMES = 0, /* wrong number of frames for the command */
    ZKIT__PIPELINE_BAD_COMMAND,    /* not a command this protocol knows       */
    ZKIT__PIPELINE_BAD_FIELD,      /* a malformed integer, id, batch, reason  */
    ZKIT__PIPELINE_BAD_ENVELOPE,   /* TASK or RESULT envelope does not decode */
    ZKIT__PIPELINE_BAD_META,       /* envelope decodes, required meta missing */
    ZKIT__PIPELINE_BAD_UNEXPECTED, /* a valid command on the wrong socket     */
    ZKIT__PIPELINE_BAD_LIMIT,      /* a valid message beyond a resource cap   */
    ZKIT__PIPELINE_BAD_REASONS_
} zkit__pipeline_bad_reason_t;

/*  A parsed command. Which fields are set depends on cmd; see the protocol.
    envelope points at a frame of the zkit__pipeline_frames_t that was parsed
    and is valid as long as that is.                                          */
typedef struct {
    zkit__pipeline_cmd_t cmd;
    uint32_t window;                            /* READY: 1..ZKIT__PIPELINE_WINDOW_MAX */
    uint8_t task_id[ZKIT_ID_SIZE];              /* DONE, FAIL, ACK, DEAD               */
    uint64_t total;                             /* BATCH (0 = not known yet), COMPLETE */
    uint64_t task_seq;                          /* DEAD: 1..ZKIT_BATCH_TASKS_MAX       */
    uint32_t attempts;                          /* DEAD                                */
    char batch[ZKIT_BATCH_NAME_MAX + 1];        /* BATCH, DEAD, COMPLETE     */
    char reason[ZKIT__PIPELINE_REASON_MAX + 1]; /* FAIL, DEAD                */
    char token[ZKIT__PIPELINE_TOKEN_MAX + 1];   /* OK                        */
    zmq_msg_t *envelope;                        /* TASK, RESULT, or NONE (fast mode)   */
} zkit__pipeline_msg_t;

/*  One whole received (or to-be-sent) message: at most
    ZKIT__PIPELINE_FRAMES_MAX frames held, the rest of a received one counted
    in dropped (core/recv.h).                                                 */
typedef zkit__recv_t zkit__pipeline_frames_t;
_Static_assert(ZKIT__PIPELINE_FRAMES_MAX <= ZKIT__RECV_PARTS_MAX, "a message fits a zkit__recv_t");

/*  Per-component counters of dropped input, and the log rate limit.          */
typedef struct {
    uint64_t count[ZKIT__PIPELINE_BAD_REASONS_];
    uint64_t total;
    zkit__ratelimit_t log; /* ZKIT-PIPE-BADFRAME: a peer can trigger it */
} zkit__pipeline_bad_t;

/* ---- receiving and parsing ------------------------------------------------- */

/*  Receives one whole message from socket (a zsock_t or libzmq handle) with
    flags (ZMQ_DONTWAIT). Returns 0 with frames filled (the caller closes
    them; frames->bytes is what the whole message carried, for the socket's
    zkit__traffic_in), or -1 with errno from libzmq (EAGAIN: nothing waiting)
    and nothing held. zkit__recv with this protocol's limit.                   */
static inline int zkit__pipeline_recv(void *socket, zkit__pipeline_frames_t *frames, int flags)
{
    return zkit__recv(zsock_resolve(socket), frames, ZKIT__PIPELINE_FRAMES_MAX, flags);
}

/*  Closes every frame held. Safe to call twice.                               */
static inline void zkit__pipeline_frames_close(zkit__pipeline_frames_t *frames)
{
    zkit__recv_close(frames);
}

/*  Parses the frames from index first on (1 behind a ROUTER's routing id, 0
    on a DEALER or PULL). A single frame that starts like a MessagePack array
    is a bare envelope: cmd NONE, envelope set (fast mode). Returns 0, or -1
    with errno ZKIT_EFRAMES or ZKIT_ECOMMAND and *why set (when why is not
    NULL). Never modifies the frames.                                          */
int zkit__pipeline_parse(zkit__pipeline_frames_t *frames, size_t first, zkit__pipeline_msg_t *msg,
                         zkit__pipeline_bad_reason_t *why);

/* ---- building and sending -------------------------------------------------- */

/*  Appends msg's frames to frames (the caller may have put a routing id
    first with zkit__pipeline_frames_add). TASK and RESULT take a reference to
    *msg->envelope (zmq_msg_copy: no byte copy; the caller keeps its own).
    Checks every field as parse would, so what is built parses back equal.
    Returns 0, or -1 with errno EINVAL (a field out of range; frames then hold
    what they held before) or ENOMEM.                                          */
int zkit__pipeline_build(const zkit__pipeline_msg_t *msg, zkit__pipeline_frames_t *frames);

/*  Appends a copy of size bytes as one frame. Returns 0, or -1 with errno
    ENOBUFS (ZKIT__PIPELINE_FRAMES_MAX reached) or ENOMEM.                     */
int zkit__pipeline_frames_add(zkit__pipeline_frames_t *frames, const void *data, size_t size);

/*  Sends every frame as one message without blocking, then closes them (sent
    or not). A message sent whole is counted in traffic (NULL: not counted),
    every frame's bytes, a ROUTER's routing id included. Returns 0, or -1 with
    errno from libzmq: EAGAIN (peer at its high water mark, or a DEALER with
    no peer), EHOSTUNREACH (ROUTER, unknown peer).                            */
int zkit__pipeline_send(void *socket, zkit__pipeline_frames_t *frames, zkit__traffic_t *traffic);

/*  Builds and sends in one go, behind a routing id when rid is not NULL.
    Returns as zkit__pipeline_send, or -1 with the build's errno.             */
int zkit__pipeline_send_msg(void *socket, const void *rid, size_t rid_size,
                            const zkit__pipeline_msg_t *msg, zkit__traffic_t *traffic);

/*  Sends one frame as a whole message without blocking (fast mode's bare
    envelopes), counted in traffic once sent. The frame is emptied when sent
    and left as it was when not. Returns 0, or -1 with errno from libzmq.   */
int zkit__pipeline_send_frame(void *socket, zmq_msg_t *frame, zkit__traffic_t *traffic);

/*  Unbinds the socket's last bound endpoint, so a component started again in
    the same process can bind it at once (a closed socket's listener goes
    away only when libzmq gets round to it). Errors are ignored. Never on a
    socket whose queued messages must survive: unbinding ends the sessions
    accepted through the endpoint, and one still in its handshake drops what
    was queued to it.                                                        */
void zkit__pipeline_unbind(zsock_t *sock);

/* ---- fields ---------------------------------------------------------------- */

/*  The command's wire name ("READY"), or "?".                                 */
const char *zkit__pipeline_cmd_name(zkit__pipeline_cmd_t cmd);

/*  A short text for a drop reason ("wrong frame count").                      */
const char *zkit__pipeline_bad_name(zkit__pipeline_bad_reason_t why);

/*  True when data[size] is a valid batch name: 1 to ZKIT_BATCH_NAME_MAX bytes,
    each printable ASCII other than space (0x21-0x7e).                         */
bool zkit__pipeline_batch_valid(const void *data, size_t size);

/*  Parses a decimal integer frame body: 1 to 10 digits, no sign, no leading
    zero unless it is "0", value at most max. Returns 0 or -1.                */
int zkit__pipeline_parse_uint(const void *data, size_t size, uint64_t max, uint64_t *value);

/*  The OK token for a BATCH or a COMPLETE (batch ":" total) into
    out[ZKIT__PIPELINE_TOKEN_MAX + 1]; for a DEAD it is the 32 hex digits of
    the id (zkit_id_to_hex).                                                   */
void zkit__pipeline_batch_token(const char *batch, uint64_t total, char *out);

/*  Copies src into dst[size] (size >= 1), cut at a UTF-8 character boundary
    so that it fits with its NUL. Returns dst.                                 */
char *zkit__pipeline_copy_text(char *dst, size_t size, const char *src);

/*  Counts a dropped message under why and logs it, at most once a second per
    counter set, as "ZKIT-PIPE-BADFRAME <component>: ..." (never the bytes).   */
void zkit__pipeline_bad(zkit__pipeline_bad_t *bad, zkit__pipeline_bad_reason_t why,
                        const char *component, const char *detail);

#endif
