#!/bin/bash
# A private Open vSwitch (userspace "netdev" datapath) inside a network namespace, for the
# fuxi-ofctl interop tests. Adapted from openflow/tests/fixtures/capture/ovs_env.sh.
#
# Usage: NS=<netns> W=<workdir> [PORTS=n] ovs_env.sh start|stop
#   start: netns $NS (lo up), veth pairs v<i> <-> p<i> for i in 1..PORTS (p<i> becomes
#          OpenFlow port i), ovsdb-server and ovs-vswitchd run inside the namespace, bridge br0
#          (datapath_type=netdev, OpenFlow13, fail-mode secure) with a ptcp:6653:127.0.0.1
#          listener in the namespace and its management socket at $W/run/br0.mgmt.
#   stop:  exits both daemons (by their pidfiles, never by name) and deletes the namespace,
#          which also removes the tap devices (ovs-netdev, br0) ovs-vswitchd leaves behind.
set -u
NS=${NS:?NS}
W=${W:?W}
PORTS=${PORTS:-2}
export OVS_RUNDIR=$W/run OVS_LOGDIR=$W/log OVS_DBDIR=$W/db OVS_SYSCONFDIR=$W/etc OVS_PKGDATADIR=/usr/share/openvswitch
IN="ip netns exec $NS"

start() {
  command -v ovs-vswitchd >/dev/null || { echo "ovs-vswitchd not installed" >&2; exit 1; }
  mkdir -p "$OVS_RUNDIR" "$OVS_LOGDIR" "$OVS_DBDIR" "$OVS_SYSCONFDIR"
  ip netns add "$NS" || exit 1
  $IN ip link set lo up
  $IN sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  for i in $(seq "$PORTS"); do
    $IN ip link add v$i type veth peer name p$i
    $IN ip link set v$i address 02:00:00:00:00:0$i
    $IN ip link set p$i address 02:00:00:00:01:0$i
    $IN ip link set v$i up; $IN ip link set p$i up
  done
  rm -f "$OVS_DBDIR/conf.db"
  ovsdb-tool create "$OVS_DBDIR/conf.db" /usr/share/openvswitch/vswitch.ovsschema || exit 1
  $IN ovsdb-server "$OVS_DBDIR/conf.db" --remote=punix:"$OVS_RUNDIR/db.sock" --pidfile --detach --log-file || exit 1
  ovs-vsctl --no-wait init
  $IN ovs-vswitchd --pidfile --detach --log-file || exit 1
  ovs-vsctl add-br br0 -- set bridge br0 datapath_type=netdev protocols=OpenFlow13 fail-mode=secure \
     other-config:hwaddr=02:00:00:00:00:fe || exit 1
  for i in $(seq "$PORTS"); do
    ovs-vsctl add-port br0 p$i -- set Interface p$i ofport_request=$i || exit 1
  done
  ovs-vsctl set-controller br0 ptcp:6653:127.0.0.1
  for _ in $(seq 100); do $IN ss -ltn | grep -q 127.0.0.1:6653 && break; sleep 0.05; done
  $IN ss -ltn | grep -q 127.0.0.1:6653 || { echo "no ptcp listener" >&2; exit 1; }
  for _ in $(seq 100); do [ -S "$OVS_RUNDIR/br0.mgmt" ] && break; sleep 0.05; done
}

stop() {
  for d in ovs-vswitchd ovsdb-server; do
    pid=$(cat "$OVS_RUNDIR/$d.pid" 2>/dev/null) || continue
    ovs-appctl -t "$OVS_RUNDIR/$d.$pid.ctl" exit >/dev/null 2>&1 || kill "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null
  done
  ip netns del "$NS" 2>/dev/null
  rm -f "$OVS_RUNDIR"/*.pid
}
"$1"
