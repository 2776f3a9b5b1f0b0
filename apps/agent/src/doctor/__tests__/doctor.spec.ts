import type { AgentConfig } from '../../config/agent-config';
import type { DoctorReport, DoctorSettings, HostCheck, ProbeResults } from '../doctor';
import { doctorSettings, evaluateHost, formatReport, fromChoice, parseQemuVersion } from '../doctor';

const settings: DoctorSettings = {
  qemuBinary: 'qemu-system-x86_64',
  guestKernel: '/opt/caas/dist/guest/kernel',
  guestInitrd: '/opt/caas/dist/guest/initrd.cpio',
  allowTcg: false,
  stateDir: '/var/lib/caas-agent',
  minFreeBytes: 2 * 1024 ** 3,
  cgroupRoot: '/sys/fs/cgroup',
  kvmTimeoutMs: 5000,
  podNetwork: true,
  tapHelper: '/opt/caas/dist/guest/caas-tapfd',
};

/** A host that passes every check. */
function healthy(): ProbeResults {
  return {
    qemu: {
      found: true,
      output: 'QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u18)\nCopyright (c) 2003-2022',
    },
    kernel: { path: settings.guestKernel, exists: true, isFile: true, size: 30_000_000 },
    initrd: { path: settings.guestInitrd, exists: true, isFile: true, size: 3_000_000 },
    accelerator: { ok: true, accel: 'kvm', reason: 'the guest kernel reached its console under KVM in 80 ms' },
    nftVersion: { found: true, output: 'nftables v1.0.6 (Lester Gooch #5)\n' },
    nftCheck: { found: true, output: '' },
    cgroup: { version: 'v2', controllers: ['cpuset', 'cpu', 'io', 'memory', 'pids'], writable: true },
    tun: { exists: true, isCharacterDevice: true },
    disk: { path: settings.stateDir, freeBytes: 50 * 1024 ** 3, totalBytes: 100 * 1024 ** 3 },
    uid: 0,
    tools: { setpriv: true, prlimit: true, nsenter: true, ip: true },
    network: { bridge: true, conntrack: true, tapHelper: true },
  };
}

function check(report: DoctorReport, name: string): HostCheck {
  const found = report.checks.find((c) => c.name === name);
  if (!found) throw new Error(`no check ${name} in ${report.checks.map((c) => c.name).join(', ')}`);
  return found;
}

/** Evaluates a healthy host with one change, and returns the named check (asserting it is the only failure). */
function failing(name: string, change: Partial<ProbeResults>, over: Partial<DoctorSettings> = {}) {
  const report = evaluateHost({ ...healthy(), ...change }, { ...settings, ...over });
  const failed = report.checks.filter((c) => !c.ok);
  expect(failed.map((c) => c.name)).toEqual([name]);
  const c = check(report, name);
  expect(c.fix).toBeTruthy();
  return { report, check: c };
}

function expectRequiredFailure(name: string, change: Partial<ProbeResults>, over: Partial<DoctorSettings> = {}) {
  const { report, check: c } = failing(name, change, over);
  expect(c.required).toBe(true);
  expect(report.ok).toBe(false);
  return c;
}

