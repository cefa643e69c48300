#!/usr/bin/env bash
# Installs dependencies, builds, and starts the OpenAI-compatible server (`bitrun serve`). Extra arguments go to
# `bitrun serve` (e.g. -c configs/server-api-key.yaml, --model FILE.gguf).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${BITRUN_BUILD_DIR:-$root/build}"

"$root/scripts/build.sh"
exec "$build_dir/bin/bitrun" serve "$@"
