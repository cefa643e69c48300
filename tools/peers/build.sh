#!/usr/bin/env bash
# Builds the peers bitrun's kernels are measured against, from their public sources, for side-by-side benchmarks
# (docs/performance.md). Not part of the test suite.
#
#   tools/peers/build.sh ik_llama SRC [OUT]   ik_llama.cpp, CPU only, GGML_NATIVE=ON: llama-quantize, llama-bench
#   PEER_ISA=avx2 tools/peers/build.sh ik_llama SRC [OUT]
#                                             the same for AVX2 + AVX-VNNI only (no AVX-512), so bitrun's avx2
#                                             backend can be compared on an AVX-512 machine
#   tools/peers/build.sh bitnet SRC LLAMA_SRC [OUT]
#                                             microsoft/BitNet (clang, BITNET_X86_TL2=OFF) over the llama.cpp fork
#                                             its 3rdparty/llama.cpp submodule pins (LLAMA_SRC)
# SRC is a checkout or a git directory (such as a mirror without a work tree; its HEAD is exported). OUT defaults to
# build/peers/<name>. Then, for a bitrun I2_S file (e.g. `bitrun synth 2b.gguf --preset bitnet-2b-4t`):
#   OUT/bin/llama-quantize --allow-requantize 2b.gguf 2b-iq2_bn.gguf IQ2_BN      (ik_llama.cpp's ternary type)
#   OUT/bin/llama-bench -m 2b-iq2_bn.gguf -p 512 -n 128 -t 1,2 -rtr 1           (-rtr: its row-interleaved repack)
#   OUT/bin/llama-bench -m 2b.gguf -p 512 -n 128 -t 1,2                         (bitnet.cpp reads I2_S as it is)
# and next to them: bitrun bench -m 2b.gguf --diffusion-tokens 0
set -euo pipefail

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[[ $# -ge 2 ]] || usage
name=$1 src=$2
root=$(cd "$(dirname "$0")/../.." && pwd)

# Copies SRC (checkout or git directory) to $1.
export_source() {
  local from=$1 to=$2
  rm -rf "$to" && mkdir -p "$to"
  if [[ -f $from/CMakeLists.txt ]]; then
    cp -a "$from/." "$to/"
  elif git --git-dir="$from" rev-parse --verify -q HEAD >/dev/null; then
    # A mirror may lack its largest blobs (web assets, models): export the files it has, list the rest.
    local g=(git --git-dir="$from") present=() kind path
    while IFS=$'\t' read -r kind path; do
      if [[ $kind == blob ]]; then present+=("$path"); else echo "$path" >>"$to/PEER_MISSING_FILES"; fi
    done < <(paste <("${g[@]}" ls-tree -r HEAD --format='%(objectname)' | "${g[@]}" cat-file --batch-check='%(objecttype)' |
                       awk '{print ($2 == "missing") ? "missing" : $1}') \
                   <("${g[@]}" ls-tree -r HEAD --format='%(path)'))
    "${g[@]}" archive HEAD -- "${present[@]}" | tar -x -C "$to"
    echo "$name: $("${g[@]}" log -1 --format='%h %ad %s' --date=short)" >"$to/PEER_COMMIT"
  else
    echo "error: $from is neither a source tree nor a git directory" >&2
    exit 1
  fi
}

jobs=$(nproc)
case $name in
  ik_llama)
    out=${3:-$root/build/peers/ik_llama}
    export_source "$src" "$out/src"
    # Its FlashAttention kernels for every KV cache type are most of the build time (over an hour on 2 cores); the
    # comparison uses an F16 cache. (Turning its flash attention off altogether fails to link at 8337e4c.)
    isa_flags=(-DGGML_NATIVE=ON)
    if [[ ${PEER_ISA:-native} == avx2 ]]; then
      # What bitrun's avx2 backend may use: AVX2, FMA, F16C and (where present) AVX-VNNI; nothing of AVX-512.
      isa_flags=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVXVNNI=ON
                 -DGGML_AVX512=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_BF16=OFF)
    fi
    cmake -S "$out/src" -B "$out/build" -DCMAKE_BUILD_TYPE=Release "${isa_flags[@]}" -DGGML_CUDA=OFF \
      -DLLAMA_CURL=OFF -DBUILD_SHARED_LIBS=OFF -DGGML_IQK_FLASH_ATTENTION=ON -DGGML_IQK_FA_ALL_QUANTS=OFF
    cmake --build "$out/build" --target llama-quantize llama-bench -j "$jobs"
    mkdir -p "$out/bin" && cp "$out/build/bin/llama-quantize" "$out/build/bin/llama-bench" "$out/bin/"
    ;;
  bitnet)
    [[ $# -ge 3 ]] || usage
    out=${4:-$root/build/peers/bitnet}
    export_source "$src" "$out/src"
    export_source "$3" "$out/src/3rdparty/llama.cpp"
    cmake -S "$out/src" -B "$out/build" -DCMAKE_BUILD_TYPE=Release -DBITNET_X86_TL2=OFF \
      -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DLLAMA_CURL=OFF
    cmake --build "$out/build" --target llama-bench -j "$jobs"
    mkdir -p "$out/bin" && cp "$out/build/bin/llama-bench" "$out/bin/"
    ;;
  *) usage ;;
esac
echo "built $name in $out/bin"
