/*  test_idtable: the hash table under the dispatcher finds what was put in,
    survives collisions and deletions inside probe runs, and gives memory back.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/idtable.h"

typedef struct {
    uint8_t id[16];
} s_entry_t;

static bool s_match(const void *entry, const void *key)
{
    return memcmp(((const s_entry_t *) entry)->id, key, 16) == 0;
}

/* A UUIDv7-like id: the same millisecond timestamp in bytes 0..5, as a burst
   of ids made in one millisecond has, and n in the random part.            */
static void s_make_id(uint8_t id[16], uint32_t n)
{
    static const uint8_t prefix[8] = {0x01, 0x8f, 0x3a, 0x5c, 0x22, 0x10, 0x70, 0x00};
    memcpy(id, prefix, 8);
    memset(id + 8, 0, 8);
    memcpy(id + 12, &n, 4);
}

static void test_insert_find_remove(void **state)
{
    (void) state;
    enum { N = 10000 };
    s_entry_t *entries = calloc(N, sizeof *entries);
    assert_non_null(entries);
    zkit__idtable_t table;
    zkit__idtable_init(&table);
    assert_null(zkit__idtable_find(&table, 1, entries[0].id, s_match));

    for (uint32_t i = 0; i < N; i++) {
        s_make_id(entries[i].id, i);
        uint64_t h = zkit__idtable_hash_id(entries[i].id, 0);
        assert_int_equal(zkit__idtable_insert(&table, h, &entries[i]), 0);
    }
    assert_int_equal(table.count, N);
    for (uint32_t i = 0; i < N; i++) {
        uint64_t h = zkit__idtable_hash_id(entries[i].id, 0);
        assert_ptr_equal(zkit__idtable_find(&table, h, entries[i].id, s_match), &entries[i]);
    }
    uint8_t absent[16];
    s_make_id(absent, N + 1);
    assert_null(zkit__idtable_find(&table, zkit__idtable_hash_id(absent, 0), absent, s_match));

    /* Remove the even ones: every odd one is still found (backward shift
       keeps probe runs intact), every even one is gone.                     */
    for (uint32_t i = 0; i < N; i += 2)
        zkit__idtable_remove(&table, zkit__idtable_hash_id(entries[i].id, 0), &entries[i]);
    for (uint32_t i = 0; i < N; i++) {
        void *found = zkit__idtable_find(&table, zkit__idtable_hash_id(entries[i].id, 0),
                                         entries[i].id, s_match);
        if (i % 2)
            assert_ptr_equal(found, &entries[i]);
        else
            assert_null(found);
    }
    zkit__idtable_fini(&table);
    free(entries);
}

/*  Every entry under the same hash: one long probe run, removed from the
    middle, the start and the end, must stay consistent.                    */
static void test_full_collisions(void **state)
{
    (void) state;
    enum { N = 200 };
    s_entry_t entries[N];
    zkit__idtable_t table;
    zkit__idtable_init(&table);
    for (uint32_t i = 0; i < N; i++) {
        s_make_id(entries[i].id, i);
        assert_int_equal(zkit__idtable_insert(&table, 42, &entries[i]), 0);
    }
    uint32_t order[] = {100, 0, 199, 57, 58, 1, 198};
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++) {
        zkit__idtable_remove(&table, 42, &entries[order[k]]);
        for (uint32_t i = 0; i < N; i++) {
            bool removed = false;
            for (size_t r = 0; r <= k; r++)
                removed |= order[r] == i;
            void *found = zkit__idtable_find(&table, 42, entries[i].id, s_match);
            assert_ptr_equal(found, removed ? NULL : &entries[i]);
        }
    }
    zkit__idtable_fini(&table);
}

/*  After a burst the slot array shrinks, and an emptied table frees it.    */
static void test_shrinks_after_burst(void **state)
{
    (void) state;
    enum { N = 100000 };
    s_entry_t *entries = calloc(N, sizeof *entries);
    assert_non_null(entries);
    zkit__idtable_t table;
    zkit__idtable_init(&table);
    for (uint32_t i = 0; i < N; i++) {
        s_make_id(entries[i].id, i);
        assert_int_equal(
            zkit__idtable_insert(&table, zkit__idtable_hash_id(entries[i].id, 7), &entries[i]), 0);
    }
    size_t peak = table.capacity;
    assert_true(peak >= N);
    for (uint32_t i = 10; i < N; i++)
        zkit__idtable_remove(&table, zkit__idtable_hash_id(entries[i].id, 7), &entries[i]);
    assert_int_equal(table.count, 10);
    assert_true(table.capacity <= 128);
    for (uint32_t i = 0; i < 10; i++)
        assert_ptr_equal(zkit__idtable_find(&table, zkit__idtable_hash_id(entries[i].id, 7),
                                            entries[i].id, s_match),
                         &entries[i]);
    for (uint32_t i = 0; i < 10; i++)
        zkit__idtable_remove(&table, zkit__idtable_hash_id(entries[i].id, 7), &entries[i]);
    assert_int_equal(table.count, 0);
    zkit__idtable_fini(&table);
    free(entries);
}

/*  Ids from one millisecond differ only in their low bytes; the slot index
    (low hash bits) must still spread them: 4096 sequential ids over 4096
    buckets fill about 1 - 1/e of them when the hash behaves randomly.      */
static void test_id_hash_spreads_sequential_ids(void **state)
{
    (void) state;
    enum { N = 4096 };
    static uint8_t used[N];
    memset(used, 0, sizeof used);
    for (uint32_t i = 0; i < N; i++) {
        uint8_t id[16];
        s_make_id(id, i);
        used[zkit__idtable_hash_id(id, 0) & (N - 1)] = 1;
    }
    int buckets = 0;
    for (int i = 0; i < N; i++)
        buckets += used[i];
    assert_in_range(buckets, (int) (N * 0.60), (int) (N * 0.66));

    /* The seed changes the slot of an id; routing ids hash by content.      */
    uint8_t id[16];
    s_make_id(id, 1);
    assert_true(zkit__idtable_hash_id(id, 1) != zkit__idtable_hash_id(id, 2));
    assert_true(zkit__idtable_hash_bytes("worker-1", 8, 0) ==
                zkit__idtable_hash_bytes("worker-1", 8, 0));
    assert_true(zkit__idtable_hash_bytes("worker-1", 8, 0) !=
                zkit__idtable_hash_bytes("worker-2", 8, 0));
    assert_true(zkit__idtable_hash_bytes("ab", 2, 0) != zkit__idtable_hash_bytes("ab\0", 3, 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_find_remove),
        cmocka_unit_test(test_full_collisions),
        cmocka_unit_test(test_shrinks_after_burst),
        cmocka_unit_test(test_id_hash_spreads_sequential_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
