// Shared by the sandbox VM suites: the built guest, short state directories, busybox images, container specs,
// and checks that a sandbox left nothing behind on the host.
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '@caas/testing';
import type { ContainerStatus } from '@caas/guest-protocol';
import { SandboxManager, type SandboxManagerOptions } from '../../sandbox-manager';
import type { Sandbox, SandboxOutput } from '../../sandbox';
import type { SandboxContainerSpec } from '../../sandbox-spec';
import { cgroupLeaves, defaultCgroupLayout, parseProcStatState } from '../../vmm';
import { buildBusyboxImage, type ExtraFile } from '../../busybox-image';

export const guest = {
  kernel: join(repoRoot(), 'dist/guest/kernel'),
  initrd: join(repoRoot(), 'dist/guest/initrd.cpio'),
};

export function requireGuest(): void {
  if (!existsSync(guest.kernel) || !existsSync(guest.initrd)) {
    throw new Error('the guest is not built: run `npx nx run runtime:build-guest` (the test target depends on it)');
  }
}

/** A scratch directory with a short path (unix socket paths must fit in 107 bytes). */
export function scratchDir(): { dir: string; remove(): void } {
  const dir = mkdtempSync('/tmp/cv-');
  chmodSync(dir, 0o711); // the VMs' uids must be able to reach their own directories below it
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export async function openManager(
  stateDir: string,
  overrides: Partial<SandboxManagerOptions> = {},
): Promise<SandboxManager> {
  requireGuest();
  return SandboxManager.open({ stateDir, ...guest, allowTcg: true, bootTimeoutMs: 90_000, ...overrides });
}

export function image(dir: string, name: string, extra: Record<string, ExtraFile> = {}) {
  return { path: buildBusyboxImage(join(dir, `${name}.ext4`), extra), fsType: 'ext4' as const };
}

export function container(
  name: string,
  imagePath: { path: string; fsType: 'ext4' },
  script: string,
  overrides: Partial<SandboxContainerSpec> = {},
): SandboxContainerSpec {
  return {
    name,
    image: imagePath,
    argv: ['/bin/sh', '-c', script],
    env: ['PATH=/bin', `NAME=${name}`],
    workingDir: '/',
    user: { uid: 0, gid: 0, additionalGids: [] },
    hostname: name,
    limits: {},
    writableLayerBytes: 16 * 1024 * 1024,
    ...overrides,
  };
}

/** Collects a sandbox's output by source and stream. */
export class OutputLog {
  readonly chunks: SandboxOutput[] = [];
  readonly gaps: Array<{ fromSeq: number; toSeq: number }> = [];

  constructor(sandbox: Sandbox) {
    sandbox.on('output', (chunk) => this.chunks.push(chunk));
    sandbox.on('gap', (gap) => this.gaps.push(gap));
  }

  text(source: string, stream: 'stdout' | 'stderr' = 'stdout'): string {
    return Buffer.concat(
      this.chunks.filter((c) => c.source === source && c.stream === stream).map((c) => c.data),
    ).toString('utf8');
  }
}

export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Nothing of the sandbox on the host: no QEMU process, no cgroup, no state or VM directory. A QEMU adopted from
 * a dead host process is reparented to init, which reaps it in its own time: a zombie counts as gone.
 */
export async function expectNothingLeft(sandbox: Sandbox, stateDir: string): Promise<void> {
  const stat = existsSync(`/proc/${sandbox.pid}/stat`) ? readFileSync(`/proc/${sandbox.pid}/stat`, 'utf8') : '';
  expect(stat === '' || parseProcStatState(stat) === 'Z').toBe(true);
  expect(existsSync(join(stateDir, sandbox.id))).toBe(false);
  for (const leaf of cgroupLeaves(await defaultCgroupLayout(), sandbox.id)) expect(existsSync(leaf)).toBe(false);
}

export const exited = (status: ContainerStatus | undefined) => status?.state === 'exited';

/** An initrd whose /init (busybox sh) sleeps forever: a VM that boots but never becomes ready. */
export function buildHangingInitrd(outFile: string): string {
  const tree = mkdtempSync('/tmp/cv-initrd-');
  try {
    mkdirSync(join(tree, 'bin'));
    copyFileSync('/bin/busybox', join(tree, 'bin/busybox'));
    chmodSync(join(tree, 'bin/busybox'), 0o755);
    writeFileSync(join(tree, 'init'), '#!/bin/busybox sh\n/bin/busybox sleep 100000\n', { mode: 0o755 });
    execFileSync('sh', ['-c', 'find . | cpio --quiet -o -H newc -R 0:0 > "$1"', 'sh', outFile], { cwd: tree });
    chmodSync(outFile, 0o644);
    return outFile;
  } finally {
    rmSync(tree, { recursive: true, force: true });
  }
}
