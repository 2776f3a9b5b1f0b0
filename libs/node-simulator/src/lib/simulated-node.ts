import type {
  DesiredPod,
  DesiredSet,
  DesiredSetReady,
  Heartbeat,
  NodeCapacity,
  NodeEvent,
  NodeReport,
  PodReport,
  PodStatus,
} from '@caas/queue-contracts';

/** What a simulated node needs from its connection: exactly what `@caas/node-client`'s `NodeConnection` offers. */
export interface NodeTransport {
  readDesiredSet(): Promise<DesiredSet | null>;
  onAnnouncement(handler: (ready: DesiredSetReady) => Promise<void>): unknown;
  report(report: NodeReport): Promise<void>;
  close(): Promise<void>;
}

/** How a simulated pod behaves once "booted". */
export type PodBehaviour =
  | { kind: 'run' }
  /** All containers exit with this code after `afterMs`. */
  | { kind: 'exit'; code: number; afterMs: number }
  /** The pod cannot start (say, its image does not exist). */
  | { kind: 'fail-start'; reason: string; message: string };

export interface SimulatedNodeOptions {
  nodeId: string;
  /** The epoch the node was given when it joined (or the one it last adopted). */
  epoch: number;
  capacity: NodeCapacity;
  heartbeatIntervalMs: number;
  /** The node re-reads its desired set this often even without an announcement (level-triggered). */
  resyncIntervalMs?: number;
  /** Time from "accepted" (STARTING) to RUNNING. */
  bootDelayMs?: number;
  behaviour?: (pod: DesiredPod) => PodBehaviour;
  /** Share of pod reports silently dropped (0–1): heartbeats must repair them. */
  dropRate?: number;
  /** Share of pod reports followed by a replay of an earlier report (0–1). */
  replayRate?: number;
  diskPressure?: boolean;
  random?: () => number;
  /** Pods still "running" from before a restart of the agent (a real agent re-adopts its VMs from disk). */
  adopted?: DesiredPod[];
  /** Called for every VM the node destroys because its set no longer contains it (fencing). */
  onKilledStale?: (podId: string) => void;
}

const TERMINAL: ReadonlySet<PodStatus['phase']> = new Set(['SUCCEEDED', 'FAILED', 'STOPPED']);

interface SimPod {
  desired: DesiredPod;
  status: PodStatus;
  timers: NodeJS.Timeout[];
}

export interface SimulatedNodeStats {
  reportsSent: number;
  reportsDropped: number;
  reportsReplayed: number;
  heartbeats: number;
  killedStale: number;
  converged: number;
}

/**
 * A host that speaks the real node contract (desired sets in, heartbeats and pod reports out) without booting
 * VMs: pods go STARTING → RUNNING after `bootDelayMs`, or follow their `behaviour`. Used by tests and benchmarks
 * to run hundreds of nodes in one process. Fault injection: dropped and replayed reports, sudden death (`kill`).
 */
export class SimulatedNode {
  readonly stats: SimulatedNodeStats = {
    reportsSent: 0,
    reportsDropped: 0,
    reportsReplayed: 0,
    heartbeats: 0,
    killedStale: 0,
    converged: 0,
  };
  private epoch: number;
  private appliedVersion = '0';
  private readonly pods = new Map<string, SimPod>();
  private readonly sent: PodReport[] = [];
  private timers: NodeJS.Timeout[] = [];
  private converging: Promise<void> = Promise.resolve();
  private stopped = false;
  private diskPressure: boolean;
  private readonly random: () => number;

  constructor(
    private readonly transport: NodeTransport,
    private readonly options: SimulatedNodeOptions,
  ) {
    this.epoch = options.epoch;
    this.diskPressure = options.diskPressure ?? false;
    this.random = options.random ?? Math.random;
    for (const desired of options.adopted ?? []) {
      this.pods.set(desired.podId, { desired, status: this.statusOf(desired, 'RUNNING', null, null), timers: [] });
    }
  }

  /** What a restarted agent would find on disk: the pods whose VMs run now. */
  livePods(): DesiredPod[] {
    return [...this.pods.values()].filter((pod) => !TERMINAL.has(pod.status.phase)).map((pod) => pod.desired);
  }

  get currentEpoch(): number {
    return this.epoch;
  }

