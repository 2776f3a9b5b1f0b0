#!/usr/bin/env bash
# Builds the guest twice into scratch directories and fails unless both builds are byte-identical.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
a="$(mktemp -d)" b="$(mktemp -d)"
trap 'rm -rf "$a" "$b"' EXIT
CAAS_GUEST_OUT="$a" bash "$ROOT/runtime/guest/build.sh" 2>/dev/null
CAAS_GUEST_OUT="$b" bash "$ROOT/runtime/guest/build.sh" 2>/dev/null
if cmp -s "$a/initrd.cpio" "$b/initrd.cpio" && cmp -s "$a/kernel" "$b/kernel"; then
  echo "guest build is reproducible: $(sha256sum "$a/initrd.cpio" | cut -c1-16)… (initrd)"
else
  echo "guest build is NOT reproducible: two builds differ" >&2
  exit 1
fi
