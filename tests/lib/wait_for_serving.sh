# Sourced by the scripts that start `bitrun serve --port 0 --set log.level=info` in the background:
#   wait_for_serving LOG PID     sets `port` once the server logged "serving model" (the model is loaded), or
#                                prints the log and exits 1 if it died or did not get there within 20 s.
wait_for_serving() {
  local log="$1" pid="$2"
  port=""
  for _ in $(seq 1 200); do
    port="$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$log" | head -1 | sed 's/.*://')" || true
    [ -n "$port" ] && grep -q "serving model" "$log" && return 0
    kill -0 "$pid" 2>/dev/null || { echo "bitrun serve exited:"; cat "$log"; exit 1; }
    sleep 0.1
  done
  echo "bitrun serve did not start serving:"
  cat "$log"
  exit 1
}
