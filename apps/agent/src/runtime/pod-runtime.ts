/**
 * The node agent's converge loop: adopt the VMs a previous agent left, read the desired set (on every
 * announcement and on a timer) and converge on it — pull, create, restart containers by policy, stop, destroy,
 * fence — reporting pod status and events, and heartbeat with every pod's status (ADR-002, ADR-009).
 */
import type { ContainerStatus } from '@caas/guest-protocol';
import { isImageError, type Lease, type PulledImage } from '@caas/oci-images';
import { SandboxFailedError, SandboxSpecError, type SandboxContainerSpec, type SandboxNetwork } from '@caas/sandbox';
import type { PodNetworks } from '../network/pod-networks';
import type {
  DesiredPod,
  DesiredSet,
  Heartbeat,
  NodeCapacity,
  NodeEvent,
  PodStatus,
  ReportedContainer,
} from '@caas/queue-contracts';
import type { LogShipping, PodLogShipper } from '../logs/log-shipper';
import type { ImageLayer, NodeTransport, PodSandbox, SandboxHost } from './ports';
import { containerSpecOf, credentialsFor, parseSandboxId, pullReference, sandboxIdOf } from './pod-spec';

export interface RuntimeLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface PodRuntimeOptions {
  transport: NodeTransport;
  sandboxes: SandboxHost;
  images: ImageLayer;
  epoch: number;
  capacity: NodeCapacity;
  heartbeatIntervalMs: number;
  leaseGraceMs: number;
  /** Re-read the desired set this often without an announcement. Default 5 s. */
  resyncIntervalMs?: number;
  selfFence: boolean;
  log?: RuntimeLogger;
  /** Restart backoff: first delay and cap (ADR-002: 1 s doubling to 5 min, reset after 10 min of running). */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  backoffResetMs?: number;
  /** Grace of SIGTERM before SIGKILL when stopping a pod. Default 5 s. */
  stopGraceMs?: number;
  now?: () => number;
  /** Ships the pods' container output (none when absent). */
  logs?: LogShipping;
  /** The pods' networks (ADR-006); without it pods run with no network device at all. */
  networks?: PodNetworks;
  /** How often the policies' counters are reported (with `networks`). Default 10 s. */
  countersIntervalMs?: number;
}

const TERMINAL: ReadonlySet<PodStatus['phase']> = new Set(['SUCCEEDED', 'FAILED', 'STOPPED', 'LOST']);
/** Exits that mean the workload could not be started: no restart policy retries them. */
const START_FAILURES: ReadonlySet<string> = new Set(['CommandNotFound', 'PermissionDenied', 'StartFailed']);

interface RestartState {
  count: number;
  backoffMs: number;
  timer?: NodeJS.Timeout;
  startedAt?: number;
}

interface PodEntry {
  podId: string;
  placement: number;
  sandboxId: string;
  /** Unknown for an adopted VM until the first set is read. */
  desired: DesiredPod | undefined;
  status: PodStatus;
  sandbox?: PodSandbox;
  /** The output shipping of `sandbox`. */
  logs?: PodLogShipper;
  /** The VM `logs` listens to. */
  logsOf?: PodSandbox;
  leases: Lease[];
  restarts: Map<string, RestartState>;
  /** The pull/boot under way, and how to abort it. */
  starting?: { abort: AbortController; done: Promise<void> };
  /** We asked the VM to go away (stop, delete, fence, finish): its end is not a loss. */
  ending: boolean;
  handledRestartGeneration: number | null;
}

export class PodRuntime {
  private epoch: number;
  private appliedVersion = '0';
  private readonly pods = new Map<string, PodEntry>();
  /** Shippers opened when a VM was launched or adopted, until `attach` takes them (by sandbox id). */
  private readonly early = new Map<string, PodLogShipper>();
  /** VMs found dead at adoption, by sandbox id: their pods are reported LOST. */
  private readonly lostAtAdoption = new Map<string, { reason: string; message: string }>();
  private converging: Promise<void> = Promise.resolve();
  private timers: NodeJS.Timeout[] = [];
  private stopped = false;
  private lastReportOkAt: number;
  private fenced = false;
  /** A heartbeat report is under way (see `heartbeat`). */
  private heartbeating = false;
  private lastSet: DesiredSet | undefined;
  private readonly now: () => number;

  constructor(private readonly options: PodRuntimeOptions) {
    this.epoch = options.epoch;
    this.now = options.now ?? Date.now;
    this.lastReportOkAt = this.now();
  }

  get currentEpoch(): number {
    return this.epoch;
  }

  get version(): string {
    return this.appliedVersion;
  }

