// What the benchmark reads about the host and the QEMU processes from /proc, and the statistics it reports.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

const MIB = 1024 * 1024;

/** Clock ticks per second of /proc/<pid>/stat's times (USER_HZ; 100 on every x86 Linux we know). */
export const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

function readOr(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** A `Name:   1234 kB` field of /proc/meminfo, /proc/<pid>/status or smaps_rollup, in MiB. */
function kbField(text: string | undefined, name: string): number | undefined {
  const match = text && new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm').exec(text);
  return match ? (Number(match[1]) * 1024) / MIB : undefined;
}

export function memAvailableMiB(): number {
  const value = kbField(readOr('/proc/meminfo'), 'MemAvailable');
  if (value === undefined) throw new Error('no MemAvailable in /proc/meminfo');
  return value;
}

/** Resident set and proportional set size of a process, MiB (undefined once it is gone). */
export function processMemory(pid: number): { rssMiB: number; pssMiB: number } | undefined {
  const rssMiB = kbField(readOr(`/proc/${pid}/status`), 'VmRSS');
  const pssMiB = kbField(readOr(`/proc/${pid}/smaps_rollup`), 'Pss');
  return rssMiB === undefined || pssMiB === undefined ? undefined : { rssMiB, pssMiB };
}

/** The fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses). */
function statFields(pid: number): string[] | undefined {
  const text = readOr(`/proc/${pid}/stat`);
  const close = text?.lastIndexOf(')') ?? -1;
  return text && close > 0 ? text.slice(close + 2).split(' ') : undefined;
}

/** utime + stime of every thread of the process, in seconds. */
export function processCpuSeconds(pid: number): number | undefined {
  const fields = statFields(pid);
  // fields[0] is field 3 (state): utime is field 14, stime field 15.
  return fields ? (Number(fields[11]) + Number(fields[12])) / CLK_TCK : undefined;
}

export function isRunning(pid: number): boolean {
  const state = statFields(pid)?.[0];
  return state !== undefined && state !== 'Z' && state !== 'X';
}

/** Pids of every process whose command line starts with qemu-system (ours and anybody else's). */
export function qemuPids(): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const cmdline = readOr(`/proc/${name}/cmdline`);
    const argv0 = cmdline?.split('\0')[0] ?? '';
    if (/(^|\/)qemu-system-/.test(argv0) && isRunning(Number(name))) pids.push(Number(name));
  }
  return pids;
}

/** Nearest-rank percentile (p in 0..100) of the finite values; NaN when there are none. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

export function median(values: readonly number[]): number {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Rounded to `digits` decimals, null when not a finite number (JSON has no NaN). */
export function round(value: number | undefined, digits = 1): number | null {
  if (value === undefined || !Number.isFinite(value)) return null;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
