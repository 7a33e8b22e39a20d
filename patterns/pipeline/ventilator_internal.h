/*  ventilator_internal.h (internal): what ventilator.c (the caller's side)
    and ventilator_actor.c (the actor) share.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_PIPELINE_VENTILATOR_INTERNAL_H_INCLUDED
#define ZKIT_PIPELINE_VENTILATOR_INTERNAL_H_INCLUDED

#include "core/socket.h"
#include "pipeline/actor_call.h"
#include "pipeline/pipeline.h"
#include "pipeline/ventilator_queue.h"
#include "zkit_spool.h"
#include "zkit_ventilator.h"

/*  A task (zkit__ventilator_task_t) is a record of the submit queue
    (ventilator_queue.h): put by submit, the actor's from when it reads it
    (the dispatcher's payload in reliable mode) until the task is retired,
    dead-lettered or sent (fast mode), when the actor releases it.           */

typedef struct zkit__ventilator_actor zkit__ventilator_actor_t;

/*  The actor's state, made before its sockets: the caller makes them, puts
    them in place (zkit__ventilator_actor_socket) and then starts
    zkit__ventilator_actor on the state. spool (NULL: none) is the caller's,
    and must outlive the actor: the actor acknowledges records in it.
    Returns NULL with errno ENOMEM.                                          */
zkit__ventilator_actor_t *zkit__ventilator_actor_new(const zkit_ventilator_opts_t *opts,
                                                     zkit__vqueue_t *queue, zkit_spool_t *spool);

/*  Frees the state, and whatever the actor did not (sockets when it never
    ran). Safe on NULL.                                                       */
void zkit__ventilator_actor_destroy(zkit__ventilator_actor_t **self_p);

/*  Hands the actor the caller's ops (control endpoint, security; NULL: none),
    before the actor starts. The caller destroys it after the actor.          */
struct zkit__ops_t;
void zkit__ventilator_actor_set_ops(zkit__ventilator_actor_t *self, struct zkit__ops_t *ops);

/*  Where the caller puts the sockets it made.                                */
zsock_t **zkit__ventilator_actor_socket(zkit__ventilator_actor_t *self, bool sink);

/*  The actor (zactor_fn).                                                    */
void zkit__ventilator_actor(zsock_t *pipe, void *args);

#endif