  /** Statuses of every pod the node knows (what the heartbeat lists). */
  statuses(): PodStatus[] {
    return [...this.pods.values()].filter((pod) => pod.desired !== undefined).map((pod) => clone(pod.status));
  }

  /**
   * Opens a VM's output shipper the moment the VM is launched or adopted, before its containers start or its
   * buffered output is replayed: lines emitted before `create`/`adopt` resolve would otherwise be lost. `attach`
   * takes it over; until the VM's desired pod is known its lines are held (tenant, secrets to redact).
   */
  private readonly onTracked = (sandbox: PodSandbox): void => {
    const logs = this.options.logs;
    const parsed = parseSandboxId(sandbox.id);
    if (logs === undefined || parsed === undefined) return;
    void this.early.get(sandbox.id)?.close();
    this.early.set(
      sandbox.id,
      logs.open(
        parsed.podId,
        sandbox,
        sandbox.spec.containers.map((c) => c.name),
      ),
    );
  };

  /** Adopts surviving VMs, converges once, heartbeats, and keeps converging until `stop`/`detach`. */
  async start(): Promise<void> {
    this.options.sandboxes.on?.('sandbox', this.onTracked);
    const { adopted, lost } = await this.options.sandboxes.adopt();
    for (const sandbox of adopted) this.adopt(sandbox);
    for (const { id, failure } of lost)
      this.lostAtAdoption.set(id, { reason: failure.reason, message: failure.message });
    this.log('info', { adopted: adopted.length, lost: lost.length }, 'adopted the VMs of the previous agent');
    this.options.transport.onAnnouncement(() => this.resync());
    await this.resync().catch((error: unknown) => this.log('error', { error: String(error) }, 'first resync failed'));
    await this.heartbeat();
    this.timers.push(setInterval(() => void this.heartbeat(), this.options.heartbeatIntervalMs));
    if (this.options.networks) {
      const networks = this.options.networks;
      this.timers.push(
        setInterval(() => void this.reportCounters(networks), this.options.countersIntervalMs ?? 10_000),
      );
    }
    this.timers.push(
      setInterval(
        () => void this.resync().catch((error: unknown) => this.log('warn', { error: String(error) }, 'resync failed')),
        this.options.resyncIntervalMs ?? 5_000,
      ),
    );
  }

  /** Reads the desired set and converges on it (one convergence at a time). */
  resync(): Promise<void> {
    const next = this.converging.then(async () => {
      if (this.stopped) return;
      const set = await this.options.transport.readDesiredSet();
      if (set !== null) await this.converge(set);
    });
    this.converging = next.catch(() => undefined);
    return next;
  }

  /** A clean stop of the agent: stops the loops and lets go of the VMs, which keep running (upgrades). */
  async detach(): Promise<void> {
    this.halt();
    await this.converging;
    await this.options.sandboxes.detachAll();
    await this.options.logs?.closeAll();
  }

  /** Stops the loops and destroys every VM (tests, drain). */
  async destroyAll(): Promise<void> {
    this.halt();
    await this.converging;
    await Promise.all([...this.pods.values()].map((pod) => this.teardown(pod, 'destroy')));
  }

  /** Waits for pulls and boots under way (tests). */
  async settled(): Promise<void> {
    await this.converging;
    await Promise.all([...this.pods.values()].map((pod) => pod.starting?.done));
  }

  // -------------------------------------------------------------------------------------------------------------

  private halt(): void {
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    for (const pod of this.pods.values()) for (const restart of pod.restarts.values()) clearTimeout(restart.timer);
  }

  private adopt(sandbox: PodSandbox): void {
    const parsed = parseSandboxId(sandbox.id);
    if (!parsed) {
      this.log('warn', { sandbox: sandbox.id }, 'destroying a VM that is not a pod of this agent');
      void sandbox.destroy().catch(() => undefined);
      return;
    }
    const entry: PodEntry = {
      ...parsed,
      sandboxId: sandbox.id,
      desired: undefined,
      status: {
        podId: parsed.podId,
        generation: 1,
        placement: parsed.placement,
        phase: 'RUNNING',
        reason: null,
        message: null,
        accelerator: accelOf(sandbox.accel),
        imageDigests: {},
        containers: [],
      },
      leases: [],
      restarts: new Map(),
      ending: false,
      handledRestartGeneration: null,
    };
    this.pods.set(parsed.podId, entry);
    this.attach(entry, sandbox);
  }

