#!/usr/bin/env bash
# Installs the Debian packages dplb needs, only those missing, so a second run costs
# nothing. `install-deps.sh` is what it builds and tests with; `install-deps.sh bench`
# adds what `make bench` measures with: the load generators (wrk, iperf3) and the peers
# dplb is compared with (dpdk-testpmd, HAProxy, nftables). Run as root on Debian 12
# (make does it for you).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  python3 python3-dev python3-venv python3-pip
  libgtest-dev libdpdk-dev dpdk-dev
  libssl-dev              # libcrypto: session sync's AES-256-GCM (cpp/host/sync_crypto)
  iproute2 ethtool iputils-ping curl nftables
  openssl                 # a self-signed certificate for the HTTPS health-check test
  haproxy nginx tcpdump
  prometheus
  etcd-server etcd-client # the cluster store: its tests run a real 3-member etcd
  openssl                 # certificates for the etcd TLS tests
  bird2                   # BGP/BFD: the node's BIRD announces VIPs; e2e routers run it too
  chromium                # the web admin tests drive it with Playwright (from PyPI)
  clang-14 libclang-rt-14-dev  # make fuzz: clang and its libFuzzer/sanitizer runtimes
  debootstrap systemd-container  # make test-ansible: booted Debian hosts (systemd-nspawn)
  openssh-client          # ... reached over SSH, as Ansible reaches real ones
)
what="Debian packages"
if [ "${1:-}" = "bench" ]; then
  packages=(
    wrk iperf3            # load: keep-alive and short HTTP connections, bulk TCP
    dpdk-dev              # dpdk-testpmd: the machine's forwarding limit
    haproxy nginx nftables
  )
  what="benchmark packages"
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "dplb: installing $what: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "dplb: need root to install packages (run as root, or install them yourself)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
