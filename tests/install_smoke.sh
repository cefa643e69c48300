#!/usr/bin/env bash
# An installed tree (cmake --install) finds its plugins and the default model with no setting: bitrun info lists
# both backends, and generate runs without --model.
set -euo pipefail
build_dir="$1"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
installed="$(mktemp -d)"
prefix="$(mktemp -d)"
trap 'rm -rf "$installed" "$prefix"' EXIT
cmake --install "$build_dir" --prefix "$installed" >/dev/null
# The container image copies an installed tree elsewhere (deploy/Dockerfile): it must run from wherever it lands,
# so the checks below run a copy, with the original gone.
cp -a "$installed/." "$prefix/"
rm -rf "${installed:?}"/*
# No absolute search path in any binary: libraries are found relative to the file ($ORIGIN).
for f in "$prefix"/bin/bitrun "$prefix"/lib*/libbitrun_core.so* "$prefix"/lib*/bitrun/plugins/*.so; do
  [ -L "$f" ] && continue
  runpath="$(readelf -d "$f" | sed -n 's/.*(\(RUNPATH\|RPATH\)).*\[\(.*\)\]/\2/p')"
  for p in ${runpath//:/ }; do
    case "$p" in
      '$ORIGIN'*) ;;
      *) echo "$f has the absolute search path $p"; exit 1 ;;
    esac
  done
done
# Every library the tree links directly comes from a package the image's final stage installs
# (scripts/install-deps.sh --runtime) or from the base image (libc6, libstdc++6, libgcc-s1); apt brings their own
# dependencies.
package_of() {   # dpkg knows a library by one of its paths (merged /usr: /lib or /usr/lib)
  local real candidates
  real="$(readlink -f "$1")"
  for c in "$1" "$real" "${real#/usr}" "/usr$1"; do
    dpkg -S "$c" 2>/dev/null | head -n1 | cut -d: -f1 && return 0
  done
  return 0
}
if command -v dpkg >/dev/null; then
  allowed=" libc6 libstdc++6 libgcc-s1 $(bash "$root/scripts/install-deps.sh" --list-runtime | tr '\n' ' ') "
  for f in "$prefix"/bin/bitrun "$prefix"/lib*/bitrun/plugins/*.so; do
    resolved="$(ldd "$f")"
    for lib in $(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
      # (The sanitizer runtimes of a --sanitize build are not part of an installable tree.)
      case "$lib" in libbitrun_core*|ld-linux*|libasan*|libubsan*|liblsan*|libtsan*) continue ;; esac
      path="$(awk -v l="$lib" '$1 == l && $2 == "=>" {print $3}' <<< "$resolved")"
      pkg="$(package_of "$path")"
      [ -n "$pkg" ] || { echo "$f needs $lib ($path), which no package provides"; exit 1; }
      case "$allowed" in
        *" $pkg "*) ;;
        *) echo "$f needs $lib from $pkg, not in install-deps.sh --runtime"; exit 1 ;;
      esac
    done
  done
fi
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
