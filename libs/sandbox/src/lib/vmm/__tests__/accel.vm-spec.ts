/**
 * The accelerator probe on this host. Here `/dev/kvm` is a PVM device (module kvm_pvm), so the probe must say
 * TCG with the PVM reason when TCG is allowed and refuse otherwise. When a guest kernel is at hand
 * (`CAAS_GUEST_KERNEL`, or `dist/guest/vmlinuz` from `nx run runtime:build-guest`), the boot try itself runs
 * too: under TCG it must see the kernel's console, and under KVM it reports what this host really does.
 */
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  clearProbeCache,
  NO_DEV_KVM_REASON,
  probeAccelerator,
  PVM_REASON,
  readHostKvmFacts,
  tryKvmBoot,
} from '../accel';
import { AcceleratorUnavailableError } from '../errors';

jest.setTimeout(60_000);

const kernelSource = [process.env['CAAS_GUEST_KERNEL'], join(__dirname, '../../../../../../dist/guest/vmlinuz')].find(
  (path): path is string => path !== undefined && existsSync(path),
);
let tmp: string;
/** A private copy: others may rebuild dist/guest while this runs. */
let kernel: string | undefined;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'accel-'));
  if (kernelSource !== undefined) {
    try {
      kernel = join(tmp, 'vmlinuz');
      copyFileSync(kernelSource, kernel);
    } catch {
      kernel = undefined;
    }
  }
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
beforeEach(() => clearProbeCache());

describe('probeAccelerator on this host', () => {
  it('chooses TCG with the reason KVM is unusable when allowed, and throws a typed error when not', async () => {
    const facts = await readHostKvmFacts();
    if (facts.devKvm && !facts.kvmPvm) {
      // A host with plain KVM: only the boot test below can tell.
      return;
    }
    const expected = facts.devKvm ? PVM_REASON : NO_DEV_KVM_REASON;
    // The kernel is not even needed: host facts settle it without running QEMU.
    const started = Date.now();
    const choice = await probeAccelerator({ kernel: '/nonexistent/vmlinuz', allowTcg: true });
    expect(choice.accel).toBe('tcg');
    expect(choice.reason).toContain(expected);
    expect(choice.reason).toMatch(/TCG is not a security boundary/);
    expect(Date.now() - started).toBeLessThan(500);

    const error = await probeAccelerator({ kernel: '/nonexistent/vmlinuz', allowTcg: false }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AcceleratorUnavailableError);
    expect(error).toMatchObject({ code: 'KVM_UNAVAILABLE', kvmReason: expected });
  });

  it('this host is the PVM host MACHINE.md describes', async () => {
    // The PVM module without a /dev/kvm in this container: the probe says "no /dev/kvm" (tested elsewhere).
    if (!existsSync('/sys/module/kvm_pvm') || !existsSync('/dev/kvm')) return;
    await expect(probeAccelerator({ kernel: '/k', allowTcg: true })).resolves.toMatchObject({
      accel: 'tcg',
      reason: expect.stringContaining('PVM device: stock guest kernels cannot run'),
    });
  });
});

const withKernel = kernelSource !== undefined ? describe : describe.skip;

withKernel('the boot try with the real guest kernel', () => {
  it('sees "Linux version" on the console under TCG', async () => {
    if (kernel === undefined) return;
    const result = await tryKvmBoot({ qemuBinary: 'qemu-system-x86_64', kernel, timeoutMs: 30_000, accel: 'tcg' });
    expect(result).toMatchObject({ kind: 'console' });
  });

  it('under KVM: a console on a real KVM host, none here on PVM', async () => {
    if (kernel === undefined) return;
    const facts = await readHostKvmFacts();
    if (!facts.devKvm) return;
    const result = await tryKvmBoot({ qemuBinary: 'qemu-system-x86_64', kernel, timeoutMs: 2000 });
    if (facts.kvmPvm) expect(result.kind).not.toBe('console');
    else expect(result.kind).toBe('console');
  });
});
