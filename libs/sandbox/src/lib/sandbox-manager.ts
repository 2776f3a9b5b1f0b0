/**
 * The Sandbox API a node agent drives: create a pod sandbox from a spec, list them, and adopt the ones still
 * running after this process restarted. One manager per host process and state directory.
 */
import { EventEmitter } from 'node:events';
import { dirname, join } from 'node:path';
import type { StreamPositions } from './guest-connection';
import { Sandbox, SandboxFailedError, type SandboxFailure } from './sandbox';
import { validateSandboxSpec, diskSerial, type SandboxSpec } from './sandbox-spec';
import { SandboxStore, type SandboxRecord } from './sandbox-store';
import {
  DEFAULT_UID_RANGE,
  allocateUid,
  buildQemuCommand,
  cleanupVm,
  hostTscKhz,
  launchQemu,
  listUsedUids,
  probeAccelerator,
  vmPaths,
  vmStatus,
  QmpClient,
  type AcceleratorChoice,
  type UidRange,
  type VmExit,
} from './vmm';

export interface SandboxManagerOptions {
  /** Keep it short: the VMs' unix sockets live below it and `sun_path` holds 107 bytes. */
  stateDir: string;
  kernel: string;
  initrd: string;
  /** TCG is not a security boundary: allowed only where the configuration says so (development, CI). */
  allowTcg: boolean;
  qemuBinary?: string;
  uidRange?: UidRange;
  /** A network namespace file (`/run/netns/<name>`) every VM runs in; default the agent's own namespace. */
  netns?: string;
  /** caas-tapfd (runtime/tapfd), for VMs with a network; default: beside the guest kernel (runtime/guest/build.sh). */
  tapHelper?: string;
  /** QEMU exec → guest agent answers. Default 60 s (TCG on a loaded 2-core host needs a lot of it). */
  bootTimeoutMs?: number;
  /** Host memory QEMU may use beyond guest RAM (TCG's code buffer, QEMU itself). Default 256 MiB. */
  vmOverheadMiB?: number;
  /** Extra guest kernel parameters for every VM (debugging). */
  kernelParams?: string[];
}

export interface AdoptionReport {
  adopted: Sandbox[];
  /** Sandboxes whose VM had died while no host process watched it: cleaned up. */
  lost: Array<{ id: string; failure: SandboxFailure }>;
}

/**
 * Guest kernel parameters for every VM. `cryptomgr.notests`: the stock kernel self-tests its crypto algorithms
 * at boot, ≈0.6 s of emulated CPU under TCG (crypto_algapi_init and friends in `initcall_debug`); the guest's
 * crypto is the tenant's own business and no boundary of ours depends on it.
 */
export const DEFAULT_GUEST_PARAMS: readonly string[] = ['cryptomgr.notests'];

export interface SandboxManagerEvents {
  /**
   * A sandbox is tracked (created or being adopted), before its guest is connected: subscribe to its events
   * here to see all of its output and every container event.
   */
  sandbox: [Sandbox];
}

export class SandboxManager extends EventEmitter<SandboxManagerEvents> {
  private readonly sandboxes = new Map<string, Sandbox>();
  private readonly reservedUids = new Set<number>();
  private readonly store: SandboxStore;

  private constructor(
    private readonly options: SandboxManagerOptions,
    readonly accelerator: AcceleratorChoice,
    private readonly tscKhz: number,
  ) {
    super();
    this.store = new SandboxStore(options.stateDir);
  }

  private get tapHelper(): string {
    return this.options.tapHelper ?? join(dirname(this.options.kernel), 'caas-tapfd');
  }

  /** Probes the accelerator (KVM if it really boots our kernel; TCG only if allowed) and prepares the state dir. */
  static async open(options: SandboxManagerOptions): Promise<SandboxManager> {
    const accelerator = await probeAccelerator({
      qemuBinary: options.qemuBinary,
      kernel: options.kernel,
      initrd: options.initrd,
      allowTcg: options.allowTcg,
    });
    const manager = new SandboxManager(options, accelerator, await hostTscKhz());
    await manager.store.init();
    return manager;
  }

  list(): Sandbox[] {
    return [...this.sandboxes.values()];
  }

  get(id: string): Sandbox | undefined {
    return this.sandboxes.get(id);
  }