  private async converge(set: DesiredSet): Promise<void> {
    if (set.epoch === this.epoch && BigInt(set.version) < BigInt(this.appliedVersion)) return;
    this.lastSet = set;
    const wanted = new Map(set.pods.map((pod) => [pod.podId, pod]));
    // Fencing: whatever the set does not contain, or contains as another placement, goes.
    for (const [podId, pod] of this.pods) {
      const desired = wanted.get(podId);
      if (desired === undefined || desired.placement !== pod.placement) {
        this.pods.delete(podId);
        if (pod.sandbox || pod.starting) {
          this.log('info', { podId, placement: pod.placement }, 'destroying a VM the desired set no longer contains');
        }
        await this.teardown(pod, 'destroy');
      }
    }
    if (set.epoch !== this.epoch) this.log('info', { from: this.epoch, to: set.epoch }, 'adopting a new node epoch');
    this.epoch = set.epoch;
    // The tenants' namespaces, peers and policies before any pod of the set starts; a failure shows in the pods
    // that cannot get their network, and the next convergence tries again.
    await this.options.networks
      ?.converge(set)
      .catch((error: unknown) => this.log('error', { error: errorMessage(error) }, 'pod networks not converged'));
    for (const desired of set.pods) await this.convergePod(set, desired);
    this.appliedVersion = set.version;
  }

  private async convergePod(set: DesiredSet, desired: DesiredPod): Promise<void> {
    const existing = this.pods.get(desired.podId);
    if (desired.desiredState !== 'RUNNING') {
      if (existing?.status.phase === 'STOPPED' && existing.status.generation === desired.generation) return;
      const pod = existing ?? this.newEntry(desired);
      pod.desired = desired;
      const hadVm = pod.sandbox !== undefined || pod.starting !== undefined;
      await this.teardown(pod, desired.desiredState === 'DELETED' ? 'destroy' : 'shutdown');
      pod.status = { ...pod.status, generation: desired.generation, phase: 'STOPPED', reason: null, message: null };
      pod.status.containers = pod.status.containers.map((c) =>
        c.phase === 'EXITED' ? c : { ...c, phase: 'EXITED', finishedAt: c.startedAt ? iso(this.now()) : null },
      );
      this.pods.set(desired.podId, pod);
      const what = desired.desiredState === 'DELETED' ? 'destroyed' : 'shut down';
      await this.send(pod, [event('NORMAL', 'Stopped', hadVm ? `The pod VM was ${what}` : 'The pod is stopped')]);
      return;
    }
    if (existing !== undefined) {
      const first = existing.desired === undefined;
      existing.desired = desired;
      if (first) existing.handledRestartGeneration = desired.restartGeneration;
      // A finished pod stays finished until the control plane takes it out of the set or places it again.
      if (TERMINAL.has(existing.status.phase)) return;
      if (first && existing.sandbox) {
        // Adopted: its tap is still there and routed; the network layer learns of it again (idempotent).
        if (this.options.networks) {
          await this.options.networks
            .attach(desired)
            .catch((error: unknown) =>
              this.log('warn', { podId: desired.podId, error: errorMessage(error) }, 'adopted pod network'),
            );
        }
        // Adopted: report what the VM runs now (a restart of the agent loses the restart counts, not the pod).
        existing.status = { ...existing.status, generation: desired.generation };
        existing.status.containers = desired.containers.map((c) =>
          reportedOf(
            c.name,
            existing.sandbox?.containers().find((s) => s.name === c.name),
            0,
          ),
        );
        existing.logs?.configure(desired);
        await this.send(existing, []);
        this.afterContainerChange(existing);
        return;
      }
      if (
        desired.restartGeneration !== null &&
        desired.restartGeneration !== existing.handledRestartGeneration &&
        existing.sandbox !== undefined
      ) {
        existing.handledRestartGeneration = desired.restartGeneration;
        void this.restartAll(existing);
      }
      if (existing.status.generation !== desired.generation) {
        existing.status = { ...existing.status, generation: desired.generation };
        await this.send(existing, []);
      }
      return;
    }
    const pod = this.newEntry(desired);
    pod.handledRestartGeneration = desired.restartGeneration;
    this.pods.set(desired.podId, pod);
    const lost = this.lostAtAdoption.get(pod.sandboxId);
    if (lost) {
      this.lostAtAdoption.delete(pod.sandboxId);
      pod.status = { ...pod.status, phase: 'LOST', reason: lost.reason, message: lost.message };
      await this.send(pod, [event('WARNING', 'VMLost', `The pod VM ended while the agent was away: ${lost.message}`)]);
      return;
    }
    const abort = new AbortController();
    const done = this.startPod(set, pod, abort.signal).catch((error: unknown) =>
      this.log('error', { podId: pod.podId, error: String(error) }, 'starting the pod failed unexpectedly'),
    );
    pod.starting = { abort, done };
    void done.finally(() => {
      if (pod.starting?.done === done) pod.starting = undefined;
    });
  }

