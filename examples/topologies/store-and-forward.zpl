#   store-and-forward.zpl: an edge node that buffers on disk.
#
#   Producers on the edge hand their messages to the spool device
#   ('zkit cat --push --reliable --connect tcp://edge:5570', or a PUT
#   client): each is confirmed once it is fsync'ed, and stays in the spool
#   until the uplink consumer acknowledges it, across restarts and link
#   outages ('zkit cat --pull --reliable --connect tcp://edge:5571' on the
#   central side). The same process runs a pipeline worker for the central
#   ventilator and the sink its results go to, which lands them in a local
#   file: batch work keeps going while the uplink is down.
#
#   Stop order: zkit run stops what feeds another device first (here the
#   worker before the sink); the spool device writes its cursor at stop,
#   and everything it confirmed is delivered after the restart.
#
#   zkit run examples/topologies/store-and-forward.zpl
#
#   This Source Code Form is subject to the terms of the Mozilla Public
#   License, v. 2.0. If a copy of the MPL was not distributed with this
#   file, You can obtain one at http://mozilla.org/MPL/2.0/.

spool
    uplink-buffer
        in = tcp://*:5570
        out = tcp://*:5571
        dir = /var/lib/zkit/uplink
        fsync = always          # confirmed = on disk
        max_bytes = 1g
        full = block            # a full disk holds producers back...
        block_timeout = 10000   # ...for 10 s, then REJECTED FULL
        max_attempts = 10
        dead_letter = /var/lib/zkit/uplink-dead
        control = tcp://127.0.0.1:5579

worker
    edge-worker
        connect = tcp://ventilator.example:5557
        sink = tcp://127.0.0.1:5558
        exec = gzip -c | wc -c
        window = 2
        exec_timeout = 60000

sink
    edge-results
        bind = tcp://127.0.0.1:5558
        output = /var/lib/zkit/results.txt
