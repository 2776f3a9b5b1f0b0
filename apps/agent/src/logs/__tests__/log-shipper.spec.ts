import { EventEmitter } from 'node:events';
import type { PodLogEntry } from '@caas/log-stream-contract';
import { POD_LOG_LINE_MAX_BYTES } from '@caas/log-stream-contract';
import type { SandboxEvents } from '@caas/sandbox';
import type { LogAppender, LogLimits, LogPodSpec } from '../log-shipper';
import { LogShipping, REDACTED } from '../log-shipper';

const POD = '33333333-3333-4333-8333-333333333333';
const POD2 = '44444444-4444-4444-8444-444444444444';
const TENANT = '11111111-1111-4111-8111-111111111111';

class FakeAppender implements LogAppender {
  readonly batches: Array<{ podId: string; entries: PodLogEntry[] }> = [];
  failing = false;
  calls = 0;
  appendLogs(podId: string, entries: PodLogEntry[]): Promise<void> {
    this.calls++;
    if (this.failing) return Promise.reject(new Error('redis down'));
    this.batches.push({ podId, entries: entries.map((e) => ({ ...e })) });
    return Promise.resolve();
  }
  lines(podId = POD): string[] {
    return this.entries(podId).map((e) => e.line);
  }
  entries(podId = POD): PodLogEntry[] {
    return this.batches.filter((b) => b.podId === podId).flatMap((b) => b.entries);
  }
}

const spec = (secrets: string[] = [], tenantId = TENANT): LogPodSpec => ({
  tenantId,
  containers: [
    {
      name: 'web',
      image: 'x',
      imageDigest: null,
      command: [],
      args: [],
      env: [
        { name: 'PLAIN', value: 'visible', secret: false },
        ...secrets.map((value, i) => ({ name: `S${i}`, value, secret: true })),
      ],
      workingDir: null,
      user: null,
      cpuLimitMillis: null,
      memoryLimitMiB: null,
    },
  ],
});

let clock = 1_000_000;
let seq = 0;
let appender: FakeAppender;

function setup(limits: Partial<LogLimits> = {}) {
  appender = new FakeAppender();
  const shipping = new LogShipping({ appender, limits, now: () => clock });
  const vm = new EventEmitter<SandboxEvents>();
  const out = (data: string, source = 'web', stream: 'stdout' | 'stderr' = 'stdout') =>
    vm.emit('output', { seq: ++seq, source, stream, data: Buffer.from(data, 'utf8') });
  return { shipping, vm, out };
}

beforeEach(() => {
  jest.useFakeTimers();
  clock = 1_000_000;
});
afterEach(() => jest.useRealTimers());

