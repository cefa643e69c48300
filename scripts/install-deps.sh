#!/usr/bin/env bash
# Installs the Debian (bookworm) packages bitrun needs to build and test. Uses sudo only when not root.
# Skips apt entirely when everything is already installed, so it also works offline.
set -euo pipefail

# With arguments, installs those packages instead (the training tool's setup uses this). --runtime installs only
# what an installed tree needs to run (the container image's final stage, deploy/Dockerfile); --list-runtime
# prints those package names.
runtime_packages=(
  libspdlog1.10 libfmt9 # logging
  libyaml-cpp0.7        # config files
  libcpp-httplib0.11    # HTTP frontend
  libgomp1              # OpenMP in the backends
)
packages=(
  g++ binutils cmake ninja-build pkg-config git
  libboost-dev          # Boost.DLL (header-only, Boost 1.74)
  libyaml-cpp-dev       # config files
  libspdlog-dev         # logging (shared library: one registry for core and plugins)
  libcpp-httplib-dev    # HTTP frontend
  libgtest-dev          # tests
)

if [ "${1:-}" = "--list-runtime" ]; then   # for tests/install_smoke.sh
  printf '%s\n' "${runtime_packages[@]}"
  exit 0
elif [ "${1:-}" = "--runtime" ]; then
  packages=("${runtime_packages[@]}")
elif [ $# -gt 0 ]; then
  packages=("$@")
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi

sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo_cmd=(sudo)
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
if [ -n "${BITRUN_APT_CLEAN:-}" ]; then "${sudo_cmd[@]}" rm -rf /var/lib/apt/lists/*; fi   # slimmer image layers