  private newEntry(desired: DesiredPod): PodEntry {
    return {
      podId: desired.podId,
      placement: desired.placement,
      sandboxId: sandboxIdOf(desired.podId, desired.placement),
      desired,
      status: {
        podId: desired.podId,
        generation: desired.generation,
        placement: desired.placement,
        phase: 'STARTING',
        reason: null,
        message: null,
        accelerator: null,
        imageDigests: {},
        containers: desired.containers.map((c) => reportedOf(c.name, undefined, 0)),
      },
      leases: [],
      restarts: new Map(),
      ending: false,
      handledRestartGeneration: null,
    };
  }

  private async startPod(set: DesiredSet, pod: PodEntry, signal: AbortSignal): Promise<void> {
    const desired = pod.desired;
    if (desired === undefined) return;
    const workStartedAt = this.now();
    const images = desired.containers.map((c) => c.image);
    await this.send(pod, [event('NORMAL', 'Pulling', `Pulling ${[...new Set(images)].join(', ')}`)]);
    const pulled: PulledImage[] = [];
    try {
      for (const container of desired.containers) {
        const reference = pullReference(container);
        const startedAt = this.now();
        let lastEventAt = 0;
        const image = await this.options.images.pull(reference, {
          credentials: credentialsFor(set, desired.tenantId, container.image),
          signal,
          onProgress: (progress) => {
            if (progress.phase !== 'download' || this.now() - lastEventAt < 2_000 || progress.totalBytes === 0) return;
            lastEventAt = this.now();
            const percent = Math.floor((progress.bytes / progress.totalBytes) * 100);
            void this.send(pod, [
              event('NORMAL', 'Pulling', `Pulling ${container.image}: ${percent}% of ${mib(progress.totalBytes)}`),
            ]);
          },
        });
        pulled.push(image);
        pod.leases.push(image.lease);
        pod.status.imageDigests = { ...pod.status.imageDigests, [container.image]: image.digest };
        const took = ((this.now() - startedAt) / 1000).toFixed(1);
        await this.send(pod, [event('NORMAL', 'Pulled', `Pulled ${container.image} (${image.digest}) in ${took} s`)]);
      }
    } catch (error) {
      if (signal.aborted) return this.releaseLeases(pod);
      this.releaseLeases(pod);
      const { reason, message } = describePullError(error, desired.containers[pulled.length]?.image ?? '?');
      return this.finishFailed(pod, reason, message);
    }
    if (signal.aborted) return this.releaseLeases(pod);
    let containers: SandboxContainerSpec[];
    try {
      containers = desired.containers.map((container, index) => {
        const image = pulled[index];
        if (image === undefined) throw new Error(`no image pulled for ${container.name}`);
        return containerSpecOf(desired, container, image);
      });
    } catch (error) {
      this.releaseLeases(pod);
      return this.finishFailed(pod, 'InvalidSpec', errorMessage(error));
    }
    let network: SandboxNetwork | undefined;
    try {
      network = await this.options.networks?.attach(desired);
    } catch (error) {
      this.releaseLeases(pod);
      if (signal.aborted) return;
      return this.finishFailed(pod, 'NetworkFailed', `the pod network could not be set up: ${errorMessage(error)}`);
    }
    let sandbox: PodSandbox;
    const pulledAt = this.now();
    try {
      sandbox = await this.options.sandboxes.create({
        id: pod.sandboxId,
        vcpus: desired.vcpus,
        memoryMiB: desired.memoryMiB,
        containers,
        ...(network && { network }),
      });
    } catch (error) {
      void this.early.get(pod.sandboxId)?.close();
      this.early.delete(pod.sandboxId);
      this.releaseLeases(pod);
      if (signal.aborted) return;
      if (error instanceof SandboxSpecError) return this.finishFailed(pod, 'InvalidSpec', error.message);
      if (error instanceof SandboxFailedError) {
        return this.finishFailed(pod, error.failure.reason, `the pod VM did not start: ${error.failure.message}`);
      }
      return this.finishFailed(pod, 'VMFailed', `the pod VM did not start: ${errorMessage(error)}`);
    }
    if (signal.aborted || this.pods.get(pod.podId) !== pod || pod.ending) {
      await sandbox.destroy().catch(() => undefined);
      return this.releaseLeases(pod);
    }
    pod.status.accelerator = accelOf(sandbox.accel);
    pod.status.phase = 'RUNNING';
    pod.status.containers = desired.containers.map((c) =>
      reportedOf(
        c.name,
        sandbox.containers().find((s) => s.name === c.name),
        0,
      ),
    );
    this.attach(pod, sandbox);
    const accel = accelOf(sandbox.accel);
    await this.send(pod, [event('NORMAL', 'Started', `Started the pod VM (${accel}) and its containers`)]);
    // Where a start's time went (epoch ms; bench:e2e reads it): the boot is QEMU's exec → the guest agent's hello.
    const timings = sandbox.timings;
    const bootMs = timings?.readyAt === undefined ? null : timings.readyAt - timings.launchedAt;
    this.log(
      'info',
      {
        podId: pod.podId,
        placement: pod.placement,
        accel,
        bootMs,
        pullMs: pulledAt - workStartedAt,
        workStartedAt,
        pulledAt,
        launchedAt: timings?.launchedAt,
        readyAt: timings?.readyAt,
        containersStartedAt: timings?.containersStartedAt,
        reportedAt: this.now(),
      },
      'pod VM booted',
    );
    this.afterContainerChange(pod);
  }

