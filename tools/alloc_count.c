/*  alloc_count.c: counts the allocations one thread makes, for `zkit bench`.

    The zkit program defines malloc, calloc and realloc itself. The dynamic
    linker binds every caller to them, libzmq, czmq and msgpack-c included,
    and each forwards to glibc's own implementation (__libc_malloc, ...), so
    the allocator is unchanged: only the calls are counted. free is defined
    too, for symmetry, and forwards to __libc_free. posix_memalign,
    aligned_alloc, memalign and valloc are left to glibc: nothing here
    allocates with them, and memory they return is released by glibc's free,
    which is what __libc_free is.

    The counter and the on/off switch are thread-local (initial-exec TLS in
    the executable: no allocation, no lock, no call to read them), so every
    thread can call these functions at any time; only the thread that called
    zkit__alloc_count_start is counted. With counting off a call costs one
    well-predicted branch.

    A sanitizer build (ZKIT_SANITIZED) has its own allocator to keep, so the
    interposer is compiled out there and the counting functions report that
    counting is unavailable.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <stdio.h>
#include <stdlib.h>

#include "bench.h"

#if !defined(ZKIT_SANITIZED)

#define S_TLS    __attribute__((tls_model("initial-exec"))) _Thread_local
#define S_EXPORT __attribute__((visibility("default")))

static S_TLS bool s_counting;
static S_TLS uint64_t s_count;

/* glibc's allocator entry points, exported by libc.so.6 since glibc 2.0. */
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t nmemb, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);
extern void __libc_free(void *ptr);

S_EXPORT void *malloc(size_t size)
{
    if (__builtin_expect(s_counting, 0))
        s_count++;
    return __libc_malloc(size);
}

S_EXPORT void *calloc(size_t nmemb, size_t size)
{
    if (__builtin_expect(s_counting, 0))
        s_count++;
    return __libc_calloc(nmemb, size);
}

/*  realloc(ptr, 0) with a pointer frees; every other call may allocate and
    counts as one allocation.                                                 */
S_EXPORT void *realloc(void *ptr, size_t size)
{
    if (__builtin_expect(s_counting, 0) && (size || !ptr))
        s_count++;
    return __libc_realloc(ptr, size);
}

S_EXPORT void free(void *ptr)
{
    __libc_free(ptr);
}

bool zkit__alloc_count_available(void)
{
    return true;
}

void zkit__alloc_count_start(void)
{
    s_count = 0;
    s_counting = true;
}

uint64_t zkit__alloc_count_stop(void)
{
    s_counting = false;
    return s_count;
}

#else /* ZKIT_SANITIZED */

bool zkit__alloc_count_available(void)
{
    return false;
}

void zkit__alloc_count_start(void)
{
}

uint64_t zkit__alloc_count_stop(void)
{
    return 0;
}

#endif

int zkit__alloc_count_selftest(void)
{
    if (!zkit__alloc_count_available())
        return 0;
    /* Through volatile pointers: the compiler assumes a call it knows as
       malloc touches no counter of ours, and would read the counter as 0. */
    void *(*volatile alloc)(size_t) = malloc;
    void (*volatile release)(void *) = free;
    zkit__alloc_count_start();
    void *block = alloc(16);
    uint64_t counted = zkit__alloc_count_stop();
    release(block);
    if (counted != 1) {
        fprintf(stderr,
                "zkit bench: error: the allocation counter is broken (one malloc(16) counted "
                "as %llu); allocation figures are not reported\n",
                (unsigned long long) counted);
        return -1;
    }
    return 0;
}
