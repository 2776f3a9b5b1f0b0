import { randomUUID } from 'node:crypto';
import type { DesiredPod, DesiredSet, NodeReport, PodReport } from '@caas/queue-contracts';
import { nodeReportSchema } from '@caas/queue-contracts';
import type { NodeTransport } from '../simulated-node';
import { SimulatedNode } from '../simulated-node';

const NODE = randomUUID();

/** A transport that keeps the set in memory and records every report (validated against the contract). */
class MemoryTransport implements NodeTransport {
  set: DesiredSet | null = null;
  reports: NodeReport[] = [];
  closed = false;
  readDesiredSet = async () => this.set;
  onAnnouncement = () => undefined;
  report = async (report: NodeReport) => {
    this.reports.push(nodeReportSchema.parse(report));
  };
  close = async () => {
    this.closed = true;
  };
  podReports(): PodReport[] {
    return this.reports.filter((r): r is PodReport => r.kind === 'pod');
  }
}

const desiredPod = (overrides: Partial<DesiredPod> = {}): DesiredPod => ({
  podId: randomUUID(),
  tenantId: randomUUID(),
  name: 'web',
  generation: 1,
  placement: 1,
  desiredState: 'RUNNING',
  restartPolicy: 'ALWAYS',
  restartGeneration: null,
  vcpus: 1,
  memoryMiB: 256,
  ip: '10.0.0.2',
  network: { vni: 1, subnet: '10.0.0.0/24' },
  labels: {},
  containers: [
    {
      name: 'main',
      image: 'busybox',
      imageDigest: null,
      command: [],
      args: [],
      env: [],
      workingDir: null,
      user: null,
      cpuLimitMillis: null,
      memoryLimitMiB: null,
    },
  ],
  ...overrides,
});

const setOf = (version: number, pods: DesiredPod[], epoch = 1): DesiredSet => ({
  nodeId: NODE,
  version: String(version),
  epoch,
  cordoned: false,
  draining: false,
  pods,
  registryCredentials: [],
  generatedAt: new Date().toISOString(),
});

const capacity = { vcpus: 8, memoryMiB: 8192, pods: 10, diskBytes: 0 };
const until = async (check: () => boolean) => {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(check()).toBe(true);
};

describe('SimulatedNode', () => {
  let transport: MemoryTransport;
  let node: SimulatedNode | undefined;

  beforeEach(() => {
    transport = new MemoryTransport();
  });
  afterEach(async () => {
    await node?.kill();
  });

  it('starts a desired pod (STARTING, then RUNNING) and heartbeats with it and the applied version', async () => {
    const pod = desiredPod();
    transport.set = setOf(3, [pod]);
    node = new SimulatedNode(transport, {
      nodeId: NODE,
      epoch: 1,
      capacity,
      heartbeatIntervalMs: 10_000,
      bootDelayMs: 1,
    });
    await node.start();
    await until(() => node?.podPhases().get(pod.podId) === 'RUNNING');
    expect(transport.podReports().map((r) => r.status.phase)).toEqual(['STARTING', 'RUNNING']);
    const heartbeat = transport.reports.find((r) => r.kind === 'heartbeat');
    expect(heartbeat).toMatchObject({ kind: 'heartbeat', epoch: 1, appliedVersion: '3' });
  });

  it('stops what the set wants stopped and destroys what it no longer contains (fencing on a new epoch)', async () => {
    const [a, b] = [desiredPod(), desiredPod()];
    const killed: string[] = [];
    node = new SimulatedNode(transport, {
      nodeId: NODE,
      epoch: 1,
      capacity,
      heartbeatIntervalMs: 10_000,
      adopted: [a, b],
      onKilledStale: (podId) => killed.push(podId),
    });
    transport.set = setOf(5, [{ ...b, desiredState: 'STOPPED', generation: 2 }], 2);
    await node.start();
    expect(killed).toEqual([a.podId]);
    expect(node.currentEpoch).toBe(2);
    expect(node.podPhases()).toEqual(new Map([[b.podId, 'STOPPED']]));
    expect(transport.podReports().at(-1)).toMatchObject({ epoch: 2, status: { podId: b.podId, phase: 'STOPPED' } });
    expect(node.livePods()).toEqual([]);
  });

  it('does not start a finished pod again while the set still holds it', async () => {
    const pod = desiredPod();
    transport.set = setOf(1, [pod]);
    node = new SimulatedNode(transport, {
      nodeId: NODE,
      epoch: 1,
      capacity,
      heartbeatIntervalMs: 10_000,
      bootDelayMs: 1,
      behaviour: () => ({ kind: 'exit', code: 3, afterMs: 1 }),
    });
    await node.start();
    await until(() => node?.podPhases().get(pod.podId) === 'FAILED');
    await node.resync();
    expect(transport.podReports().map((r) => r.status.phase)).toEqual(['STARTING', 'RUNNING', 'FAILED']);
  });

  it('drops and replays reports at the rates asked for', async () => {
    let seed = 1;
    const random = () => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646;
    transport.set = setOf(
      1,
      Array.from({ length: 20 }, () => desiredPod()),
    );
    node = new SimulatedNode(transport, {
      nodeId: NODE,
      epoch: 1,
      capacity,
      heartbeatIntervalMs: 10_000,
      bootDelayMs: 1,
      dropRate: 0.2,
      replayRate: 0.2,
      random,
    });
    await node.start();
    await until(() => [...(node?.podPhases().values() ?? [])].every((phase) => phase === 'RUNNING'));
    await until(() => (node?.stats.reportsSent ?? 0) + (node?.stats.reportsDropped ?? 0) === 40);
    expect(node.stats.reportsDropped).toBeGreaterThan(0);
    expect(node.stats.reportsReplayed).toBeGreaterThan(0);
    expect(transport.podReports()).toHaveLength(node.stats.reportsSent + node.stats.reportsReplayed);
  });

  it('goes silent when killed', async () => {
    node = new SimulatedNode(transport, { nodeId: NODE, epoch: 1, capacity, heartbeatIntervalMs: 5 });
    await node.start();
    await node.kill();
    const count = transport.reports.length;
    await new Promise((r) => setTimeout(r, 30));
    expect(transport.reports).toHaveLength(count);
    expect(transport.closed).toBe(true);
  });
});