  private attach(pod: PodEntry, sandbox: PodSandbox): void {
    pod.sandbox = sandbox;
    // The shipper opened when the VM was launched or adopted (it has every line since), else a new one.
    let logs = pod.logsOf === sandbox ? pod.logs : this.early.get(sandbox.id);
    this.early.delete(sandbox.id);
    if (logs !== undefined) {
      if (pod.logs !== logs) void pod.logs?.close();
      pod.logs = logs;
      pod.logsOf = sandbox;
    } else {
      void pod.logs?.close();
      logs = this.options.logs?.open(
        pod.podId,
        sandbox,
        sandbox.spec.containers.map((c) => c.name),
      );
      pod.logs = logs;
      pod.logsOf = sandbox;
    }
    // An adopted VM's output waits for its desired pod (tenant, secrets to redact).
    if (pod.desired !== undefined) logs?.configure(pod.desired);
    sandbox.on('container', (status) => this.onContainer(pod, status));
    sandbox.on('state', (state) => {
      if (state !== 'stopped' && state !== 'failed') return;
      void logs?.close();
      if (pod.logs === logs) pod.logs = undefined;
      if (pod.sandbox !== sandbox) return;
      pod.sandbox = undefined;
      this.releaseLeases(pod);
      for (const restart of pod.restarts.values()) clearTimeout(restart.timer);
      if (pod.ending || this.stopped || this.pods.get(pod.podId) !== pod) return;
      const failure = sandbox.failure;
      pod.status = {
        ...pod.status,
        phase: 'LOST',
        reason: failure?.reason ?? 'VMLost',
        message: (failure?.message ?? 'the pod VM ended unexpectedly').slice(0, 1000),
      };
      void this.send(pod, [event('WARNING', 'VMLost', `The pod VM ended unexpectedly: ${pod.status.message ?? ''}`)]);
    });
  }

  private onContainer(pod: PodEntry, status: ContainerStatus): void {
    if (this.pods.get(pod.podId) !== pod || pod.ending) return;
    const index = pod.status.containers.findIndex((c) => c.name === status.name);
    const previous = pod.status.containers[index];
    if (previous === undefined) return;
    const restart = pod.restarts.get(status.name);
    if (status.state === 'running') {
      if (restart) restart.startedAt = this.now();
      pod.status.containers[index] = { ...reportedOf(status.name, status, previous.restartCount), reason: null };
      void this.send(pod, []);
      return;
    }
    if (previous.phase === 'EXITED' && previous.finishedAt !== null && restart?.timer === undefined) {
      // The same exit again (a start failure answers and then emits it).
      if (previous.exitCode === (status.exitCode ?? null)) return;
    }
    pod.status.containers[index] = reportedOf(status.name, status, previous.restartCount);
    const events: NodeEvent[] = [];
    const exitText = describeExit(status);
    if (status.reason && START_FAILURES.has(status.reason)) {
      events.push(event('WARNING', status.reason, `Container ${status.name} could not start: ${exitText}`));
    } else if (status.reason === 'OOMKilled') {
      events.push(event('WARNING', 'OOMKilled', `Container ${status.name} ran out of memory`));
    } else {
      events.push(
        event(status.exitCode === 0 ? 'NORMAL' : 'WARNING', 'Exited', `Container ${status.name} ${exitText}`),
      );
    }
    if (this.shouldRestart(pod, status)) {
      const state = pod.restarts.get(status.name) ?? { count: 0, backoffMs: 0 };
      const base = this.options.backoffBaseMs ?? 1_000;
      const ranFor = state.startedAt === undefined ? 0 : this.now() - state.startedAt;
      state.backoffMs =
        state.backoffMs === 0 || ranFor >= (this.options.backoffResetMs ?? 600_000)
          ? base
          : Math.min(state.backoffMs * 2, this.options.backoffMaxMs ?? 300_000);
      pod.restarts.set(status.name, state);
      pod.status.containers[index] = {
        ...reportedOf(status.name, status, previous.restartCount),
        phase: 'WAITING',
        reason: 'BackOff',
      };
      const seconds = state.backoffMs / 1000;
      events.push(event('WARNING', 'BackOff', `Back-off ${seconds} s restarting container ${status.name}`));
      state.timer = setTimeout(() => void this.restartContainer(pod, status.name), state.backoffMs);
    }
    void this.send(pod, events);
    this.afterContainerChange(pod);
  }

