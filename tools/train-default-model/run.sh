#!/usr/bin/env bash
# One command that reproduces models/default.gguf: installs the tool's packages and bitrun's, builds the bitrun
# executable and its backend plugins (its converter writes the model, its perplexity checks it), then trains,
# exports and checks. Arguments go to train.py (e.g. --threads 1).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build_dir="${BITRUN_BUILD_DIR:-$root/build}"

"$here/setup.sh"
"$root/scripts/install-deps.sh"
cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$build_dir" -j "$(nproc)" --target bitrun bitrun-backend-avx2 bitrun-backend-avx512
exec /usr/bin/python3 "$here/train.py" --bitrun "$build_dir/bin/bitrun" "$@"
