#   fanout-tree.zpl: a pub/sub fan-out tree in one process.
#
#   Publishers connect to the root's frontend (6000). The root's backend
#   (6001) feeds two edge forwarders, each serving its own subscribers
#   (6011, 6012), so a slow subscriber on one edge never costs the other
#   edge anything. In a real deployment the edges usually run on other
#   hosts (their own 'zkit run' with frontend_connect = tcp://root:6001);
#   here they share the process to show the shape.
#
#   zkit run examples/topologies/fanout-tree.zpl
#   zkit stats tcp://127.0.0.1:6101     (the root's counters)
#
#   This Source Code Form is subject to the terms of the Mozilla Public
#   License, v. 2.0. If a copy of the MPL was not distributed with this
#   file, You can obtain one at http://mozilla.org/MPL/2.0/.

defaults
    hwm = 10000                 # messages queued per subscriber
    linger = 5000               # at stop, queued messages get 5 s to leave

forwarder
    root
        frontend = tcp://*:6000
        backend = tcp://*:6001
        policy = nodrop         # the edges are ours: never drop for them
        control = tcp://127.0.0.1:6101
    edge-a
        frontend_connect = tcp://127.0.0.1:6001
        backend = tcp://*:6011
        policy = disconnect     # a subscriber stuck for 2 s is cut off
        laggard_ms = 2000
        control = tcp://127.0.0.1:6111
    edge-b
        frontend_connect = tcp://127.0.0.1:6001
        backend = tcp://*:6012
        control = tcp://127.0.0.1:6112
