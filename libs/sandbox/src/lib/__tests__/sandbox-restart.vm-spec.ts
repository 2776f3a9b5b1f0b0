// The host process that drives sandboxes dies (an agent crash or upgrade) while its VMs run on: a new process
// adopts them, finishes a boot the old one had interrupted, and resumes output where the old one stopped.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { SandboxManager } from '../sandbox-manager';
import type { SandboxSpec } from '../sandbox-spec';
import { tsRegisterPath } from '@caas/testing';
import {
  OutputLog,
  container,
  expectNothingLeft,
  guest,
  image,
  openManager,
  scratchDir,
  waitFor,
} from './support/vm-harness';

jest.setTimeout(180_000);

interface HostLine {
  type: 'ready' | 'output' | 'gap' | 'error';
  seq?: number;
  data?: string;
  message?: string;
}

/** Starts the separate host process; its JSON lines land in `lines`. */
function startHost(stateDir: string, spec: SandboxSpec): { child: ChildProcess; lines: HostLine[] } {
  const support = join(__dirname, 'support');
  const options = { stateDir, ...guest, allowTcg: true, bootTimeoutMs: 90_000 };
  const child = spawn(
    process.execPath,
    ['-r', tsRegisterPath(), join(support, 'host-process.ts'), JSON.stringify(options), JSON.stringify(spec)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const lines: HostLine[] = [];
  if (!child.stdout) throw new Error('no stdout pipe');
  createInterface({ input: child.stdout }).on('line', (line) => lines.push(JSON.parse(line) as HostLine));
  return { child, lines };
}

function killHost(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

/** Adopts with a fresh manager, collecting each adopted sandbox's output from the moment it is tracked. */
async function adoptOne(stateDir: string, id: string) {
  const adopter = await openManager(stateDir);
  const logs = new Map<string, OutputLog>();
  adopter.on('sandbox', (sandbox) => logs.set(sandbox.id, new OutputLog(sandbox)));
  const report = await adopter.adopt();
  const sandbox = report.adopted.find((s) => s.id === id);
  const log = logs.get(id);
  if (!sandbox || !log) throw new Error(`${id} was not adopted: ${JSON.stringify(report.lost)}`);
  return { manager: adopter, report, sandbox, log };
}

/** `line-<n>` numbers in the order seen. */
const counters = (text: string) => [...text.matchAll(/line-(\d+)/g)].map((m) => Number(m[1]));

describe('sandbox adoption after the host process restarts (real QEMU)', () => {
  const scratch = scratchDir();
  const stateDir = join(scratch.dir, 's');
  let busybox: { path: string; fsType: 'ext4' };
  let manager: SandboxManager | undefined;

  beforeAll(() => {
    busybox = image(scratch.dir, 'busybox');
  });

  afterAll(async () => {
    await Promise.all((manager?.list() ?? []).map((sandbox) => sandbox.destroy().catch(() => undefined)));
    scratch.remove();
  });

  it('adopts a running sandbox and loses none of the output produced while no host was there', async () => {
    const spec: SandboxSpec = {
      id: 'adopt',
      vcpus: 1,
      memoryMiB: 192,
      containers: [container('counter', busybox, 'i=0; while :; do echo line-$i; i=$((i+1)); sleep 0.05; done')],
    };
    const host = startHost(stateDir, spec);
    await waitFor('the first host to see output', () => host.lines.filter((l) => l.type === 'output').length >= 5);
    await killHost(host.child);
    const seenBefore = counters(
      host.lines
        .filter((l) => l.type === 'output')
        .map((l) => l.data)
        .join(''),
    );
    // The container keeps writing with no host connected: well under the guest's 1 MiB ring.
    await new Promise((resolve) => setTimeout(resolve, 2_000));

    const adoption = await adoptOne(stateDir, 'adopt');
    manager = adoption.manager;
    const { sandbox, log, report } = adoption;
    expect(report.lost).toEqual([]);
    expect(report.adopted.map((s) => s.id)).toEqual(['adopt']);
    expect(sandbox.container('counter')?.state).toBe('running');
    await waitFor('output after adoption', () => counters(log.text('counter')).length > 40);

    const seenAfter = counters(log.text('counter'));
    expect(log.gaps).toEqual([]);
    // Resumed from the persisted position: at most a few lines seen twice (at-least-once), none missing.
    const all = new Set([...seenBefore, ...seenAfter]);
    const last = Math.max(...all);
    for (let n = 0; n <= last; n++) expect(all.has(n)).toBe(true);
    expect(seenAfter[0]).toBeLessThanOrEqual(Math.max(...seenBefore) + 1);
    // In order after the resume point.
    expect(seenAfter).toEqual([...seenAfter].sort((a, b) => a - b));

    await sandbox.destroy();
    await expectNothingLeft(sandbox, stateDir);
  });

  it('reports output the guest could not keep while no host was there as a gap, and carries on', async () => {
    const spec: SandboxSpec = {
      id: 'flood',
      vcpus: 1,
      memoryMiB: 192,
      // 3 MB while nobody listens: three times the guest's 1 MiB ring.
      containers: [
        container(
          'flood',
          busybox,
          'sleep 4; yes 0123456789abcdef | head -c 3000000; echo; echo tail-marker; sleep 600',
        ),
      ],
    };
    const host = startHost(stateDir, spec);
    await waitFor('the first host to be ready', () => host.lines.some((l) => l.type === 'ready'));
    await killHost(host.child);
    await new Promise((resolve) => setTimeout(resolve, 9_000));

    const adoption = await adoptOne(stateDir, 'flood');
    manager = adoption.manager;
    const { sandbox, log } = adoption;
    await waitFor('the end of the flood', () => log.text('flood').includes('tail-marker'));
    expect(log.gaps.length).toBeGreaterThan(0);
    const lost = log.gaps.reduce((sum, gap) => sum + gap.toSeq - gap.fromSeq + 1, 0);
    const stats = await sandbox.stats();
    // The guest counts chunks evicted before it ever wrote them; the host's gap also covers any it wrote to the
    // old host after that host's last persisted position.
    expect(stats.output.droppedChunks).toBeGreaterThan(0);
    expect(lost).toBeGreaterThanOrEqual(stats.output.droppedChunks);
    // What survived is the newest output, at most the ring's size, and ends with the container's last words.
    const kept = log.text('flood');
    expect(kept.length).toBeLessThanOrEqual(1024 * 1024 + 16_384);
    expect(kept.endsWith('tail-marker\n')).toBe(true);
    await sandbox.destroy();
    await expectNothingLeft(sandbox, stateDir);
  });

  it('finishes a boot that a host restart interrupted', async () => {
    const spec: SandboxSpec = {
      id: 'midboot',
      vcpus: 1,
      memoryMiB: 192,
      containers: [container('late', busybox, 'echo started-late; sleep 600')],
    };
    const host = startHost(stateDir, spec);
    // Killed as soon as QEMU was launched and recorded, long before the guest answers (a TCG boot takes seconds).
    await waitFor('the launch record', () => existsSync(join(stateDir, 'midboot', 'sandbox.json')), 30_000);
    await killHost(host.child);
    expect(host.lines.some((l) => l.type === 'ready')).toBe(false);

    const adoption = await adoptOne(stateDir, 'midboot');
    manager = adoption.manager;
    const { sandbox, log } = adoption;
    await waitFor('the container to run', () => log.text('late').includes('started-late'));
    expect(sandbox.container('late')?.state).toBe('running');
    await sandbox.destroy();
    await expectNothingLeft(sandbox, stateDir);
  });

  it('hands sandboxes over on a graceful host shutdown (detachAll), positions included', async () => {
    const first = await openManager(stateDir);
    const firstLog = new Map<string, OutputLog>();
    first.on('sandbox', (sandbox) => firstLog.set(sandbox.id, new OutputLog(sandbox)));
    await first.create({
      id: 'handover',
      vcpus: 1,
      memoryMiB: 192,
      containers: [container('ticker', busybox, 'i=0; while :; do echo line-$i; i=$((i+1)); sleep 0.1; done')],
    });
    await waitFor('output', () => counters(firstLog.get('handover')?.text('ticker') ?? '').length >= 3);
    await first.detachAll();
    expect(first.list()).toEqual([]);
    const seenBefore = counters(firstLog.get('handover')?.text('ticker') ?? '');

    const adoption = await adoptOne(stateDir, 'handover');
    manager = adoption.manager;
    const { sandbox, log } = adoption;
    await waitFor('output after the handover', () => counters(log.text('ticker')).length >= 5);
    // Positions were written at detach: the new host resumes right after the last line the old one saw.
    expect(counters(log.text('ticker'))[0]).toBe(Math.max(...seenBefore) + 1);
    await sandbox.destroy();
    await expectNothingLeft(sandbox, stateDir);
  });

  it('cleans up a sandbox whose VM died while no host was watching', async () => {
    const spec: SandboxSpec = {
      id: 'orphan',
      vcpus: 1,
      memoryMiB: 192,
      containers: [container('idle', busybox, 'sleep 600')],
    };
    const host = startHost(stateDir, spec);
    await waitFor('the first host to be ready', () => host.lines.some((l) => l.type === 'ready'));
    const pid = host.lines.find((l) => l.type === 'ready') as unknown as { pid: number };
    await killHost(host.child);
    process.kill(pid.pid, 'SIGKILL');
    await waitFor('QEMU to be gone', () => !existsSync(`/proc/${pid.pid}`), 10_000);

    manager = await openManager(stateDir);
    const report = await manager.adopt();
    expect(report.adopted).toEqual([]);
    expect(report.lost).toEqual([{ id: 'orphan', failure: expect.objectContaining({ reason: 'QemuExited' }) }]);
    expect(existsSync(join(stateDir, 'orphan'))).toBe(false);
  });
});
