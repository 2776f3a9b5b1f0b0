/**
 * The VMM layer against real QEMU 7.2, real cgroups and real uids (needs root). VMs are started paused (`-S`)
 * or run a few-byte firmware instead of a guest kernel, so each costs little CPU; at most two run at once, and
 * every VM a test starts is removed in afterEach, also when the test fails.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cgroupLeaves, createCgroup, defaultCgroupLayout, planCgroup } from '../cgroup';
import type { CgroupLayout } from '../cgroup';
import type { VmmError } from '../errors';
import { launchQemu } from '../launch';
import type { LaunchOptions, VmHandle } from '../launch';
import { cleanupVm, killVm, vmStatus } from '../lifecycle';
import { vmPaths } from '../paths';
import { isAlive, parseProcStatus, waitUntilGone } from '../proc';
import { buildQemuCommand } from '../qemu-args';
import type { QemuSpec } from '../qemu-args';
import { QmpClient } from '../qmp-client';
import type { QmpEvent } from '../qmp-codec';
import { allocateVmUid } from '../uid';
import { createVmTestEnv } from './support/vm-fixtures';

jest.setTimeout(30_000);

const env = createVmTestEnv();
/** Clear of the default range other engineers' VMs use on this shared host. */
const UID_RANGE = { base: 471_000, count: 1000 };
const MEMORY_BYTES = 192 * 1024 * 1024; // a page multiple: the kernel would round it
let layout: CgroupLayout;

beforeAll(async () => {
  layout = await defaultCgroupLayout();
});
afterEach(async () => {
  await env.cleanupAll();
});
afterAll(() => env.remove());

/** The QEMU command of a small paused TCG VM booting a firmware; `spec` overrides any of it. */
function pausedVmCommand(dir: string, spec: Partial<QemuSpec> = {}): ReturnType<typeof buildQemuCommand> {
  return buildQemuCommand({
    dir,
    accel: 'tcg',
    memoryMiB: 64,
    vcpus: 1,
    boot: { kind: 'firmware' },
    paused: true,
    ...spec,
  });
}

async function launch(
  name: string,
  spec: Partial<QemuSpec> = {},
  extra: Partial<LaunchOptions> = {},
): Promise<{ handle: VmHandle; id: string; dir: string }> {
  const id = env.id(name);
  const dir = env.dir(id);
  env.track(id);
  const { args, passFiles } = pausedVmCommand(dir, spec);
  const uid = await allocateVmUid(env.root, UID_RANGE);
  const handle = await launchQemu({
    id,
    dir,
    args,
    passFiles,
    uid,
    gid: uid,
    cgroup: { cpuMillis: 500, memoryBytes: MEMORY_BYTES, pidsMax: 64 },
    ...extra,
  });
  env.track(id, handle);
  return { handle, id, dir };
}

function procStatus(pid: number): ReturnType<typeof parseProcStatus> {
  return parseProcStatus(readFileSync(`/proc/${pid}/status`, 'utf8'));
}

function read(path: string): string {
  return readFileSync(path, 'utf8').trim();
}

/**
 * Asserts that nothing of the VM is left: no process (a zombie waiting for its new parent to reap it counts as
 * gone), no cgroup directory, no files.
 */
async function expectGone(id: string, dir: string, pid?: number): Promise<void> {
  if (pid !== undefined) expect(await waitUntilGone(pid, 0)).toBe(true);
  for (const leaf of cgroupLeaves(layout, id)) expect(existsSync(leaf)).toBe(false);
  expect(existsSync(dir)).toBe(false);
}

