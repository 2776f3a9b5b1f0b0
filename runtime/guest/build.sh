#!/usr/bin/env bash
# Builds the pod VM's guest: the kernel (Debian's cloud kernel, fetched with `apt-get download` into a cache)
# and an initrd holding only the guest agent as /init and the few modules the microvm machine needs.
# Reproducible: the same kernel package and agent sources give byte-identical outputs (sorted cpio, fixed
# mtimes and owners, a Go build without build ids). Output: dist/guest/{kernel,vmlinuz,initrd.cpio,manifest.json}:
# `kernel` is what VMs boot (the uncompressed PVH vmlinux when it can be extracted, else the bzImage).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${CAAS_GUEST_OUT:-$ROOT/dist/guest}"
CACHE="${CAAS_CACHE_DIR:-$ROOT/.caas/cache}/kernel"
EPOCH=0
# Modules in the order they must be loaded; their dependencies are added ahead of them.
MODULES=(virtio_mmio virtio_console virtio_blk overlay erofs pvpanic_mmio virtio_net)

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

need() { for c in "$@"; do command -v "$c" >/dev/null || die "missing $c (run scripts/setup-runtime.sh)"; done; }
need apt-get apt-cache dpkg-deb cpio go lz4

# 1. The kernel package: the one Debian's linux-image-cloud-amd64 points at, unless pinned.
pkg="${CAAS_GUEST_KERNEL_PKG:-}"
if [ -z "$pkg" ]; then
  find_pkg() { apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'; }
  pkg="$(find_pkg)"
  if [ -z "$pkg" ] && [ "$(id -u)" = 0 ]; then
    say "apt does not know linux-image-cloud-amd64 yet: apt-get update"
    apt-get update -qq >&2 && pkg="$(find_pkg)"
  fi
  [ -n "$pkg" ] || die "apt does not know linux-image-cloud-amd64: run apt-get update as root"
fi
mkdir -p "$CACHE"
deb="$(ls "$CACHE"/"${pkg}"_*.deb 2>/dev/null | head -1 || true)"
if [ -z "$deb" ]; then
  say "downloading $pkg"
  (cd "$CACHE" && apt-get download "$pkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
  deb="$(ls "$CACHE"/"${pkg}"_*.deb 2>/dev/null | head -1 || true)"
  [ -n "$deb" ] || die "could not download $pkg"
fi
tree="$CACHE/${pkg}.tree"
if [ ! -d "$tree" ]; then
  rm -rf "$tree.tmp" && mkdir -p "$tree.tmp" && dpkg-deb -x "$deb" "$tree.tmp" && mv "$tree.tmp" "$tree"
fi
kver="${pkg#linux-image-}"
moddir="$tree/lib/modules/$kver/kernel"
[ -d "$moddir" ] || die "no modules for $kver in $deb"

# 2. Module files, dependencies first (read from each module's own `depends=`; none in the .deb's depmod data).
declare -A path_of=()
while IFS= read -r f; do n="$(basename "$f" .ko)"; path_of["${n//-/_}"]="$f"; done < <(find "$moddir" -name '*.ko')
declare -A seen=()
ordered=()
add_module() {
  local name="${1//-/_}" dep deps
  [ -n "${seen[$name]:-}" ] && return 0
  seen[$name]=1
  local file="${path_of[$name]:-}"
  [ -n "$file" ] || return 0 # built into the kernel
  deps="$(grep -a -o -m1 'depends=[a-z0-9_,-]*' "$file" | head -1 | cut -d= -f2)"
  for dep in ${deps//,/ }; do add_module "$dep"; done
  ordered+=("$file")
}
for m in "${MODULES[@]}"; do
  add_module "$m"
done

# 3. The initrd tree: /init (the guest agent), the modules, /etc/modules, mount points.
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{dev,proc,sys,run,tmp,etc,lib/modules}
bash "$ROOT/runtime/guest-agent/build.sh" "$stage/init"
: > "$stage/etc/modules"
for f in "${ordered[@]}"; do
  cp "$f" "$stage/lib/modules/"
  echo "/lib/modules/$(basename "$f")" >> "$stage/etc/modules"
done
# Debian signs its modules; checking an RSA signature per module takes ~150 ms of emulated CPU each under TCG
# (1.5 s of the agent's start). The initrd is itself trusted input from the host, and the kernel does not
# enforce signatures (CONFIG_MODULE_SIG_FORCE unset), so the appended signatures are stripped: the kernel
# then loads them as unsigned (one "tainting kernel" line on the console).
node -e '
const fs = require("fs");
const MAGIC = Buffer.from("~Module signature appended~\n");
for (const file of process.argv.slice(1)) {
  const ko = fs.readFileSync(file);
  if (!ko.subarray(ko.length - MAGIC.length).equals(MAGIC)) continue;
  const info = ko.length - MAGIC.length - 12; // struct module_signature
  const signer = ko[info + 3], keyId = ko[info + 4], sigLen = ko.readUInt32BE(info + 8);
  fs.writeFileSync(file, ko.subarray(0, info - sigLen - signer - keyId));
}' "$stage"/lib/modules/*.ko
find "$stage" -exec touch -h -d "@$EPOCH" {} +
chmod 0755 "$stage/init"

mkdir -p "$OUT"
# The host helper of the VM launch chain that hands QEMU its tap as a file descriptor (runtime/tapfd).
bash "$ROOT/runtime/guest-agent/build.sh" "$OUT/caas-tapfd" "$ROOT/runtime/tapfd"
chmod 0755 "$OUT/caas-tapfd"
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc --reproducible -R 0:0) > "$OUT/initrd.cpio.tmp"
mv "$OUT/initrd.cpio.tmp" "$OUT/initrd.cpio"
cp "$tree/boot/vmlinuz-$kver" "$OUT/vmlinuz.tmp" && mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
# The bzImage decompresses itself in the guest: ≈1.5 s of emulated CPU under TCG. QEMU boots the uncompressed
# vmlinux directly through its PVH entry point, so the LZ4 payload inside the bzImage is extracted once here.
format=bzImage
offset="$(grep -obUaP '\x02\x21\x4c\x18' "$OUT/vmlinuz" | head -1 | cut -d: -f1 || true)"
if [ -n "$offset" ] && tail -c +"$((offset + 1))" "$OUT/vmlinuz" | lz4 -dc > "$OUT/kernel.tmp" 2>/dev/null; [ -s "$OUT/kernel.tmp" ] &&
  [ "$(head -c 4 "$OUT/kernel.tmp" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
  format=vmlinux-pvh
else
  say "no LZ4 vmlinux inside the bzImage: VMs boot the bzImage (slower under TCG)"
  cp "$OUT/vmlinuz" "$OUT/kernel.tmp"
fi
mv "$OUT/kernel.tmp" "$OUT/kernel"
chmod 0644 "$OUT/kernel" "$OUT/vmlinuz" "$OUT/initrd.cpio"

node -e '
const [out, pkg, deb, format, ...mods] = process.argv.slice(1);
const { createHash } = require("crypto"); const fs = require("fs");
const sha = (f) => createHash("sha256").update(fs.readFileSync(f)).digest("hex");
const m = { kernelPackage: pkg, kernelDeb: require("path").basename(deb), kernelFormat: format,
  kernel: sha(out + "/kernel"), vmlinuz: sha(out + "/vmlinuz"),
  initrd: sha(out + "/initrd.cpio"), modules: mods.map((f) => require("path").basename(f)) };
fs.writeFileSync(out + "/manifest.json", JSON.stringify(m, null, 2) + "\n");
' "$OUT" "$pkg" "$deb" "$format" "${ordered[@]}"
say "guest built in $OUT ($(du -h "$OUT/initrd.cpio" | cut -f1) initrd, kernel $kver)"
