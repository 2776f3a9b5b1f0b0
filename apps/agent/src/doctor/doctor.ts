import { execFile } from 'node:child_process';
import { access, constants, readFile, stat, statfs } from 'node:fs/promises';
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path';
import type { AcceleratorChoice } from '@caas/sandbox';
import {
  assertAccessibleBy,
  chooseAccelerator,
  DEFAULT_CGROUP_ROOT,
  DEFAULT_UID_RANGE,
  detectCgroupVersion,
  kvmVerdictFromHost,
  probeAccelerator,
  readHostKvmFacts,
} from '@caas/sandbox';
import type { AgentConfig } from '../config/agent-config';

/** One host check: what was looked at, whether it passed, and how to fix it when it did not. */
export interface HostCheck {
  name: string;
  ok: boolean;
  detail: string;
  /** What to do about it (a package to install, a module to load, a setting to change); absent when ok. */
  fix?: string;
  /** A failed check the agent cannot run pods without (the rest are warnings). */
  required: boolean;
}

export interface DoctorReport {
  /** True when no required check failed (warnings do not count). */
  ok: boolean;
  checks: HostCheck[];
  /** The accelerator pods would run on, when one is usable. */
  accelerator?: 'kvm' | 'tcg';
}

/** What the checks look at. Each falls back to the agent configuration's field of that name, then a default. */
export interface DoctorSettings {
  /** A name on PATH or an absolute path. Default `qemu-system-x86_64`. */
  qemuBinary: string;
  /** Default `GUEST_KERNEL`, else `dist/guest/kernel` (what `npx nx run runtime:build-guest` writes). */
  guestKernel: string;
  /** Default `GUEST_INITRD`, else `dist/guest/initrd.cpio`. */
  guestInitrd: string;
  /** Default `ALLOW_TCG`, else false. */
  allowTcg: boolean;
  /** Default `STATE_DIR`. */
  stateDir: string;
  /** Free space STATE_DIR's filesystem must have. Default 2 GiB. */
  minFreeBytes: number;
  /** The cgroup filesystem. Default `/sys/fs/cgroup`. */
  cgroupRoot: string;
  /** How long the KVM boot try may take. Default 5000 ms. */
  kvmTimeoutMs: number;
  /** The pod network is configured (UNDERLAY_IFNAME): its tools and the tap helper are then required. */
  podNetwork: boolean;
  /** caas-tapfd, beside the guest kernel (runtime/guest/build.sh puts it there). */
  tapHelper: string;
}

export const DEFAULT_MIN_FREE_BYTES = 2 * 1024 ** 3;
/** QEMU the platform was measured with (Debian 12's); older versions are warned about. */
export const TESTED_QEMU = { major: 7, minor: 2 } as const;
/** cgroup controllers the sandbox limits every VM with (`libs/sandbox/src/lib/vmm/cgroup.ts`). */
export const CGROUP_CONTROLLERS = ['cpu', 'memory', 'pids'] as const;
/** A ruleset `nft -c` must accept: proves the kernel's nf_tables takes an inet table with a filter chain. */
export const NFT_PROBE_RULESET = [
  'table inet caas_doctor_probe {',
  '  chain probe {',
  '    type filter hook forward priority 0; policy accept;',
  '    ct state established,related accept',
  '  }',
  '}',
  '',
].join('\n');

// ---------------------------------------------------------------------------------------------------------------
// What the probes found (plain data, so the decisions below can be tested with any of them).

export type CommandResult = { found: true; output: string } | { found: false; error: string };

export interface FileFacts {
  path: string;
  /** `stat` failed: absent, or a path component is not a directory. */
  exists: boolean;
  isFile: boolean;
  size: number;
  /** Why a VM's uid could not read it (QEMU opens kernel and initrd as the VM's uid), or undefined. */
  vmAccessProblem?: string;
}

/** `reason`: why KVM is usable, or why not (then pods would run under TCG). */
export type AcceleratorProbe = { ok: true; accel: 'kvm' | 'tcg'; reason: string } | { ok: false; error: string };

export type CgroupFacts =
  | { version: 'v2'; controllers: string[]; writable: boolean }
  | { version: 'v1'; hierarchies: Record<string, boolean>; writable: boolean };