describe('evaluateHost', () => {
  it('passes a healthy KVM host, every check ok and without a fix', () => {
    const report = evaluateHost(healthy(), settings);
    expect(report.ok).toBe(true);
    expect(report.accelerator).toBe('kvm');
    expect(report.checks.map((c) => c.name)).toEqual([
      'root',
      'qemu',
      'tools',
      'guest-kernel',
      'guest-initrd',
      'accelerator',
      'nftables',
      'cgroups',
      'tun',
      'disk',
      'pod-network',
    ]);
    for (const c of report.checks) {
      expect(c.ok).toBe(true);
      expect(c.fix).toBeUndefined();
    }
    expect(check(report, 'qemu').detail).toContain('7.2.19');
  });

  it('fails without root', () => {
    expect(expectRequiredFailure('root', { uid: 1000 }).detail).toContain('uid 1000');
  });

  it('fails when QEMU is missing, with the Debian package to install', () => {
    const c = expectRequiredFailure('qemu', { qemu: { found: false, error: 'not found' } });
    expect(c.fix).toContain('apt-get install -y qemu-system-x86');
  });

  it('fails when QEMU prints no version', () => {
    expectRequiredFailure('qemu', { qemu: { found: true, output: 'something else' } });
  });

  it('warns about a QEMU older than the tested one', () => {
    const { report, check: c } = failing('qemu', { qemu: { found: true, output: 'QEMU emulator version 6.2.0' } });
    expect(c.required).toBe(false);
    expect(report.ok).toBe(true);
    expect(c.detail).toContain('6.2.0');
  });

  it('fails when setpriv or prlimit is missing', () => {
    const c = expectRequiredFailure('tools', { tools: { setpriv: false, prlimit: true } });
    expect(c.detail).toContain('setpriv');
    expect(c.fix).toContain('util-linux');
  });

  it.each([
    ['missing', { exists: false, isFile: false, size: 0 }, 'does not exist'],
    ['a directory', { exists: true, isFile: false, size: 4096 }, 'not a regular file'],
    ['empty', { exists: true, isFile: true, size: 0 }, 'empty'],
  ])('fails when the guest kernel is %s, pointing at build-guest', (_what, facts, words) => {
    const c = expectRequiredFailure('guest-kernel', { kernel: { path: settings.guestKernel, ...facts } });
    expect(c.detail).toContain(words);
    expect(c.fix).toContain('npx nx run runtime:build-guest');
  });

  it('fails when the guest initrd is missing', () => {
    const c = expectRequiredFailure('guest-initrd', {
      initrd: { path: settings.guestInitrd, exists: false, isFile: false, size: 0 },
    });
    expect(c.fix).toContain('npx nx run runtime:build-guest');
  });

  it('fails when the VM uids cannot read the guest kernel', () => {
    const c = expectRequiredFailure('guest-kernel', {
      kernel: { path: settings.guestKernel, exists: true, isFile: true, size: 10, vmAccessProblem: 'mode 0600' },
    });
    expect(c.fix).toContain('chmod a+r');
  });

  it('fails on TCG without ALLOW_TCG, naming the KVM problem and how to load the module', () => {
    const c = expectRequiredFailure('accelerator', {
      accelerator: { ok: true, accel: 'tcg', reason: 'no /dev/kvm' },
    });
    expect(c.detail).toContain('no /dev/kvm');
    expect(c.detail).toContain('ALLOW_TCG');
    expect(c.fix).toContain('modprobe kvm_intel');
  });

  it('only warns on TCG with ALLOW_TCG, saying TCG is not a security boundary', () => {
    const { report, check: c } = failing(
      'accelerator',
      { accelerator: { ok: true, accel: 'tcg', reason: 'PVM device' } },
      { allowTcg: true },
    );
    expect(c.required).toBe(false);
    expect(c.detail).toContain('TCG is not a security boundary');
    expect(report.ok).toBe(true);
    expect(report.accelerator).toBe('tcg');
  });

  it('has no accelerator when TCG is not allowed', () => {
    const report = evaluateHost({ ...healthy(), accelerator: { ok: true, accel: 'tcg', reason: 'x' } }, settings);
    expect(report.accelerator).toBeUndefined();
  });

  it('fails when KVM could not be probed (required only without ALLOW_TCG)', () => {
    const accelerator = { ok: false as const, error: 'the guest kernel is missing' };
    expectRequiredFailure('accelerator', { accelerator });
    const { report } = failing('accelerator', { accelerator }, { allowTcg: true });
    expect(report.ok).toBe(true);
  });

  it('fails without nft, with the package to install', () => {
    const c = expectRequiredFailure('nftables', {
      nftVersion: { found: false, error: 'not found' },
      nftCheck: { found: false, error: 'not found' },
    });
    expect(c.fix).toBe('apt-get install -y nftables');
  });

  it('fails when the kernel refuses the test table, with the modules to load', () => {
    const c = expectRequiredFailure('nftables', {
      nftCheck: { found: false, error: 'Error: Could not process rule: No such file or directory' },
    });
    expect(c.detail).toContain('Could not process rule');
    expect(c.fix).toContain('modprobe nf_tables');
  });

  it('fails on cgroup v2 without the memory controller', () => {
    const c = expectRequiredFailure('cgroups', {
      cgroup: { version: 'v2', controllers: ['cpu', 'pids'], writable: true },
    });
    expect(c.detail).toContain('memory');
    expect(c.fix).toContain('cgroup_enable=memory');
  });

  it('fails on cgroup v2 when not writable', () => {
    expectRequiredFailure('cgroups', {
      cgroup: { version: 'v2', controllers: ['cpu', 'memory', 'pids'], writable: false },
    });
  });

  it('passes cgroup v1 with cpu, memory and pids, and fails without pids', () => {
    const v1 = { cpu: true, memory: true, pids: true };
    expect(
      check(
        evaluateHost({ ...healthy(), cgroup: { version: 'v1', hierarchies: v1, writable: true } }, settings),
        'cgroups',
      ).ok,
    ).toBe(true);
    const c = expectRequiredFailure('cgroups', {
      cgroup: { version: 'v1', hierarchies: { ...v1, pids: false }, writable: true },
    });
    expect(c.detail).toContain('/sys/fs/cgroup/pids');
    expect(c.fix).toContain('mount -t cgroup -o pids');
  });

  it('fails on cgroup v1 when not writable', () => {
    expectRequiredFailure('cgroups', {
      cgroup: { version: 'v1', hierarchies: { cpu: true, memory: true, pids: true }, writable: false },
    });
  });

  it('fails without /dev/net/tun, or when it is not a character device', () => {
    expect(expectRequiredFailure('tun', { tun: { exists: false, isCharacterDevice: false } }).fix).toContain(
      'modprobe tun',
    );
    expect(expectRequiredFailure('tun', { tun: { exists: true, isCharacterDevice: false } }).detail).toContain(
      'not a character device',
    );
  });

  it('fails when the state filesystem has less free space than the threshold', () => {
    const c = expectRequiredFailure('disk', {
      disk: { path: settings.stateDir, freeBytes: 1024 ** 3, totalBytes: 10 * 1024 ** 3 },
    });
    expect(c.detail).toContain('1.0 GiB free');
    expect(c.detail).toContain('2.0 GiB needed');
  });

  it('passes on the nearest existing ancestor when STATE_DIR does not exist yet, and says so', () => {
    const report = evaluateHost({ ...healthy(), disk: { path: '/var/lib', freeBytes: 10 * 1024 ** 3 } }, settings);
    expect(check(report, 'disk').ok).toBe(true);
    expect(check(report, 'disk').detail).toContain('does not exist yet');
  });

  it('fails when statfs failed', () => {
    expectRequiredFailure('disk', { disk: { path: '/', error: 'EACCES' } });
  });

  it('formats failures with their fixes, and says whether the host can run pods', () => {
    const report = evaluateHost(
      { ...healthy(), uid: 1000, tun: { exists: false, isCharacterDevice: false } },
      settings,
    );
    const text = formatReport(report);
    expect(text).toContain('FAIL root');
    expect(text).toContain('fix: modprobe tun');
    expect(text).toContain('cannot run pods');
    expect(formatReport(evaluateHost(healthy(), settings))).toContain('this host can run pods');
  });
});

