/**
 * One pod sandbox: a running QEMU with its guest, as the node agent drives it. Containers, their output and
 * their exits come from the guest agent; the VM's own fate (a guest panic, QEMU killed or crashed) comes from
 * QMP and the QEMU process. When the VM is gone, for whatever reason, everything it had on the host (process,
 * cgroup, sockets, files) is removed and the sandbox ends `stopped` or `failed` with a reason.
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';
import type {
  ContainerStatus,
  ExecStatus,
  GuestEvent,
  HelloTimings,
  OutputChunkFrame,
  OutputStream,
  Stats,
  User,
} from '@caas/guest-protocol';
import { GuestConnection, type StreamPositions } from './guest-connection';
import type { SandboxStore, SandboxRecord } from './sandbox-store';
import { guestContainerSpec, type SandboxSpec } from './sandbox-spec';
import { cleanupVm, isAlive, killVm, type Accelerator, type QmpClient, type QmpEvent, type VmExit } from './vmm';

export type SandboxState = 'booting' | 'running' | 'stopping' | 'stopped' | 'failed';

export type SandboxFailureReason =
  /** QEMU could not start. */
  | 'LaunchFailed'
  /** The guest agent did not answer before the boot deadline. */
  | 'BootTimeout'
  /** The guest kernel panicked (pvpanic). */
  | 'GuestPanic'
  /** QEMU died of a signal nobody on this host asked for (killed from outside, or crashed). */
  | 'QemuKilled'
  /** QEMU exited on its own without a shutdown we asked for. */
  | 'QemuExited'
  /** The guest powered itself off without being asked to. */
  | 'GuestPoweredOff';

export interface SandboxFailure {
  reason: SandboxFailureReason;
  message: string;
  /** The end of the guest console, for debugging (a panic's backtrace, the agent's last words). */
  consoleTail: string;
}

export interface SandboxOutput {
  seq: number;
  /** A container name or an exec id. */
  source: string;
  stream: OutputStream;
  data: Buffer;
}

export interface SandboxTimings {
  /** Epoch ms: QEMU executed. */
  launchedAt: number;
  /** Epoch ms: the guest agent answered hello (this process's first connection). */
  readyAt?: number;
  /** Epoch ms: every container was asked to run and answered. */
  containersStartedAt?: number;
  /** The guest's own clock (CLOCK_BOOTTIME ns) at agent start and readiness. */
  guest?: HelloTimings;
}

export interface ExecOptions {
  env?: string[];
  workingDir?: string;
  user?: User;
}

export interface ExecHandle {
  execId: string;
  pid: number;
  /** Resolves once the process ended and its output up to its end was delivered. */
  exited: Promise<ExecStatus>;
}

export interface SandboxEvents {
  state: [SandboxState];
  /** A container started or exited; an exit is emitted only after that container's output. */
  container: [ContainerStatus];
  exec: [ExecStatus];
  output: [SandboxOutput];
  /** Output chunks fromSeq..toSeq were lost (the guest's ring overflowed while the host was away or slow). */
  gap: [{ fromSeq: number; toSeq: number }];
  warning: [string];
}

export class SandboxFailedError extends Error {
  override readonly name = 'SandboxFailedError';
  constructor(
    readonly id: string,
    readonly failure: SandboxFailure,
  ) {
    super(`sandbox ${id}: ${failure.reason}: ${failure.message}`);
  }
}

/** How long a container's exit waits for its last output before it is emitted anyway. */
const EXIT_OUTPUT_WAIT_MS = 2_000;
const POSITIONS_FLUSH_MS = 250;
const CONSOLE_TAIL_BYTES = 8_192;

interface PendingExit {
  emit(): void;
  container: string | undefined;
  lastOutputSeq: number;
  timer: NodeJS.Timeout;
}

export interface SandboxParts {
  record: SandboxRecord;
  store: SandboxStore;
  qmp: QmpClient;
  /** Only while QEMU is this process's child. */
  exited?: Promise<VmExit>;
  positions: StreamPositions;
  launchedAt: number;
  vmPaths: { dir: string; ctlSocket: string; outSocket: string; consoleLog: string; qemuLog: string };
}

export class Sandbox extends EventEmitter<SandboxEvents> {
  readonly id: string;
  readonly spec: SandboxSpec;
  readonly accel: Accelerator;
  readonly pid: number;
  readonly timings: SandboxTimings;
  private currentState: SandboxState = 'booting';
  private currentFailure: SandboxFailure | undefined;
  private readonly containerStatus = new Map<string, ContainerStatus>();
  private readonly execWaiters = new Map<string, (status: ExecStatus) => void>();
  private readonly pendingExits = new Set<PendingExit>();
  private readonly conn: GuestConnection;
  private readonly qmpEvents: QmpEvent[] = [];
  private expectingExit = false;
  private gone: Promise<void> | undefined;
  private goneSignal!: () => void;
  private readonly vmGone: Promise<VmExit | undefined>;
  private positionsTimer: NodeJS.Timeout | undefined;
  private detached = false;
  private readonly execPrefix = `x${randomBytes(3).toString('hex')}`;
  private nextExec = 1;

