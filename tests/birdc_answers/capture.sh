#!/usr/bin/env bash
# Regenerates the birdc answers in this folder from a real BIRD 2 (Debian bird2): two
# namespaces, BIRD in each, one BGP session with BFD; each file is one `birdc -v` answer.
# Run as root: tests/birdc_answers/capture.sh
set -euo pipefail
out="$(cd "$(dirname "$0")" && pwd)"
dir="$(mktemp -d /tmp/birdc-capture.XXXX)"
cleanup() {
  for ns in a b; do
    [ -f "$dir/$ns.pid" ] && ip netns exec "bcap-$ns" kill "$(cat "$dir/$ns.pid")" 2>/dev/null || true
    ip netns del "bcap-$ns" 2>/dev/null || true
  done
  rm -rf "$dir"
}
trap cleanup EXIT
ip netns add bcap-a; ip netns add bcap-b
ip link add bcapa type veth peer name bcapb
ip link set bcapa netns bcap-a; ip link set bcapb netns bcap-b
ip -n bcap-a addr add 10.99.0.1/24 dev bcapa; ip -n bcap-b addr add 10.99.0.2/24 dev bcapb
ip -n bcap-a link set bcapa up; ip -n bcap-b link set bcapb up
cat > "$dir/routes.conf" <<ROUTES
protocol static dplb4 {
  ipv4;
  route 10.10.100.10/32 blackhole { bgp_community.add((65535, 0)); };
  route 10.10.2.201/32 blackhole { bgp_path.prepend(65001); bgp_local_pref = 50; };
}
protocol static dplb6 {
  ipv6;
}
ROUTES
cat > "$dir/a.conf" <<CONF
router id 10.99.0.1;
protocol device {}
include "$dir/routes.conf";
protocol bfd { interface "*" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }; }
protocol bgp r1 {
  local 10.99.0.1 as 65001; neighbor 10.99.0.2 as 65000; bfd on;
  ipv4 { import none; export where proto = "dplb4"; };
}
CONF
cat > "$dir/b.conf" <<CONF
router id 10.99.0.2;
protocol device {}
protocol bfd { interface "*" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; }; }
protocol bgp n1 {
  local 10.99.0.2 as 65000; neighbor 10.99.0.1 as 65001; bfd on;
  ipv4 { import all; export none; };
}
CONF
ip netns exec bcap-a bird -c "$dir/a.conf" -s "$dir/a.ctl" -P "$dir/a.pid"
ip netns exec bcap-b bird -c "$dir/b.conf" -s "$dir/b.ctl" -P "$dir/b.pid"
a() { birdc -v -s "$dir/a.ctl" "$@" || true; }
for _ in $(seq 50); do a show protocols | grep -q Established && break; sleep 0.2; done
a show protocols >"$out/show_protocols_established.txt"
a show protocols all >"$out/show_protocols_all_established.txt"
a show route export r1 >"$out/show_route_export.txt"
a show route export r1 count >"$out/show_route_export_count.txt"
a configure >"$out/configure_reconfigured.txt"
cp "$dir/routes.conf" "$dir/good.conf"
echo 'protocol static dplb4 { ipv4; route 10.1.1.1/32 blackhol; }' >"$dir/routes.conf"
a configure >"$out/configure_syntax_error.txt"
cp "$dir/good.conf" "$dir/routes.conf"
a configure "\"$dir/nonexistent.conf\"" >"$out/configure_no_file.txt"
birdc -v -s "$dir/nonexistent.ctl" show protocols >"$out/no_socket.txt" 2>&1 || true
ip netns exec bcap-b kill "$(cat "$dir/b.pid")"; rm -f "$dir/b.pid"; sleep 1
a show protocols >"$out/show_protocols_peer_down.txt"
a show protocols all >"$out/show_protocols_all_peer_down.txt"
a show route export r1 >"$out/show_route_export_down.txt"
# `0004 Reconfiguration in progress` comes when a protocol has to shut down first.
sed -i 's/protocol bgp r1 {/protocol bgp r2 {/' "$dir/a.conf"
a configure >"$out/configure_in_progress.txt"
echo "birdc answers written to $out"
