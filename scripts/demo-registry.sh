#!/usr/bin/env bash
# A local OCI registry with a demo image, for `npm run up` and the end-to-end tests (no internet needed):
#
#   scripts/demo-registry.sh start   # Debian's docker-registry on 127.0.0.1:$REGISTRY_PORT (default 5000),
#                                    # its storage, config, log and pid in .caas/registry-<port>/; idempotent
#   scripts/demo-registry.sh push    # builds demo/busybox:1 (busybox-static, umoci) and pushes it (skopeo)
#   scripts/demo-registry.sh stop
#   scripts/demo-registry.sh purge   # stop, and remove its directory (tests on a random port: nothing piles up)
#
# With REGISTRY_AUTH=user:password (on start and push alike) the registry wants HTTP Basic auth from that one
# user (a bcrypt htpasswd file, as a private registry would) and push sends those credentials. Registries on
# different ports are independent: each has its own directory. A running registry started with other settings
# (auth on or off, another user) is restarted with the new ones; its images are kept.
#
# Prints the image reference on stdout after `push`. Needs docker-registry, umoci, skopeo, busybox-static and,
# for REGISTRY_AUTH, htpasswd (apache2-utils): all installed by scripts/lib.sh setup_machine.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PORT="${REGISTRY_PORT:-5000}"
HOSTPORT="127.0.0.1:$PORT"
DIR="$STATE/registry-$PORT"
PIDFILE="$DIR/registry.pid"
LOG="$DIR/registry.log"
IMAGE="$HOSTPORT/demo/busybox:1"
AUTH="${REGISTRY_AUTH:-}"
if [ -n "$AUTH" ]; then
  [[ "$AUTH" == ?*:?* ]] || die "REGISTRY_AUTH must be user:password"
  AUTH_USER="${AUTH%%:*}"
  AUTH_PASSWORD="${AUTH#*:}"
fi

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

# The registry answers /v2/: 200 without auth, 401 (with a Basic challenge) with it.
answers() {
  node -e "fetch('http://$HOSTPORT/v2/').then(r=>process.exit(r.ok||r.status===401?0:1),()=>process.exit(1))"
}

# The registry's config for the settings asked for; a running registry with another config is restarted.
config() {
  cat <<YAML
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
  if [ -n "$AUTH" ]; then
    # The htpasswd file's bcrypt salt differs on every run: the config names the user, so a changed user
    # restarts the registry; a changed password is caught by the hash of the pair below.
    cat <<YAML
auth:
  htpasswd:
    realm: caas-demo
    path: $DIR/htpasswd
# user $AUTH_USER, credentials $(printf '%s' "$AUTH" | sha256sum | cut -c1-16)
YAML
  fi
}

start() {
  for tool in /usr/bin/docker-registry /usr/bin/umoci /usr/bin/skopeo /bin/busybox; do
    [ -x "$tool" ] || die "$tool is missing: apt-get install docker-registry umoci skopeo busybox-static"
  done
  [ -z "$AUTH" ] || command -v htpasswd >/dev/null || die "htpasswd is missing: apt-get install apache2-utils"
  mkdir -p "$DIR/storage"
  local wanted
  wanted="$(config)"
  if running && answers && [ "$(cat "$DIR/config.yml" 2>/dev/null)" = "$wanted" ]; then return; fi
  stop
  if [ -n "$AUTH" ]; then
    (umask 077 && htpasswd -Bbn "$AUTH_USER" "$AUTH_PASSWORD" >"$DIR/htpasswd")
  else
    rm -f "$DIR/htpasswd"
  fi
  printf '%s\n' "$wanted" >"$DIR/config.yml"
  say "starting a local registry on $HOSTPORT${AUTH:+ (Basic auth, user $AUTH_USER)} (log: ${LOG#"$ROOT"/})"
  # docker-registry reads REGISTRY_* variables as config overrides (REGISTRY_AUTH would replace the auth section):
  # it gets none of ours.
  local unset=()
  for var in $(compgen -e | grep '^REGISTRY_' || true); do unset+=(-u "$var"); done
  nohup env "${unset[@]}" /usr/bin/docker-registry serve "$DIR/config.yml" >>"$LOG" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 50); do answers && return; sleep 0.1; done
  tail -5 "$LOG" >&2
  die "the registry on $HOSTPORT does not answer"
}

push() {
  start
  local work
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' RETURN
  local creds=()
  [ -z "$AUTH" ] || creds=(--dest-creds "$AUTH")
  (
    cd "$work"
    quietly umoci init --layout layout
    quietly umoci new --image layout:1
    quietly umoci unpack --rootless --image layout:1 bundle
    mkdir -p bundle/rootfs/bin bundle/rootfs/tmp
    cp /bin/busybox bundle/rootfs/bin/busybox
    for applet in sh echo cat sleep ls ps hostname date true false env id wc head tail seq yes nc; do
      ln -sf busybox "bundle/rootfs/bin/$applet"
    done
    quietly umoci repack --image layout:1 bundle
    quietly umoci config --image layout:1 --config.env PATH=/bin \
      --config.cmd /bin/sh --config.cmd -c --config.cmd 'echo hello from a caas pod; while true; do date; sleep 5; done'
    quietly skopeo copy --quiet --dest-tls-verify=false "${creds[@]}" oci:layout:1 "docker://$IMAGE"
  )
  echo "$IMAGE"
}

stop() {
  if running; then
    local pid
    pid="$(cat "$PIDFILE")"
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$PIDFILE"
}

purge() {
  stop
  rm -rf "$DIR"
}

case "${1:-}" in
  start) start ;;
  push) push ;;
  stop) stop ;;
  purge) purge ;;
  *) die "usage: scripts/demo-registry.sh start|push|stop|purge" ;;
esac
