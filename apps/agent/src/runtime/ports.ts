/**
 * What the pod runtime needs from the host: the node contract transport, the sandbox layer and the image layer.
 * The real implementations are `NodeConnection`, `SandboxManager` and `ImageService`; tests pass fakes.
 */
import type { EventEmitter } from 'node:events';
import type { ContainerStatus } from '@caas/guest-protocol';
import type { PullOptions, PulledImage } from '@caas/oci-images';
import type { SandboxEvents, SandboxFailure, SandboxSpec, SandboxState, SandboxTimings } from '@caas/sandbox';
import type { DesiredSet, DesiredSetReady, NodeReport } from '@caas/queue-contracts';

export interface NodeTransport {
  readDesiredSet(): Promise<DesiredSet | null>;
  onAnnouncement(handler: (ready: DesiredSetReady) => Promise<void>): unknown;
  report(report: NodeReport): Promise<void>;
}

/** One pod VM, as the runtime drives it (`Sandbox`). */
export interface PodSandbox extends Pick<EventEmitter<SandboxEvents>, 'on' | 'off'> {
  readonly id: string;
  readonly spec: SandboxSpec;
  readonly accel: 'kvm' | 'tcg';
  readonly state: SandboxState;
  readonly failure: SandboxFailure | undefined;
  /** When the VM was launched, answered and started its containers (the fakes of the tests have none). */
  readonly timings?: SandboxTimings;
  containers(): ContainerStatus[];
  restartContainer(name: string): Promise<ContainerStatus>;
  stopContainer(name: string, graceMs: number): Promise<void>;
  shutdown(graceMs?: number): Promise<void>;
  destroy(): Promise<void>;
}

/** The host's VMs (`SandboxManager`). */
export interface SandboxHost {
  readonly accelerator: { accel: 'kvm' | 'tcg' };
  adopt(): Promise<{ adopted: PodSandbox[]; lost: Array<{ id: string; failure: SandboxFailure }> }>;
  create(spec: SandboxSpec): Promise<PodSandbox>;
  /**
   * `sandbox` is emitted when a VM is launched, before its containers start: whoever ships its output must listen
   * from then on, or the first lines are gone before `create` resolves.
   */
  on?(event: 'sandbox', listener: (sandbox: PodSandbox) => void): unknown;
  off?(event: 'sandbox', listener: (sandbox: PodSandbox) => void): unknown;
  list(): PodSandbox[];
  detachAll(): Promise<void>;
}

/** The node's images (`ImageService`). */
export interface ImageLayer {
  pull(reference: string, options?: PullOptions): Promise<PulledImage>;
  usage(): { usedBytes: number; limitBytes: number };
}