  constructor(private readonly parts: SandboxParts) {
    super();
    this.id = parts.record.id;
    this.spec = parts.record.spec;
    this.accel = parts.record.accel;
    this.pid = parts.record.pid;
    this.timings = { launchedAt: parts.launchedAt };
    this.conn = new GuestConnection({ ctl: parts.vmPaths.ctlSocket, out: parts.vmPaths.outSocket }, parts.positions, {
      event: (_seq, event) => this.onGuestEvent(event),
      output: (chunk) => this.onOutput(chunk),
      gap: (fromSeq, toSeq) => this.onGap(fromSeq, toSeq),
      connection: (connected, reason) => {
        if (!connected && !this.expectingExit) this.emit('warning', `guest connection lost: ${reason ?? ''}`);
      },
    });
    parts.qmp.onEvent((event) => this.qmpEvents.push(event));
    this.vmGone = new Promise((resolve) => {
      this.goneSignal = () => resolve(undefined);
      parts.exited?.then(resolve, () => resolve(undefined));
      // QMP closes as QEMU exits: once the process is gone, take its exit status too when it is our child.
      parts.qmp.onClose(() => {
        if (this.detached) return; // we closed it: the VM lives on for the next host process
        void this.watchUntilDead()
          .then(() => (parts.exited ? Promise.race([parts.exited, delay(2_000).then(() => undefined)]) : undefined))
          .then(resolve, () => resolve(undefined));
      });
    });
    void this.vmGone.then((exit) => this.finish(exit));
  }

  get state(): SandboxState {
    return this.currentState;
  }

  get failure(): SandboxFailure | undefined {
    return this.currentFailure;
  }

  /** Positions of output and events accepted so far. */
  get positions(): StreamPositions {
    return this.conn.accepted;
  }

  containers(): ContainerStatus[] {
    return [...this.containerStatus.values()].map((status) => ({ ...status }));
  }

  container(name: string): ContainerStatus | undefined {
    const status = this.containerStatus.get(name);
    return status && { ...status };
  }

  /**
   * Connects to the guest (until `deadline`) and runs every container of the spec it does not run yet; used at
   * creation and on adoption, where a boot interrupted by a host restart is finished.
   */
  async start(deadline: number): Promise<void> {
    const hello = await Promise.race([
      this.conn.open(deadline),
      this.vmGone.then(() => {
        throw new Error('the VM went away during boot');
      }),
    ]);
    this.timings.readyAt = Date.now();
    if (this.spec.network) {
      // Before any container starts (again on adoption: idempotent), so containers start with their network up.
      const { mac, address, gateway, mtu } = this.spec.network;
      await this.conn.request('network', { mac, address, gateway, mtu });
    }
    this.timings.guest = hello.timings;
    for (const status of hello.containers) this.containerStatus.set(status.name, status);
    for (const [index, container] of this.spec.containers.entries()) {
      if (this.containerStatus.has(container.name)) continue;
      const { status } = await this.conn.request('run', { container: guestContainerSpec(container, index) });
      if (!this.containerStatus.has(status.name) || status.state === 'exited') this.updateContainer(status);
    }
    this.timings.containersStartedAt = Date.now();
    if (this.parts.record.phase !== 'running') {
      this.parts.record.phase = 'running';
      await this.parts.store.writeRecord(this.parts.record);
    }
    this.setState('running');
  }

  async exec(container: string, argv: string[], options: ExecOptions = {}): Promise<ExecHandle> {
    const execId = `${this.execPrefix}-${this.nextExec++}`;
    const exited = new Promise<ExecStatus>((resolve) => this.execWaiters.set(execId, resolve));
    try {
      const { pid } = await this.conn.request('exec', {
        container,
        execId,
        argv,
        env: options.env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
        workingDir: options.workingDir ?? '/',
        user: options.user ?? { uid: 0, gid: 0, additionalGids: [] },
      });
      return { execId, pid, exited };
    } catch (error) {
      this.execWaiters.delete(execId);
      throw error;
    }
  }

  async signal(container: string, signal: number): Promise<void> {
    await this.conn.request('signal', { name: container, signal });
  }

  /** SIGTERM, then SIGKILL after `graceMs`; the exit arrives as a `container` event. */
  async stopContainer(container: string, graceMs: number): Promise<void> {
    await this.conn.request('stop', { name: container, graceMs });
  }

