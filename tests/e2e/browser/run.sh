#!/usr/bin/env bash
# The chat page in a real browser: starts `bitrun serve` with the built-in model on a free port (the test decoder
# "slow" as its default decoder, from TEST_DECODER_DIR), installs the pinned playwright-core (npm ci) in a work
# directory, and runs test.mjs against headless Chromium (Debian's `chromium`, which scripts/test.sh installs).
# Writes WORK_DIR/chat.png. The server is killed whatever happens.
# usage: run.sh BITRUN_EXE MODEL TEST_DECODER_DIR WORK_DIR      exit 77 = skipped (no node/npm or no chromium)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../../lib/wait_for_serving.sh"
bitrun="$1" model="$2" decoders="$3" work="$4"

for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool not found"; exit 77; }
done
browser="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}"
[ -n "$browser" ] || { echo "SKIP: chromium not found (scripts/test.sh installs Debian's chromium)"; exit 77; }

mkdir -p "$work"
cp "$here/package.json" "$here/package-lock.json" "$here/test.mjs" "$work/"
log="$work/server.log"
"$bitrun" serve --model "$model" --port 0 --threads 1 --set "plugins.dir=$decoders" --set decoder.type=slow \
  --set log.level=info >"$log" 2>&1 &
pid=$!
trap 'kill -9 "$pid" 2>/dev/null || true' EXIT
wait_for_serving "$log" "$pid"

(cd "$work" && npm ci --no-audit --no-fund --loglevel=error)
(cd "$work" && BITRUN_URL="http://127.0.0.1:$port/" CHROMIUM="$browser" BITRUN_OUT="$work" node --test test.mjs)
