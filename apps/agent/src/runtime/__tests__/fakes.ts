import { EventEmitter } from 'node:events';
import type { ContainerStatus } from '@caas/guest-protocol';
import { ImageError, type PullOptions, type PulledImage } from '@caas/oci-images';
import type { SandboxEvents, SandboxFailure, SandboxNetwork, SandboxSpec, SandboxState } from '@caas/sandbox';
import type {
  DesiredPod,
  DesiredSet,
  DesiredSetReady,
  NodeReport,
  PodReport,
  PolicyCountersReport,
} from '@caas/queue-contracts';
import type { NetworkedSet, PodNetworks } from '../../network/pod-networks';
import type { PodRuntimeOptions } from '../pod-runtime';
import type { ImageLayer, NodeTransport, PodSandbox, SandboxHost } from '../ports';

export class FakeTransport implements NodeTransport {
  set: DesiredSet | null = null;
  readonly reports: NodeReport[] = [];
  failing = false;
  /** Reports never answer (a connection that accepts and then goes nowhere). */
  hanging = false;
  private handler: ((ready: DesiredSetReady) => Promise<void>) | undefined;

  readDesiredSet(): Promise<DesiredSet | null> {
    return Promise.resolve(this.set);
  }
  onAnnouncement(handler: (ready: DesiredSetReady) => Promise<void>): void {
    this.handler = handler;
  }
  report(report: NodeReport): Promise<void> {
    if (this.failing) return Promise.reject(new Error('redis down'));
    if (this.hanging) return new Promise(() => undefined);
    this.reports.push(report);
    return Promise.resolve();
  }
  announce(): Promise<void> {
    return this.handler?.({ version: this.set?.version ?? '1', epoch: this.set?.epoch ?? 1 }) ?? Promise.resolve();
  }
  podReports(podId: string): PodReport[] {
    return this.reports.filter((r): r is PodReport => r.kind === 'pod' && r.status.podId === podId);
  }
  eventReasons(podId: string): string[] {
    return this.podReports(podId).flatMap((r) => r.events.map((e) => e.reason));
  }
  lastPhase(podId: string): string | undefined {
    return this.podReports(podId).at(-1)?.status.phase;
  }
}

export class FakeSandbox extends EventEmitter<SandboxEvents> implements PodSandbox {
  readonly accel = 'tcg' as const;
  state: SandboxState = 'running';
  failure: SandboxFailure | undefined;
  readonly statuses = new Map<string, ContainerStatus>();
  readonly calls: string[] = [];

  constructor(readonly spec: SandboxSpec) {
    super();
    for (const c of spec.containers) this.statuses.set(c.name, running(c.name));
  }
  get id(): string {
    return this.spec.id;
  }
  containers(): ContainerStatus[] {
    return [...this.statuses.values()];
  }
  restartContainer(name: string): Promise<ContainerStatus> {
    this.calls.push(`restart:${name}`);
    const status = running(name);
    this.statuses.set(name, status);
    this.emit('container', status);
    return Promise.resolve(status);
  }
  stopContainer(name: string): Promise<void> {
    this.calls.push(`stop:${name}`);
    this.exit(name, { exitCode: 143 });
    return Promise.resolve();
  }
  shutdown(): Promise<void> {
    this.calls.push('shutdown');
    this.end('stopped');
    return Promise.resolve();
  }
  destroy(): Promise<void> {
    this.calls.push('destroy');
    this.end('stopped');
    return Promise.resolve();
  }
  /** The workload exits. */
  exit(name: string, how: Partial<ContainerStatus>): void {
    const status: ContainerStatus = { ...running(name), state: 'exited', pid: undefined, ...how };
    this.statuses.set(name, status);
    this.emit('container', status);
  }
  /** The VM dies on its own. */
  die(): void {
    this.failure = { reason: 'QemuKilled', message: 'QEMU died of SIGKILL', consoleTail: '' };
    this.end('failed');
  }
  private end(state: SandboxState): void {
    if (this.state === 'stopped' || this.state === 'failed') return;
    this.state = state;
    this.emit('state', state);
  }
}

export class FakeHost extends EventEmitter<{ sandbox: [PodSandbox] }> implements SandboxHost {
  readonly accelerator = { accel: 'tcg' as const };
  /** Runs when a VM is launched or adopted, before `create`/`adopt` resolve (as output can arrive then). */
  onLaunched: ((sandbox: FakeSandbox) => void) | undefined;
  readonly created: FakeSandbox[] = [];
  adoptable: FakeSandbox[] = [];
  lost: Array<{ id: string; failure: SandboxFailure }> = [];
  createError: Error | undefined;

  adopt() {
    for (const sandbox of this.adoptable) this.launched(sandbox);
    return Promise.resolve({ adopted: this.adoptable, lost: this.lost });
  }
  create(spec: SandboxSpec): Promise<PodSandbox> {
    if (this.createError) return Promise.reject(this.createError);
    const sandbox = new FakeSandbox(spec);
    this.created.push(sandbox);
    this.launched(sandbox);
    return Promise.resolve(sandbox);
  }
  private launched(sandbox: FakeSandbox): void {
    this.emit('sandbox', sandbox);
    this.onLaunched?.(sandbox);
  }
  list(): PodSandbox[] {
    return this.created.filter((s) => s.state === 'running');
  }
  detachAll(): Promise<void> {
    return Promise.resolve();
  }
}

