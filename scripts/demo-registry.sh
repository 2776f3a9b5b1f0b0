#!/usr/bin/env bash
# A local OCI registry with a demo image, for `npm run up` and the end-to-end tests (no internet needed):
#
#   scripts/demo-registry.sh start   # Debian's docker-registry on 127.0.0.1:$REGISTRY_PORT (default 5000),
#                                    # storage in .caas/registry, pid in .caas/registry.pid; idempotent
#   scripts/demo-registry.sh push    # builds demo/busybox:1 (busybox-static, umoci) and pushes it (skopeo)
#   scripts/demo-registry.sh stop
#
# Prints the image reference on stdout after `push`. Needs docker-registry, umoci, skopeo and busybox-static
# (installed by scripts/lib.sh setup_machine).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT="${REGISTRY_PORT:-5000}"
HOSTPORT="127.0.0.1:$PORT"
DIR="$STATE/registry"
PIDFILE="$STATE/registry.pid"
IMAGE="$HOSTPORT/demo/busybox:1"

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

answers() { node -e "fetch('http://$HOSTPORT/v2/').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"; }

start() {
  for tool in /usr/bin/docker-registry /usr/bin/umoci /usr/bin/skopeo /bin/busybox; do
    [ -x "$tool" ] || die "$tool is missing: apt-get install docker-registry umoci skopeo busybox-static"
  done
  if running && answers; then return; fi
  mkdir -p "$DIR/storage"
  cat >"$DIR/config.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $DIR/storage
  delete:
    enabled: true
http:
  addr: $HOSTPORT
YAML
  say "starting a local registry on $HOSTPORT (log: .caas/registry.log)"
  nohup /usr/bin/docker-registry serve "$DIR/config.yml" >>"$STATE/registry.log" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 50); do answers && return; sleep 0.1; done
  tail -5 "$STATE/registry.log" >&2
  die "the registry on $HOSTPORT does not answer"
}

push() {
  start
  local work
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  (
    cd "$work"
    quietly umoci init --layout layout
    quietly umoci new --image layout:1
    quietly umoci unpack --rootless --image layout:1 bundle
    mkdir -p bundle/rootfs/bin bundle/rootfs/tmp
    cp /bin/busybox bundle/rootfs/bin/busybox
    for applet in sh echo cat sleep ls ps hostname date true false env id wc head tail seq yes; do
      ln -sf busybox "bundle/rootfs/bin/$applet"
    done
    quietly umoci repack --image layout:1 bundle
    quietly umoci config --image layout:1 --config.env PATH=/bin \
      --config.cmd /bin/sh --config.cmd -c --config.cmd 'echo hello from a caas pod; while true; do date; sleep 5; done'
    quietly skopeo copy --quiet --dest-tls-verify=false oci:layout:1 "docker://$IMAGE"
  )
  echo "$IMAGE"
}

stop() {
  if running; then kill "$(cat "$PIDFILE")"; fi
  rm -f "$PIDFILE"
}

case "${1:-}" in
  start) start ;;
  push) push ;;
  stop) stop ;;
  *) die "usage: scripts/demo-registry.sh start|push|stop" ;;
esac