  /**
   * Runs an exited container of the spec again, in the same VM (a restart policy): the guest reuses the name of
   * an exited container. Resolves with the new status (`running`, or `exited` with a start failure reason);
   * a `container` event follows as for the first run.
   */
  async restartContainer(name: string): Promise<ContainerStatus> {
    const index = this.spec.containers.findIndex((container) => container.name === name);
    const container = this.spec.containers[index];
    if (container === undefined) throw new Error(`sandbox ${this.id} has no container ${name}`);
    const known = this.containerStatus.get(name);
    if (known !== undefined && known.state !== 'exited') throw new Error(`container ${name} is still ${known.state}`);
    const { status } = await this.conn.request('run', { container: guestContainerSpec(container, index) });
    this.updateContainer(status);
    return { ...status };
  }

  stats(): Promise<Stats> {
    return this.conn.request('stats', {});
  }

  /** Resolves with the container's final status (after its output), now if it already exited. */
  waitForExit(container: string, timeoutMs = 60_000): Promise<ContainerStatus> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const status = this.containerStatus.get(container);
        if (status?.state === 'exited' && !this.exitPending(container)) {
          cleanup();
          resolve({ ...status });
        } else if (this.currentState === 'stopped' || this.currentState === 'failed') {
          cleanup();
          reject(new Error(`sandbox ${this.id} ended (${this.currentState}) before ${container} exited`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${container} did not exit within ${timeoutMs} ms`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.off('container', check);
        this.off('state', check);
      };
      this.on('container', check);
      this.on('state', check);
      check();
    });
  }

  /**
   * Stops every container (SIGTERM, SIGKILL after `graceMs`) and powers the guest off; resolves once QEMU is
   * gone and cleaned up. Falls back to destroy when the guest does not comply in time.
   */
  async shutdown(graceMs = 5_000): Promise<void> {
    if (this.gone) return this.gone;
    this.expectingExit = true;
    this.setState('stopping');
    try {
      await this.conn.request('shutdown', { graceMs }, 5_000);
      const exited = await Promise.race([this.vmGone.then(() => true), delay(graceMs + 10_000).then(() => false)]);
      if (exited) return await this.ended();
    } catch {
      // the guest did not answer: power it off the hard way
    }
    await this.destroy();
  }

  /** Kills QEMU at once and removes everything the sandbox had on the host. Idempotent. */
  async destroy(): Promise<void> {
    this.expectingExit = true;
    if (this.currentState !== 'stopped' && this.currentState !== 'failed') this.setState('stopping');
    await killVm(this.parts.vmPaths.dir);
    this.goneSignal();
    await this.ended();
  }

  /** Resolves when the sandbox has ended and is cleaned up. */
  ended(): Promise<void> {
    return this.vmGone.then(() => this.gone);
  }

  /**
   * Lets go of the VM without touching it (this host process is going away): closes the connections and
   * persists the positions, so a later process adopts the sandbox and resumes exactly there.
   */
  async detach(): Promise<void> {
    this.detached = true;
    clearTimeout(this.positionsTimer);
    this.conn.close();
    this.parts.qmp.close();
    for (const pending of this.pendingExits) clearTimeout(pending.timer);
    await this.parts.store.writePositions(this.id, this.conn.accepted);
  }

  /** Marks the sandbox failed and tears the VM down (a boot that did not complete). */
  async fail(reason: SandboxFailureReason, message: string): Promise<SandboxFailure> {
    // When the VM itself already went away (a panic during boot, QEMU killed), what happened to it is the reason.
    if (this.gone) await this.gone;
    if (!this.currentFailure) this.currentFailure = { reason, message, consoleTail: await this.consoleTail() };
    await this.destroy();
    return this.currentFailure;
  }

  private finish(exit: VmExit | undefined): void {
    if (this.detached) return;
    this.gone = (async () => {
      const unasked = !this.expectingExit;
      this.conn.close();
      this.parts.qmp.close();
      clearTimeout(this.positionsTimer);
      for (const pending of this.pendingExits) {
        clearTimeout(pending.timer);
        pending.emit();
      }
      if (unasked && !this.currentFailure) this.currentFailure = await this.describeUnaskedExit(exit);
      await cleanupVm(this.parts.vmPaths.dir, this.id).catch((error: Error) => {
        this.emit('warning', `cleanup of ${this.id} incomplete: ${error.message}`);
      });
      await this.parts.store.remove(this.id);
      this.setState(this.currentFailure ? 'failed' : 'stopped');
    })();
  }

  private async describeUnaskedExit(exit: VmExit | undefined): Promise<SandboxFailure> {
    const consoleTail = await this.consoleTail();
    // pvpanic reports a panic once its module is loaded; one earlier in boot only shows on the console (and,
    // with panic=-1 and -no-reboot, as a guest reset).
    const panicked =
      this.qmpEvents.some((event) => event.event === 'GUEST_PANICKED') ||
      /Kernel panic - not syncing/.test(consoleTail);
    const shutdown = this.qmpEvents.find((event) => event.event === 'SHUTDOWN');
    const how = exit ? (exit.signal ? `signal ${exit.signal}` : `exit code ${String(exit.code)}`) : 'not our child';
    if (panicked) return { reason: 'GuestPanic', message: 'the guest kernel panicked', consoleTail };
    if (exit?.signal) return { reason: 'QemuKilled', message: `QEMU died of ${exit.signal}`, consoleTail };
    const shutdownReason = (shutdown?.data as { reason?: unknown } | undefined)?.reason;
    if (shutdownReason === 'guest-shutdown' || shutdownReason === 'guest-reset') {
      const what = shutdownReason === 'guest-reset' ? 'reset' : 'powered off';
      return { reason: 'GuestPoweredOff', message: `the guest ${what} itself`, consoleTail };
    }
    const detail = shutdown ? `after a shutdown (${String(shutdownReason)})` : 'without a shutdown (killed or crashed)';
    return { reason: exit ? 'QemuExited' : 'QemuKilled', message: `QEMU ended ${detail}, ${how}`, consoleTail };
  }

  /** After QMP closed: QEMU is exiting or gone; wait (bounded) until its process is. */
  private async watchUntilDead(): Promise<void> {
    for (let i = 0; i < 200 && (await isAlive(this.pid, this.parts.vmPaths.dir)); i++) await delay(25);
  }

  private async consoleTail(): Promise<string> {
    try {
      const file = await open(this.parts.vmPaths.consoleLog, 'r');
      try {
        const { size } = await file.stat();
        const length = Math.min(size, CONSOLE_TAIL_BYTES);
        const buffer = Buffer.alloc(length);
        await file.read(buffer, 0, length, size - length);
        return buffer.toString('utf8');
      } finally {
        await file.close();
      }
    } catch {
      return '';
    }
  }

  private onGuestEvent(event: GuestEvent): void {
    this.schedulePositions();
    switch (event.event) {
      case 'container.started': {
        const known = this.containerStatus.get(event.name);
        if (known?.state === 'exited') return;
        this.updateContainer({
          ...(known ?? { name: event.name, oomKilled: false, lastOutputSeq: 0 }),
          state: 'running',
          pid: event.pid,
          startedAtNs: event.atNs,
        });
        return;
      }
      case 'container.exited':
        this.afterOutput(event.status.lastOutputSeq, event.status.name, () => this.updateContainer(event.status));
        return;
      case 'exec.exited': {
        const status = event.status;
        this.afterOutput(status.lastOutputSeq, undefined, () => {
          this.emit('exec', status);
          this.execWaiters.get(status.execId)?.(status);
          this.execWaiters.delete(status.execId);
        });
        return;
      }
      case 'guest.warning':
        this.emit('warning', event.message);
        return;
    }
  }

  private updateContainer(status: ContainerStatus): void {
    this.containerStatus.set(status.name, status);
    this.emit('container', { ...status });
  }

  /** Runs `emit` once output up to `lastOutputSeq` was delivered (or after a bounded wait). */
  private afterOutput(lastOutputSeq: number, container: string | undefined, emit: () => void): void {
    if (this.conn.accepted.outputSeq >= lastOutputSeq) {
      emit();
      return;
    }
    const pending: PendingExit = {
      lastOutputSeq,
      container,
      emit: () => {
        this.pendingExits.delete(pending);
        clearTimeout(pending.timer);
        emit();
      },
      timer: setTimeout(() => pending.emit(), EXIT_OUTPUT_WAIT_MS),
    };
    this.pendingExits.add(pending);
  }

  private exitPending(container: string): boolean {
    return [...this.pendingExits].some((pending) => pending.container === container);
  }

  private releaseExits(): void {
    const seq = this.conn.accepted.outputSeq;
    for (const pending of [...this.pendingExits]) if (seq >= pending.lastOutputSeq) pending.emit();
  }

  private onOutput(chunk: OutputChunkFrame): void {
    this.emit('output', { seq: chunk.seq, source: chunk.source, stream: chunk.stream, data: chunk.data });
    this.releaseExits();
    this.schedulePositions();
  }

  private onGap(fromSeq: number, toSeq: number): void {
    this.emit('gap', { fromSeq, toSeq });
    this.releaseExits();
    this.schedulePositions();
  }

  private schedulePositions(): void {
    if (this.positionsTimer || this.detached) return;
    this.positionsTimer = setTimeout(() => {
      this.positionsTimer = undefined;
      if (this.detached || this.gone) return;
      this.parts.store.writePositions(this.id, this.conn.accepted).catch(() => undefined);
    }, POSITIONS_FLUSH_MS);
  }

  private setState(state: SandboxState): void {
    if (this.currentState === state) return;
    this.currentState = state;
    this.emit('state', state);
  }
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
