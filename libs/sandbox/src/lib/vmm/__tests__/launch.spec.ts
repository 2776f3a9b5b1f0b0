import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VmmError } from '../errors';
import { assertHardenedArgs, buildLaunchCommand, CGROUP_JOIN_FAILED_EXIT, launchQemu } from '../launch';
import { vmPaths } from '../paths';
import { buildQemuArgs, QEMU_SANDBOX_OPTION } from '../qemu-args';

const dir = '/var/lib/caas/vms/pod-1';
const args = buildQemuArgs({ dir, accel: 'tcg', memoryMiB: 128, vcpus: 1, boot: { kind: 'firmware' } });

describe('buildLaunchCommand (pure)', () => {
  it('joins the cgroups, caps file size, forbids core dumps, drops privileges, then execs QEMU', () => {
    const command = buildLaunchCommand({
      procsFiles: ['/cg/cpu/caas/p/cgroup.procs', '/cg/memory/caas/p/cgroup.procs'],
      uid: 420001,
      gid: 420002,
      qemuBinary: 'qemu-system-x86_64',
      args: ['-nodefaults', '-S'],
      maxLogBytes: 1048576,
    });
    expect(command.file).toBe('/bin/sh');
    expect(command.args.slice(2)).toEqual([
      'sh',
      '/cg/cpu/caas/p/cgroup.procs',
      '/cg/memory/caas/p/cgroup.procs',
      '--',
      'prlimit',
      '--fsize=1048576:1048576',
      '--core=0:0',
      '--',
      'setpriv',
      '--reuid=420001',
      '--regid=420002',
      '--clear-groups',
      '--no-new-privs',
      '--inh-caps=-all',
      '--bounding-set=-all',
      '--',
      'qemu-system-x86_64',
      '-nodefaults',
      '-S',
    ]);
  });

  it('enters the network namespace it is given before anything else runs', () => {
    const command = buildLaunchCommand({
      procsFiles: ['/cg/caas/p/cgroup.procs'],
      uid: 420001,
      gid: 420001,
      qemuBinary: 'qemu-system-x86_64',
      args: [],
      maxLogBytes: 4096,
      netns: '/run/netns/host-a',
    });
    expect(command.args.slice(5, 9)).toEqual(['nsenter', '--net=/run/netns/host-a', '--', 'prlimit']);
  });

  it('hands the tap over with caas-tapfd in the namespace, before privileges are dropped', () => {
    const command = buildLaunchCommand({
      procsFiles: [],
      uid: 420001,
      gid: 420001,
      qemuBinary: 'qemu-system-x86_64',
      args: [],
      maxLogBytes: 4096,
      netns: '/run/netns/caas-t7',
      tap: { name: 'tp3f1e2d4c5b6a', fd: 4, helper: '/opt/caas/dist/guest/caas-tapfd' },
    });
    const rest = command.args.slice(command.args.indexOf('nsenter'));
    expect(rest.slice(0, 8)).toEqual([
      'nsenter',
      '--net=/run/netns/caas-t7',
      '--',
      '/opt/caas/dist/guest/caas-tapfd',
      'tp3f1e2d4c5b6a',
      '4',
      '--',
      'prlimit',
    ]);
  });

  describe('its shell script', () => {
    let tmp: string;
    beforeEach(() => {
      tmp = mkdtempSync(join(tmpdir(), 'launchsh-'));
    });
    afterEach(() => rmSync(tmp, { recursive: true, force: true }));

    function script(): string {
      return (
        buildLaunchCommand({ procsFiles: [], uid: 1, gid: 1, qemuBinary: 'q', args: [], maxLogBytes: 1 }).args[1] ?? ''
      );
    }

    it('writes its own pid to every procs file, then execs the rest with SIGXFSZ ignored (same pid)', () => {
      const a = join(tmp, 'a');
      const b = join(tmp, 'b');
      // The exec'd command prints its pid and its ignored-signal mask.
      const out = execFileSync(
        '/bin/sh',
        ['-c', script(), 'sh', a, b, '--', '/bin/sh', '-c', 'echo $$; grep SigIgn /proc/$$/status'],
        {
          encoding: 'utf8',
        },
      );
      const [pid, sigIgn] = out.trim().split('\n');
      expect(readFileSync(a, 'utf8')).toBe(`${pid}\n`);
      expect(readFileSync(b, 'utf8')).toBe(`${pid}\n`);
      // SIGXFSZ is signal 25: bit 24 of the mask.
      const mask = BigInt(`0x${(sigIgn ?? '').split(/\s+/)[1]}`);
      expect((mask >> 24n) & 1n).toBe(1n);
    });

    it(`exits ${CGROUP_JOIN_FAILED_EXIT} without running anything when a procs file cannot be written`, () => {
      const marker = join(tmp, 'ran');
      const result = spawnSync('/bin/sh', [
        '-c',
        script(),
        'sh',
        join(tmp, 'missing', 'cgroup.procs'),
        '--',
        '/bin/sh',
        '-c',
        `touch ${marker}`,
      ]);
      expect(result.status).toBe(CGROUP_JOIN_FAILED_EXIT);
      expect(() => readFileSync(marker)).toThrow();
    });

    it('passes arguments with spaces and quotes through untouched', () => {
      writeFileSync(join(tmp, 'p'), '');
      const out = execFileSync(
        '/bin/sh',
        ['-c', script(), 'sh', join(tmp, 'p'), '--', 'printf', '[%s]', 'a b', `"c'`, '$HOME'],
        {
          encoding: 'utf8',
        },
      );
      expect(out).toBe(`[a b]["c'][$HOME]`);
    });
  });
});

