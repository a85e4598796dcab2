#!/usr/bin/env bash
# Installs what ciphergate needs on a fresh Debian machine (as root) and builds it: a C++
# toolchain for the native addons (cap, nfqueue, raw-socket), the programs the lab and tests run.
# Idempotent:
# packages already present are not reinstalled.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(build-essential python3 libpcap-dev libnetfilter-queue-dev tcpdump tshark redis-server redis-tools iperf3 stunnel4 openssl nftables iptables ethtool iproute2 procps util-linux curl)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages (${missing[*]}); run as root or install them" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# `npm install`, not `npm ci`: npm 11 leaves other platforms' optional packages (@swc/core-*,
# @unrs/resolver-binding-*) out of a lock written on Linux, and `npm ci` then rejects that very
# lock as out of sync (npm/cli#8805, #8320). `npm install` installs the locked versions.
npm install --no-audit --no-fund
# native/aead: ChaCha20-Poly1305 in one call on node's own OpenSSL (the KDC seals two tickets per
# issue); without it the node backend falls back to createCipheriv, same bytes, slower.
npm run build:native --silent >/dev/null
npm run build --silent
