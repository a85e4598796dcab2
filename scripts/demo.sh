#!/usr/bin/env bash
# The main job: set up, then show ciphergate encrypting a real TCP session end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node dist/cli/ciphergate.js demo "$@"