export interface DiskFacts {
  /** The directory statfs looked at: STATE_DIR, or its nearest existing ancestor. */
  path: string;
  freeBytes?: number;
  totalBytes?: number;
  error?: string;
}

export interface ProbeResults {
  qemu: CommandResult;
  kernel: FileFacts;
  initrd: FileFacts;
  accelerator: AcceleratorProbe;
  nftVersion: CommandResult;
  /** `nft -c -f -` of NFT_PROBE_RULESET. */
  nftCheck: CommandResult;
  cgroup: CgroupFacts;
  tun: { exists: boolean; isCharacterDevice: boolean };
  disk: DiskFacts;
  uid: number;
  /** Helpers the VM launch execs (`setpriv`, `prlimit`): found on PATH or not. */
  tools: Record<string, boolean>;
  /** What the pod network needs: `bridge` (iproute2), `conntrack`, and caas-tapfd (executable). */
  network: { bridge: boolean; conntrack: boolean; tapHelper: boolean };
}

// ---------------------------------------------------------------------------------------------------------------
// Decisions (pure).

const GIB = 1024 ** 3;
const gib = (bytes: number): string => `${(bytes / GIB).toFixed(1)} GiB`;
const firstLine = (text: string): string => text.trim().split('\n')[0] ?? '';

function pass(name: string, detail: string, required = true): HostCheck {
  return { name, ok: true, detail, required };
}

function fail(name: string, detail: string, fix: string, required = true): HostCheck {
  return { name, ok: false, detail, fix, required };
}

/** `QEMU emulator version 7.2.19 (Debian …)` → [7, 2, 19]. */
export function parseQemuVersion(output: string): [number, number, number] | undefined {
  const m = /QEMU emulator version (\d+)\.(\d+)(?:\.(\d+))?/.exec(output);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)] : undefined;
}

export function checkQemu(qemu: CommandResult, binary: string): HostCheck {
  const name = 'qemu';
  const fix = 'apt-get install -y qemu-system-x86';
  if (!qemu.found) return fail(name, `${binary} cannot be run: ${qemu.error}`, fix);
  const version = parseQemuVersion(qemu.output);
  if (!version) return fail(name, `${binary} --version printed no QEMU version: ${firstLine(qemu.output)}`, fix);
  const [major, minor] = version;
  const text = version.join('.');
  if (major < TESTED_QEMU.major || (major === TESTED_QEMU.major && minor < TESTED_QEMU.minor)) {
    return fail(
      name,
      `QEMU ${text} is older than ${TESTED_QEMU.major}.${TESTED_QEMU.minor}, the version the platform is tested with`,
      `${fix} (Debian 12 or later ships 7.2)`,
      false,
    );
  }
  return pass(name, `QEMU ${text} (${binary})`);
}

export function checkGuestFile(what: 'guest kernel' | 'guest initrd', facts: FileFacts): HostCheck {
  const name = what === 'guest kernel' ? 'guest-kernel' : 'guest-initrd';
  const build = 'npx nx run runtime:build-guest (writes dist/guest/), or point GUEST_KERNEL/GUEST_INITRD at its files';
  if (!facts.exists) return fail(name, `${what} ${facts.path} does not exist`, build);
  if (!facts.isFile) return fail(name, `${what} ${facts.path} is not a regular file`, build);
  if (facts.size === 0) return fail(name, `${what} ${facts.path} is empty`, build);
  if (facts.vmAccessProblem !== undefined) {
    return fail(
      name,
      `QEMU runs as a per-VM uid and cannot open the ${what}: ${facts.vmAccessProblem}`,
      `chmod a+r ${facts.path} and a+x on its directories`,
    );
  }
  return pass(name, `${what} ${facts.path} (${facts.size} bytes, readable by the VM uids)`);
}

const KVM_FIX =
  'enable VT-x/AMD-V in the firmware, load the module (modprobe kvm_intel or modprobe kvm_amd), and make sure ' +
  '/dev/kvm is a real KVM device (not PVM); on a host where that is impossible set ALLOW_TCG=true (development only)';

