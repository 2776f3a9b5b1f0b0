// Real pod VMs under QEMU (TCG here): containers, isolation, OOM, stop/exec/stats, and every fault a user or
// the host can cause, each ending in a clear state with nothing left behind on the host.
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SandboxFailedError, type Sandbox } from '../sandbox';
import { SandboxSpecError } from '../sandbox-spec';
import type { SandboxManager } from '../sandbox-manager';
import {
  OutputLog,
  container,
  expectNothingLeft,
  image,
  openManager,
  buildHangingInitrd,
  scratchDir,
  waitFor,
} from './support/vm-harness';

jest.setTimeout(180_000);

describe('pod sandboxes (real QEMU)', () => {
  const scratch = scratchDir();
  const stateDir = join(scratch.dir, 's');
  let manager: SandboxManager;
  let busybox: { path: string; fsType: 'ext4' };
  // Output is collected from the moment a sandbox is tracked: containers print before create() resolves.
  const logs = new Map<Sandbox, OutputLog>();
  const logOf = (sandbox: Sandbox): OutputLog => {
    const log = logs.get(sandbox);
    if (!log) throw new Error(`no output log for ${sandbox.id}`);
    return log;
  };

  beforeAll(async () => {
    manager = await openManager(stateDir);
    busybox = image(scratch.dir, 'busybox');
    manager.on('sandbox', (sandbox) => logs.set(sandbox, new OutputLog(sandbox)));
  });

  afterAll(async () => {
    await Promise.all(manager.list().map((sandbox) => sandbox.destroy().catch(() => undefined)));
    scratch.remove();
  });

  it('reports the accelerator it chose and why', () => {
    expect(['kvm', 'tcg']).toContain(manager.accelerator.accel);
    expect(manager.accelerator.reason.length).toBeGreaterThan(0);
  });

  it('runs two containers isolated from each other, with their own streams and exit codes', async () => {
    const marker = join('/tmp', `host-marker-${process.pid}`);
    writeFileSync(marker, 'host secret');
    const sandbox = await manager.create({
      id: 'two',
      vcpus: 1,
      memoryMiB: 192,
      containers: [
        container(
          'alpha',
          busybox,
          `sleep 1; echo "out-$NAME"; echo "err-$NAME" >&2; hostname; ps -o pid,comm | tail -n +2 | wc -l; ` +
            `ls ${marker} 2>&1; cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' '; exit 3`,
        ),
        container('beta', busybox, 'sleep 1; echo "out-$NAME"; ps -o comm | tail -n +2 | sort | tr "\\n" " "'),
      ],
    });
    const log = logOf(sandbox);
    expect(sandbox.accel).toBe(manager.accelerator.accel);
    const [alpha, beta] = await Promise.all([sandbox.waitForExit('alpha'), sandbox.waitForExit('beta')]);
    expect(alpha).toMatchObject({ state: 'exited', exitCode: 3, reason: 'Error', oomKilled: false });
    expect(beta).toMatchObject({ state: 'exited', exitCode: 0, reason: 'Completed' });
    const alphaOut = log.text('alpha').split('\n');
    expect(alphaOut[0]).toBe('out-alpha');
    expect(alphaOut[1]).toBe('alpha'); // its own hostname
    // sh, ps, tail, wc (+ the shim as PID 1 when visible): nothing of beta, of the guest agent or of the host
    expect(Number(alphaOut[2])).toBeLessThanOrEqual(5);
    expect(alphaOut[3]).toMatch(/No such file or directory/); // the host's files are not there
    expect(alphaOut.slice(4).filter(Boolean)).toEqual(['lo']); // no network device at all
    expect(log.text('alpha', 'stderr')).toBe('err-alpha\n');
    expect(log.text('beta')).toMatch(/^out-beta\n/);
    expect(log.text('beta')).not.toMatch(/sleep|alpha/);
    expect(log.text('beta', 'stderr')).toBe('');
    await sandbox.destroy();
    expect(sandbox.state).toBe('stopped');
    await expectNothingLeft(sandbox, stateDir);
  });

  it('kills only the container past its memory limit, as OOMKilled, while the other runs on', async () => {
    const sandbox = await manager.create({
      id: 'oom',
      vcpus: 1,
      memoryMiB: 256,
      containers: [
        container('hog', busybox, 'a=xxxxxxxxxxxxxxxx; while :; do a="$a$a"; done', {
          limits: { memoryBytes: 24 * 1024 * 1024 },
        }),
        container('steady', busybox, 'i=0; while :; do echo tick-$i; i=$((i+1)); sleep 0.2; done'),
      ],
    });
    const log = logOf(sandbox);
    const hog = await sandbox.waitForExit('hog');
    expect(hog).toMatchObject({ state: 'exited', reason: 'OOMKilled', oomKilled: true, signal: 9 });
    const ticks = log.text('steady').length;
    await waitFor('steady to keep ticking', () => log.text('steady').length > ticks);
    expect(sandbox.container('steady')?.state).toBe('running');
    await sandbox.destroy();
    await expectNothingLeft(sandbox, stateDir);
  });

  it('execs inside a container, reports stats, and stops containers with a grace period', async () => {
    const sandbox = await manager.create({
      id: 'ops',
      vcpus: 1,
      memoryMiB: 192,
      containers: [
        container('polite', busybox, 'trap "echo got-term; exit 0" TERM; while :; do sleep 0.1; done', {
          limits: { memoryBytes: 64 * 1024 * 1024, cpuMillis: 500 },
        }),
        container('stubborn', busybox, 'trap "echo ignoring" TERM; while :; do sleep 0.1; done'),
      ],
    });
    const log = logOf(sandbox);
    await waitFor('both running', () => sandbox.containers().every((c) => c.state === 'running'));

    const exec = await sandbox.exec('polite', ['/bin/sh', '-c', 'echo exec-out; echo exec-err >&2; hostname; exit 7']);
    const execStatus = await exec.exited;
    expect(execStatus).toMatchObject({ execId: exec.execId, container: 'polite', exitCode: 7 });
    expect(log.text(exec.execId)).toBe('exec-out\npolite\n');
    expect(log.text(exec.execId, 'stderr')).toBe('exec-err\n');

    const stats = await sandbox.stats();
    const polite = stats.containers.find((c) => c.name === 'polite');
    expect(polite?.memoryBytes).toBeGreaterThan(0);
    expect(polite?.memoryLimitBytes).toBe(64 * 1024 * 1024);
    expect(polite?.pids).toBeGreaterThan(0);
    expect(stats.guest.memTotalBytes).toBeGreaterThan(100 * 1024 * 1024);

    await sandbox.stopContainer('polite', 5_000);
    expect(await sandbox.waitForExit('polite')).toMatchObject({ exitCode: 0, reason: 'Completed' });
    expect(log.text('polite')).toContain('got-term');

    const before = Date.now();
    await sandbox.stopContainer('stubborn', 1_000);
    expect(await sandbox.waitForExit('stubborn')).toMatchObject({ signal: 9, reason: 'Signaled' });
    expect(Date.now() - before).toBeGreaterThanOrEqual(900);

    await expect(sandbox.exec('nope', ['/bin/true'])).rejects.toThrow(/NOT_FOUND/);
    await sandbox.shutdown(1_000);
    expect(sandbox.state).toBe('stopped');
    await expectNothingLeft(sandbox, stateDir);
  });

  it('ends containers whose command is missing or that exit at once with clear reasons', async () => {
    const sandbox = await manager.create({
      id: 'faults',
      vcpus: 1,
      memoryMiB: 192,
      containers: [
        { ...container('missing', busybox, ''), argv: ['/no/such/command'] },
        { ...container('relative', busybox, ''), argv: ['no-such-command'] },
        container('quick', busybox, 'exit 0'),
        container('noexec', busybox, '', { argv: ['/etc/passwd'] }),
        container(
          'identity',
          busybox,
          'id -u; id -g; id -G; pwd; echo "$GREETING"; touch /home/app/mine && echo wrote',
          {
            env: ['PATH=/bin', 'GREETING=hello from env'],
            workingDir: '/home/app',
            user: { uid: 1000, gid: 1000, additionalGids: [4242] },
          },
        ),
        container('full', busybox, 'dd if=/dev/zero of=/big bs=1M count=32 2>&1; mount -t tmpfs x /tmp 2>&1; exit 0', {
          writableLayerBytes: 8 * 1024 * 1024,
        }),
      ],
    });
    const log = logOf(sandbox);
    expect(await sandbox.waitForExit('missing')).toMatchObject({ exitCode: 127, reason: 'CommandNotFound' });
    expect(await sandbox.waitForExit('relative')).toMatchObject({ exitCode: 127, reason: 'CommandNotFound' });
    expect(await sandbox.waitForExit('quick')).toMatchObject({ exitCode: 0, reason: 'Completed' });
    expect(await sandbox.waitForExit('noexec')).toMatchObject({ exitCode: 126, reason: 'PermissionDenied' });
    expect(await sandbox.waitForExit('identity')).toMatchObject({ exitCode: 0 });
    expect(log.text('identity')).toBe('1000\n1000\n1000 4242\n/home/app\nhello from env\nwrote\n');
    expect(await sandbox.waitForExit('full')).toMatchObject({ exitCode: 0 });
    expect(log.text('full')).toMatch(/No space left on device/); // the writable layer has its size limit
    expect(log.text('full')).toMatch(/mount: .*(denied|not permitted)/i); // no mount: CAP_SYS_ADMIN is dropped
    expect(sandbox.state).toBe('running'); // the VM is fine
    await sandbox.destroy();
    await expectNothingLeft(sandbox, stateDir);
  });

  it('reports a guest kernel panic as the sandbox failure and cleans up', async () => {
    // Containers cannot reach /proc/sysrq-trigger (masked), so the guest is made to panic the way an operator's
    // panic_on_oom setting would: a container without a memory limit exhausts the whole guest.
    const sandbox = await manager.create({
      id: 'panic',
      vcpus: 1,
      memoryMiB: 128,
      kernelParams: ['sysctl.vm.panic_on_oom=1'],
      containers: [container('crash', busybox, 'echo x > /proc/sysrq-trigger; a=xxxxxxxx; while :; do a="$a$a"; done')],
    });
    await sandbox.ended();
    expect(sandbox.state).toBe('failed');
    expect(sandbox.failure).toMatchObject({ reason: 'GuestPanic' });
    expect(sandbox.failure?.consoleTail).toMatch(/Kernel panic.*out of memory/i);
    await expectNothingLeft(sandbox, stateDir);
  });

  it('reports a guest that panics during boot as GuestPanic, not as a generic failure', async () => {
    const error = await manager
      .create({
        id: 'bootpanic',
        vcpus: 1,
        memoryMiB: 128,
        kernelParams: ['rdinit=/no/such/init'], // the kernel finds no init: "Kernel panic - not syncing"
        containers: [container('a', busybox, 'true')],
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SandboxFailedError);
    expect((error as SandboxFailedError).failure).toMatchObject({ reason: 'GuestPanic' });
    expect((error as SandboxFailedError).failure.consoleTail).toMatch(/Kernel panic/);
    expect(manager.list()).toEqual([]);
    expect(readdirSync(stateDir)).not.toContain('bootpanic');
  });

  it('reports QEMU killed from outside and cleans up', async () => {
    const sandbox = await manager.create({
      id: 'killed',
      vcpus: 1,
      memoryMiB: 192,
      containers: [container('idle', busybox, 'sleep 600')],
    });
    process.kill(sandbox.pid, 'SIGKILL');
    await sandbox.ended();
    expect(sandbox.failure).toMatchObject({ reason: 'QemuKilled' });
    await expectNothingLeft(sandbox, stateDir);
  });

  it('refuses a bad spec before starting anything', async () => {
    await expect(
      manager.create({ id: 'Bad_Id', vcpus: 1, memoryMiB: 128, containers: [container('a', busybox, 'true')] }),
    ).rejects.toThrow(SandboxSpecError);
    await expect(
      manager.create({
        id: 'dupes',
        vcpus: 1,
        memoryMiB: 128,
        containers: [container('a', busybox, 'true'), container('a', busybox, 'true')],
      }),
    ).rejects.toThrow(/duplicate container name/);
    await expect(
      manager.create({
        id: 'noargv',
        vcpus: 1,
        memoryMiB: 128,
        containers: [{ ...container('a', busybox, ''), argv: [] }],
      }),
    ).rejects.toThrow(SandboxSpecError);
    expect(manager.list()).toEqual([]);
  });

  it('fails a VM that never becomes ready with BootTimeout and leaves nothing behind', async () => {
    // An initrd whose init never starts a guest agent: the kernel boots, nothing ever answers.
    const stuck = await openManager(join(scratch.dir, 't'), {
      bootTimeoutMs: 8_000,
      initrd: buildHangingInitrd(join(scratch.dir, 'hang.cpio')),
    });
    const error = await stuck
      .create({ id: 'stuck', vcpus: 1, memoryMiB: 128, containers: [container('a', busybox, 'true')] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SandboxFailedError);
    expect((error as SandboxFailedError).failure.reason).toBe('BootTimeout');
    expect(stuck.list()).toEqual([]);
    expect(readdirSync(join(scratch.dir, 't'))).toEqual([]);
  });
});
