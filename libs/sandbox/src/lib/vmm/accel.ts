import { spawn } from 'node:child_process';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { AcceleratorUnavailableError } from './errors';
import { exists } from './exists';
import type { Accelerator } from './qemu-args';
import { machineArgs, QEMU_SANDBOX_OPTION } from './qemu-args';

export interface AcceleratorChoice {
  accel: Accelerator;
  reason: string;
}

/** What the host shows about KVM without running anything. */
export interface HostKvmFacts {
  /** `/dev/kvm` exists. */
  devKvm: boolean;
  /** `/sys/module/kvm_pvm` exists: KVM is the PVM flavour, which stock guest kernels cannot run on. */
  kvmPvm: boolean;
}

/** What happened when the guest kernel was booted with `-accel kvm`. */
export type BootTryResult =
  | { kind: 'console'; ms: number }
  | { kind: 'exited'; code: number | null; signal: string | null; stderr: string }
  | { kind: 'timeout'; ms: number }
  | { kind: 'spawn-error'; message: string };

export type KvmVerdict = { usable: true; reason: string } | { usable: false; reason: string };

export const PVM_REASON = 'PVM device: stock guest kernels cannot run (kvm_pvm is loaded)';
export const NO_DEV_KVM_REASON = 'no /dev/kvm';

/** The verdict from host facts alone, or undefined when only booting the kernel can tell (pure). */
export function kvmVerdictFromHost(facts: HostKvmFacts): KvmVerdict | undefined {
  if (!facts.devKvm) return { usable: false, reason: NO_DEV_KVM_REASON };
  if (facts.kvmPvm) return { usable: false, reason: PVM_REASON };
  return undefined;
}

/** The verdict from a boot try (pure). */
export function kvmVerdictFromBootTry(result: BootTryResult): KvmVerdict {
  switch (result.kind) {
    case 'console':
      return { usable: true, reason: `the guest kernel reached its console under KVM in ${result.ms} ms` };
    case 'exited': {
      const how = result.signal !== null ? `signal ${result.signal}` : `code ${String(result.code)}`;
      const detail = result.stderr.trim().split('\n').filter(Boolean).slice(-3).join(' | ');
      return {
        usable: false,
        reason: `QEMU with KVM exited with ${how} before the guest console${detail ? `: ${detail}` : ''}`,
      };
    }
    case 'timeout':
      return { usable: false, reason: `no guest console output under KVM within ${result.ms} ms` };
    case 'spawn-error':
      return { usable: false, reason: `QEMU could not be started for the KVM test: ${result.message}` };
  }
}

/**
 * KVM when usable; otherwise TCG only if allowed, with a reason that says TCG is no security boundary;
 * otherwise AcceleratorUnavailableError (pure).
 */
export function chooseAccelerator(verdict: KvmVerdict, allowTcg: boolean): AcceleratorChoice {
  if (verdict.usable) return { accel: 'kvm', reason: verdict.reason };
  if (!allowTcg) throw new AcceleratorUnavailableError(verdict.reason);
  return {
    accel: 'tcg',
    reason:
      `KVM unusable (${verdict.reason}); TCG because allowTcg is set. ` +
      'TCG is not a security boundary: do not run untrusted tenants on it.',
  };
}

export async function readHostKvmFacts(): Promise<HostKvmFacts> {
  const [devKvm, kvmPvm] = await Promise.all([exists('/dev/kvm'), exists('/sys/module/kvm_pvm')]);
  return { devKvm, kvmPvm };
}

export interface BootTryOptions {
  qemuBinary: string;
  kernel: string;
  initrd?: string;
  timeoutMs: number;
  /** The console text that proves the kernel runs. Default `Linux version`. */
  marker?: string;
  /** Default kvm; tcg is useful to test the probe itself. */
  accel?: Accelerator;
}

/**
 * Boots the kernel under KVM with its console on QEMU's stdout, until `Linux version` appears (then kills QEMU),
 * QEMU exits, or the timeout. `rdinit=/bin/false` and `panic=-1` make the kernel end by itself soon after.
 */
export function tryKvmBoot(options: BootTryOptions): Promise<BootTryResult> {
  const accel = options.accel ?? 'kvm';
  const marker = options.marker ?? 'Linux version';
  const args = [
    ...machineArgs(accel, 256, 1),
    '-kernel',
    options.kernel,
    ...(options.initrd !== undefined ? ['-initrd', options.initrd] : []),
    '-append',
    'console=ttyS0 earlyprintk=ttyS0 panic=-1 rdinit=/bin/false',
    '-serial',
    'stdio',
    '-sandbox',
    QEMU_SANDBOX_OPTION,
  ];
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(options.qemuBinary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let settled: BootTryResult | undefined;
    let seen = '';
    let stderr = '';
    const settle = (result: BootTryResult): void => {
      if (settled) return;
      settled = result;
      clearTimeout(timer);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    };
    const timer = setTimeout(() => settle({ kind: 'timeout', ms: options.timeoutMs }), options.timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => {
      // Keep only enough of the console to find a marker split across chunks.
      seen = (seen + chunk.toString('latin1')).slice(-(marker.length + 4096));
      if (seen.includes(marker)) settle({ kind: 'console', ms: Date.now() - started });
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-4096);
    });
    child.on('error', (error) => {
      settle({ kind: 'spawn-error', message: error.message });
      resolve(settled ?? { kind: 'spawn-error', message: error.message });
    });
    child.on('close', (code, signal) => {
      settle({ kind: 'exited', code, signal, stderr });
      resolve(settled ?? { kind: 'exited', code, signal, stderr });
    });
  });
}

