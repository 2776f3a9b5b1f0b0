// A root filesystem image from Debian's static busybox (every applet linked, a passwd/group with root and `app`
// 1000:1000, plus extra files), as ext4 built with `mkfs.ext4 -d` (no mount needed). For development, tests and
// benchmarks: a pod image that needs no registry. Real pods boot what @caas/oci-images builds from OCI images.
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  writeFileSync,
  copyFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export interface ExtraFile {
  content: string;
  mode?: number;
}

export function buildBusyboxImage(outFile: string, extra: Record<string, ExtraFile> = {}, sizeMiB = 24): string {
  const tree = mkdtempSync(join(tmpdir(), 'caas-rootfs-'));
  try {
    for (const d of ['bin', 'etc', 'tmp', 'proc', 'dev', 'sys', 'root', 'home/app']) {
      mkdirSync(join(tree, d), { recursive: true });
    }
    chmodSync(join(tree, 'tmp'), 0o1777);
    chownSync(join(tree, 'home/app'), 1000, 1000);
    copyFileSync('/bin/busybox', join(tree, 'bin/busybox'));
    chmodSync(join(tree, 'bin/busybox'), 0o755);
    const applets = execFileSync('/bin/busybox', ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean);
    for (const applet of applets) {
      if (applet !== 'busybox') symlinkSync('busybox', join(tree, 'bin', applet));
    }
    writeFileSync(join(tree, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n');
    writeFileSync(join(tree, 'etc/group'), 'root:x:0:\napp:x:1000:\n');
    for (const [path, file] of Object.entries(extra)) {
      const target = join(tree, path);
      mkdirSync(dirname(target), { recursive: true });
      writeFileSync(target, file.content);
      chmodSync(target, file.mode ?? 0o644);
    }
    mkdirSync(dirname(outFile), { recursive: true });
    execFileSync('mkfs.ext4', ['-q', '-F', '-d', tree, '-O', '^has_journal', '-m', '0', outFile, `${sizeMiB}M`], {
      stdio: 'pipe',
    });
    return outFile;
  } finally {
    rmSync(tree, { recursive: true, force: true });
  }
}