describe('parseQemuVersion', () => {
  it('reads major, minor and patch', () => {
    expect(parseQemuVersion('QEMU emulator version 7.2.19 (Debian)')).toEqual([7, 2, 19]);
    expect(parseQemuVersion('QEMU emulator version 8.1')).toEqual([8, 1, 0]);
    expect(parseQemuVersion('qemu?')).toBeUndefined();
  });
});

describe('fromChoice', () => {
  it('unwraps the sandbox TCG reason to the reason about KVM', () => {
    expect(
      fromChoice({
        accel: 'tcg',
        reason: 'KVM unusable (no /dev/kvm); TCG because allowTcg is set. TCG is not a security boundary: x',
      }),
    ).toEqual({ accel: 'tcg', reason: 'no /dev/kvm' });
    expect(fromChoice({ accel: 'kvm', reason: 'booted' })).toEqual({ accel: 'kvm', reason: 'booted' });
  });
});

describe('doctorSettings', () => {
  const base = { API_URL: 'http://127.0.0.1:4000', STATE_DIR: '/srv/caas', LOG_LEVEL: 'info' } as AgentConfig;

  it('takes fields the configuration has, defaults the rest', () => {
    const s = doctorSettings({
      ...base,
      GUEST_KERNEL: '/k',
      GUEST_INITRD: '/i',
      ALLOW_TCG: true,
    } as unknown as AgentConfig);
    expect(s).toMatchObject({ guestKernel: '/k', guestInitrd: '/i', allowTcg: true, stateDir: '/srv/caas' });
  });

  it('works with a configuration that has none of them, and overrides win', () => {
    const s = doctorSettings(base);
    expect(s.allowTcg).toBe(false);
    expect(s.guestKernel.endsWith('dist/guest/kernel')).toBe(true);
    expect(doctorSettings(base, { allowTcg: true, minFreeBytes: 1 })).toMatchObject({
      allowTcg: true,
      minFreeBytes: 1,
    });
  });

  describe('pod network', () => {
    it('requires caas-tapfd and bridge when UNDERLAY_IFNAME is set; conntrack is a warning', () => {
      const noHelper = expectRequiredFailure('pod-network', {
        network: { bridge: true, conntrack: true, tapHelper: false },
      });
      expect(noHelper.detail).toContain('caas-tapfd');
      expect(noHelper.fix).toContain('build-guest');
      expect(
        expectRequiredFailure('pod-network', { network: { bridge: false, conntrack: true, tapHelper: true } }).fix,
      ).toContain('iproute2');
      const report = evaluateHost(
        { ...healthy(), network: { bridge: true, conntrack: false, tapHelper: true } },
        settings,
      );
      expect(report.ok).toBe(true);
      expect(check(report, 'pod-network')).toMatchObject({ ok: false, required: false });
    });

    it('says pods run without a network when none is configured, and needs nothing of it', () => {
      const report = evaluateHost(
        { ...healthy(), network: { bridge: false, conntrack: false, tapHelper: false } },
        { ...settings, podNetwork: false },
      );
      expect(report.ok).toBe(true);
      expect(check(report, 'pod-network').detail).toContain('without a network device');
    });
  });
});
