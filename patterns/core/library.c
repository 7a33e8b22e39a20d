/*  library.c: error strings, version, clock and message ids.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <errno.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>
#include <time.h>
#include <zmq.h>

#include "zkit_library.h"

static const char *const s_zkit_errors[] = {
    [ZKIT_EEMPTY - ZKIT_HAUSNUMERO] = "empty frame",
    [ZKIT_ETRUNCATED - ZKIT_HAUSNUMERO] = "truncated input",
    [ZKIT_ENOTARRAY - ZKIT_HAUSNUMERO] = "envelope is not a MessagePack array",
    [ZKIT_EFIELDS - ZKIT_HAUSNUMERO] = "envelope has fewer than 5 elements",
    [ZKIT_EVERSION - ZKIT_HAUSNUMERO] = "unsupported envelope version",
    [ZKIT_ETYPE - ZKIT_HAUSNUMERO] = "field has the wrong type",
    [ZKIT_EIDSIZE - ZKIT_HAUSNUMERO] = "id is not 16 bytes",
    [ZKIT_ETRAILING - ZKIT_HAUSNUMERO] = "trailing bytes after the envelope",
    [ZKIT_EDUPKEY - ZKIT_HAUSNUMERO] = "repeated key",
    [ZKIT_EMETAKEY - ZKIT_HAUSNUMERO] = "key is not a string",
    [ZKIT_ETOOBIG - ZKIT_HAUSNUMERO] = "frame larger than the limit",
    [ZKIT_ELIMIT - ZKIT_HAUSNUMERO] = "entries, string length or nesting beyond the limit",
    [ZKIT_EFRAMES - ZKIT_HAUSNUMERO] = "wrong number of frames",
    [ZKIT_ECOMMAND - ZKIT_HAUSNUMERO] = "unknown or malformed command",
    [ZKIT_ECLOSED - ZKIT_HAUSNUMERO] = "component stopped",
    [ZKIT_EFULL - ZKIT_HAUSNUMERO] = "spool is full",
    [ZKIT_EFAILED - ZKIT_HAUSNUMERO] = "spool failed after an I/O error; reopen it",
    [ZKIT_EFORMAT - ZKIT_HAUSNUMERO] = "spool file has an unsupported format version",
};

ZKIT_EXPORT const char *zkit_strerror(int errnum)
{
    if (errnum > ZKIT_HAUSNUMERO && errnum < ZKIT_ELAST_)
        return s_zkit_errors[errnum - ZKIT_HAUSNUMERO];
    /* zmq_strerror covers both libzmq's own codes and the system's. */
    return zmq_strerror(errnum);
}

ZKIT_EXPORT const char *zkit_version(void)
{
    return ZKIT_VERSION_STRING;
}

ZKIT_EXPORT uint64_t zkit_clock_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

/*  Ids: UUIDv7 layout. 48-bit ms | ver 7 | 12-bit counter | var 10 | 62 random.
    The counter starts at a random value below 2^11 each new millisecond so ids
    from one thread sort by creation; the random tail comes from a per-thread
    xoshiro256** generator seeded once from getrandom(), so a message id costs
    no system call.                                                           */
typedef struct {
    uint64_t s[4];
    uint64_t last_ms;
    uint16_t counter;
    bool seeded;
} s_id_state_t;

static _Thread_local s_id_state_t s_id_state;

static inline uint64_t s_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t s_next_random(s_id_state_t *st)
{
    uint64_t *s = st->s;
    uint64_t result = s_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = s_rotl(s[3], 45);
    return result;
}

static void s_seed(s_id_state_t *st)
{
    uint8_t seed[32];
    size_t got = 0;
    while (got < sizeof seed) {
        ssize_t rc = getrandom(seed + got, sizeof seed - got, 0);
        if (rc > 0)
            got += (size_t) rc;
        else if (errno != EINTR)
            break;
    }
    if (got < sizeof seed) {
        /* No entropy source at all: mix what differs between threads and runs. */
        uint64_t mix[4] = {zkit_clock_usec(), (uint64_t) (uintptr_t) st,
                           (uint64_t) (uintptr_t) &got, (uint64_t) clock()};
        memcpy(seed, mix, sizeof seed);
    }
    memcpy(st->s, seed, sizeof st->s);
    if (!(st->s[0] | st->s[1] | st->s[2] | st->s[3]))
        st->s[0] = 0x9e3779b97f4a7c15ull;
    st->seeded = true;
}

ZKIT_EXPORT void zkit_id_generate(uint8_t out[16])
{
    s_id_state_t *st = &s_id_state;
    if (!st->seeded)
        s_seed(st);
    uint64_t ms = zkit_clock_usec() / 1000u;
    uint64_t r = s_next_random(st);
    if (ms > st->last_ms) {
        st->last_ms = ms;
        st->counter = (uint16_t) (r & 0x7ff);
    }
    else {
        /* Same millisecond (or the clock stepped back): keep ordering by
           counting; on counter overflow borrow the next millisecond. */
        if (++st->counter > 0xfff) {
            st->last_ms++;
            st->counter = 0;
        }
        ms = st->last_ms;
    }
    uint64_t tail = s_next_random(st);
    out[0] = (uint8_t) (ms >> 40);
    out[1] = (uint8_t) (ms >> 32);
    out[2] = (uint8_t) (ms >> 24);
    out[3] = (uint8_t) (ms >> 16);
    out[4] = (uint8_t) (ms >> 8);
    out[5] = (uint8_t) ms;
    out[6] = (uint8_t) (0x70 | (st->counter >> 8));
    out[7] = (uint8_t) st->counter;
    out[8] = (uint8_t) (0x80 | ((tail >> 56) & 0x3f));
    for (int i = 9; i < 16; i++)
        out[i] = (uint8_t) (tail >> (8 * (15 - i)));
}

ZKIT_EXPORT char *zkit_id_to_hex(const uint8_t id[16], char out[33])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[2 * i] = hex[id[i] >> 4];
        out[2 * i + 1] = hex[id[i] & 15];
    }
    out[32] = '\0';
    return out;
}