describe('PodLogShipper', () => {
  it('splits chunks into lines, keeps partial lines across chunks, separates containers and streams', async () => {
    const { shipping, vm, out } = setup();
    const shipper = shipping.open(POD, vm, ['web', 'side']);
    shipper.configure(spec());
    out('hel');
    out('lo\nwor');
    out('par', 'web', 'stderr');
    out('x\n', 'side');
    out('ld\r\n\n');
    out('tial\n', 'web', 'stderr');
    out('exec output\n', 'exec-1'); // not a container of the pod
    await jest.advanceTimersByTimeAsync(100);
    expect(appender.entries().map((e) => [e.container, e.stream, e.line])).toEqual([
      ['web', 'stdout', 'hello'],
      ['side', 'stdout', 'x'],
      ['web', 'stdout', 'world'],
      ['web', 'stdout', ''],
      ['web', 'stderr', 'partial'],
    ]);
    expect(appender.entries()[0]?.timeMs).toBe(clock);
    out('no newline yet');
    await jest.advanceTimersByTimeAsync(1000);
    expect(appender.lines()).not.toContain('no newline yet');
    await shipper.close();
    expect(appender.lines().at(-1)).toBe('no newline yet');
  });

  it('cuts a line without a newline at POD_LOG_LINE_MAX_BYTES, without splitting a character', async () => {
    const { shipping, vm, out } = setup();
    const shipper = shipping.open(POD, vm, ['web']);
    shipper.configure(spec());
    out('a'.repeat(POD_LOG_LINE_MAX_BYTES - 1) + 'é' + 'b'.repeat(10));
    out('b'.repeat(POD_LOG_LINE_MAX_BYTES) + '\n');
    await shipper.close();
    const lines = appender.lines();
    expect(lines.every((l) => Buffer.byteLength(l) <= POD_LOG_LINE_MAX_BYTES)).toBe(true);
    expect(lines.join('')).toBe('a'.repeat(POD_LOG_LINE_MAX_BYTES - 1) + 'é' + 'b'.repeat(POD_LOG_LINE_MAX_BYTES + 10));
    expect(lines[0]).toBe('a'.repeat(POD_LOG_LINE_MAX_BYTES - 1));
  });

  it('redacts secret env values, also across chunk boundaries and at a forced cut; not the plain ones', async () => {
    const { shipping, vm, out } = setup();
    const shipper = shipping.open(POD, vm, ['web']);
    shipper.configure(spec(['hunter2', 's3cr3t-t0ken']));
    out('password=hunter2 and hunter2\n');
    out('token: s3cr');
    out('3t-t0ken visible\n');
    out('x'.repeat(POD_LOG_LINE_MAX_BYTES - 3) + 'hunter2' + 'y'.repeat(100));
    out('\n');
    await shipper.close();
    const lines = appender.lines();
    expect(lines.slice(0, 2)).toEqual([`password=${REDACTED} and ${REDACTED}`, `token: ${REDACTED} visible`]);
    expect(lines.join('\n')).not.toMatch(/hunter|s3cr|t0ken/);
    expect(lines.join('')).toContain(REDACTED);
  });

  it('holds the output of an adopted VM until its secrets are known', async () => {
    const { shipping, vm, out } = setup();
    const shipper = shipping.open(POD, vm, ['web']);
    out('early hunter2\n');
    await jest.advanceTimersByTimeAsync(500);
    expect(appender.calls).toBe(0);
    shipper.configure(spec(['hunter2']));
    await jest.advanceTimersByTimeAsync(100);
    expect(appender.lines()).toEqual([`early ${REDACTED}`]);
    await shipper.close();
  });

  it('drops lines over the pod budget, counts them, and ships one marker when shipping resumes', async () => {
    const { shipping, vm, out } = setup({ podLinesPerSecond: 10, podBurst: 20 });
    const shipper = shipping.open(POD, vm, ['web']);
    shipper.configure(spec());
    for (let i = 0; i < 50; i++) out(`line ${i}\n`);
    await jest.advanceTimersByTimeAsync(100);
    expect(appender.lines()).toHaveLength(20);
    expect(shipper.stats().dropped.rateLimited).toBe(30);
    clock += 1000; // 10 more tokens
    out('back\n');
    await jest.advanceTimersByTimeAsync(100);
    expect(appender.lines().slice(20)).toEqual(['[caas: 30 lines dropped: log rate limit]', 'back']);
    expect(appender.entries().at(-2)?.stream).toBe('stderr');
    await shipper.close();
  });

  it('shares a tenant budget across the tenant’s pods on the node, not with other tenants', async () => {
    const { shipping, vm, out } = setup({
      podLinesPerSecond: 100,
      podBurst: 100,
      tenantLinesPerSecond: 5,
      tenantBurst: 30,
    });
    const vm2 = new EventEmitter<SandboxEvents>();
    const vm3 = new EventEmitter<SandboxEvents>();
    const a = shipping.open(POD, vm, ['web']);
    const b = shipping.open(POD2, vm2, ['web']);
    const otherPod = '55555555-5555-4555-8555-555555555555';
    const c = shipping.open(otherPod, vm3, ['web']);
    a.configure(spec());
    b.configure(spec());
    c.configure(spec([], '66666666-6666-4666-8666-666666666666'));
    for (let i = 0; i < 20; i++) out(`a${i}\n`);
    for (let i = 0; i < 20; i++)
      vm2.emit('output', { seq: i, source: 'web', stream: 'stdout', data: Buffer.from(`b${i}\n`) });
    for (let i = 0; i < 40; i++)
      vm3.emit('output', { seq: i, source: 'web', stream: 'stdout', data: Buffer.from(`c${i}\n`) });
    await jest.advanceTimersByTimeAsync(100);
    expect(appender.lines(POD)).toHaveLength(20);
    expect(appender.lines(POD2)).toHaveLength(10);
    expect(b.stats().dropped.rateLimited).toBe(10);
    expect(appender.lines(otherPod)).toHaveLength(30);
    clock += 1000;
    vm2.emit('output', { seq: 99, source: 'web', stream: 'stdout', data: Buffer.from('b again\n') });
    await jest.advanceTimersByTimeAsync(100);
    expect(appender.lines(POD2).slice(10)).toEqual(['[caas: 10 lines dropped: log rate limit]', 'b again']);
    await Promise.all([a.close(), b.close(), c.close()]);
  });

  it('ships a marker for a gap and ends the partial lines there', async () => {
    const { shipping, vm, out } = setup();
    const shipper = shipping.open(POD, vm, ['web']);
    shipper.configure(spec());
    out('before the ga');
    vm.emit('gap', { fromSeq: 5, toSeq: 9 });
    out('p after\n');
    await jest.advanceTimersByTimeAsync(100);
    expect(appender.lines()).toEqual([
      'before the ga',
      "[caas: output lost: 5 chunks overflowed the VM's buffer]",
      'p after',
    ]);
    await shipper.close();
  });

  it('batches: appends after the flush interval, or at once when a batch is full', async () => {
    const { shipping, vm, out } = setup({ batchLines: 5 });
    const shipper = shipping.open(POD, vm, ['web']);
    shipper.configure(spec());
    out('1\n2\n');
    await jest.advanceTimersByTimeAsync(50);
    expect(appender.calls).toBe(0);
    await jest.advanceTimersByTimeAsync(50);
    expect(appender.batches.map((b) => b.entries.length)).toEqual([2]);
    out('1\n2\n3\n4\n5\n6\n');
    await jest.advanceTimersByTimeAsync(0);
    expect(appender.batches.map((b) => b.entries.length)).toEqual([2, 5]);
    await shipper.close();
    expect(appender.batches.map((b) => b.entries.length)).toEqual([2, 5, 1]);
  });

  it('under a failing appender: retries a bounded number of times, then drops; the queue stays bounded', async () => {
    const { shipping, vm, out } = setup({ maxQueuedLines: 20, batchLines: 10, maxAttempts: 3, retryDelayMs: 10 });
    const shipper = shipping.open(POD, vm, ['web']);
    shipper.configure(spec());
    appender.failing = true;
    for (let i = 0; i < 1000; i++) out(`line ${i}\n`);
    expect(shipper.stats().queued).toBeLessThanOrEqual(21);
    await jest.advanceTimersByTimeAsync(10_000);
    const { dropped } = shipper.stats();
    expect(dropped.failed).toBeGreaterThan(0);
    expect(dropped.failed + dropped.backlog).toBe(1000);
    expect(appender.calls).toBe((dropped.failed / 10) * 3);
    appender.failing = false;
    out('recovered\n');
    await jest.advanceTimersByTimeAsync(100);
    expect(appender.lines()).toEqual([`[caas: ${dropped.backlog} lines dropped: log shipping backlog]`, 'recovered']);
    await shipper.close();
  });

  it('close detaches from the VM and stops shipping', async () => {
    const { shipping, vm, out } = setup();
    const shipper = shipping.open(POD, vm, ['web']);
    shipper.configure(spec());
    out('one\n');
    await shipper.close();
    out('two\n');
    await jest.advanceTimersByTimeAsync(1000);
    expect(appender.lines()).toEqual(['one']);
    expect(vm.listenerCount('output')).toBe(0);
    expect(vm.listenerCount('gap')).toBe(0);
  });
});