describe('launchQemu: a paused VM, hardened', () => {
  it('runs as its own uid/gid, no groups, no_new_privs, no capabilities, seccomp, in its cgroup with its limits', async () => {
    const started = Date.now();
    const { handle, id, dir } = await launch('hardened', { disks: [{ path: env.rootOnlyDisk, serial: 'c0' }] });
    const launchMs = Date.now() - started;
    const { pid, uid, gid } = handle;
    expect(uid).toBeGreaterThanOrEqual(UID_RANGE.base);

    const status = procStatus(pid);
    expect(status.uid).toEqual([uid, uid, uid, uid]);
    expect(status.gid).toEqual([gid, gid, gid, gid]);
    expect(status.groups).toEqual([]);
    expect(status.noNewPrivs).toBe(true);
    expect(status.seccomp).toBe(2);
    expect(status.capEff).toBe(0n);
    expect(status.capBnd).toBe(0n);
    expect(read(`/proc/${pid}/comm`)).toBe('qemu-system-x86');
    // Only PATH (and the shell's PWD) reach QEMU: none of the agent's environment (credentials) does.
    const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter(Boolean);
    expect(environ.filter((v) => !v.startsWith('PWD='))).toEqual(['PATH=/usr/sbin:/usr/bin:/sbin:/bin']);
    // Detached: its own session, so it outlives the agent and its terminal.
    const stat = read(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    expect(Number(fields[3])).toBe(pid); // session id
    // RLIMIT_FSIZE caps the logs; no core dumps (a core would hold guest memory).
    const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
    expect(limits).toMatch(/^Max file size\s+67108864\s+67108864\s+bytes/m);
    expect(limits).toMatch(/^Max core file size\s+0\s+0\s+bytes/m);

    // Its cgroups, joined before exec, with the limits written.
    const cgroups = read(`/proc/${pid}/cgroup`);
    for (const leaf of handle.cgroupLeaves) {
      expect(read(join(leaf, 'cgroup.procs')).split('\n')).toEqual([String(pid)]);
    }
    if (layout.version === 'v1') {
      for (const controller of ['cpu', 'memory', 'pids']) {
        expect(cgroups).toMatch(new RegExp(`^\\d+:${controller}:/caas/${id}$`, 'm'));
      }
      const [cpu, memory, pids] = handle.cgroupLeaves as [string, string, string];
      expect(read(join(cpu, 'cpu.cfs_period_us'))).toBe('100000');
      expect(read(join(cpu, 'cpu.cfs_quota_us'))).toBe('50000');
      expect(read(join(memory, 'memory.limit_in_bytes'))).toBe(String(MEMORY_BYTES));
      if (existsSync(join(memory, 'memory.memsw.limit_in_bytes'))) {
        expect(read(join(memory, 'memory.memsw.limit_in_bytes'))).toBe(String(MEMORY_BYTES));
      }
      expect(read(join(pids, 'pids.max'))).toBe('64');
    } else {
      const [leaf] = handle.cgroupLeaves as [string];
      expect(cgroups).toMatch(new RegExp(`^0::/caas/${id}$`, 'm'));
      expect(read(join(leaf, 'cpu.max'))).toBe('50000 100000');
      expect(read(join(leaf, 'memory.max'))).toBe(String(MEMORY_BYTES));
      expect(read(join(leaf, 'pids.max'))).toBe('64');
    }

    // Its directory and files belong to its uid; the directory is private.
    const dirStat = statSync(dir);
    expect([dirStat.uid, dirStat.gid, dirStat.mode & 0o7777]).toEqual([uid, gid, 0o700]);
    const paths = vmPaths(dir);
    for (const socket of [paths.qmpSocket, paths.ctlSocket, paths.outSocket]) {
      expect(statSync(socket).isSocket()).toBe(true);
      expect(statSync(socket).uid).toBe(uid);
    }
    expect(read(paths.pidfile)).toBe(String(pid));
    expect(existsSync(paths.consoleLog)).toBe(true);

    // QMP works; the root-only disk reached QEMU as a read-only file descriptor.
    await expect(handle.qmp.queryStatus()).resolves.toEqual({ status: 'prelaunch', running: false });
    const blocks =
      await handle.qmp.execute<{ device: string; inserted: { ro: boolean; file: string } }[]>('query-block');
    expect(blocks.map((b) => [b.device, b.inserted.ro, b.inserted.file])).toEqual([['disk0', true, '/dev/fdset/1']]);
    // -nodefaults: no network backend or card at all (QEMU would otherwise add user-mode networking).
    const network = await handle.qmp.execute('human-monitor-command', { 'command-line': 'info network' });
    expect(network).toBe('');
    expect(await isAlive(pid, dir)).toBe(true);
    await expect(vmStatus(dir)).resolves.toEqual({ alive: true, pid });

    // quit: a clean exit with its SHUTDOWN event.
    const shutdown = handle.qmp.waitForEvent('SHUTDOWN', 5000);
    await handle.qmp.quit();
    expect((await shutdown).data).toEqual({ guest: false, reason: 'host-qmp-quit' });
    await expect(handle.exited).resolves.toEqual({ code: 0, signal: null });
    expect(await isAlive(pid, dir)).toBe(false);
    await cleanupVm(dir, id);
    await expectGone(id, dir, pid);
    expect(launchMs).toBeLessThan(5000);
  });

  it('detects a kill -9 from outside, and cleanup leaves no process, cgroup or file', async () => {
    const { handle, id, dir } = await launch('killed');
    const closed = new Promise<VmmError | undefined>((resolve) => handle.qmp.onClose(resolve));
    execFileSync('kill', ['-9', String(handle.pid)]);
    await expect(handle.exited).resolves.toEqual({ code: null, signal: 'SIGKILL' });
    expect((await closed)?.code).toBe('QMP_CLOSED');
    expect(await isAlive(handle.pid, dir)).toBe(false);
    await expect(vmStatus(dir)).resolves.toEqual({ alive: false });
    // What a killed QEMU leaves behind: sockets and pidfile.
    expect(existsSync(vmPaths(dir).qmpSocket)).toBe(true);
    expect(existsSync(vmPaths(dir).pidfile)).toBe(true);
    await cleanupVm(dir, id);
    await expectGone(id, dir, handle.pid);
    await cleanupVm(dir, id); // idempotent
  });

  it('killVm kills a live VM by its dir and waits until it is gone', async () => {
    const { handle, id, dir } = await launch('killvm');
    await expect(killVm(dir)).resolves.toBe(handle.pid);
    expect(await isAlive(handle.pid, dir)).toBe(false);
    await expect(handle.exited).resolves.toMatchObject({ signal: 'SIGKILL' });
    await expect(killVm(dir)).resolves.toBeUndefined();
    await cleanupVm(dir, id);
    await expectGone(id, dir);
  });

  it('refuses a second QEMU in a live VM dir; relaunches in it once the first is dead (stale files removed)', async () => {
    const first = await launch('relaunch');
    const again = await launchQemu({
      id: first.id,
      dir: first.dir,
      args: pausedVmCommand(first.dir).args,
      uid: first.handle.uid,
      gid: first.handle.gid,
      cgroup: { cpuMillis: 500, memoryBytes: MEMORY_BYTES },
    }).catch((e: unknown) => e);
    expect(again).toMatchObject({ code: 'VM_ALREADY_RUNNING' });
    expect(await isAlive(first.handle.pid, first.dir)).toBe(true);

    execFileSync('kill', ['-9', String(first.handle.pid)]);
    await first.handle.exited;
    first.handle.qmp.close();
    const second = await launch('relaunch', {}, { uid: first.handle.uid, gid: first.handle.gid });
    expect(second.handle.pid).not.toBe(first.handle.pid);
    await expect(second.handle.qmp.queryStatus()).resolves.toMatchObject({ status: 'prelaunch' });
  });

  it('gives the next VM another uid while one is alive', async () => {
    const { handle } = await launch('uid-a');
    const next = await allocateVmUid(env.root, UID_RANGE);
    expect(next).not.toBe(handle.uid);
  });
});

describe('guest behaviour, with a few-byte firmware instead of a kernel', () => {
  it('a guest panic is a GUEST_PANICKED event and exit code 1 (pvpanic + -action panic=exit-failure)', async () => {
    const { handle, id, dir } = await launch('panic', { boot: { kind: 'firmware', firmware: env.fw.panic } });
    const events: QmpEvent[] = [];
    handle.qmp.onEvent((e) => events.push(e));
    const panicked = handle.qmp.waitForEvent('GUEST_PANICKED', 10_000);
    await handle.qmp.execute('cont');
    expect((await panicked).data).toMatchObject({ action: 'poweroff' });
    await expect(handle.exited).resolves.toEqual({ code: 1, signal: null });
    expect(events.map((e) => e.event)).toContain('GUEST_PANICKED');
    await cleanupVm(dir, id);
    await expectGone(id, dir, handle.pid);
  });

  it('caps the console log at maxLogBytes and QEMU keeps running (SIGXFSZ ignored)', async () => {
    const cap = 64 * 1024;
    const { handle, dir } = await launch(
      'spam',
      { boot: { kind: 'firmware', firmware: env.fw.spam } },
      { maxLogBytes: cap },
    );
    const log = vmPaths(dir).consoleLog;
    await handle.qmp.execute('cont');
    const deadline = Date.now() + 10_000;
    while (statSync(log).size < cap && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200));
    expect(statSync(log).size).toBe(cap);
    expect(readFileSync(log, 'latin1').slice(0, 8)).toBe('AAAAAAAA');
    await expect(handle.qmp.queryStatus()).resolves.toEqual({ status: 'running', running: true });
    expect(await isAlive(handle.pid, dir)).toBe(true);
    await handle.qmp.execute('stop'); // stop burning CPU before cleanup
  });
});

