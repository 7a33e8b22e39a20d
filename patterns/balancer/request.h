/*  request.h (internal): a request the balancer holds, and the two dialects.

    Clients and workers each speak one of two dialects, and the balancer
    translates between them so any client works with any worker:
    - raw: RFC 6 workers and REQ clients; content is 1 to 16 plain frames.
    - enveloped: zkit workers, and clients whose request is one frame that
      decodes as an envelope v1; content is that one envelope frame.
    Raw content becomes an envelope by putting part 1 in the body and part
    n >= 2 in header "zkit-part-n"; an envelope becomes raw content the other
    way round. An enveloped request goes to a zkit worker byte for byte on
    its first attempt; later attempts carry meta att.

    The payload the dispatcher holds for each request is a
    zkit__bal_request_t: the client's address stack, the content frames and
    whether the client wants an envelope back. The functions below build and
    send what goes to workers and clients from it, and the dead-letter record.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_BALANCER_REQUEST_H_INCLUDED
#define ZKIT_BALANCER_REQUEST_H_INCLUDED

#include "balancer/protocol.h"
#include "core/dispatcher.h"

typedef struct {
    uint8_t id[ZKIT_ID_SIZE]; /* the dispatcher id: the envelope's, or assigned */
    bool enveloped;           /* the client sent an envelope: answer with one   */
    uint8_t route_count;
    uint8_t part_count;
    zmq_msg_t *route; /* the client's address stack, routing id first */
    zmq_msg_t part[]; /* the content frames                           */
} zkit__bal_request_t;

/*  What building envelopes needs: a scratch envelope and the balancer's
    name and counter for the src and seq of envelopes it makes.              */
typedef struct {
    zkit_envelope_t *env;
    const char *name;
    uint64_t seq;
} zkit__bal_codec_t;

/*  Creates a request from a received frontend message, moving its address
    frames and content frames out of msg (msg keeps only the delimiter and
    must still be closed). Returns NULL with errno ENOMEM; msg is then
    unchanged.                                                                */
zkit__bal_request_t *zkit__bal_request_new(zkit__bal_msg_t *msg, const zkit__bal_client_msg_t *cm,
                                           const uint8_t id[ZKIT_ID_SIZE], bool enveloped);

/*  Frees the request and nulls *self_p. Safe on NULL.                       */
void zkit__bal_request_destroy(zkit__bal_request_t **self_p);

/*  The dispatcher's payload_free for requests.                               */
void zkit__bal_request_free(void *payload, void *arg);

/*  Exchanges the address stacks of a and b: a resend of a held request
    that came over another connection gives the held one its new route.
    Can't fail.                                                               */
void zkit__bal_request_swap_route(zkit__bal_request_t *a, zkit__bal_request_t *b);

/*  Sends attempt number attempts to the worker rid on the backend:
    [rid][handle = id][empty][content...], content in the worker's dialect
    (zkit_worker: one envelope), counted in traffic as zkit__bal_send does
    (so are the sends of reply and error). The request keeps its frames. Returns 0, or
    -1 with errno from libzmq (EHOSTUNREACH, EAGAIN) or ENOMEM.              */
int zkit__bal_request_dispatch(zkit__bal_request_t *self, void *backend, const void *rid,
                               size_t rid_size, bool zkit_worker, uint32_t attempts,
                               zkit__bal_codec_t *codec, zkit__traffic_t *traffic);

/*  Sends a worker's reply to the client, in the client's dialect. parts are
    the reply's content frames; frames sent as they are are moved out (left
    empty), the caller closes them all afterwards. When the worker is a zkit
    worker, reply is parts[0] already decoded, else NULL.
    Returns 0, or -1 with errno from libzmq (EHOSTUNREACH: the client is
    gone; EAGAIN: it does not read) or ENOMEM.                                */
int zkit__bal_request_reply(zkit__bal_request_t *self, void *frontend, zmq_msg_t *parts,
                            size_t count, const zkit_envelope_t *reply, zkit__bal_codec_t *codec,
                            zkit__traffic_t *traffic);

/*  Answers the client with an error: reason is a dispatcher reason name or
    "OVERLOAD". A raw client gets one frame "ZKIT-ERROR REASON ATTEMPTS"; an
    enveloped one an envelope with corr = the request id, an empty body and
    headers zkit-error and zkit-attempts. Returns as zkit__bal_request_reply. */
int zkit__bal_request_error(zkit__bal_request_t *self, void *frontend, const char *reason,
                            uint32_t attempts, zkit__bal_codec_t *codec, zkit__traffic_t *traffic);

/*  Builds the dead-letter record: the request as an envelope (its own, or
    one wrapping the raw parts, with the request's id) with headers
    zkit-error = reason and zkit-attempts = attempts, encoded into *record
    (initialised on success; the caller closes it). Returns 0, or -1 with
    errno ENOMEM.                                                             */
int zkit__bal_request_record(zkit__bal_request_t *self, const char *reason, uint32_t attempts,
                             zkit__bal_codec_t *codec, zmq_msg_t *record);

/*  Puts raw content into env (which is reset first): part 1 as the body,
    by reference (the frames must outlive env's use), parts n >= 2 as
    headers "zkit-part-n". Returns 0, or -1 with errno ENOMEM.               */
int zkit__bal_wrap(zkit_envelope_t *env, const zkit__bal_frame_t *parts, size_t count);

/*  The other way: env's body and its headers zkit-part-2, -3, ... (up to
    ZKIT__BAL_PARTS_MAX, stopping at the first missing one) as views into
    env. Returns the number of parts (at least 1).                           */
size_t zkit__bal_unwrap(const zkit_envelope_t *env, zkit__bal_frame_t parts[ZKIT__BAL_PARTS_MAX]);

#endif