export function checkAccelerator(probe: AcceleratorProbe, allowTcg: boolean, kernel: FileFacts): HostCheck {
  const name = 'accelerator';
  if (!probe.ok) {
    const fix = kernel.exists ? KVM_FIX : `build the guest kernel first (npx nx run runtime:build-guest); ${KVM_FIX}`;
    return fail(name, `cannot tell whether KVM works: ${probe.error}`, fix, !allowTcg);
  }
  if (probe.accel === 'kvm') return pass(name, `KVM: ${probe.reason}`);
  if (!allowTcg) {
    return fail(name, `KVM is not usable (${probe.reason}) and ALLOW_TCG is not set`, KVM_FIX);
  }
  return fail(
    name,
    `KVM is not usable; pods run under TCG because ALLOW_TCG is set. TCG is not a security boundary: ` +
      `do not run untrusted tenants on this host. KVM: ${probe.reason}`,
    KVM_FIX.replace(/; on a host where.*$/, '; then unset ALLOW_TCG'),
    false,
  );
}

export function checkNftables(version: CommandResult, probe: CommandResult): HostCheck {
  const name = 'nftables';
  if (!version.found) return fail(name, `nft cannot be run: ${version.error}`, 'apt-get install -y nftables');
  if (!probe.found) {
    return fail(
      name,
      `${firstLine(version.output)}, but the kernel refused a test inet table: ${firstLine(probe.error)}`,
      'load the nf_tables modules (modprobe nf_tables nft_ct), run as root (CAP_NET_ADMIN), and use a kernel ' +
        'built with CONFIG_NF_TABLES_INET',
    );
  }
  return pass(name, `${firstLine(version.output)}; the kernel accepts an inet table with conntrack`);
}

export function checkCgroups(facts: CgroupFacts, root: string): HostCheck {
  const name = 'cgroups';
  if (facts.version === 'v2') {
    const missing = CGROUP_CONTROLLERS.filter((c) => !facts.controllers.includes(c));
    if (missing.length > 0) {
      return fail(
        name,
        `cgroup v2 at ${root} lacks the controllers ${missing.join(', ')} (has: ${facts.controllers.join(' ') || 'none'})`,
        `enable them on the kernel command line (e.g. cgroup_enable=memory in GRUB_CMDLINE_LINUX, then update-grub ` +
          `and reboot); the sandbox limits every VM with ${CGROUP_CONTROLLERS.join(', ')}`,
      );
    }
    if (!facts.writable) {
      return fail(name, `${root}/cgroup.subtree_control is not writable`, 'run the agent as root');
    }
    return pass(name, `cgroup v2 at ${root} with ${CGROUP_CONTROLLERS.join(', ')}`);
  }
  const missing = CGROUP_CONTROLLERS.filter((c) => facts.hierarchies[c] !== true);
  if (missing.length > 0) {
    return fail(
      name,
      `cgroup v1: no ${missing.map((c) => `${root}/${c}`).join(', ')} hierarchy`,
      `mount them (mount -t cgroup -o ${missing.join(',')} cgroup ${root}/<name>), or boot with ` +
        'systemd.unified_cgroup_hierarchy=1 to use cgroup v2',
    );
  }
  if (!facts.writable) {
    return fail(name, `the cgroup v1 hierarchies under ${root} are not writable`, 'run the agent as root');
  }
  return pass(name, `cgroup v1 with ${CGROUP_CONTROLLERS.map((c) => `${root}/${c}`).join(', ')}`);
}

export function checkTun(tun: ProbeResults['tun']): HostCheck {
  const name = 'tun';
  const fix = 'modprobe tun (and add tun to /etc/modules-load.d/caas.conf); in a container, pass /dev/net/tun through';
  if (!tun.exists) return fail(name, '/dev/net/tun does not exist', fix);
  if (!tun.isCharacterDevice) return fail(name, '/dev/net/tun is not a character device', fix);
  return pass(name, '/dev/net/tun is a character device');
}

