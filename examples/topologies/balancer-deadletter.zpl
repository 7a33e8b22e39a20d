#   balancer-deadletter.zpl: a load balancer whose given-up requests are
#   kept in a dead-letter spool.
#
#   Clients (REQ, or zkit_client) connect to 5555, workers (Paranoid
#   Pirate, or zkit_service_worker) to 5556. A request that fails
#   max_attempts times or outlives its ttl is written to the spool in
#   dead_letter (durably, before the client gets its error), where
#   'zkit spool inspect /var/lib/zkit/dead' lists it and
#   'zkit spool replay /var/lib/zkit/dead --to EP' sends it again.
#   Only the frontend and the control endpoint accept 127.0.0.1 and the
#   LAN below; everyone else is refused at connect time.
#
#   zkit run examples/topologies/balancer-deadletter.zpl
#
#   This Source Code Form is subject to the terms of the Mozilla Public
#   License, v. 2.0. If a copy of the MPL was not distributed with this
#   file, You can obtain one at http://mozilla.org/MPL/2.0/.

defaults
    ip_allow = 127.0.0.1,10.0.0.0/8

balancer
    requests
        frontend = tcp://*:5555
        backend = tcp://*:5556
        heartbeat = 1000
        liveness = 3
        max_attempts = 3
        timeout = 30000         # an attempt unanswered for 30 s is retried
        ttl = 300000            # requests older than 5 min are given up
        dead_letter = /var/lib/zkit/dead
        control = tcp://127.0.0.1:5559
