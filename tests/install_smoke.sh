#!/usr/bin/env bash
# An installed tree (cmake --install) finds its plugins with no setting: bitrun info lists both backends.
set -euo pipefail
build_dir="$1"
prefix="$(mktemp -d)"
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build_dir" --prefix "$prefix" >/dev/null
env -u BITRUN_PLUGIN_PATH -u BITRUN_CONFIG "$prefix/bin/bitrun" info > "$prefix/info.txt"
grep -q "backend   avx2" "$prefix/info.txt" || { cat "$prefix/info.txt"; echo "avx2 plugin not found"; exit 1; }
grep -q "backend   avx512" "$prefix/info.txt" || { cat "$prefix/info.txt"; echo "avx512 plugin not found"; exit 1; }
grep -q "^  $prefix/lib.*/bitrun/plugins$" "$prefix/info.txt" || { cat "$prefix/info.txt"; echo "wrong search path"; exit 1; }
echo "installed tree OK"