export function checkDisk(disk: DiskFacts, stateDir: string, minFreeBytes: number): HostCheck {
  const name = 'disk';
  if (disk.error !== undefined || disk.freeBytes === undefined) {
    return fail(
      name,
      `cannot read the free space of ${disk.path}: ${disk.error ?? 'no answer'}`,
      `create STATE_DIR (mkdir -p ${stateDir}) on a local filesystem`,
    );
  }
  const where = disk.path === stateDir ? stateDir : `${disk.path} (STATE_DIR ${stateDir} does not exist yet)`;
  if (disk.freeBytes < minFreeBytes) {
    return fail(
      name,
      `${gib(disk.freeBytes)} free on the filesystem of ${where}; at least ${gib(minFreeBytes)} needed for images and VM state`,
      'free space there (or put STATE_DIR on a larger filesystem), or lower IMAGE_CACHE_LIMIT_BYTES',
    );
  }
  const total = disk.totalBytes !== undefined ? ` of ${gib(disk.totalBytes)}` : '';
  return pass(name, `${gib(disk.freeBytes)} free${total} on the filesystem of ${where}`);
}

export function checkRoot(uid: number): HostCheck {
  if (uid === 0) return pass('root', 'running as root');
  return fail(
    'root',
    `running as uid ${uid}; the agent creates cgroups, taps, nftables tables and runs each VM under its own uid`,
    'run the agent as root (the caas-agent.service unit does)',
  );
}

export function checkTools(tools: Record<string, boolean>): HostCheck {
  const missing = Object.entries(tools)
    .filter(([, found]) => !found)
    .map(([tool]) => tool);
  if (missing.length > 0) {
    return fail(
      'tools',
      `not on PATH: ${missing.join(', ')} (the VM launch execs them)`,
      'apt-get install -y util-linux iproute2',
    );
  }
  return pass('tools', `${Object.keys(tools).join(', ')} found`);
}

export function checkPodNetwork(network: ProbeResults['network'], settings: DoctorSettings): HostCheck {
  const name = 'pod-network';
  if (!settings.podNetwork) {
    return pass(name, 'no UNDERLAY_IFNAME: pods run without a network device (set UNDERLAY_* and UPLINK_*)', false);
  }
  if (!network.tapHelper) {
    return fail(
      name,
      `${settings.tapHelper} is missing or not executable (QEMU gets the pod's tap through it)`,
      'npx nx run runtime:build-guest (writes it beside the guest kernel)',
    );
  }
  if (!network.bridge) return fail(name, '`bridge` (iproute2) not on PATH', 'apt-get install -y iproute2');
  if (!network.conntrack) {
    return fail(
      name,
      "`conntrack` not on PATH: a removed pod's connections would outlive it",
      'apt-get install -y conntrack',
      false,
    );
  }
  return pass(name, `caas-tapfd, bridge and conntrack found (${settings.tapHelper})`);
}

/** The report from what the probes found (pure). */
export function evaluateHost(results: ProbeResults, settings: DoctorSettings): DoctorReport {
  const checks = [
    checkRoot(results.uid),
    checkQemu(results.qemu, settings.qemuBinary),
    checkTools(results.tools),
    checkGuestFile('guest kernel', results.kernel),
    checkGuestFile('guest initrd', results.initrd),
    checkAccelerator(results.accelerator, settings.allowTcg, results.kernel),
    checkNftables(results.nftVersion, results.nftCheck),
    checkCgroups(results.cgroup, settings.cgroupRoot),
    checkTun(results.tun),
    checkDisk(results.disk, settings.stateDir, settings.minFreeBytes),
    checkPodNetwork(results.network, settings),
  ];
  const accel = results.accelerator.ok ? results.accelerator.accel : undefined;
  return {
    ok: checks.every((c) => c.ok || !c.required),
    checks,
    ...(accel === 'kvm' || (accel === 'tcg' && settings.allowTcg) ? { accelerator: accel } : {}),
  };
}