  get version(): string {
    return this.appliedVersion;
  }

  /** The pods the node runs now, by id. */
  podPhases(): Map<string, PodStatus['phase']> {
    return new Map([...this.pods].map(([id, pod]) => [id, pod.status.phase]));
  }

  setDiskPressure(value: boolean): void {
    this.diskPressure = value;
  }

  /** Starts listening, converges once, and heartbeats until stopped. */
  async start(): Promise<void> {
    this.transport.onAnnouncement(() => this.resync());
    await this.resync();
    await this.heartbeat();
    this.timers.push(setInterval(() => void this.heartbeat().catch(() => undefined), this.options.heartbeatIntervalMs));
    const resyncMs = this.options.resyncIntervalMs ?? 5_000;
    this.timers.push(setInterval(() => void this.resync().catch(() => undefined), resyncMs));
  }

  /** Sudden death: no more heartbeats or reports, nothing cleaned up (the connection is closed). */
  async kill(): Promise<void> {
    this.halt();
    await this.transport.close().catch(() => undefined);
  }

  /** A clean stop: same as kill for a simulation (pods keep "running" on a real host during an upgrade). */
  async stop(): Promise<void> {
    await this.kill();
  }

  /** Reads the desired set and converges on it (serialised: one convergence at a time). */
  resync(): Promise<void> {
    const next = this.converging.then(async () => {
      if (this.stopped) return;
      const set = await this.transport.readDesiredSet();
      if (set !== null) await this.converge(set);
    });
    this.converging = next.catch(() => undefined);
    return next;
  }

  private halt(): void {
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    for (const pod of this.pods.values()) for (const timer of pod.timers) clearTimeout(timer);
  }

  private async converge(set: DesiredSet): Promise<void> {
    if (BigInt(set.version) < BigInt(this.appliedVersion) && set.epoch === this.epoch) return;
    const wanted = new Map(set.pods.map((pod) => [pod.podId, pod]));
    // Fencing: whatever the set does not contain (or contains as another placement) is destroyed.
    for (const [podId, pod] of this.pods) {
      const desired = wanted.get(podId);
      if (desired === undefined || desired.placement !== pod.desired.placement) {
        for (const timer of pod.timers) clearTimeout(timer);
        this.pods.delete(podId);
        // A finished VM is already gone; only a live one is "killed".
        if (!TERMINAL.has(pod.status.phase)) {
          this.stats.killedStale++;
          this.options.onKilledStale?.(podId);
        }
      }
    }
    this.epoch = set.epoch;
    for (const desired of set.pods) await this.convergePod(desired);
    this.appliedVersion = set.version;
    this.stats.converged++;
  }

  private async convergePod(desired: DesiredPod): Promise<void> {
    const existing = this.pods.get(desired.podId);
    if (desired.desiredState !== 'RUNNING') {
      if (existing !== undefined && existing.status.phase === 'STOPPED' && existing.desired === desired) return;
      for (const timer of existing?.timers ?? []) clearTimeout(timer);
      // The VM is gone (or never existed): reported in every heartbeat until the pod leaves the set.
      const stopped: SimPod = { desired, status: this.statusOf(desired, 'STOPPED', null, null), timers: [] };
      this.pods.set(desired.podId, stopped);
      await this.sendPod(stopped.status, [this.event('NORMAL', 'Stopped', 'The pod VM was shut down')]);
      return;
    }
    if (existing !== undefined) {
      // A finished pod stays finished until the control plane takes it out of the set or places it again.
      if (TERMINAL.has(existing.status.phase)) return;
      if (existing.desired.generation !== desired.generation) {
        existing.desired = desired;
        existing.status = { ...existing.status, generation: desired.generation };
        await this.sendPod(existing.status, []);
      }
      return;
    }
    const pod: SimPod = { desired, status: this.statusOf(desired, 'STARTING', null, null), timers: [] };
    this.pods.set(desired.podId, pod);
    await this.sendPod(pod.status, [this.event('NORMAL', 'Pulling', `Pulling ${desired.containers.length} image(s)`)]);
    const behaviour = this.options.behaviour?.(desired) ?? { kind: 'run' };
    pod.timers.push(
      setTimeout(() => void this.boot(pod, behaviour).catch(() => undefined), this.options.bootDelayMs ?? 10),
    );
  }