  private shouldRestart(pod: PodEntry, status: ContainerStatus): boolean {
    if (status.state !== 'exited' || (status.reason && START_FAILURES.has(status.reason))) return false;
    const policy = pod.desired?.restartPolicy ?? 'NEVER';
    if (policy === 'ALWAYS') return true;
    return policy === 'ON_FAILURE' && (status.exitCode !== 0 || status.signal !== undefined);
  }

  private async restartContainer(pod: PodEntry, name: string): Promise<void> {
    const restart = pod.restarts.get(name);
    if (restart) restart.timer = undefined;
    const sandbox = pod.sandbox;
    if (!sandbox || pod.ending || this.stopped || this.pods.get(pod.podId) !== pod) return;
    try {
      if (restart) restart.count++;
      pod.status.containers = pod.status.containers.map((c) =>
        c.name === name ? { ...c, restartCount: restart?.count ?? c.restartCount } : c,
      );
      await sandbox.restartContainer(name);
      await this.send(pod, [event('NORMAL', 'Restarted', `Restarted container ${name} (restart ${restart?.count})`)]);
    } catch (error) {
      this.log('warn', { podId: pod.podId, container: name, error: errorMessage(error) }, 'restart failed');
      await this.send(pod, [event('WARNING', 'RestartFailed', `Could not restart ${name}: ${errorMessage(error)}`)]);
      this.afterContainerChange(pod);
    }
  }

  /** `restartPod`: every container is stopped and run again in the same VM. */
  private async restartAll(pod: PodEntry): Promise<void> {
    const sandbox = pod.sandbox;
    if (!sandbox) return;
    pod.ending = true; // the exits below are ours, not the workload's
    try {
      for (const container of sandbox.spec.containers) {
        clearTimeout(pod.restarts.get(container.name)?.timer);
        await sandbox.stopContainer(container.name, this.options.stopGraceMs ?? 5_000);
      }
      for (const container of sandbox.spec.containers) {
        await waitExited(sandbox, container.name);
      }
    } finally {
      pod.ending = false;
    }
    for (const container of sandbox.spec.containers) {
      await sandbox.restartContainer(container.name).catch(() => undefined);
    }
    await this.send(pod, [event('NORMAL', 'Restarted', 'Restarted the containers of the pod')]);
  }

  /** When no container runs and none will be restarted: shut the VM down and report the outcome. */
  private afterContainerChange(pod: PodEntry): void {
    if (!pod.sandbox || pod.ending || TERMINAL.has(pod.status.phase)) return;
    const containers = pod.sandbox.containers();
    const running = containers.some((c) => c.state === 'running');
    const pending = [...pod.restarts.values()].some((r) => r.timer !== undefined);
    const all = pod.status.containers.every((c) => c.phase === 'EXITED');
    if (running || pending || !all) return;
    const failed = pod.status.containers.find((c) => c.exitCode !== 0 || c.signal !== null);
    void (async () => {
      await this.teardown(pod, 'shutdown');
      if (failed) {
        const reason = failed.reason && START_FAILURES.has(failed.reason) ? failed.reason : 'Error';
        const message = `container ${failed.name} ${failed.reason === 'CommandNotFound' ? 'could not start: command not found' : failed.exitCode !== null ? `exited with code ${failed.exitCode}` : `was killed by ${failed.signal ?? 'a signal'}`}`;
        pod.status = { ...pod.status, phase: 'FAILED', reason, message };
        await this.send(pod, [event('WARNING', 'Failed', `The pod failed: ${message}`)]);
      } else {
        pod.status = { ...pod.status, phase: 'SUCCEEDED', reason: 'Completed', message: null };
        await this.send(pod, [event('NORMAL', 'Completed', 'Every container exited 0')]);
      }
    })();
  }

  private async finishFailed(pod: PodEntry, reason: string, message: string): Promise<void> {
    if (this.pods.get(pod.podId) !== pod || pod.ending) return;
    pod.status = { ...pod.status, phase: 'FAILED', reason: reason.slice(0, 100), message: message.slice(0, 1000) };
    await this.send(pod, [event('WARNING', reason.replace(/[^A-Za-z0-9]/g, '') || 'Failed', message.slice(0, 2000))]);
  }

