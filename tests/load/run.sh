#!/usr/bin/env bash
# The load check of docs/performance.md (run by hand, not by ctest): starts `bitrun serve` with stories260K on a
# free port, records its RSS, runs wrk (2 threads, 32 connections, 30 s) with completions.lua twice in a row,
# recording the RSS after each run (memory must not keep growing) and the server's /metrics, then stops the server
# with SIGTERM. Extra arguments go to `bitrun serve` (e.g.
# --set server.max_queue=8 to see deliberate 429s).
# usage: tests/load/run.sh BUILD_DIR [serve options...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../lib/wait_for_serving.sh"
build="$1"
shift
model="${BITRUN_SHARED_DIR:-$here/../../../shared}/models/stories260K.gguf"
log="$(mktemp)"
"$build/bin/bitrun" serve --model "$model" --port 0 --set log.level=info "$@" >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
wait_for_serving "$log" "$pid"
rss() { awk '/VmRSS/ {print $2 " kB"}' "/proc/$pid/status"; }
# A few requests first, so the RSS before is that of a warmed-up server.
for _ in 1 2 3 4; do curl -s -o /dev/null "http://127.0.0.1:$port/v1/completions" \
  -H 'Content-Type: application/json' -d '{"prompt":"Once upon a time","max_tokens":16}'; done
echo "RSS before: $(rss)"
for run in 1 2; do
  wrk -t2 -c32 -d30s --latency -s "$here/completions.lua" "http://127.0.0.1:$port"
  echo "RSS after run $run: $(rss)"
done
curl -s "http://127.0.0.1:$port/metrics" | grep -E '^bitrun_(requests_(rejected|finished|cancelled|failed)_total|generated_tokens_total|decode_steps_total|busy_seconds_total)'
kill -TERM "$pid"
wait "$pid" && echo "server exited 0 after SIGTERM"
