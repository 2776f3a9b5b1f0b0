#!/usr/bin/env bash
# Builds the guest agent (or, with a second argument, another Go program of runtime/, e.g. tapfd) as a static,
# reproducible linux/amd64 binary: build.sh OUT [DIR]
# Only the Go standard library is used; no network is needed (GOPROXY=off).
set -euo pipefail
OUT="${1:?usage: build.sh OUT [DIR]}"
HERE="$(cd "${2:-$(dirname "${BASH_SOURCE[0]}")}" && pwd)"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
GODIR="$ROOT/.caas/go"
mkdir -p "$GODIR/cache" "$GODIR/path" "$(dirname "$OUT")"
case "$OUT" in /*) ;; *) OUT="$PWD/$OUT" ;; esac
cd "$HERE"
env GOCACHE="$GODIR/cache" GOPATH="$GODIR/path" GOTOOLCHAIN=local GOPROXY=off GOFLAGS= GO111MODULE=on \
  CGO_ENABLED=0 GOOS=linux GOARCH=amd64 \
  go build -trimpath -ldflags='-s -w -buildid=' -o "$OUT" .