/** The settings from the configuration (fields another version of it may not have yet are read defensively). */
export function doctorSettings(config: AgentConfig, overrides: Partial<DoctorSettings> = {}): DoctorSettings {
  const fields = config as unknown as Record<string, unknown>;
  const str = (key: string): string | undefined => {
    const v = fields[key];
    return typeof v === 'string' && v !== '' ? v : undefined;
  };
  const allowTcg = fields['ALLOW_TCG'];
  return {
    qemuBinary: overrides.qemuBinary ?? str('QEMU_BINARY') ?? 'qemu-system-x86_64',
    guestKernel: resolve(overrides.guestKernel ?? str('GUEST_KERNEL') ?? 'dist/guest/kernel'),
    guestInitrd: resolve(overrides.guestInitrd ?? str('GUEST_INITRD') ?? 'dist/guest/initrd.cpio'),
    allowTcg: overrides.allowTcg ?? (allowTcg === true || allowTcg === 'true' || allowTcg === '1'),
    stateDir: overrides.stateDir ?? config.STATE_DIR,
    minFreeBytes: overrides.minFreeBytes ?? DEFAULT_MIN_FREE_BYTES,
    cgroupRoot: overrides.cgroupRoot ?? DEFAULT_CGROUP_ROOT,
    kvmTimeoutMs: overrides.kvmTimeoutMs ?? 5000,
    podNetwork: overrides.podNetwork ?? str('UNDERLAY_IFNAME') !== undefined,
    tapHelper:
      overrides.tapHelper ??
      join(dirname(resolve(overrides.guestKernel ?? str('GUEST_KERNEL') ?? 'dist/guest/kernel')), 'caas-tapfd'),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Probes (the real host).

function run(file: string, args: string[], input?: string, timeoutMs = 10_000): Promise<CommandResult> {
  return new Promise((done) => {
    const child = execFile(file, args, { timeout: timeoutMs, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error) {
        const code = (error as NodeJS.ErrnoException).code;
        const why = code === 'ENOENT' ? 'not found' : stderr.trim() || error.message;
        done({ found: false, error: why });
      } else {
        done({ found: true, output: `${stdout}${stderr}` });
      }
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

async function onPath(name: string): Promise<string | undefined> {
  if (isAbsolute(name)) return name;
  for (const dir of (process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter)) {
    const candidate = join(dir, name);
    try {
      if ((await stat(candidate)).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

async function fileFacts(path: string): Promise<FileFacts> {
  try {
    const s = await stat(path);
    let vmAccessProblem: string | undefined;
    try {
      await assertAccessibleBy(path, { uid: DEFAULT_UID_RANGE.base, gid: DEFAULT_UID_RANGE.base });
    } catch (error) {
      vmAccessProblem = error instanceof Error ? error.message : String(error);
    }
    return { path, exists: true, isFile: s.isFile(), size: s.size, ...(vmAccessProblem ? { vmAccessProblem } : {}) };
  } catch {
    return { path, exists: false, isFile: false, size: 0 };
  }
}

async function isWritable(path: string): Promise<boolean> {
  try {
    await access(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

async function cgroupFacts(root: string): Promise<CgroupFacts> {
  if ((await detectCgroupVersion(root)) === 'v2') {
    let controllers: string[] = [];
    try {
      controllers = (await readFile(join(root, 'cgroup.controllers'), 'utf8')).trim().split(/\s+/).filter(Boolean);
    } catch {
      // none readable
    }
    return { version: 'v2', controllers, writable: await isWritable(join(root, 'cgroup.subtree_control')) };
  }
  const hierarchies: Record<string, boolean> = {};
  let writable = true;
  for (const c of CGROUP_CONTROLLERS) {
    const dir = join(root, c);
    // A mounted v1 hierarchy has cgroup.procs at its top (a plain directory does not).
    hierarchies[c] = await stat(join(dir, 'cgroup.procs')).then(
      () => true,
      () => false,
    );
    if (hierarchies[c] === true && !(await isWritable(dir))) writable = false;
  }
  return { version: 'v1', hierarchies, writable };
}

async function diskFacts(stateDir: string): Promise<DiskFacts> {
  let path = stateDir;
  for (;;) {
    try {
      await stat(path);
      break;
    } catch {
      if (dirname(path) === path) break;
      path = dirname(path);
    }
  }
  try {
    const s = await statfs(path);
    return { path, freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
  } catch (error) {
    return { path, error: error instanceof Error ? error.message : String(error) };
  }
}

/** The accelerator and the reason about KVM itself (the sandbox's TCG reason wraps it: `KVM unusable (…); …`). */
export function fromChoice(choice: AcceleratorChoice): { accel: 'kvm' | 'tcg'; reason: string } {
  const wrapped = choice.accel === 'tcg' ? /^KVM unusable \((.*)\); TCG because/s.exec(choice.reason) : null;
  return { accel: choice.accel, reason: wrapped?.[1] ?? choice.reason };
}

async function acceleratorProbe(settings: DoctorSettings, kernel: FileFacts): Promise<AcceleratorProbe> {
  try {
    if (!kernel.exists) {
      // Host facts may settle it (no /dev/kvm, PVM); otherwise only a boot of the missing kernel could tell.
      const verdict = kvmVerdictFromHost(await readHostKvmFacts());
      if (verdict === undefined) {
        return { ok: false, error: `the guest kernel ${settings.guestKernel} is missing, so KVM could not be tried` };
      }
      return { ok: true, ...fromChoice(chooseAccelerator(verdict, true)) };
    }
    // allowTcg: true so that the verdict on KVM comes back either way; evaluateHost decides on TCG.
    const choice = await probeAccelerator({
      qemuBinary: settings.qemuBinary,
      kernel: settings.guestKernel,
      ...(settings.guestInitrd !== '' ? { initrd: settings.guestInitrd } : {}),
      allowTcg: true,
      timeoutMs: settings.kvmTimeoutMs,
    });
    return { ok: true, ...fromChoice(choice) };
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
}

/** Looks at the real host. */
export async function probeHost(settings: DoctorSettings): Promise<ProbeResults> {
  const [qemu, kernel, initrd, nftVersion, nftCheck, cgroup, tun, disk, setpriv, prlimit, nsenter, ip] =
    await Promise.all([
      run(settings.qemuBinary, ['--version']),
      fileFacts(settings.guestKernel),
      fileFacts(settings.guestInitrd),
      run('nft', ['--version']),
      run('nft', ['-c', '-f', '-'], NFT_PROBE_RULESET),
      cgroupFacts(settings.cgroupRoot),
      stat('/dev/net/tun').then(
        (s) => ({ exists: true, isCharacterDevice: s.isCharacterDevice() }),
        () => ({ exists: false, isCharacterDevice: false }),
      ),
      diskFacts(settings.stateDir),
      onPath('setpriv'),
      onPath('prlimit'),
      onPath('nsenter'),
      onPath('ip'),
    ]);
  const [bridge, conntrack, tapHelper] = await Promise.all([
    onPath('bridge'),
    onPath('conntrack'),
    access(settings.tapHelper, constants.X_OK).then(
      () => true,
      () => false,
    ),
  ]);
  const accelerator = await acceleratorProbe(settings, kernel);
  return {
    qemu,
    kernel,
    initrd,
    accelerator,
    nftVersion,
    nftCheck,
    cgroup,
    tun,
    disk,
    uid: process.getuid?.() ?? -1,
    tools: {
      setpriv: setpriv !== undefined,
      prlimit: prlimit !== undefined,
      nsenter: nsenter !== undefined,
      ip: ip !== undefined,
    },
    network: { bridge: bridge !== undefined, conntrack: conntrack !== undefined, tapHelper },
  };
}

/** Checks the host: QEMU, guest kernel and initrd, nftables, cgroups, /dev/net/tun, KVM usability, disk, root. */
export async function checkHost(config: AgentConfig, overrides: Partial<DoctorSettings> = {}): Promise<DoctorReport> {
  const settings = doctorSettings(config, overrides);
  return evaluateHost(await probeHost(settings), settings);
}

/** The report as text for an operator: one line per check, the fix under each failed one. */
export function formatReport(report: DoctorReport): string {
  const lines = report.checks.map((c) => {
    const mark = c.ok ? 'ok  ' : c.required ? 'FAIL' : 'warn';
    return `${mark} ${c.name}: ${c.detail}${c.ok || c.fix === undefined ? '' : `\n     fix: ${c.fix}`}`;
  });
  lines.push(
    report.ok ? 'this host can run pods' : 'this host cannot run pods: fix the FAIL lines above and run doctor again',
  );
  return `${lines.join('\n')}\n`;
}
