#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test. Tests that need ../shared skip with a message without it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build_dir="${BITRUN_BUILD_DIR:-$root/build}"

"$root/scripts/build.sh"
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)"
