import { constants } from 'node:fs';
import { lstat, open, rm } from 'node:fs/promises';
import { cgroupLeaves, defaultCgroupLayout, removeCgroup } from './cgroup';
import type { CgroupLayout } from './cgroup';
import { VmmError } from './errors';
import { validateVmDir, validateVmId, vmPaths } from './paths';
import { cmdlineNamesDir, readLiveProcess, waitUntilGone } from './proc';

/** A pidfile holds a decimal pid and a newline; anything else is not a pid. */
export function parsePidfile(text: string): number | undefined {
  const match = /^\s*(\d{1,10})\s*$/.exec(text);
  const pid = match ? Number(match[1]) : NaN;
  return Number.isSafeInteger(pid) && pid > 1 && pid < 2 ** 22 + 1 ? pid : undefined;
}

/**
 * Reads `<dir>/qemu.pid`. QEMU writes it as the VM's uid, in a directory that uid owns, so it is untrusted:
 * no symlink is followed, only a regular file is read (a FIFO would block), at most 32 bytes.
 */
export async function readPidfile(dir: string): Promise<number | undefined> {
  let handle;
  try {
    handle = await open(vmPaths(dir).pidfile, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    if (!(await handle.stat()).isFile()) return undefined;
    const buffer = Buffer.alloc(32);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return parsePidfile(buffer.subarray(0, bytesRead).toString('latin1'));
  } finally {
    await handle.close();
  }
}

/**
 * The pid of the live QEMU of a VM dir, or undefined: the pidfile's pid must be a live process whose command
 * line names the dir (so a reused pid is not mistaken for the VM) and whose real uid owns the dir (so a
 * compromised QEMU cannot point us at someone else's process by rewriting its pidfile).
 */
export async function findVmProcess(dir: string): Promise<number | undefined> {
  const pid = await readPidfile(dir);
  if (pid === undefined) return undefined;
  const proc = await readLiveProcess(pid);
  if (!proc || !cmdlineNamesDir(proc.cmdline, dir)) return undefined;
  let owner: number;
  try {
    owner = (await lstat(dir)).uid;
  } catch {
    return undefined;
  }
  return proc.status.uid[0] === owner ? pid : undefined;
}

export type VmStatus = { alive: true; pid: number } | { alive: false };

/** Whether the VM dir's QEMU is alive (usable after a host-process restart, when QEMU is not our child). */
export async function vmStatus(dir: string): Promise<VmStatus> {
  validateVmDir(dir);
  const pid = await findVmProcess(dir);
  return pid === undefined ? { alive: false } : { alive: true, pid };
}

/**
 * SIGKILLs the VM dir's QEMU and waits (bounded) until its process is gone. Resolves with the pid it killed, or
 * undefined when none was alive. KILL_TIMEOUT when the process is still there after `timeoutMs`.
 */
export async function killVm(dir: string, options: { timeoutMs?: number } = {}): Promise<number | undefined> {
  validateVmDir(dir);
  const pid = await findVmProcess(dir);
  if (pid === undefined) return undefined;
  try {
    process.kill(pid, 'SIGKILL');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
  const timeoutMs = options.timeoutMs ?? 5000;
  if (!(await waitUntilGone(pid, timeoutMs))) {
    throw new VmmError('KILL_TIMEOUT', `QEMU ${pid} of ${dir} is still there ${timeoutMs} ms after SIGKILL`);
  }
  return pid;
}

export interface CleanupOptions {
  /** Default: detected under `/sys/fs/cgroup`, parent `caas` (must match what the VM was launched with). */
  cgroupLayout?: CgroupLayout;
  timeoutMs?: number;
}

/**
 * Removes everything of a VM: kills its QEMU (found through the pidfile, and anything left in its cgroup),
 * removes its cgroup directories, then the VM dir with its sockets, pidfile and logs. Idempotent, and works on a
 * half-created VM (no dir, no cgroup, no pidfile, or any mix).
 */
export async function cleanupVm(dir: string, id: string, options: CleanupOptions = {}): Promise<void> {
  validateVmDir(dir);
  validateVmId(id);
  const timeoutMs = options.timeoutMs ?? 5000;
  const layout = options.cgroupLayout ?? (await defaultCgroupLayout());
  await killVm(dir, { timeoutMs });
  await removeCgroup(cgroupLeaves(layout, id), { timeoutMs });
  // rm does not follow symlinks a QEMU may have planted in its own directory.
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}
