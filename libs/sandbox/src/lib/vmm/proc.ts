import { readFile } from 'node:fs/promises';
import { sleep } from './sleep';

/** The fields of `/proc/<pid>/status` the VMM layer checks. */
export interface ProcStatus {
  /** Real, effective, saved, filesystem. */
  uid: [number, number, number, number];
  gid: [number, number, number, number];
  groups: number[];
  noNewPrivs: boolean;
  /** 0 disabled, 1 strict, 2 filter. */
  seccomp: number;
  capEff: bigint;
  capBnd: bigint;
}

function ids(value: string | undefined): [number, number, number, number] {
  const parts = (value ?? '').trim().split(/\s+/).map(Number);
  if (parts.length !== 4 || parts.some((n) => !Number.isSafeInteger(n))) throw new Error(`bad id line ${value}`);
  return parts as [number, number, number, number];
}

export function parseProcStatus(text: string): ProcStatus {
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  const groups = (fields.get('Groups') ?? '').trim();
  return {
    uid: ids(fields.get('Uid')),
    gid: ids(fields.get('Gid')),
    groups: groups === '' ? [] : groups.split(/\s+/).map(Number),
    noNewPrivs: fields.get('NoNewPrivs') === '1',
    seccomp: Number(fields.get('Seccomp') ?? '0'),
    capEff: BigInt(`0x${fields.get('CapEff') ?? '0'}`),
    capBnd: BigInt(`0x${fields.get('CapBnd') ?? '0'}`),
  };
}

/** The state letter of `/proc/<pid>/stat` (`R`, `S`, `Z`, …); the command name may contain `)` and spaces. */
export function parseProcStatState(text: string): string | undefined {
  const close = text.lastIndexOf(')');
  return close < 0 ? undefined : text.slice(close + 1).trim()[0];
}

/**
 * Whether a NUL-separated command line names `dir` as a directory of one of its paths: `<dir>/` at the
 * start of an argument or right after `:`, `=` or `,` (QEMU option syntax). So `/vm/a` matches
 * `unix:/vm/a/qmp.sock,server=on` but neither `/vm/ab/…` nor `/x/vm/a/…`.
 */
export function cmdlineNamesDir(cmdline: string, dir: string): boolean {
  const needle = `${dir.replace(/\/+$/, '')}/`;
  return cmdline.split('\0').some((arg) => {
    for (let i = arg.indexOf(needle); i >= 0; i = arg.indexOf(needle, i + 1)) {
      if (i === 0 || ':=,'.includes(arg[i - 1] ?? '')) return true;
    }
    return false;
  });
}

async function readProc(pid: number, file: string): Promise<string | undefined> {
  try {
    return await readFile(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return undefined;
  }
}

/** A live (not zombie) process whose `/proc` entry we can read, with its status; undefined otherwise. */
export async function readLiveProcess(pid: number): Promise<{ status: ProcStatus; cmdline: string } | undefined> {
  if (!Number.isSafeInteger(pid) || pid <= 1) return undefined;
  const [stat, status, cmdline] = await Promise.all([
    readProc(pid, 'stat'),
    readProc(pid, 'status'),
    readProc(pid, 'cmdline'),
  ]);
  if (stat === undefined || status === undefined || cmdline === undefined) return undefined;
  const state = parseProcStatState(stat);
  if (state === undefined || state === 'Z' || state === 'X' || state === 'x') return undefined;
  try {
    return { status: parseProcStatus(status), cmdline };
  } catch {
    return undefined;
  }
}

/**
 * Whether `pid` is a live process whose command line names `dir`: works when QEMU is not our child (after the
 * host process restarted), and a pid reused by another process is not mistaken for the VM.
 */
export async function isAlive(pid: number, dir: string): Promise<boolean> {
  const proc = await readLiveProcess(pid);
  return proc !== undefined && cmdlineNamesDir(proc.cmdline, dir);
}

/** Waits until `/proc/<pid>` is gone or a zombie; false when it is still there after `timeoutMs`. */
export async function waitUntilGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const stat = await readProc(pid, 'stat');
    const state = stat === undefined ? undefined : parseProcStatState(stat);
    if (state === undefined || state === 'Z' || state === 'X' || state === 'x') return true;
    if (Date.now() > deadline) return false;
    await sleep(10);
  }
}
