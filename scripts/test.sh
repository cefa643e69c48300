#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test. Tests that need ../shared skip with a message without it.
#   --sanitize   a Debug build with AddressSanitizer and UBSan in ./build-sanitize (or $BITRUN_BUILD_DIR) instead;
#                a sanitizer report fails the test that triggered it (slow: about 25 minutes on 2 cores)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [[ ${1:-} == --sanitize ]]; then
  build_dir="${BITRUN_BUILD_DIR:-$root/build-sanitize}"
  BITRUN_BUILD_DIR="$build_dir" "$root/scripts/build.sh" -DCMAKE_BUILD_TYPE=Debug -DBITRUN_SANITIZE=ON
  # UBSan only prints by default; halting makes a report fail its test, as an ASan report does.
  export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
else
  build_dir="${BITRUN_BUILD_DIR:-$root/build}"
  "$root/scripts/build.sh"
fi
# The end-to-end tests' own tools (they skip without them): Debian's chromium for the chat page in a browser,
# and node with npm for both the browser and the openai client tests.
"$root/scripts/install-deps.sh" chromium
command -v npm >/dev/null || "$root/scripts/install-deps.sh" nodejs npm
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)" --timeout 3000
