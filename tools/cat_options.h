/*  cat_options.h (internal to the zkit program): the options of `zkit cat`,
    parsed and checked before any socket exists.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_CAT_OPTIONS_H_INCLUDED
#define ZKIT_CAT_OPTIONS_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "zkit_library.h"

typedef enum {
    ZKIT__CAT_FORMAT_JSON,
    ZKIT__CAT_FORMAT_RAW,
    ZKIT__CAT_FORMAT_HEX,
    ZKIT__CAT_FORMAT_MSGPACK
} zkit__cat_format_t;

typedef struct {
    const char *endpoint; /* one argument: an endpoint or a comma-separated list */
    bool bind;
} zkit__cat_endpoint_t;

typedef struct {
    char *key; /* owned: "KEY\0VALUE", value points after the NUL */
    const char *value;
} zkit__cat_header_t;

typedef struct {
    int type; /* ZMQ_PUSH, ...; 0 until an option chooses one */
    zkit__cat_endpoint_t *endpoints;
    size_t endpoint_count;
    const char *data;  /* --data, or NULL                          */
    const char *file;  /* --file, "-" for stdin, or NULL           */
    const char *topic; /* --topic: meta topic, and pub's topic frame */
    const char *ct;    /* --ct: meta ct                             */
    const char *src;   /* --src, or src_default                     */
    const char **subscribe;
    size_t subscribe_count;
    zkit__cat_header_t *headers;
    size_t header_count;
    uint64_t count; /* valid when has_count */
    bool has_count;
    uint64_t ttl_ms; /* valid when has_ttl */
    bool has_ttl;
    int interval_ms;  /* -1: none */
    int timeout_ms;   /* -1: none */
    int delay_ms;     /* before the first send */
    int64_t max_size; /* 0: the defaults */
    bool raw;
    bool quiet;
    bool reliable;   /* --reliable: PUT/CONFIRMED or READY/DELIVER/ACK (cat_reliable.c) */
    uint32_t window; /* --window: PUTs unconfirmed at once (push), credit (pull); 0 = default */
    int resend_ms;   /* --resend: a PUT unconfirmed this long is sent again */
    zkit__cat_format_t format;
    zkit_ops_opts_t security; /* --curve-*, --ip-*: control is never set   */
    struct zkit__ops_t *ops;  /* made from security by zkit_cmd_cat         */
    char src_default[32];
} zkit__cat_options_t;

/*  Parses argv (argv[0] is "cat") into *opts. Returns -1 when the command
    should run; otherwise the exit code to return at once: ZKIT_EXIT_OK after
    --help printed the usage on stdout, ZKIT_EXIT_USAGE after a one-line reason
    on stderr. *opts is always initialised and must be freed with
    zkit__cat_options_free.                                                  */
int zkit__cat_options_parse(zkit__cat_options_t *opts, int argc, char **argv);

/*  Releases what parse allocated. Safe to call twice.                       */
void zkit__cat_options_free(zkit__cat_options_t *opts);

/*  The linger a socket closes with after a successful run: --timeout when
    given, else a bounded 2 s for PUB and infinite (-1) for everything else. */
int zkit__cat_linger(const zkit__cat_options_t *opts);

/*  Runs `zkit cat --push --reliable` or `--pull --reliable` (cat_reliable.c):
    the producer and consumer of the spool device's protocol. Returns the
    exit code.                                                              */
int zkit__cat_reliable(const zkit__cat_options_t *opts);

#endif
