/*  dlist.h (internal): intrusive circular doubly linked lists with a
    sentinel, as the dispatcher uses them (one node per list an object can
    be on, no allocation, O(1) everything). Header only.

    A list is a zkit__dlink_t sentinel initialised with zkit__dlist_init; a
    node is a zkit__dlink_t embedded in the object, found back with
    ZKIT__DLIST_CONTAINER. An unlinked node points at itself, so unlinking
    twice is harmless. Not thread-safe: the owner of the objects serialises.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_DLIST_H_INCLUDED
#define ZKIT_DLIST_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

typedef struct zkit__dlink {
    struct zkit__dlink *prev, *next;
} zkit__dlink_t;

/*  The object of type that holds the node ptr in its field member.          */
#define ZKIT__DLIST_CONTAINER(ptr, type, member) ((type *) ((char *) (ptr) -offsetof(type, member)))

static inline void zkit__dlist_init(zkit__dlink_t *list)
{
    list->prev = list->next = list;
}

static inline bool zkit__dlist_empty(const zkit__dlink_t *list)
{
    return list->next == list;
}

/*  Appends node (not on any list) at the tail of list.                      */
static inline void zkit__dlist_append(zkit__dlink_t *list, zkit__dlink_t *node)
{
    node->prev = list->prev;
    node->next = list;
    list->prev->next = node;
    list->prev = node;
}

static inline void zkit__dlist_unlink(zkit__dlink_t *node)
{
    node->prev->next = node->next;
    node->next->prev = node->prev;
    node->prev = node->next = node;
}

/*  Moves node (on list or on none: it was unlinked) to the tail of list.    */
static inline void zkit__dlist_move_tail(zkit__dlink_t *list, zkit__dlink_t *node)
{
    zkit__dlist_unlink(node);
    zkit__dlist_append(list, node);
}

#endif
