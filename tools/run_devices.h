/*  run_devices.h (internal to the zkit program): starts and stops the
    devices of a `zkit run` topology, each one the same component its own
    command runs.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_RUN_DEVICES_H_INCLUDED
#define ZKIT_RUN_DEVICES_H_INCLUDED

#include "run_config.h"

/*  Starts dev and logs "zkit run: started KIND NAME ..." with its resolved
    endpoints on stderr. Returns 0, or -1 with errno set after logging
    "zkit run: cannot start KIND NAME: reason"; dev is then not running.   */
int zkit__run_device_start(zkit__run_device_t *dev);

/*  True while dev runs.                                                    */
bool zkit__run_device_running(const zkit__run_device_t *dev);

/*  Stops dev (its component's destroy: queued messages get their linger,
    a spool writes its cursor) and logs "zkit run: stopped KIND NAME";
    nothing when it does not run.                                          */
void zkit__run_device_stop(zkit__run_device_t *dev);

#endif
