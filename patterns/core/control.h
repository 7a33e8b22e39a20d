/*  control.h (internal): the control endpoint every zkit device answers on.

    A component that is given `--control EP` owns one bound ROUTER socket
    there and answers four requests (docs/control-protocol.md is the
    specification, with the exact STATS schema):

        STATS   ->  one frame, a MessagePack map (counters, gauges, peers)
        PING    ->  PONG
        PAUSE   ->  OK, or ERROR ... (through the component's command callback)
        RESUME  ->  OK, or ERROR ...
        other   ->  ERROR unknown command

    The endpoint never runs a thread of its own: the component adds the
    socket to its zpoller or zloop and calls zkit__control_handle() when it
    is readable, so stats are read by the thread that owns the counters and
    no locking is needed. Each call handles at most one message and never
    blocks; a reply the peer cannot take right now is dropped and counted.

    Nothing a peer sends can crash the component or make it do unbounded
    work: frames above 4 KiB make libzmq drop the connection, a message with
    many frames is discarded a bounded number of frames per call, and
    anything that is not a well-formed request is answered "ERROR ..." (or,
    when no reply can be addressed, dropped) and counted. Bad requests are
    logged at most once per second per endpoint.

    The stats builder (zkit__stats_*) is what the component's stats callback
    fills: counters (monotonic, uint64), gauges (int64), each optionally with
    up to ZKIT__STATS_MAX_LABELS labels, help texts, and peers with the time
    they were last seen. It is also usable on its own (tests, embedding).

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_CONTROL_H_INCLUDED
#define ZKIT_CONTROL_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- the stats builder ---------------------------------------------------------- */

/*  The STATS map's schema version ("schema" key). Additions that old readers
    can ignore keep the number; anything else bumps it.                      */
#define ZKIT__STATS_SCHEMA 1

/*  Limits, chosen so one STATS reply stays below about 5 MiB, far under the
    16 MiB a zkit socket accepts. An add beyond a limit fails with ENOSPC
    (peers: counted in "peers_omitted").                                     */
#define ZKIT__STATS_MAX_LABELS  4    /* labels on one sample                 */
#define ZKIT__STATS_MAX_METRICS 256  /* counters and gauges together         */
#define ZKIT__STATS_MAX_SAMPLES 4096 /* samples of all metrics together      */
#define ZKIT__STATS_MAX_PEERS   1024 /* peers listed; the rest only counted  */
#define ZKIT__STATS_MAX_NAME    63   /* metric and component names, bytes   */
#define ZKIT__STATS_MAX_LABEL   31   /* label names, bytes                   */
#define ZKIT__STATS_MAX_VALUE   255  /* label values, instance name, peer id */
#define ZKIT__STATS_MAX_HELP    255  /* help texts, bytes                    */

typedef struct zkit__stats_t zkit__stats_t;

/*  One label of a sample: name="value" (socket="frontend").                 */
typedef struct {
    const char *name;
    const char *value;
} zkit__stats_label_t;

/*  Makes an empty builder for a component ("balancer": lower-case letters,
    digits and '_', starting with a letter, at most ZKIT__STATS_MAX_NAME
    bytes) and an instance name (any UTF-8, 1 to ZKIT__STATS_MAX_VALUE
    bytes; NULL = the component). Returns NULL with errno EINVAL when either
    is not valid, ENOMEM when memory runs out.                               */
zkit__stats_t *zkit__stats_new(const char *component, const char *name);

/*  Frees the builder and nulls *self_p. Safe on NULL.                       */
void zkit__stats_destroy(zkit__stats_t **self_p);

/*  Forgets every metric, help text and peer; keeps component, name and the
    memory already allocated. This function can't fail.                      */
void zkit__stats_reset(zkit__stats_t *self);

/*  Sets uptime_us and time_us (the component's wall clock, microseconds
    since the Unix epoch) for the next encode. zkit__control sets both before
    it calls the component's stats callback; standalone users set them, or
    the encoder uses 0 and zkit_clock_usec().                                */
