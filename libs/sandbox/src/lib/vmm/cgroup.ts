import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { VmmError } from './errors';
import { exists } from './exists';
import { validateVmId } from './paths';
import { sleep } from './sleep';

export type CgroupVersion = 'v1' | 'v2';

/** Where VM cgroups go: `<root>/<parent>/<id>` (v2), `<root>/{cpu,memory,pids}/<parent>/<id>` (v1). */
export interface CgroupLayout {
  version: CgroupVersion;
  /** The cgroup filesystem mount point, `/sys/fs/cgroup` on every host we know. */
  root: string;
  /** One path component, `caas` by default. */
  parent: string;
}

export interface CgroupLimits {
  /** CPU bandwidth: 1000 = one host CPU (a quota per 100 ms period). At least 10. */
  cpuMillis: number;
  /** The whole QEMU process: guest RAM plus QEMU's own overhead (the caller computes it). Swap is not allowed. */
  memoryBytes: number;
  /** Tasks (threads) of the QEMU process; default 128 (vCPU threads, the block I/O thread pool of up to 64, …). */
  pidsMax?: number;
}

export interface CgroupWrite {
  path: string;
  value: string;
  /** Skipped when the file does not exist (e.g. `memory.memsw.*` without swap accounting). */
  optional?: boolean;
}

export interface CgroupPlan {
  version: CgroupVersion;
  /** Directories to create, parents first. */
  create: string[];
  /** This VM's cgroup directories (one per v1 hierarchy, one for v2): removed at cleanup. */
  leaves: string[];
  /** Limit (and, for v2, controller) writes, in order, after `create`. */
  writes: CgroupWrite[];
  /** The `cgroup.procs` files QEMU must join before it runs. */
  procsFiles: string[];
}

export const DEFAULT_CGROUP_ROOT = '/sys/fs/cgroup';
export const DEFAULT_CGROUP_PARENT = 'caas';
export const DEFAULT_PIDS_MAX = 128;
export const CPU_PERIOD_US = 100_000;
const V1_HIERARCHIES = ['cpu', 'memory', 'pids'] as const;
const V2_CONTROLLERS = '+cpu +memory +pids';

function invalid(message: string): never {
  throw new VmmError('INVALID_SPEC', message);
}

function validateLayout(layout: CgroupLayout): void {
  if (!/^[A-Za-z0-9][-_.A-Za-z0-9]*$/.test(layout.parent) || layout.parent === '..') {
    invalid(`cgroup parent must be one path component, got ${JSON.stringify(layout.parent)}`);
  }
}

export function validateCgroupLimits(limits: CgroupLimits): void {
  const { cpuMillis, memoryBytes, pidsMax = DEFAULT_PIDS_MAX } = limits;
  if (!Number.isSafeInteger(cpuMillis) || cpuMillis < 10 || cpuMillis > 1_000_000) {
    invalid(`cpuMillis must be an integer in 10..1000000, got ${cpuMillis}`);
  }
  if (!Number.isSafeInteger(memoryBytes) || memoryBytes < 16 * 1024 * 1024) {
    invalid(`memoryBytes must be an integer of at least 16 MiB, got ${memoryBytes}`);
  }
  if (!Number.isSafeInteger(pidsMax) || pidsMax < 16 || pidsMax > 32768) {
    invalid(`pidsMax must be an integer in 16..32768, got ${pidsMax}`);
  }
}

/** This VM's cgroup directories (pure). */
export function cgroupLeaves(layout: CgroupLayout, id: string): string[] {
  validateVmId(id);
  validateLayout(layout);
  switch (layout.version) {
    case 'v1':
      return V1_HIERARCHIES.map((h) => join(layout.root, h, layout.parent, id));
    case 'v2':
      return [join(layout.root, layout.parent, id)];
  }
}