describe('adoption after the launching process exits', () => {
  it('QEMU outlives the Node process that started it, and is found, driven, killed and cleaned by its dir', async () => {
    const id = env.id('adopt');
    const dir = env.dir(id);
    env.track(id);
    const uid = await allocateVmUid(env.root, UID_RANGE);
    const { args } = pausedVmCommand(dir);
    const options: LaunchOptions = {
      id,
      dir,
      args,
      uid,
      gid: uid,
      cgroup: { cpuMillis: 500, memoryBytes: MEMORY_BYTES },
    };
    const index = join(__dirname, '..', 'index.ts');
    // A separate host process: compiles the layer with SWC as Jest does, launches, prints the pid, exits.
    const script = `
      const { transformSync } = require('@swc/core');
      const { readFileSync } = require('node:fs');
      require.extensions['.ts'] = (m, f) => m._compile(transformSync(readFileSync(f, 'utf8'), {
        filename: f, jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' },
      }).code, f);
      require(${JSON.stringify(index)}).launchQemu(JSON.parse(process.argv[1])).then(
        (h) => { process.stdout.write(String(h.pid)); process.exit(0); },
        (e) => { console.error(e); process.exit(1); });`;
    const child = spawn(process.execPath, ['-e', script, JSON.stringify(options)], {
      cwd: join(__dirname, '../../../../../..'),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect({ code, err }).toEqual({ code: 0, err: '' });
    const pid = Number(out);

    // The launcher is gone; QEMU is not our child, and was re-parented.
    await expect(vmStatus(dir)).resolves.toEqual({ alive: true, pid });
    const ppid = Number(read(`/proc/${pid}/stat`).split(') ')[1]?.split(' ')[1]);
    expect(ppid).not.toBe(child.pid);
    expect(ppid).not.toBe(process.pid);
    expect(await isAlive(pid, dir)).toBe(true);
    // Driven again over QMP (the launcher's connection died with it).
    const qmp = await QmpClient.connect(vmPaths(dir).qmpSocket, { timeoutMs: 5000 });
    try {
      await expect(qmp.queryStatus()).resolves.toEqual({ status: 'prelaunch', running: false });
    } finally {
      qmp.close();
    }
    await expect(killVm(dir)).resolves.toBe(pid);
    await expect(vmStatus(dir)).resolves.toEqual({ alive: false });
    await cleanupVm(dir, id);
    await expectGone(id, dir, pid);
  });
});

describe('failures and half-created VMs', () => {
  it('cleans up a VM that only has a dir, one that only has a cgroup, and one that has nothing', async () => {
    const dirOnly = env.id('half-dir');
    const dir = env.dir(dirOnly);
    execFileSync('mkdir', ['-p', join(dir, 'sub')]);
    writeFileSync(vmPaths(dir).pidfile, '1\n'); // pid 1 is never ours to kill
    await cleanupVm(dir, dirOnly);
    await expectGone(dirOnly, dir);
    expect(existsSync('/proc/1')).toBe(true);

    const cgroupOnly = env.id('half-cg');
    await createCgroup(planCgroup(layout, cgroupOnly, { cpuMillis: 100, memoryBytes: MEMORY_BYTES }));
    expect(cgroupLeaves(layout, cgroupOnly).every((leaf) => existsSync(leaf))).toBe(true);
    await cleanupVm(env.dir(cgroupOnly), cgroupOnly);
    await expectGone(cgroupOnly, env.dir(cgroupOnly));

    await cleanupVm(env.dir(env.id('nothing')), env.id('nothing'));
  });

  it('does not trust a pidfile pointing at another process (pid reuse, or a hostile QEMU)', async () => {
    const id = env.id('liar');
    const dir = env.dir(id);
    env.track(id);
    execFileSync('mkdir', ['-p', dir]);
    const bystander = spawn('/bin/sleep', ['30'], { stdio: 'ignore' });
    try {
      writeFileSync(vmPaths(dir).pidfile, `${bystander.pid}\n`);
      await expect(vmStatus(dir)).resolves.toEqual({ alive: false });
      await cleanupVm(dir, id);
      expect(await waitUntilGone(bystander.pid ?? 0, 100)).toBe(false); // still alive: not killed
    } finally {
      bystander.kill('SIGKILL');
    }
  });

  it('fails with IMAGE_NOT_READABLE before creating anything when the VM uid cannot read the firmware', async () => {
    const id = env.id('unreadable');
    const error = await launch('unreadable', { boot: { kind: 'firmware', firmware: env.rootOnlyDisk } }).catch(
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: 'IMAGE_NOT_READABLE' });
    expect((error as Error).message).toMatch(/img \(mode 0700, owner 0:0\) is not searchable/);
    await expectGone(id, env.dir(id));
  });

  it('fails with LAUNCH_FAILED, QEMU’s own message, and no process or cgroup when QEMU refuses its arguments', async () => {
    const id = env.id('badarg');
    const dir = env.dir(id);
    env.track(id);
    const { args } = pausedVmCommand(dir);
    const uid = await allocateVmUid(env.root, UID_RANGE);
    const error = await launchQemu({
      id,
      dir,
      args: [...args, '-device', 'no-such-device'],
      uid,
      gid: uid,
      cgroup: { cpuMillis: 500, memoryBytes: MEMORY_BYTES },
    }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'LAUNCH_FAILED' });
    expect((error as Error).message).toMatch(/no-such-device/);
    for (const leaf of cgroupLeaves(layout, id)) expect(existsSync(leaf)).toBe(false);
    await expect(vmStatus(dir)).resolves.toEqual({ alive: false });
    expect(readdirSync(dir)).toContain('qemu.log'); // kept until cleanup: it says why
    await cleanupVm(dir, id);
    await expectGone(id, dir);
  });
});
