// The benchmark's container image: Debian's static busybox with the two applets the workload needs, as an ext4
// image made with `mkfs.ext4 -d` (no mount). A compact sibling of the sandbox tests' rootfs builder
// (libs/sandbox/src/lib/__tests__/support/rootfs.ts), which non-test code may not import.
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';

export function buildBusyboxImage(outFile: string, sizeMiB = 16): string {
  const tree = mkdtempSync(join(dirname(outFile), 'rootfs-'));
  try {
    for (const dir of ['bin', 'dev', 'proc', 'sys', 'tmp']) mkdirSync(join(tree, dir));
    chmodSync(join(tree, 'tmp'), 0o1777);
    copyFileSync('/bin/busybox', join(tree, 'bin/busybox'));
    chmodSync(join(tree, 'bin/busybox'), 0o755);
    for (const applet of ['sh', 'sleep']) symlinkSync('busybox', join(tree, 'bin', applet));
    execFileSync('mkfs.ext4', ['-q', '-F', '-d', tree, '-O', '^has_journal', '-m', '0', outFile, `${sizeMiB}M`], {
      stdio: 'pipe',
    });
    return outFile;
  } finally {
    rmSync(tree, { recursive: true, force: true });
  }
}
