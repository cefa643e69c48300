#!/usr/bin/env bash
# An installed tree (cmake --install) finds its plugins and the default model with no setting: bitrun info lists
# both backends, and generate runs without --model.
set -euo pipefail
build_dir="$1"
prefix="$(mktemp -d)"
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build_dir" --prefix "$prefix" >/dev/null
env -u BITRUN_PLUGIN_PATH -u BITRUN_CONFIG -u BITRUN_MODEL "$prefix/bin/bitrun" info > "$prefix/info.txt"
grep -q "backend   avx2" "$prefix/info.txt" || { cat "$prefix/info.txt"; echo "avx2 plugin not found"; exit 1; }
grep -q "backend   avx512" "$prefix/info.txt" || { cat "$prefix/info.txt"; echo "avx512 plugin not found"; exit 1; }
grep -q "^  $prefix/lib.*/bitrun/plugins$" "$prefix/info.txt" || { cat "$prefix/info.txt"; echo "wrong search path"; exit 1; }
# ... and its built-in default model (share/bitrun/models/default.gguf) with no model configured.
grep -q "^Model: built-in default $prefix/share/bitrun/models/default.gguf$" "$prefix/info.txt" ||
  { cat "$prefix/info.txt"; echo "installed default model not used"; exit 1; }
env -u BITRUN_CONFIG -u BITRUN_MODEL "$prefix/bin/bitrun" generate -n 4 --set sampling.temperature=0 --log-level warn \
  > "$prefix/generate.txt" 2>&1 || { cat "$prefix/generate.txt"; echo "default model not found"; exit 1; }
echo "installed tree OK"
