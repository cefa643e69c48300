#!/usr/bin/env bash
# End-to-end check with the official openai npm package: starts `bitrun serve` on a free port with stories260K
# and an API key, installs the pinned client (npm ci) in a work directory, runs test.mjs, then stops the server
# with SIGTERM and requires a clean exit. The server is killed whatever happens.
# usage: run.sh BITRUN_EXE WORK_DIR        exit 77 = skipped (no node/npm, or no ../shared)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../../lib/wait_for_serving.sh"
bitrun="$1"
work="$2"
shared="${BITRUN_SHARED_DIR:-$here/../../../../shared}"
model="$shared/models/stories260K.gguf"

for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool not found"; exit 77; }
done
[ -f "$model" ] || { echo "SKIP: $model not found (set BITRUN_SHARED_DIR)"; exit 77; }

mkdir -p "$work"
cp "$here/package.json" "$here/package-lock.json" "$here/test.mjs" "$work/"
log="$work/server.log"
# One compute thread: ctest runs other tests beside this one, and two OpenMP threads that busy-wait on shared
# cores can slow this tiny model's decoding enough for the client to time out (see threads_wait in the README).
"$bitrun" serve --model "$model" --port 0 --threads 1 --set 'server.api_keys=[e2e-key]' --set log.level=info >"$log" 2>&1 &
pid=$!
cleanup() { kill -9 "$pid" 2>/dev/null || true; }
trap cleanup EXIT

wait_for_serving "$log" "$pid"

(cd "$work" && npm ci --no-audit --no-fund --loglevel=error)
# Ready once /health answers 200 (it says 503 while the model loads).
node -e '
  const url = process.argv[1];
  (async () => {
    for (let i = 0; i < 200; i++) {
      try { if ((await fetch(url)).status === 200) return; } catch {}
      await new Promise((r) => setTimeout(r, 100));
    }
    console.error("not ready: " + url); process.exit(1);
  })();' "http://127.0.0.1:$port/health"

status=0
(cd "$work" && BITRUN_BASE_URL="http://127.0.0.1:$port/v1" BITRUN_API_KEY=e2e-key node --test test.mjs) || status=$?

# Graceful shutdown: SIGTERM, then exit code 0 within a few seconds.
kill -TERM "$pid"
for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then
  echo "bitrun serve did not exit after SIGTERM"; status=1
else
  wait "$pid" && server_status=0 || server_status=$?
  [ "$server_status" -eq 0 ] || { echo "bitrun serve exited with $server_status after SIGTERM"; cat "$log"; status=1; }
fi
exit "$status"
