import type { PolicyCountersReport } from '@caas/queue-contracts';
import { PodRuntime, type PodRuntimeOptions } from '../pod-runtime';
import { FakeHost, FakeNetworks, FakeTransport, desiredPod, desiredSet, fakeRuntimeOptions } from './fakes';

function setup(overrides: Partial<PodRuntimeOptions> = {}) {
  const transport = new FakeTransport();
  const host = new FakeHost();
  const networks = new FakeNetworks();
  const runtime = new PodRuntime({ ...fakeRuntimeOptions(transport, host), networks, ...overrides });
  return { transport, host, networks, runtime };
}

const POD = desiredPod({ ip: '10.0.0.2' });

describe('PodRuntime with pod networks', () => {
  let runtime: PodRuntime | undefined;
  afterEach(async () => {
    await runtime?.detach();
    runtime = undefined;
  });

  it("converges the set's networks first, attaches the pod's tap before its VM and hands it over, detaches it after", async () => {
    const t = setup();
    runtime = t.runtime;
    t.transport.set = desiredSet([POD]);
    await t.runtime.start();
    await t.runtime.settled();
    expect(t.networks.calls.slice(0, 2)).toEqual(['converge 0', `attach ${POD.podId}`]);
    expect(t.host.created[0]?.spec.network).toEqual({
      netns: '/run/netns/caas-t7',
      tap: 'tp0123456789ab',
      mac: '02:ca:0a:00:00:02',
      address: '10.0.0.2/24',
      gateway: '10.0.0.1',
      mtu: 1450,
    });
    expect(t.transport.lastPhase(POD.podId)).toBe('RUNNING');

    t.transport.set = desiredSet([{ ...POD, desiredState: 'DELETED' }], { version: '2' });
    await t.runtime.resync();
    expect(t.host.created[0]?.calls).toEqual(['destroy']);
    expect(t.networks.calls).toContain(`detach ${POD.podId}`);
  });

  it('a pod whose network cannot be set up ends FAILED (NetworkFailed) without a VM', async () => {
    const t = setup();
    runtime = t.runtime;
    t.networks.attachError = new Error('no network of tenant x in the desired set');
    t.transport.set = desiredSet([POD]);
    await t.runtime.start();
    await t.runtime.settled();
    expect(t.host.created).toHaveLength(0);
    const last = t.transport.podReports(POD.podId).at(-1);
    expect(last?.status).toMatchObject({ phase: 'FAILED', reason: 'NetworkFailed' });
    expect(last?.status.message).toContain('no network of tenant x');
  });

  it("reports the policies' counters on a timer", async () => {
    const t = setup({ countersIntervalMs: 5 });
    runtime = t.runtime;
    t.transport.set = desiredSet([POD]);
    await t.runtime.start();
    await new Promise((resolve) => setTimeout(resolve, 30));
    const report = t.transport.reports.find((r): r is PolicyCountersReport => r.kind === 'policyCounters');
    expect(report).toMatchObject({
      epoch: 1,
      tenants: [{ counters: { np_web_in_0: { packets: 3, bytes: 180 } } }],
    });
  });
});