  /**
   * Boots a VM for `spec` and runs its containers. Resolves once every container was started (each may already
   * have exited); throws SandboxSpecError for a bad spec (nothing started) and SandboxFailedError when the
   * VM did not come up (nothing left behind).
   */
  async create(input: SandboxSpec): Promise<Sandbox> {
    const spec = validateSandboxSpec(input);
    if (this.sandboxes.has(spec.id)) throw new SandboxFailedError(spec.id, conflict(spec.id));
    try {
      await this.store.claim(spec.id);
    } catch {
      throw new SandboxFailedError(spec.id, conflict(spec.id));
    }
    const uid = await this.reserveUid();
    const deadline = Date.now() + (this.options.bootTimeoutMs ?? 60_000);
    const vmDir = this.store.vmDir(spec.id);
    let sandbox: Sandbox | undefined;
    try {
      const command = buildQemuCommand({
        dir: vmDir,
        name: spec.id,
        accel: this.accelerator.accel,
        memoryMiB: spec.memoryMiB,
        vcpus: spec.vcpus,
        boot: {
          kind: 'kernel',
          kernel: this.options.kernel,
          initrd: this.options.initrd,
          tscKhz: this.tscKhz,
          guestParams: [...DEFAULT_GUEST_PARAMS, ...(this.options.kernelParams ?? []), ...(spec.kernelParams ?? [])],
        },
        disks: spec.containers.map((container, index) => ({ path: container.image.path, serial: diskSerial(index) })),
        ...(spec.network && { nic: { mac: spec.network.mac } }),
      });
      const launchedAt = Date.now();
      const handle = await launchQemu({
        id: spec.id,
        dir: vmDir,
        args: command.args,
        passFiles: command.passFiles,
        uid,
        gid: uid,
        qemuBinary: this.options.qemuBinary,
        netns: spec.network?.netns ?? this.options.netns,
        ...(spec.network &&
          command.tapFd !== undefined && {
            tap: { name: spec.network.tap, fd: command.tapFd, helper: this.tapHelper },
          }),
        cgroup: {
          cpuMillis: spec.vcpus * 1000 + 250,
          memoryBytes: (spec.memoryMiB + (this.options.vmOverheadMiB ?? 256)) * 1024 * 1024,
        },
      });
      const record: SandboxRecord = {
        id: spec.id,
        spec,
        accel: this.accelerator.accel,
        uid,
        gid: uid,
        pid: handle.pid,
        phase: 'booting',
        createdAt: new Date(launchedAt).toISOString(),
      };
      await this.store.writeRecord(record);
      sandbox = this.track(record, handle.qmp, { outputSeq: 0, eventSeq: 0 }, launchedAt, handle.exited);
      await sandbox.start(deadline);
      return sandbox;
    } catch (error) {
      if (sandbox) {
        const message = error instanceof Error ? error.message : String(error);
        const timedOut = Date.now() >= deadline;
        const failure = await sandbox.fail(timedOut ? 'BootTimeout' : 'QemuExited', message);
        throw new SandboxFailedError(spec.id, failure);
      }
      await cleanupVm(vmDir, spec.id).catch(() => undefined);
      await this.store.remove(spec.id);
      this.reservedUids.delete(uid);
      const message = error instanceof Error ? error.message : String(error);
      throw new SandboxFailedError(spec.id, { reason: 'LaunchFailed', message, consoleTail: '' });
    }
  }

  /**
   * Finds the sandboxes a previous host process left: reconnects to every live one (finishing a boot it had
   * interrupted, and resuming output and events from the positions it had persisted), and cleans up every
   * one whose VM died meanwhile, or that never got as far as a running QEMU.
   */
  async adopt(): Promise<AdoptionReport> {
    const report: AdoptionReport = { adopted: [], lost: [] };
    for (const id of await this.store.ids()) {
      if (this.sandboxes.has(id)) continue;
      const record = await this.store.readRecord(id);
      const vmDir = this.store.vmDir(id);
      const status = await vmStatus(vmDir).catch(() => ({ alive: false as const }));
      if (!record || !status.alive || status.pid !== record.pid) {
        await cleanupVm(vmDir, id).catch(() => undefined);
        await this.store.remove(id);
        report.lost.push({
          id,
          failure: {
            reason: record ? 'QemuExited' : 'LaunchFailed',
            message: record ? 'the VM ended while no host process watched it' : 'the launch never completed',
            consoleTail: '',
          },
        });
        continue;
      }
      this.reservedUids.add(record.uid);
      try {
        const qmp = await QmpClient.connect(vmPaths(vmDir).qmpSocket, { timeoutMs: 5_000 });
        const positions = await this.store.readPositions(id);
        const sandbox = this.track(record, qmp, positions, Date.parse(record.createdAt));
        await sandbox.start(Date.now() + (this.options.bootTimeoutMs ?? 60_000));
        report.adopted.push(sandbox);
      } catch (error) {
        const sandbox = this.sandboxes.get(id);
        const message = `adoption failed: ${error instanceof Error ? error.message : String(error)}`;
        if (sandbox) {
          report.lost.push({ id, failure: await sandbox.fail('QemuExited', message) });
        } else {
          await cleanupVm(vmDir, id).catch(() => undefined);
          await this.store.remove(id);
          report.lost.push({ id, failure: { reason: 'QemuExited', message, consoleTail: '' } });
        }
      }
    }
    return report;
  }

  /** Lets go of every sandbox without touching the VMs (this process is about to exit). */
  async detachAll(): Promise<void> {
    await Promise.all(this.list().map((sandbox) => sandbox.detach()));
    this.sandboxes.clear();
  }

  private track(
    record: SandboxRecord,
    qmp: QmpClient,
    positions: StreamPositions,
    launchedAt: number,
    exited?: Promise<VmExit>,
  ): Sandbox {
    const sandbox = new Sandbox({
      record,
      store: this.store,
      qmp,
      exited,
      positions,
      launchedAt,
      vmPaths: vmPaths(this.store.vmDir(record.id)),
    });
    this.sandboxes.set(record.id, sandbox);
    this.emit('sandbox', sandbox);
    void sandbox.ended().then(() => {
      this.sandboxes.delete(record.id);
      this.reservedUids.delete(record.uid);
    });
    return sandbox;
  }

  private async reserveUid(): Promise<number> {
    // Owners of live processes (a QEMU whose directory is gone) and of VM dirs, plus what this process holds.
    const used = await listUsedUids(this.options.stateDir, this.options.uidRange ?? DEFAULT_UID_RANGE);
    const uid = allocateUid([...used, ...this.reservedUids], this.options.uidRange ?? DEFAULT_UID_RANGE);
    this.reservedUids.add(uid);
    return uid;
  }
}

function conflict(id: string): SandboxFailure {
  return { reason: 'LaunchFailed', message: `a sandbox ${id} already exists on this host`, consoleTail: '' };
}
