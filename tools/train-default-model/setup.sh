#!/usr/bin/env bash
# Installs what the training tool needs (Debian bookworm packages; sudo only when not root; apt is skipped when
# everything is present). Not needed by bitrun itself or its tests.
#   python3-torch, python3-numpy  the training code (run with Debian's /usr/bin/python3)
#   libopenblas0-pthread          Debian's torch calls the system BLAS; the default reference BLAS makes the
#                                 student's matmuls about 15x slower
set -euo pipefail

packages=(python3 python3-torch python3-numpy libopenblas0-pthread)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "train-default-model setup: all packages present"
  exit 0
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo_cmd=(sudo)
fi
echo "train-default-model setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
