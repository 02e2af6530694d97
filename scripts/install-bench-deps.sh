#!/usr/bin/env bash
# Installs what `make bench` measures with beyond the build and test packages: the load
# generators (wrk, iperf3) and the peers dplb is compared with (dpdk-testpmd from
# dpdk-dev, HAProxy, nginx as the real servers, nftables for kernel full-NAT). Only the
# missing ones; run as root on Debian 12 (make does it for you).
set -euo pipefail

packages=(
  wrk iperf3            # load: keep-alive and short HTTP connections, bulk TCP
  dpdk-dev              # dpdk-testpmd: the machine's forwarding limit
  haproxy nginx nftables
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "dplb: installing benchmark packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "dplb: need root to install packages (run as root, or install them yourself)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
