#!/usr/bin/env bash
# Installs what the training tool needs (Debian bookworm packages, through the project's install-deps.sh: sudo
# only when not root, apt skipped when everything is present). Not needed by bitrun itself or its tests.
#   python3-torch, python3-numpy  the training code (run with Debian's /usr/bin/python3)
#   libopenblas0-pthread          Debian's torch calls the system BLAS; the default reference BLAS makes the
#                                 student's matmuls about 15x slower
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
exec bash "$root/scripts/install-deps.sh" python3 python3-torch python3-numpy libopenblas0-pthread
