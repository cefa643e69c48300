#!/usr/bin/env bash
# The functions the host calls before it knows a backend can run (ABI version, descriptor, score, and the factory
# entry itself) must contain no AVX/AVX-512 instruction: disassemble each backend plugin and check.
set -euo pipefail
status=0
for so in "$@"; do
  bad=$(objdump -d --no-show-raw-insn -C "$so" | awk '
    /^[0-9a-f]+ <.*>:$/ { checked = ($0 ~ /descriptor\(\)|::score\(|abi_version\(\)|::create_backend\(/); name = $0; next }
    checked && NF >= 2 {
      mnemonic = $2
      if (mnemonic ~ /^v/ || $0 ~ /%[yz]mm|%k[0-7]/) print name " -> " $0
    }')
  found=$(objdump -d -C "$so" | grep -cE '<.*(descriptor\(\)|::score\(|abi_version\(\)).*>:' || true)
  if [ "$found" -lt 3 ]; then
    echo "$so: expected to find the descriptor, score and ABI functions, found $found"; status=1
  fi
  if [ -n "$bad" ]; then
    echo "$so: ISA-specific instructions in code the host runs before choosing a backend:"; echo "$bad"; status=1
  else
    echo "$so: descriptor path is ISA-neutral"
  fi
done
exit $status