/** What to create and write for one VM's cgroup (pure). */
export function planCgroup(layout: CgroupLayout, id: string, limits: CgroupLimits): CgroupPlan {
  validateCgroupLimits(limits);
  const leaves = cgroupLeaves(layout, id);
  const quota = String(limits.cpuMillis * (CPU_PERIOD_US / 1000));
  const memory = String(limits.memoryBytes);
  const pids = String(limits.pidsMax ?? DEFAULT_PIDS_MAX);
  switch (layout.version) {
    case 'v1': {
      const [cpu, mem, pid] = leaves as [string, string, string];
      return {
        version: 'v1',
        create: leaves,
        leaves,
        writes: [
          { path: join(cpu, 'cpu.cfs_period_us'), value: String(CPU_PERIOD_US) },
          { path: join(cpu, 'cpu.cfs_quota_us'), value: quota },
          { path: join(mem, 'memory.limit_in_bytes'), value: memory },
          // memory+swap = memory: no swap. Only with swap accounting; must follow memory.limit_in_bytes.
          { path: join(mem, 'memory.memsw.limit_in_bytes'), value: memory, optional: true },
          { path: join(pid, 'pids.max'), value: pids },
        ],
        procsFiles: leaves.map((leaf) => join(leaf, 'cgroup.procs')),
      };
    }
    case 'v2': {
      const parent = join(layout.root, layout.parent);
      const [leaf] = leaves as [string];
      return {
        version: 'v2',
        create: [parent, leaf],
        leaves,
        writes: [
          // Controllers must be enabled on every level above the leaf (the root is exempt from the
          // no-internal-processes rule; `caas` never holds processes itself).
          { path: join(layout.root, 'cgroup.subtree_control'), value: V2_CONTROLLERS },
          { path: join(parent, 'cgroup.subtree_control'), value: V2_CONTROLLERS },
          { path: join(leaf, 'cpu.max'), value: `${quota} ${CPU_PERIOD_US}` },
          { path: join(leaf, 'memory.max'), value: memory },
          { path: join(leaf, 'memory.swap.max'), value: '0', optional: true },
          { path: join(leaf, 'pids.max'), value: pids },
        ],
        procsFiles: [join(leaf, 'cgroup.procs')],
      };
    }
  }
}

/** v2 when `<root>/cgroup.controllers` exists (a unified hierarchy), else v1 (hybrid hosts count as v1). */
export async function detectCgroupVersion(root = DEFAULT_CGROUP_ROOT): Promise<CgroupVersion> {
  return (await exists(join(root, 'cgroup.controllers'))) ? 'v2' : 'v1';
}

export async function defaultCgroupLayout(overrides: { root?: string; parent?: string } = {}): Promise<CgroupLayout> {
  const root = overrides.root ?? DEFAULT_CGROUP_ROOT;
  return { version: await detectCgroupVersion(root), root, parent: overrides.parent ?? DEFAULT_CGROUP_PARENT };
}

export function parseProcsFile(text: string): number[] {
  return text
    .split('\n')
    .filter((line) => /^\d+$/.test(line))
    .map(Number);
}

/** The processes in these cgroup directories; a directory that does not exist holds none. */
export async function cgroupPids(leaves: readonly string[]): Promise<number[]> {
  const pids = new Set<number>();
  for (const leaf of leaves) {
    try {
      for (const pid of parseProcsFile(await readFile(join(leaf, 'cgroup.procs'), 'utf8'))) pids.add(pid);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  return [...pids];
}

/**
 * Creates the VM's cgroup and sets its limits. Fails with CGROUP_FAILED when a write fails, or when a
 * leaf already holds processes (a leftover of the same id: clean it up first).
 */
export async function createCgroup(plan: CgroupPlan): Promise<void> {
  const leftovers = await cgroupPids(plan.leaves);
  if (leftovers.length > 0) {
    throw new VmmError(
      'CGROUP_FAILED',
      `cgroup ${plan.leaves.join(', ')} still holds processes ${leftovers.join(' ')}`,
    );
  }
  for (const dir of plan.create) {
    try {
      await mkdir(dir, { recursive: true });
    } catch (error) {
      throw new VmmError('CGROUP_FAILED', `cannot create cgroup ${dir}: ${String(error)}`, { cause: error });
    }
  }
  for (const write of plan.writes) {
    if (write.optional === true && !(await exists(write.path))) continue;
    try {
      await writeFile(write.path, write.value);
    } catch (error) {
      throw new VmmError('CGROUP_FAILED', `cannot write ${write.value} to ${write.path}: ${String(error)}`, {
        cause: error,
      });
    }
  }
}

/**
 * Kills whatever is left in the VM's cgroup directories (only root can move a process into them, so whatever
 * is there is that VM's QEMU) and removes them. Idempotent: missing directories are fine.
 */
export async function removeCgroup(leaves: readonly string[], options: { timeoutMs?: number } = {}): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 5000);
  for (;;) {
    const pids = (await cgroupPids(leaves)).filter((pid) => pid !== process.pid);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    let busy: unknown;
    for (const leaf of leaves) {
      try {
        await rmdir(leaf);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') continue;
        if (code !== 'EBUSY') {
          throw new VmmError('CGROUP_FAILED', `cannot remove cgroup ${leaf}: ${String(error)}`, { cause: error });
        }
        busy = error;
      }
    }
    if (busy === undefined) return;
    if (Date.now() > deadline) {
      throw new VmmError('CGROUP_FAILED', `cgroup ${leaves.join(', ')} still busy (pids ${pids.join(' ')})`, {
        cause: busy,
      });
    }
    await sleep(20);
  }
}
