import { chmodSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  chooseAccelerator,
  clearProbeCache,
  kvmVerdictFromBootTry,
  kvmVerdictFromHost,
  NO_DEV_KVM_REASON,
  probeAccelerator,
  PVM_REASON,
  tryKvmBoot,
} from '../accel';
import type { BootTryResult, HostKvmFacts, ProbeDeps } from '../accel';
import { AcceleratorUnavailableError, VmmError } from '../errors';

describe('accelerator decision (pure)', () => {
  it.each<[string, HostKvmFacts, string | undefined]>([
    ['no /dev/kvm', { devKvm: false, kvmPvm: false }, NO_DEV_KVM_REASON],
    ['no /dev/kvm, PVM module anyway', { devKvm: false, kvmPvm: true }, NO_DEV_KVM_REASON],
    ['PVM', { devKvm: true, kvmPvm: true }, PVM_REASON],
    ['plain KVM: needs a boot try', { devKvm: true, kvmPvm: false }, undefined],
  ])('%s', (_name, facts, reason) => {
    expect(kvmVerdictFromHost(facts)?.reason).toBe(reason);
    if (reason !== undefined) expect(kvmVerdictFromHost(facts)?.usable).toBe(false);
  });

  it.each<[BootTryResult, boolean, RegExp]>([
    [{ kind: 'console', ms: 180 }, true, /reached its console under KVM in 180 ms/],
    [
      { kind: 'exited', code: 1, signal: null, stderr: 'qemu: error: failed to set MSR 0x10a to 0x0\nabort\n' },
      false,
      /exited with code 1 .*failed to set MSR 0x10a/,
    ],
    [{ kind: 'exited', code: null, signal: 'SIGABRT', stderr: '' }, false, /signal SIGABRT before the guest console$/],
    [{ kind: 'timeout', ms: 3000 }, false, /no guest console output under KVM within 3000 ms/],
    [{ kind: 'spawn-error', message: 'ENOENT' }, false, /could not be started/],
  ])('boot try %j', (result, usable, reason) => {
    const verdict = kvmVerdictFromBootTry(result);
    expect(verdict.usable).toBe(usable);
    expect(verdict.reason).toMatch(reason);
  });

  it('picks KVM when usable, whatever allowTcg', () => {
    for (const allowTcg of [true, false]) {
      expect(chooseAccelerator({ usable: true, reason: 'ok' }, allowTcg)).toEqual({ accel: 'kvm', reason: 'ok' });
    }
  });

  it('picks TCG only when allowed, and says it is no security boundary', () => {
    const choice = chooseAccelerator({ usable: false, reason: PVM_REASON }, true);
    expect(choice.accel).toBe('tcg');
    expect(choice.reason).toContain(PVM_REASON);
    expect(choice.reason).toMatch(/TCG is not a security boundary/);
  });

  it('throws a typed error when KVM is unusable and TCG is not allowed', () => {
    let error: unknown;
    try {
      chooseAccelerator({ usable: false, reason: NO_DEV_KVM_REASON }, false);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(AcceleratorUnavailableError);
    expect(error).toBeInstanceOf(VmmError);
    expect((error as AcceleratorUnavailableError).code).toBe('KVM_UNAVAILABLE');
    expect((error as AcceleratorUnavailableError).kvmReason).toBe(NO_DEV_KVM_REASON);
  });
});

describe('probeAccelerator with injected facts', () => {
  let dir: string;
  let kernel: string;
  beforeEach(() => {
    clearProbeCache();
    dir = mkdtempSync(join(tmpdir(), 'probe-'));
    kernel = join(dir, 'vmlinuz');
    writeFileSync(kernel, 'kernel');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function deps(facts: HostKvmFacts, results: BootTryResult[]): ProbeDeps & { tries: number } {
    const d = {
      tries: 0,
      readHostFacts: async () => facts,
      tryBoot: async () => {
        d.tries++;
        const result = results.shift();
        if (!result) throw new Error('unexpected boot try');
        return result;
      },
      bootId: async () => 'boot-1',
    };
    return d;
  }

  it('never boots anything when host facts settle it', async () => {
    const d = deps({ devKvm: true, kvmPvm: true }, []);
    await expect(probeAccelerator({ kernel, allowTcg: true }, d)).resolves.toMatchObject({ accel: 'tcg' });
    await expect(probeAccelerator({ kernel, allowTcg: false }, d)).rejects.toBeInstanceOf(AcceleratorUnavailableError);
    expect(d.tries).toBe(0);
  });

  it('boots once per kernel and caches the verdict in memory, then in the file across processes', async () => {
    const cacheFile = join(dir, 'cache', 'accel.json');
    const d = deps({ devKvm: true, kvmPvm: false }, [{ kind: 'console', ms: 90 }]);
    await expect(probeAccelerator({ kernel, allowTcg: false, cacheFile }, d)).resolves.toEqual({
      accel: 'kvm',
      reason: 'the guest kernel reached its console under KVM in 90 ms',
    });
    await expect(probeAccelerator({ kernel, allowTcg: true, cacheFile }, d)).resolves.toMatchObject({ accel: 'kvm' });
    expect(d.tries).toBe(1);
    expect(Object.values(JSON.parse(readFileSync(cacheFile, 'utf8')))).toEqual([
      { usable: true, reason: 'the guest kernel reached its console under KVM in 90 ms' },
    ]);

    clearProbeCache(); // a new host process: the file answers
    await expect(probeAccelerator({ kernel, allowTcg: false, cacheFile }, d)).resolves.toMatchObject({ accel: 'kvm' });
    expect(d.tries).toBe(1);

    // A new kernel (mtime changes) is probed again.
    writeFileSync(kernel, 'new kernel');
    const later = new Date(Date.now() + 5000);
    utimesSync(kernel, later, later);
    const d2 = deps({ devKvm: true, kvmPvm: false }, [{ kind: 'timeout', ms: 100 }]);
    await expect(probeAccelerator({ kernel, allowTcg: true, cacheFile }, d2)).resolves.toMatchObject({
      accel: 'tcg',
      reason: expect.stringContaining('no guest console output under KVM within 100 ms'),
    });
    expect(d2.tries).toBe(1);
  });

  it('shares one boot try between concurrent probes', async () => {
    const d = deps({ devKvm: true, kvmPvm: false }, [{ kind: 'console', ms: 1 }]);
    const choices = await Promise.all([1, 2, 3].map(() => probeAccelerator({ kernel, allowTcg: false }, d)));
    expect(choices.map((c) => c.accel)).toEqual(['kvm', 'kvm', 'kvm']);
    expect(d.tries).toBe(1);
  });

  it('does not remember a QEMU that could not start', async () => {
    const d = deps({ devKvm: true, kvmPvm: false }, [
      { kind: 'spawn-error', message: 'ENOENT' },
      { kind: 'console', ms: 5 },
    ]);
    await expect(probeAccelerator({ kernel, allowTcg: false }, d)).rejects.toThrow(/could not be started/);
    await expect(probeAccelerator({ kernel, allowTcg: false }, d)).resolves.toMatchObject({ accel: 'kvm' });
    expect(d.tries).toBe(2);
  });
});

describe('tryKvmBoot against fake QEMU binaries', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'fakeqemu-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function fake(name: string, script: string): string {
    const file = join(dir, name);
    writeFileSync(file, `#!/bin/sh\n${script}\n`);
    chmodSync(file, 0o755);
    return file;
  }

  it('sees the console marker, even split across writes, and kills QEMU', async () => {
    const qemu = fake(
      'console',
      `case "$*" in *"-accel kvm"*) ;; *) exit 9;; esac
printf 'early junk\\nLinux ver'; sleep 0.1; printf 'sion 6.1.0-cloud\\n'; exec sleep 30`,
    );
    const started = Date.now();
    const result = await tryKvmBoot({ qemuBinary: qemu, kernel: '/k', timeoutMs: 5000 });
    expect(result.kind).toBe('console');
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('reports an exit with its stderr', async () => {
    const qemu = fake('abort', `echo 'qemu-system-x86_64: error: failed to set MSR 0x10a to 0x0' >&2; exit 1`);
    const result = await tryKvmBoot({ qemuBinary: qemu, kernel: '/k', timeoutMs: 5000 });
    expect(result).toEqual({
      kind: 'exited',
      code: 1,
      signal: null,
      stderr: 'qemu-system-x86_64: error: failed to set MSR 0x10a to 0x0\n',
    });
  });

  it('times out on a hang', async () => {
    const qemu = fake('hang', 'exec sleep 30');
    await expect(tryKvmBoot({ qemuBinary: qemu, kernel: '/k', timeoutMs: 200 })).resolves.toEqual({
      kind: 'timeout',
      ms: 200,
    });
  });

  it('reports a missing binary', async () => {
    const result = await tryKvmBoot({ qemuBinary: join(dir, 'missing'), kernel: '/k', timeoutMs: 1000 });
    expect(result.kind).toBe('spawn-error');
  });
});