export class FakeImages implements ImageLayer {
  readonly pulls: Array<{ reference: string; options?: PullOptions }> = [];
  readonly released: string[] = [];
  missing = new Set<string>();
  config: PulledImage['config'] = { entrypoint: ['/bin/sh'], cmd: ['-c', 'sleep 1000'], env: ['PATH=/bin'] };

  pull(reference: string, options?: PullOptions): Promise<PulledImage> {
    this.pulls.push({ reference, options });
    if (this.missing.has(reference)) {
      return Promise.reject(new ImageError('NOT_FOUND', `manifest unknown: ${reference}`));
    }
    options?.onProgress?.({ phase: 'ready', layers: 1, bytes: 10, totalBytes: 10, cached: false });
    const digest = `sha256:${'a'.repeat(64)}` as PulledImage['digest'];
    return Promise.resolve({
      reference,
      digest,
      manifestDigest: digest,
      fsImage: { path: `/cache/${encodeURIComponent(reference)}/fs.ext4`, fsType: 'ext4', sizeBytes: 1 },
      config: this.config,
      user: { uid: 0, gid: 0, additionalGids: [] },
      lease: { keys: [digest], released: false, release: () => void this.released.push(reference) },
    });
  }
  usage() {
    return { usedBytes: 95, limitBytes: 100 };
  }
}

function running(name: string): ContainerStatus {
  return { name, state: 'running', pid: 10, oomKilled: false, lastOutputSeq: 0 };
}

export const TENANT = '11111111-1111-4111-8111-111111111111';
export const NODE = '22222222-2222-4222-8222-222222222222';

export function desiredPod(overrides: Partial<DesiredPod> = {}): DesiredPod {
  return {
    podId: '33333333-3333-4333-8333-333333333333',
    tenantId: TENANT,
    name: 'web',
    generation: 1,
    placement: 1,
    desiredState: 'RUNNING',
    restartPolicy: 'NEVER',
    restartGeneration: null,
    vcpus: 1,
    memoryMiB: 256,
    ip: '10.0.0.2',
    network: { vni: 100, subnet: '10.0.0.0/24' },
    labels: {},
    containers: [
      {
        name: 'main',
        image: 'registry.example:5000/team/app:1',
        imageDigest: null,
        command: [],
        args: [],
        env: [{ name: 'GREETING', value: 'hi', secret: false }],
        workingDir: null,
        user: null,
        cpuLimitMillis: null,
        memoryLimitMiB: null,
      },
    ],
    ...overrides,
  };
}

export function desiredSet(pods: DesiredPod[], overrides: Partial<DesiredSet> = {}): DesiredSet {
  return {
    nodeId: NODE,
    version: '1',
    epoch: 1,
    cordoned: false,
    draining: false,
    pods,
    registryCredentials: [
      { tenantId: TENANT, registry: 'registry.example:5000', username: 'team', password: 'secret' },
    ],
    generatedAt: new Date().toISOString(),
    ...overrides,
  };
}

/** A PodNetworks that records what the runtime asks of it. */
export class FakeNetworks implements PodNetworks {
  readonly calls: string[] = [];
  attachError: Error | undefined;
  converge(set: NetworkedSet): Promise<void> {
    this.calls.push(`converge ${set.networks?.length ?? 0}`);
    return Promise.resolve();
  }
  attach(pod: { podId: string; tenantId: string; ip: string | null }): Promise<SandboxNetwork> {
    this.calls.push(`attach ${pod.podId}`);
    if (this.attachError) return Promise.reject(this.attachError);
    return Promise.resolve({
      netns: '/run/netns/caas-t7',
      tap: 'tp0123456789ab',
      mac: '02:ca:0a:00:00:02',
      address: `${pod.ip ?? '?'}/24`,
      gateway: '10.0.0.1',
      mtu: 1450,
    });
  }
  detach(podId: string): Promise<void> {
    this.calls.push(`detach ${podId}`);
    return Promise.resolve();
  }
  counters(): Promise<PolicyCountersReport['tenants']> {
    this.calls.push('counters');
    return Promise.resolve([{ tenantId: TENANT, counters: { np_web_in_0: { packets: 3, bytes: 180 } } }]);
  }
}

/** PodRuntime options over fakes: a 4-vCPU node at epoch 1 whose timers stay quiet unless a test shortens them. */
export function fakeRuntimeOptions(
  transport: FakeTransport,
  sandboxes: FakeHost,
  images = new FakeImages(),
): PodRuntimeOptions {
  return {
    transport,
    sandboxes,
    images,
    epoch: 1,
    capacity: { vcpus: 4, memoryMiB: 4096, pods: 10, diskBytes: 100 },
    heartbeatIntervalMs: 60_000,
    leaseGraceMs: 10_000,
    resyncIntervalMs: 60_000,
    selfFence: true,
  };
}