  private async boot(pod: SimPod, behaviour: PodBehaviour): Promise<void> {
    if (this.stopped || this.pods.get(pod.desired.podId) !== pod) return;
    if (behaviour.kind === 'fail-start') {
      pod.status = this.statusOf(pod.desired, 'FAILED', behaviour.reason, behaviour.message);
      await this.sendPod(pod.status, [this.event('WARNING', behaviour.reason, behaviour.message)]);
      return;
    }
    const now = new Date().toISOString();
    pod.status = {
      ...this.statusOf(pod.desired, 'RUNNING', null, null),
      containers: pod.desired.containers.map((c) => ({
        name: c.name,
        phase: 'RUNNING' as const,
        exitCode: null,
        signal: null,
        reason: null,
        restartCount: 0,
        startedAt: now,
        finishedAt: null,
      })),
    };
    await this.sendPod(pod.status, [this.event('NORMAL', 'Started', 'Started the pod VM and its containers')]);
    if (behaviour.kind === 'exit') {
      pod.timers.push(
        setTimeout(() => {
          if (this.stopped || this.pods.get(pod.desired.podId) !== pod) return;
          const finished = new Date().toISOString();
          const phase = behaviour.code === 0 ? 'SUCCEEDED' : 'FAILED';
          pod.status = {
            ...pod.status,
            phase,
            containers: pod.status.containers.map((c) => ({
              ...c,
              phase: 'EXITED' as const,
              exitCode: behaviour.code,
              finishedAt: finished,
            })),
          };
          void this.sendPod(pod.status, []).catch(() => undefined);
        }, behaviour.afterMs),
      );
    }
  }

  private statusOf(
    desired: DesiredPod,
    phase: PodStatus['phase'],
    reason: string | null,
    message: string | null,
  ): PodStatus {
    return {
      podId: desired.podId,
      generation: desired.generation,
      placement: desired.placement,
      phase,
      reason,
      message,
      accelerator: 'TCG',
      imageDigests: {},
      containers: desired.containers.map((c) => ({
        name: c.name,
        phase: 'WAITING' as const,
        exitCode: null,
        signal: null,
        reason: null,
        restartCount: 0,
        startedAt: null,
        finishedAt: null,
      })),
    };
  }

  private event(type: NodeEvent['type'], reason: string, message: string): NodeEvent {
    return { type, reason, message, at: new Date().toISOString() };
  }

  private async sendPod(status: PodStatus, events: NodeEvent[]): Promise<void> {
    if (this.stopped) return;
    const report: PodReport = { kind: 'pod', epoch: this.epoch, status, events };
    if (this.random() < (this.options.dropRate ?? 0)) {
      this.stats.reportsDropped++;
    } else {
      await this.transport.report(report);
      this.stats.reportsSent++;
    }
    if (this.sent.length > 0 && this.random() < (this.options.replayRate ?? 0)) {
      const old = this.sent[Math.floor(this.random() * this.sent.length)];
      if (old !== undefined) {
        await this.transport.report(old);
        this.stats.reportsReplayed++;
      }
    }
    this.sent.push(report);
    if (this.sent.length > 200) this.sent.shift();
  }

  private async heartbeat(): Promise<void> {
    if (this.stopped) return;
    const statuses = [...this.pods.values()].map((pod) => pod.status);
    const live = [...this.pods.values()].filter((pod) => !TERMINAL.has(pod.status.phase));
    const used = live.reduce(
      (sum, pod) => ({ vcpus: sum.vcpus + pod.desired.vcpus, memoryMiB: sum.memoryMiB + pod.desired.memoryMiB }),
      { vcpus: 0, memoryMiB: 0 },
    );
    const heartbeat: Heartbeat = {
      kind: 'heartbeat',
      epoch: this.epoch,
      appliedVersion: this.appliedVersion,
      sentAt: new Date().toISOString(),
      capacity: this.options.capacity,
      usage: { ...used, pods: live.length, diskUsedBytes: 0, imageCacheBytes: 0 },
      diskPressure: this.diskPressure,
      accelerator: 'TCG',
      pods: statuses,
    };
    await this.transport.report(heartbeat);
    this.stats.heartbeats++;
  }
}