  private async teardown(pod: PodEntry, how: 'shutdown' | 'destroy'): Promise<void> {
    pod.ending = true;
    for (const restart of pod.restarts.values()) clearTimeout(restart.timer);
    if (pod.starting) {
      pod.starting.abort.abort();
      await pod.starting.done;
    }
    const sandbox = pod.sandbox;
    if (sandbox) {
      try {
        if (how === 'shutdown') await sandbox.shutdown(this.options.stopGraceMs ?? 5_000);
        else await sandbox.destroy();
      } catch (error) {
        this.log('warn', { podId: pod.podId, error: errorMessage(error) }, 'tearing the VM down failed; destroying');
        await sandbox.destroy().catch(() => undefined);
      }
    }
    pod.sandbox = undefined;
    void pod.logs?.close();
    pod.logs = undefined;
    this.releaseLeases(pod);
    await this.options.networks
      ?.detach(pod.podId)
      .catch((error: unknown) => this.log('warn', { podId: pod.podId, error: errorMessage(error) }, 'pod network'));
  }

  private releaseLeases(pod: PodEntry): void {
    for (const lease of pod.leases.splice(0)) lease.release();
  }

  private async send(pod: PodEntry, events: NodeEvent[]): Promise<void> {
    if (this.stopped || pod.desired === undefined || this.pods.get(pod.podId) !== pod) return;
    try {
      await this.options.transport.report({ kind: 'pod', epoch: this.epoch, status: clone(pod.status), events });
      this.lastReportOkAt = this.now();
    } catch (error) {
      this.log('warn', { podId: pod.podId, error: errorMessage(error) }, 'pod report not written');
    }
  }

  /**
   * Every heartbeat tick: fence first when nothing was written for longer than the lease grace — judged by the
   * clock, not by a report failing, since a report can hang (a proxy that accepts connections to an unreachable
   * Redis resets the client's retry count on every connect) — then one report at a time, each with a deadline so
   * hung ones neither pile up nor stop the heartbeats for good.
   */
  private async heartbeat(): Promise<void> {
    if (this.stopped) return;
    const silentMs = this.now() - this.lastReportOkAt;
    if (silentMs > this.options.leaseGraceMs) await this.selfFence(silentMs);
    if (this.heartbeating) return;
    this.heartbeating = true;
    try {
      await this.sendHeartbeat();
    } finally {
      this.heartbeating = false;
    }
  }

  private async sendHeartbeat(): Promise<void> {
    const live = [...this.pods.values()].filter((pod) => pod.desired && !TERMINAL.has(pod.status.phase));
    const usage = safeUsage(this.options.images);
    const heartbeat: Heartbeat = {
      kind: 'heartbeat',
      epoch: this.epoch,
      appliedVersion: this.appliedVersion,
      sentAt: iso(this.now()),
      capacity: this.options.capacity,
      usage: {
        vcpus: live.reduce((sum, pod) => sum + (pod.desired?.vcpus ?? 0), 0),
        memoryMiB: live.reduce((sum, pod) => sum + (pod.desired?.memoryMiB ?? 0), 0),
        pods: live.length,
        diskUsedBytes: usage.usedBytes,
        imageCacheBytes: usage.usedBytes,
      },
      diskPressure: usage.limitBytes > 0 && usage.usedBytes >= usage.limitBytes * 0.9,
      accelerator: accelOf(this.options.sandboxes.accelerator.accel),
      pods: this.statuses(),
    };
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('no answer from Redis')), this.options.leaseGraceMs);
      timer.unref(); // a stopped runtime waits for no hung report
    });
    try {
      await Promise.race([this.options.transport.report(heartbeat), deadline]);
      this.lastReportOkAt = this.now();
      this.fenced = false;
    } catch (error) {
      const silentMs = this.now() - this.lastReportOkAt;
      this.log('warn', { error: errorMessage(error), silentMs }, 'heartbeat not written');
      if (silentMs > this.options.leaseGraceMs) await this.selfFence(silentMs);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The per-rule counters of the tenants' policies on this host (level-triggered: a lost report is repaired). */
  private async reportCounters(networks: PodNetworks): Promise<void> {
    if (this.stopped) return;
    try {
      const tenants = await networks.counters();
      await this.options.transport.report({
        kind: 'policyCounters',
        epoch: this.epoch,
        sentAt: iso(this.now()),
        tenants,
      });
    } catch (error) {
      this.log('warn', { error: errorMessage(error) }, 'policy counters not reported');
    }
  }

  /** The lease could not be renewed for longer than the grace period: the control plane moves the pods away. */
  private async selfFence(silentMs: number): Promise<void> {
    if (!this.options.selfFence || this.fenced) return;
    this.fenced = true;
    const live = [...this.pods.values()].filter((pod) => pod.sandbox !== undefined || pod.starting !== undefined);
    this.log('error', { silentMs, pods: live.length }, 'self-fencing: no report written past the lease grace');
    await Promise.all(
      live.map(async (pod) => {
        await this.teardown(pod, 'destroy');
        if (!TERMINAL.has(pod.status.phase)) {
          const message = `the node could not renew its lease for ${Math.round(silentMs / 1000)} s`;
          pod.status = { ...pod.status, phase: 'LOST', reason: 'NodeFenced', message };
        }
      }),
    );
  }

  private log(level: 'info' | 'warn' | 'error', obj: object, msg: string): void {
    this.options.log?.[level](obj, msg);
  }

  /** The last desired set converged on (tests, diagnostics). */
  get desiredSet(): DesiredSet | undefined {
    return this.lastSet;
  }
}

