import { SandboxFailedError } from '@caas/sandbox';
import type { Heartbeat } from '@caas/queue-contracts';
import { PodRuntime, type PodRuntimeOptions } from '../pod-runtime';
import { sandboxIdOf, parseSandboxId } from '../pod-spec';
import { FakeHost, FakeImages, FakeSandbox, FakeTransport, desiredPod, desiredSet, fakeRuntimeOptions } from './fakes';

const POD = desiredPod().podId;

function setup(overrides: Partial<PodRuntimeOptions> = {}) {
  const transport = new FakeTransport();
  const host = new FakeHost();
  const images = new FakeImages();
  const runtime = new PodRuntime({ ...fakeRuntimeOptions(transport, host, images), backoffBaseMs: 10, ...overrides });
  return { transport, host, images, runtime };
}

function must<T>(value: T | undefined): T {
  if (value === undefined) throw new Error('expected a value');
  return value;
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

describe('PodRuntime', () => {
  let runtime: PodRuntime | undefined;
  afterEach(async () => {
    await runtime?.detach();
    runtime = undefined;
  });

  it('sandbox ids are DNS labels of at most 40 characters that give back the pod and placement', () => {
    const id = sandboxIdOf(POD, 2_000_000_000);
    expect(id.length).toBeLessThanOrEqual(40);
    expect(id).toMatch(/^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$/);
    expect(parseSandboxId(id)).toEqual({ podId: POD, placement: 2_000_000_000 });
    expect(parseSandboxId('something-else')).toBeUndefined();
  });

  it('pulls with the tenant credentials, creates the VM and reports STARTING → RUNNING with events', async () => {
    const t = setup();
    runtime = t.runtime;
    const pod = desiredPod();
    must(pod.containers[0]).imageDigest = `sha256:${'b'.repeat(64)}`;
    t.transport.set = desiredSet([pod]);
    await t.runtime.start();
    await t.runtime.settled();
    expect(t.images.pulls).toHaveLength(1);
    expect(t.images.pulls[0]?.reference).toBe(`registry.example:5000/team/app:1@sha256:${'b'.repeat(64)}`);
    expect(t.images.pulls[0]?.options?.credentials).toEqual({ username: 'team', password: 'secret' });
    const reports = t.transport.podReports(POD);
    expect(reports[0]?.status.phase).toBe('STARTING');
    expect(reports[0]?.events[0]?.reason).toBe('Pulling');
    expect(t.transport.eventReasons(POD)).toEqual(expect.arrayContaining(['Pulling', 'Pulled', 'Started']));
    const last = must(reports.at(-1));
    expect(last.status).toMatchObject({ phase: 'RUNNING', accelerator: 'TCG', placement: 1 });
    expect(last.status.containers[0]).toMatchObject({ name: 'main', phase: 'RUNNING' });
    const spec = must(t.host.created[0]).spec;
    expect(spec.id).toBe(sandboxIdOf(POD, 1));
    expect(spec.containers[0]).toMatchObject({ argv: ['/bin/sh', '-c', 'sleep 1000'] });
    expect(spec.containers[0]?.env).toEqual(expect.arrayContaining(['PATH=/bin', 'GREETING=hi']));
    // A second pass changes nothing.
    await t.transport.announce();
    expect(t.host.created).toHaveLength(1);
  });

  it('an image that does not exist fails the pod with a reason a tenant can act on', async () => {
    const t = setup();
    runtime = t.runtime;
    t.images.missing.add('registry.example:5000/team/app:1');
    t.transport.set = desiredSet([desiredPod()]);
    await t.runtime.start();
    await t.runtime.settled();
    const last = must(t.transport.podReports(POD).at(-1));
    expect(last.status).toMatchObject({ phase: 'FAILED', reason: 'ImageNotFound' });
    expect(last.status.message).toMatch(/does not exist/);
    expect(t.host.created).toHaveLength(0);
  });

  it('a VM that does not boot fails the pod with the sandbox reason', async () => {
    const t = setup();
    runtime = t.runtime;
    t.host.createError = new SandboxFailedError('x', { reason: 'BootTimeout', message: 'no answer', consoleTail: '' });
    t.transport.set = desiredSet([desiredPod()]);
    await t.runtime.start();
    await t.runtime.settled();
    expect(t.transport.podReports(POD).at(-1)?.status).toMatchObject({ phase: 'FAILED', reason: 'BootTimeout' });
    expect(t.images.released).toHaveLength(1);
  });

  it('all containers exit 0 under NEVER: the VM is shut down, SUCCEEDED, leases released', async () => {
    const t = setup();
    runtime = t.runtime;
    t.transport.set = desiredSet([desiredPod()]);
    await t.runtime.start();
    await t.runtime.settled();
    must(t.host.created[0]).exit('main', { exitCode: 0 });
    await tick();
    await tick();
    expect(must(t.host.created[0]).calls).toContain('shutdown');
    expect(t.transport.lastPhase(POD)).toBe('SUCCEEDED');
    expect(t.images.released).toEqual(['registry.example:5000/team/app:1']);
    // Terminal stays terminal while the pod is in the set.
    await t.transport.announce();
    expect(t.host.created).toHaveLength(1);
  });

  it('a command that does not exist fails the pod even under ALWAYS', async () => {
    const t = setup();
    runtime = t.runtime;
    t.transport.set = desiredSet([desiredPod({ restartPolicy: 'ALWAYS' })]);
    await t.runtime.start();
    await t.runtime.settled();
    must(t.host.created[0]).exit('main', { exitCode: 127, reason: 'CommandNotFound', message: 'nope: not found' });
    await tick();
    await tick();
    const last = must(t.transport.podReports(POD).at(-1));
    expect(last.status).toMatchObject({ phase: 'FAILED', reason: 'CommandNotFound' });
    expect(must(t.host.created[0]).calls).not.toContain('restart:main');
  });

  it('ON_FAILURE restarts a failed container in the VM with a doubling backoff', async () => {
    const t = setup();
    runtime = t.runtime;
    t.transport.set = desiredSet([desiredPod({ restartPolicy: 'ON_FAILURE' })]);
    await t.runtime.start();
    await t.runtime.settled();
    const sandbox = must(t.host.created[0]);
    sandbox.exit('main', { exitCode: 3 });
    await tick();
    expect(t.transport.eventReasons(POD)).toContain('BackOff');
    expect(t.transport.podReports(POD).at(-1)?.status.containers[0]).toMatchObject({
      phase: 'WAITING',
      reason: 'BackOff',
    });
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(sandbox.calls).toEqual(['restart:main']);
    sandbox.exit('main', { exitCode: 3 });
    await tick();
    const backoffs = t.transport.podReports(POD).flatMap((r) => r.events.filter((e) => e.reason === 'BackOff'));
    expect(backoffs.map((e) => e.message)).toEqual([
      'Back-off 0.01 s restarting container main',
      'Back-off 0.02 s restarting container main',
    ]);
    await new Promise((resolve) => setTimeout(resolve, 40));
    expect(sandbox.calls).toEqual(['restart:main', 'restart:main']);
    expect(t.transport.lastPhase(POD)).toBe('RUNNING');
    expect(t.transport.podReports(POD).at(-1)?.status.containers[0]?.restartCount).toBe(2);
    // Exit 0 under ON_FAILURE: done.
    sandbox.exit('main', { exitCode: 0 });
    await tick();
    await tick();
    expect(t.transport.lastPhase(POD)).toBe('SUCCEEDED');
  });

  it('desired STOPPED shuts the VM down and reports STOPPED; DELETED destroys', async () => {
    const t = setup();
    runtime = t.runtime;
    const other = desiredPod({ podId: '44444444-4444-4444-8444-444444444444' });
    t.transport.set = desiredSet([desiredPod(), other]);
    await t.runtime.start();
    await t.runtime.settled();
    t.transport.set = desiredSet(
      [desiredPod({ desiredState: 'STOPPED', generation: 2 }), { ...other, desiredState: 'DELETED', generation: 2 }],
      { version: '2' },
    );
    await t.transport.announce();
    expect(must(t.host.created[0]).calls).toEqual(['shutdown']);
    expect(must(t.host.created[1]).calls).toEqual(['destroy']);
    expect(t.transport.podReports(POD).at(-1)?.status).toMatchObject({ phase: 'STOPPED', generation: 2 });
    expect(t.transport.eventReasons(POD)).toContain('Stopped');
    expect(t.transport.lastPhase(other.podId)).toBe('STOPPED');
    expect(t.runtime.version).toBe('2');
  });

  it('fences: a VM whose pod left the set, or has another placement, is destroyed', async () => {
    const t = setup();
    runtime = t.runtime;
    t.transport.set = desiredSet([desiredPod()]);
    await t.runtime.start();
    await t.runtime.settled();
    t.transport.set = desiredSet([desiredPod({ placement: 2 })], { version: '2', epoch: 2 });
    await t.transport.announce();
    await t.runtime.settled();
    expect(must(t.host.created[0]).calls).toEqual(['destroy']);
    expect(t.host.created).toHaveLength(2);
    expect(must(t.host.created[1]).spec.id).toBe(sandboxIdOf(POD, 2));
    expect(t.runtime.currentEpoch).toBe(2);
    t.transport.set = desiredSet([], { version: '3', epoch: 2 });
    await t.transport.announce();
    expect(must(t.host.created[1]).calls).toEqual(['destroy']);
    expect(t.runtime.statuses()).toEqual([]);
  });

  it('a VM that dies unexpectedly is LOST', async () => {
    const t = setup();
    runtime = t.runtime;
    t.transport.set = desiredSet([desiredPod({ restartPolicy: 'ALWAYS' })]);
    await t.runtime.start();
    await t.runtime.settled();
    must(t.host.created[0]).die();
    await tick();
    expect(t.transport.podReports(POD).at(-1)?.status).toMatchObject({ phase: 'LOST', reason: 'QemuKilled' });
    expect(t.images.released).toHaveLength(1);
  });

  it('adopts a surviving VM of a wanted pod, destroys an unwanted one, reports a dead one LOST', async () => {
    const t = setup();
    runtime = t.runtime;
    const wanted = desiredPod();
    const unwanted = desiredPod({ podId: '55555555-5555-4555-8555-555555555555' });
    const dead = desiredPod({ podId: '66666666-6666-4666-8666-666666666666' });
    const survivor = new FakeSandbox({ id: sandboxIdOf(wanted.podId, 1), vcpus: 1, memoryMiB: 256, containers: [] });
    survivor.statuses.set('main', { name: 'main', state: 'running', pid: 5, oomKilled: false, lastOutputSeq: 0 });
    const stale = new FakeSandbox({ id: sandboxIdOf(unwanted.podId, 1), vcpus: 1, memoryMiB: 256, containers: [] });
    t.host.adoptable = [survivor, stale];
    t.host.lost = [
      { id: sandboxIdOf(dead.podId, 1), failure: { reason: 'QemuExited', message: 'gone', consoleTail: '' } },
    ];
    t.transport.set = desiredSet([wanted, dead]);
    await t.runtime.start();
    await t.runtime.settled();
    expect(t.host.created).toHaveLength(0);
    expect(stale.calls).toEqual(['destroy']);
    expect(survivor.calls).toEqual([]);
    expect(t.transport.lastPhase(wanted.podId)).toBe('RUNNING');
    expect(t.transport.lastPhase(dead.podId)).toBe('LOST');
  });

  /** One running pod, heartbeats every 5 ms, and a clock the test moves. */
  async function heartbeating(overrides: Partial<PodRuntimeOptions> = {}) {
    const clock = { now: 1_000_000 };
    const t = setup({ now: () => clock.now, heartbeatIntervalMs: 5, ...overrides });
    runtime = t.runtime;
    t.transport.set = desiredSet([desiredPod()]);
    await t.runtime.start();
    await t.runtime.settled();
    return { t, clock };
  }

  it('heartbeats list every pod, usage and disk pressure; self-fences past the lease grace', async () => {
    const { t, clock } = await heartbeating();
    await new Promise((resolve) => setTimeout(resolve, 20));
    const beat = must(t.transport.reports.filter((r): r is Heartbeat => r.kind === 'heartbeat').at(-1));
    expect(beat).toMatchObject({ epoch: 1, appliedVersion: '1', diskPressure: true, accelerator: 'TCG' });
    expect(beat.usage).toMatchObject({ vcpus: 1, memoryMiB: 256, pods: 1, imageCacheBytes: 95 });
    expect(beat.pods.map((p) => [p.podId, p.phase])).toEqual([[POD, 'RUNNING']]);
    t.transport.failing = true;
    clock.now += 11_000;
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(must(t.host.created[0]).calls).toEqual(['destroy']);
    expect(t.runtime.statuses()[0]).toMatchObject({ phase: 'LOST', reason: 'NodeFenced' });
  });

  it('self-fences past the lease grace also when reports hang instead of failing', async () => {
    const { t, clock } = await heartbeating();
    t.transport.hanging = true;
    await new Promise((resolve) => setTimeout(resolve, 20)); // a heartbeat now hangs
    expect(must(t.host.created[0]).calls).toEqual([]);
    clock.now += 11_000;
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(must(t.host.created[0]).calls).toEqual(['destroy']);
    expect(t.runtime.statuses()[0]).toMatchObject({ phase: 'LOST', reason: 'NodeFenced' });
  });

  it('does not self-fence when SELF_FENCE is off', async () => {
    const { t, clock } = await heartbeating({ selfFence: false });
    t.transport.failing = true;
    clock.now += 60_000;
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(must(t.host.created[0]).calls).toEqual([]);
  });
});