describe('assertHardenedArgs (pure)', () => {
  const paths = vmPaths(dir);

  it('accepts what buildQemuArgs produces', () => {
    expect(() => assertHardenedArgs(args, paths)).not.toThrow();
  });

  it.each([
    ['-nodefaults', (a: string[]) => a.filter((x) => x !== '-nodefaults')],
    ['-no-user-config', (a: string[]) => a.filter((x) => x !== '-no-user-config')],
    ['-sandbox', (a: string[]) => a.map((x) => (x === QEMU_SANDBOX_OPTION ? 'on' : x))],
    ['-pidfile', (a: string[]) => a.map((x) => (x === paths.pidfile ? '/tmp/other.pid' : x))],
    ['-qmp', (a: string[]) => a.map((x) => (x.startsWith('unix:') ? 'unix:/tmp/q.sock,server=on,wait=off' : x))],
  ])('refuses a command line without %s', (flag, mutate) => {
    expect(() => assertHardenedArgs(mutate([...args]), paths)).toThrow(new RegExp(`lack.*${flag}`));
  });
});

describe('launchQemu validation (nothing is created)', () => {
  const base = { id: 'pod-1', dir, args, uid: 420001, gid: 420001, cgroup: { cpuMillis: 500, memoryBytes: 256 << 20 } };

  it.each([
    ['a bad id', { id: '../x' }, 'INVALID_SPEC'],
    ['root uid', { uid: 0 }, 'INVALID_SPEC'],
    ['root gid', { gid: 0 }, 'INVALID_SPEC'],
    ['a relative dir', { dir: 'vms/pod-1' }, 'INVALID_SPEC'],
    ['a long dir', { dir: `/tmp/${'x'.repeat(100)}` }, 'SOCKET_PATH_TOO_LONG'],
    ['args for another dir', { dir: '/var/lib/caas/vms/pod-2' }, 'INVALID_SPEC'],
    ['a tiny log cap', { maxLogBytes: 10 }, 'INVALID_SPEC'],
    ['no CPU', { cgroup: { cpuMillis: 0, memoryBytes: 256 << 20 } }, 'INVALID_SPEC'],
    ['a relative netns', { netns: 'run/netns/a' }, 'INVALID_SPEC'],
    ['a netns that is not one', { netns: '/etc/hostname' }, 'LAUNCH_FAILED'],
    ['a missing netns', { netns: '/run/netns/caas-no-such-namespace' }, 'LAUNCH_FAILED'],
  ])('refuses %s', async (_name, patch, code) => {
    const error = await launchQemu({ ...base, ...patch }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VmmError);
    expect((error as VmmError).code).toBe(code);
  });
});
