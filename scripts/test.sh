#!/usr/bin/env bash
# Every test: set up, then type-check, lint and run the jest suites (unit, property, simulation,
# pcap replay, real Redis and network-namespace tests; the last need root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm test
