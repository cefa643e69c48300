#!/usr/bin/env bash
# The plugin SDK end to end: install bitrun, build tests/sdk/sample-decoder as a separate CMake project against the
# installed package alone (find_package(bitrun), bitrun_add_plugin), and have the installed bitrun load it: its own
# config key is listed, printed and range-checked, and it decodes (greedy like AR, except for the token it is told
# never to emit).
#   usage: run.sh BUILD_DIR MODEL.gguf
set -euo pipefail
build_dir="$1"
model="$2"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "sdk: $*" >&2; exit 1; }

cmake --install "$build_dir" --prefix "$work/prefix" >/dev/null
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S "$root/tests/sdk/sample-decoder" -B "$work/build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$work/prefix" >"$work/configure.log" 2>&1 || { cat "$work/configure.log"; fail "configure"; }
cmake --build "$work/build" >"$work/build.log" 2>&1 || { cat "$work/build.log"; fail "build"; }
plugins="$work/build/plugins"
[ -f "$plugins/bitrun-decoder-banned-greedy.so" ] || fail "the plugin was not built into $plugins"

bitrun() { env -u BITRUN_PLUGIN_PATH -u BITRUN_CONFIG "$work/prefix/bin/bitrun" "$@"; }
with_plugin=(--set "plugins.dir=$plugins")
bitrun info "${with_plugin[@]}" | grep -q "decoder   banned-greedy" || fail "bitrun info does not list the plugin"
bitrun info "${with_plugin[@]}" | grep -q "banned-greedy: sample.banned_token" || fail "its key is not listed"
bitrun config --print "${with_plugin[@]}" --set sample.banned_token=7 |
  grep -q "banned_token: 7   # from command line" || fail "config --print does not show the plugin's key"
if out="$(bitrun config --print "${with_plugin[@]}" --set sample.banned_token=-3 2>&1)"; then fail "-3 was accepted"; fi
grep -q "key 'sample.banned_token': value -3 is out of range" <<<"$out" || fail "unexpected error: $out"
if out="$(bitrun config --print --set sample.banned_token=7 2>&1)"; then fail "the key exists without the plugin"; fi

ids() {   # the generated ids of a greedy run with decoder $1 and any extra options
  local decoder="$1"
  shift
  bitrun generate -m "$model" "${with_plugin[@]}" --decoder "$decoder" -n 12 --ids -p "Once upon a time" \
    --set sampling.temperature=0 --log-level warn "$@" 2>&1 >/dev/null | sed -n 's/^ids: //p'
}
ar="$(ids ar)"
sample="$(ids banned-greedy)"
[ -n "$ar" ] || fail "AR generated nothing"
[ "$ar" = "$sample" ] || fail "banned-greedy with nothing banned ($sample) differs from greedy AR ($ar)"
first="${ar%% *}"
banned="$(ids banned-greedy --set "sample.banned_token=$first")"
[ -n "$banned" ] || fail "banned-greedy generated nothing with token $first banned"
case " $banned " in *" $first "*) fail "token $first was emitted although banned: $banned" ;; esac
echo "out-of-tree plugin OK: greedy $ar; without $first: $banned"
