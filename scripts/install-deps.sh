#!/usr/bin/env bash
# Installs the Debian packages dplb builds and tests with, only those missing, so a second
# run costs nothing. Run as root on Debian 12 (make does it for you).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  python3 python3-dev python3-venv python3-pip
  libgtest-dev libdpdk-dev dpdk-dev
  iproute2 ethtool iputils-ping curl nftables
  haproxy nginx tcpdump
  prometheus
  chromium                # the web admin tests drive it with Playwright (from PyPI)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "dplb: installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "dplb: need root to install packages (run as root, or install them yourself)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