export interface ProbeOptions {
  /** A name on PATH or an absolute path. Default `qemu-system-x86_64`. */
  qemuBinary?: string;
  /** The guest kernel the platform boots: the probe proves that this kernel runs under KVM. */
  kernel: string;
  initrd?: string;
  allowTcg: boolean;
  /** For the boot try. Default 5000 ms. */
  timeoutMs?: number;
  /** Also keep boot-try verdicts in this JSON file, across host-process restarts (not across reboots). */
  cacheFile?: string;
}

/** Injected in tests; the real host otherwise. */
export interface ProbeDeps {
  readHostFacts: () => Promise<HostKvmFacts>;
  tryBoot: (options: BootTryOptions) => Promise<BootTryResult>;
  /** Identifies this boot of the host (`/proc/sys/kernel/random/boot_id`). */
  bootId: () => Promise<string>;
}

const realDeps: ProbeDeps = {
  readHostFacts: readHostKvmFacts,
  tryBoot: tryKvmBoot,
  bootId: async () => (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim(),
};

const memoryCache = new Map<string, Promise<KvmVerdict>>();

/** Forgets the in-memory boot-try verdicts (tests). */
export function clearProbeCache(): void {
  memoryCache.clear();
}

async function resolveBinary(name: string): Promise<string> {
  if (isAbsolute(name)) return name;
  for (const dir of (process.env['PATH'] ?? '/usr/bin:/bin').split(delimiter)) {
    const candidate = join(dir, name);
    if (await exists(candidate)) return candidate;
  }
  return name;
}

async function mtimeOf(path: string): Promise<string> {
  try {
    return String((await stat(path)).mtimeMs);
  } catch {
    return 'missing';
  }
}

/** The cache key (pure): the QEMU binary and the kernel, each with its mtime, and the host's boot. */
export function probeCacheKey(parts: {
  qemu: string;
  qemuMtime: string;
  kernel: string;
  kernelMtime: string;
  bootId: string;
}): string {
  return JSON.stringify([parts.qemu, parts.qemuMtime, parts.kernel, parts.kernelMtime, parts.bootId]);
}

async function readCacheFile(file: string): Promise<Record<string, KvmVerdict>> {
  try {
    const parsed: unknown = JSON.parse(await readFile(file, 'utf8'));
    if (typeof parsed !== 'object' || parsed === null) return {};
    const entries: Record<string, KvmVerdict> = {};
    for (const [key, value] of Object.entries(parsed as Record<string, unknown>)) {
      const v = value as { usable?: unknown; reason?: unknown };
      if (typeof v?.usable === 'boolean' && typeof v.reason === 'string')
        entries[key] = { usable: v.usable, reason: v.reason };
    }
    return entries;
  } catch {
    return {};
  }
}

async function writeCacheFile(file: string, key: string, verdict: KvmVerdict): Promise<void> {
  const entries = { ...(await readCacheFile(file)), [key]: verdict };
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(entries, null, 2)}\n`, { mode: 0o644 });
  await rename(tmp, file);
}

/**
 * Chooses the accelerator. No `/dev/kvm`, or the PVM module, settles it without running anything; otherwise the
 * kernel is booted under KVM until its first console line. Boot-try verdicts are cached per (QEMU binary,
 * kernel, their mtimes, host boot) in memory and, with `cacheFile`, on disk; host facts are read every time.
 * TCG only when `allowTcg`; else AcceleratorUnavailableError.
 */
export async function probeAccelerator(options: ProbeOptions, deps: ProbeDeps = realDeps): Promise<AcceleratorChoice> {
  const fromHost = kvmVerdictFromHost(await deps.readHostFacts());
  if (fromHost) return chooseAccelerator(fromHost, options.allowTcg);

  const qemu = await resolveBinary(options.qemuBinary ?? 'qemu-system-x86_64');
  const key = probeCacheKey({
    qemu,
    qemuMtime: await mtimeOf(qemu),
    kernel: options.kernel,
    kernelMtime: await mtimeOf(options.kernel),
    bootId: await deps.bootId(),
  });
  let verdict = memoryCache.get(key);
  if (!verdict) {
    verdict = (async (): Promise<KvmVerdict> => {
      if (options.cacheFile !== undefined) {
        const cached = (await readCacheFile(options.cacheFile))[key];
        if (cached) return cached;
      }
      const result = await deps.tryBoot({
        qemuBinary: qemu,
        kernel: options.kernel,
        ...(options.initrd !== undefined ? { initrd: options.initrd } : {}),
        timeoutMs: options.timeoutMs ?? 5000,
      });
      const fresh = kvmVerdictFromBootTry(result);
      if (result.kind === 'spawn-error') {
        // A QEMU that could not even start says nothing about KVM: do not remember it.
        memoryCache.delete(key);
      } else if (options.cacheFile !== undefined) {
        await writeCacheFile(options.cacheFile, key, fresh);
      }
      return fresh;
    })();
    memoryCache.set(key, verdict);
    verdict.catch(() => memoryCache.delete(key));
  }
  return chooseAccelerator(await verdict, options.allowTcg);
}