void zkit__stats_set_times(zkit__stats_t *self, uint64_t uptime_us, uint64_t time_us);

/*  Adds value to the counter name with the given labels (creating it at
    value). Counters are monotonic totals since the component started; the
    Prometheus exporter appends "_total", so name must not end in "_total".
    Names: lower-case letters, digits and '_', starting with a letter, at most
    ZKIT__STATS_MAX_NAME bytes; the prefix "control_" is reserved for the
    endpoint's own counters. Label names: the same alphabet, at most
    ZKIT__STATS_MAX_LABEL bytes, not "name" or "peer" (the exporter's own
    labels); label values: UTF-8, at most ZKIT__STATS_MAX_VALUE bytes. Every
    sample of one metric must use the same label names in the same order.
    Returns 0, or -1 with errno EINVAL (a name, a value or the label set is
    not valid, or name is already a gauge), ENOSPC (a limit) or ENOMEM; the
    builder is then unchanged.                                               */
int zkit__stats_counter_labels(zkit__stats_t *self, const char *name,
                               const zkit__stats_label_t *labels, size_t count, uint64_t value);

/*  zkit__stats_counter_labels without labels, or with one label.           */
int zkit__stats_counter(zkit__stats_t *self, const char *name, uint64_t value);
int zkit__stats_counter1(zkit__stats_t *self, const char *name, const char *label,
                         const char *label_value, uint64_t value);

/*  Sets the gauge name with the given labels to value (a later set of the
    same sample replaces it). Same rules and errors as counters, except that
    a gauge may not reuse a counter's name.                                  */
int zkit__stats_gauge_labels(zkit__stats_t *self, const char *name,
                             const zkit__stats_label_t *labels, size_t count, int64_t value);
int zkit__stats_gauge(zkit__stats_t *self, const char *name, int64_t value);
int zkit__stats_gauge1(zkit__stats_t *self, const char *name, const char *label,
                       const char *label_value, int64_t value);

/*  Attaches a one-line description (UTF-8, no control characters, at most
    ZKIT__STATS_MAX_HELP bytes) to the counter or gauge name, which must
    already exist. Returns 0, or -1 with errno EINVAL or ENOMEM.              */
int zkit__stats_help(zkit__stats_t *self, const char *name, const char *text);

/*  Lists a peer: its id (bytes, e.g. a ROUTER routing id; printable ASCII
    is kept as it is, anything else is listed as "0x" and lower-case hex) and
    when it was last seen (microseconds since the Unix epoch). Ids longer
    than ZKIT__STATS_MAX_VALUE bytes once rendered are cut. Beyond
    ZKIT__STATS_MAX_PEERS peers, returns -1 with errno ENOSPC and counts the
    peer in "peers_omitted". Returns 0, or -1 (ENOSPC, ENOMEM, EINVAL).     */
int zkit__stats_peer(zkit__stats_t *self, const void *id, size_t id_size, uint64_t last_seen_us);

/*  Encodes the STATS map (docs/control-protocol.md, section 4) into a new
    buffer: *data (free() it) and *size. Metrics appear in the order they
    were first added, samples sorted by label values, so two encodings of
    the same stats are byte-identical. Returns 0, or -1 with errno ENOMEM.  */
int zkit__stats_encode(const zkit__stats_t *self, uint8_t **data, size_t *size);

/* ---- the control endpoint ------------------------------------------------------- */

typedef struct zkit__control_t zkit__control_t;
struct zkit__security_t;

/*  What the component's command callback decided.                           */
typedef enum {
    ZKIT__CONTROL_OK,          /* reply "OK", or the text the callback wrote   */
    ZKIT__CONTROL_ERROR,       /* reply "ERROR " + the text (or "failed")      */
    ZKIT__CONTROL_UNSUPPORTED, /* reply "ERROR not supported"                 */
    ZKIT__CONTROL_UNKNOWN      /* reply "ERROR unknown command"               */
} zkit__control_result_t;

/*  Fills stats (already reset, with times set) with the component's current
    counters, gauges and peers. Runs in the thread that calls handle().     */
