/*  zkit.h: the umbrella header. Include this and link zkit::zkit (CMake) or
    `pkg-config --libs libzkit`.

    This Source Code Form is subject to the terms of the Mozilla Public
    License, v. 2.0. If a copy of the MPL was not distributed with this
    file, You can obtain one at http://mozilla.org/MPL/2.0/.                  */

#ifndef ZKIT_H_INCLUDED
#define ZKIT_H_INCLUDED

#include "zkit_library.h"
#include "zkit_envelope.h"
#include "zkit_batch.h"
#include "zkit_ventilator.h"
#include "zkit_worker.h"
#include "zkit_sink.h"
#include "zkit_publisher.h"
#include "zkit_subscriber.h"
#include "zkit_forwarder.h"
#include "zkit_spool.h"
#include "zkit_spool_device.h"
#include "zkit_balancer.h"
#include "zkit_client.h"
#include "zkit_service_worker.h"

#endif