function reportedOf(name: string, status: ContainerStatus | undefined, restartCount: number): ReportedContainer {
  if (!status) {
    return {
      name,
      phase: 'WAITING',
      exitCode: null,
      signal: null,
      reason: null,
      restartCount,
      startedAt: null,
      finishedAt: null,
    };
  }
  return {
    name,
    phase: status.state === 'running' ? 'RUNNING' : 'EXITED',
    exitCode: status.exitCode ?? null,
    signal: status.signal === undefined ? null : `SIG${status.signal}`,
    reason: status.reason ?? null,
    restartCount,
    // The guest's clock is its boot time; the host's clock at the time we learnt of it is what a tenant reads.
    startedAt: status.state === 'running' ? iso(Date.now()) : null,
    finishedAt: status.state === 'exited' ? iso(Date.now()) : null,
  };
}

function describeExit(status: ContainerStatus): string {
  if (status.reason === 'CommandNotFound') return `command not found (${status.message ?? 'exit code 127'})`;
  if (status.reason === 'PermissionDenied') return `permission denied (${status.message ?? 'exit code 126'})`;
  if (status.reason === 'StartFailed') return status.message ?? 'the start failed';
  if (status.signal !== undefined) return `was killed by signal ${status.signal}`;
  return `exited with code ${status.exitCode ?? '?'}`;
}

function describePullError(error: unknown, image: string): { reason: string; message: string } {
  if (isImageError(error)) {
    switch (error.code) {
      case 'NOT_FOUND':
        return { reason: 'ImageNotFound', message: `image ${image} does not exist: ${error.message}` };
      case 'UNAUTHORIZED':
      case 'FORBIDDEN':
        return {
          reason: 'ImagePullUnauthorized',
          message: `the registry refused ${image} with the tenant's credentials (add or fix a registry credential): ${error.message}`,
        };
      case 'BAD_REFERENCE':
        return { reason: 'InvalidImageName', message: error.message };
      case 'CACHE_FULL':
        return { reason: 'ImageCacheFull', message: `the node has no room for ${image}: ${error.message}` };
      default:
        return { reason: 'ImagePullFailed', message: `pulling ${image} failed (${error.code}): ${error.message}` };
    }
  }
  return { reason: 'ImagePullFailed', message: `pulling ${image} failed: ${errorMessage(error)}` };
}

function waitExited(sandbox: PodSandbox, name: string, timeoutMs = 30_000): Promise<void> {
  return new Promise((resolve) => {
    const check = () => {
      const status = sandbox.containers().find((c) => c.name === name);
      if (!status || status.state === 'exited') done();
    };
    const timer = setTimeout(() => done(), timeoutMs);
    const done = () => {
      clearTimeout(timer);
      sandbox.off('container', check);
      resolve();
    };
    sandbox.on('container', check);
    check();
  });
}

function safeUsage(images: ImageLayer): { usedBytes: number; limitBytes: number } {
  try {
    return images.usage();
  } catch {
    return { usedBytes: 0, limitBytes: 0 };
  }
}

const accelOf = (accel: 'kvm' | 'tcg'): 'KVM' | 'TCG' => (accel === 'kvm' ? 'KVM' : 'TCG');
const iso = (ms: number): string => new Date(ms).toISOString();
const mib = (bytes: number): string => `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
const clone = (status: PodStatus): PodStatus => ({
  ...status,
  imageDigests: { ...status.imageDigests },
  containers: status.containers.map((c) => ({ ...c })),
});
const errorMessage = (error: unknown): string => (error instanceof Error ? error.message : String(error));
const event = (type: NodeEvent['type'], reason: string, message: string): NodeEvent => ({
  type,
  reason,
  message: message.slice(0, 2000),
  at: new Date().toISOString(),
});