typedef void(zkit__control_stats_fn)(zkit__stats_t *stats, void *arg);

/*  Handles PAUSE, RESUME and any other well-formed command except STATS and
    PING. command is the upper-case word ("PAUSE"), args what followed it
    after one space (possibly ""). The callback may write a NUL-terminated
    reply text (printable ASCII) into reply[reply_size]; it starts empty.  */
typedef zkit__control_result_t(zkit__control_command_fn)(const char *command, const char *args,
                                                         char *reply, size_t reply_size, void *arg);

typedef struct {
    /* Where to bind: one endpoint or a comma-separated list. */
    const char *endpoint;
    /* "balancer" (see zkit__stats_new) and the instance name (NULL: the
       component). */
    const char *component;
    const char *name;
    /* NULL: STATS carries only the endpoint's own counters. */
    zkit__control_stats_fn *stats_fn;
    /* NULL: PAUSE and RESUME answer "ERROR not supported". */
    zkit__control_command_fn *command_fn;
    /* Passed to both callbacks. */
    void *arg;
    /* NULL: plaintext; else applied as a server before the bind. */
    struct zkit__security_t *security;
} zkit__control_opts_t;

#define ZKIT__CONTROL_OPTS_DEFAULT                                                                 \
    {                                                                                              \
        .endpoint = NULL, .component = NULL, .name = NULL, .stats_fn = NULL, .command_fn = NULL,   \
        .arg = NULL, .security = NULL                                                              \
    }

/*  The PAUSE/RESUME rule every component follows, for its command callback:
    when command is PAUSE or RESUME, refuses any argument (ERROR "PAUSE takes
    no argument"), sets *paused, logs a change (not a repeat) once as
    "ZKIT-CONTROL-PAUSED who: what paused until RESUME" or
    "ZKIT-CONTROL-RESUMED who: what resumed", and answers "OK paused" or
    "OK resumed" in reply. Returns ZKIT__CONTROL_UNKNOWN, *paused untouched,
    for any other command. who: "balancer lb-east"; what: "dispatching".    */
zkit__control_result_t zkit__control_pause_resume(const char *command, const char *args,
                                                  char *reply, size_t reply_size, bool *paused,
                                                  const char *who, const char *what);

/*  Creates the ROUTER socket, applies opts->security (when set) and binds
    it. Call from the thread that will call handle(). Returns NULL with errno
    set (EINVAL for missing or invalid options, the bind's error otherwise)
    and a log line naming the endpoint. The callbacks are never called by
    new() or destroy().                                                       */
zkit__control_t *zkit__control_new(const zkit__control_opts_t *opts);

/*  Closes the socket (unsent replies are dropped: they are worthless once
    the component is gone) and nulls *self_p. Safe on NULL.                  */
void zkit__control_destroy(zkit__control_t **self_p);

/*  The socket, to add to a zpoller or zloop. Owned by the endpoint: do not
    read from it or destroy it.                                               */
zsock_t *zkit__control_socket(zkit__control_t *self);

/*  The last endpoint bound, resolved ("tcp://127.0.0.1:41234" for ':*').
    Valid until destroy.                                                      */
const char *zkit__control_endpoint(zkit__control_t *self);

/*  Receives one waiting request (without blocking), answers it and returns
    1; returns 0 when nothing was waiting, -1 with errno set when the socket
    failed (ETERM: the context is shutting down). May call the callbacks.   */
int zkit__control_handle(zkit__control_t *self);

/*  A zloop reader: zloop_reader(loop, zkit__control_socket(c),
    zkit__control_zloop_reader, c). Handles what is waiting (up to a small
    batch) and returns 0, or -1 on ETERM so the loop ends.                   */
int zkit__control_zloop_reader(zloop_t *loop, zsock_t *sock, void *arg);

/*  Requests answered and requests rejected as malformed, since new().       */
uint64_t zkit__control_requests(const zkit__control_t *self);
uint64_t zkit__control_bad_requests(const zkit__control_t *self);

#endif
