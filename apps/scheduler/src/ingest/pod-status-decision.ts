import type { PodStatus, ReportedContainer } from '@caas/queue-contracts';

/**
 * What status ingest does with one pod status (from a pod report or a heartbeat), as a pure function of the pod
 * row it read and the status (ADR-002, transitions 4–10, 14, 18). The caller applies the result with conditional
 * UPDATEs on exactly the row it read (phase, generation, node, epoch, placement), so a decision taken on a row
 * that changed meanwhile writes nothing and is taken again on a fresh read.
 */

export type PodPhase =
  'PENDING' | 'SCHEDULED' | 'STARTING' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'STOPPED' | 'DELETING';
export type DesiredState = 'RUNNING' | 'STOPPED' | 'DELETED';
export type RestartPolicy = 'NEVER' | 'ON_FAILURE' | 'ALWAYS';
export type ContainerPhase = 'WAITING' | 'RUNNING' | 'EXITED';

export interface ContainerState {
  name: string;
  image: string;
  phase: ContainerPhase;
  exitCode: number | null;
  signal: string | null;
  reason: string | null;
  restartCount: number;
  startedAt: string | null;
  finishedAt: string | null;
}

/** The columns of a pod row a decision needs. */
export interface PodState {
  id: string;
  tenantId: string;
  name: string;
  phase: PodPhase;
  desiredState: DesiredState;
  restartPolicy: RestartPolicy;
  generation: number;
  observedGeneration: number;
  nodeId: string | null;
  nodeEpoch: number | null;
  placement: number;
  lostCount: number;
  imageDigests: Record<string, string>;
  accelerator: 'KVM' | 'TCG' | null;
  vcpus: number;
  memoryMiB: number;
  ip: string | null;
  containers: ContainerState[];
}

/** A container row to overwrite with what the node reported (restartCount never goes down). */
export type ContainerUpdate = ReportedContainer;

interface Common {
  /** `observedGeneration` after the status (never lower, never above the pod's generation). */
  observedGeneration: number;
  containers: ContainerUpdate[];
}

export type PodDecision =
  /** Not this node's pod, not this epoch or not this placement: logged and counted, nothing written. */
  | { kind: 'drop'; why: string }
  /** Accepted, but nothing changes. */
  | { kind: 'none' }
  /** No terminal outcome: maybe a phase move (4: STARTING, 5: RUNNING), digests, containers, observedGeneration. */
  | (Common & {
      kind: 'progress';
      to: 'STARTING' | 'RUNNING' | null;
      /** The merged digests when the status adds some (the node's desired set changes: its version is bumped). */
      imageDigests: Record<string, string> | null;
      accelerator: 'KVM' | 'TCG' | null;
      reason: string | null;
      message: string | null;
    })
  /** The VM is gone and the pod keeps its row without a node: 7, 8 (or could not start), 10, 14. */
  | (Common & {
      kind: 'finish';
      transition: 7 | 8 | 10 | 14;
      to: 'SUCCEEDED' | 'FAILED' | 'STOPPED';
      reason: string | null;
      message: string | null;
    })
  /** 9: the VM was lost, the pod wants to run and its policy restarts it: back to PENDING after a backoff. */
  | (Common & { kind: 'replace'; message: string | null })
  /** 18: the VM of a DELETING pod is gone: the row goes. */
  | { kind: 'remove' };

const PROGRESS_RANK: Partial<Record<PodPhase, number>> = { SCHEDULED: 0, STARTING: 1, RUNNING: 2 };
const REPORTED_RANK: Record<PodStatus['phase'], number> = {
  STARTING: 1,
  RUNNING: 2,
  SUCCEEDED: 3,
  FAILED: 3,
  STOPPED: 3,
  LOST: 3,
};
const CONTAINER_RANK: Record<ContainerPhase, number> = { WAITING: 0, RUNNING: 1, EXITED: 2 };

const VM_GONE: ReadonlySet<PodStatus['phase']> = new Set(['SUCCEEDED', 'FAILED', 'STOPPED', 'LOST']);

const sameInstant = (a: string | null, b: string | null): boolean =>
  a === b || (a !== null && b !== null && Date.parse(a) === Date.parse(b));

/**
 * Reported containers that are newer than (or as new as and different from) the stored ones. A container's
 * progress is (restartCount, WAITING < RUNNING < EXITED): a replayed older report never moves it back.
 */
export function containerUpdates(stored: ContainerState[], reported: ReportedContainer[]): ContainerUpdate[] {
  const byName = new Map(stored.map((c) => [c.name, c]));
  return reported.filter((r) => {
    const s = byName.get(r.name);
    if (s === undefined) return false;
    if (r.restartCount !== s.restartCount) return r.restartCount > s.restartCount;
    if (CONTAINER_RANK[r.phase] !== CONTAINER_RANK[s.phase]) return CONTAINER_RANK[r.phase] > CONTAINER_RANK[s.phase];
    return (
      r.exitCode !== s.exitCode ||
      r.signal !== s.signal ||
      r.reason !== s.reason ||
      !sameInstant(r.startedAt, s.startedAt) ||
      !sameInstant(r.finishedAt, s.finishedAt)
    );
  });
}

/** The pod's digests plus those the status reports for images the pod actually has (the first pull wins). */
function mergedDigests(pod: PodState, reported: Record<string, string>): Record<string, string> | null {
  const images = new Set(pod.containers.map((c) => c.image));
  const added = Object.entries(reported).filter(([image]) => images.has(image) && !(image in pod.imageDigests));
  return added.length === 0 ? null : { ...pod.imageDigests, ...Object.fromEntries(added) };
}

/**
 * Decides what a status means for the pod. `nodeId` is the node whose stream carried it (never the payload's
 * word), `epoch` the epoch the report was sent under.
 */
export function decidePodStatus(pod: PodState, status: PodStatus, nodeId: string, epoch: number): PodDecision {
  if (pod.nodeId !== nodeId) return { kind: 'drop', why: 'the pod is not placed on this node' };
  if (pod.nodeEpoch !== epoch)
    return { kind: 'drop', why: `report of epoch ${epoch}, pod placed under ${String(pod.nodeEpoch)}` };
  if (pod.placement !== status.placement) {
    return { kind: 'drop', why: `report of placement ${status.placement}, pod is at placement ${pod.placement}` };
  }
  const podRank = PROGRESS_RANK[pod.phase];
  if (podRank === undefined && pod.phase !== 'DELETING') {
    return { kind: 'drop', why: `pod phase ${pod.phase} takes no reports` };
  }

  const observedGeneration = Math.max(pod.observedGeneration, Math.min(status.generation, pod.generation));
  const current = status.generation >= pod.generation;
  const reportedRank = REPORTED_RANK[status.phase];
  // A status behind the pod's phase (a replayed STARTING while RUNNING) carries older container states too.
  const behind = podRank !== undefined && reportedRank < podRank;
  const containers = behind ? [] : containerUpdates(pod.containers, status.containers);
  const common: Common = { observedGeneration, containers };

  if (VM_GONE.has(status.phase)) {
    // The move under way is ended by any report that the VM is gone (whatever generation the node had seen):
    // the outcome is the one the newest desired state asks for.
    if (pod.desiredState === 'DELETED') {
      if (pod.phase === 'DELETING') return { kind: 'remove' };
    } else if (pod.desiredState === 'STOPPED') {
      return {
        ...common,
        kind: 'finish',
        transition: 14,
        to: 'STOPPED',
        reason: 'Stopped',
        message: status.phase === 'LOST' ? 'The VM was lost while the pod was being stopped.' : null,
      };
    } else if (current) {
      // Desired RUNNING: only a report of the current generation decides a terminal outcome.
      switch (status.phase) {
        case 'SUCCEEDED':
          return {
            ...common,
            kind: 'finish',
            transition: 7,
            to: 'SUCCEEDED',
            reason: status.reason ?? 'Completed',
            message: status.message,
          };
        case 'FAILED':
          return {
            ...common,
            kind: 'finish',
            transition: 8,
            to: 'FAILED',
            reason: status.reason ?? 'Error',
            message: status.message,
          };
        case 'LOST':
          return pod.restartPolicy === 'NEVER'
            ? {
                ...common,
                kind: 'finish',
                transition: 10,
                to: 'FAILED',
                reason: 'VMLost',
                message: status.message ?? 'The VM was lost; the restart policy NEVER does not run the pod again.',
              }
            : { ...common, kind: 'replace', message: status.message };
        case 'STOPPED':
          // The node stopped a VM nobody asked it to stop; it converges on the set, ingest records nothing else.
          break;
        case 'STARTING':
        case 'RUNNING':
          break;
      }
    }
  }

  // No terminal outcome: forward phase moves (a fact, whatever the generation), digests, containers.
  let to: 'STARTING' | 'RUNNING' | null = null;
  if (podRank !== undefined && (status.phase === 'STARTING' || status.phase === 'RUNNING') && reportedRank > podRank) {
    to = status.phase;
  }
  const imageDigests = behind ? null : mergedDigests(pod, status.imageDigests);
  if (
    to === null &&
    imageDigests === null &&
    containers.length === 0 &&
    observedGeneration === pod.observedGeneration
  ) {
    return { kind: 'none' };
  }
  return {
    ...common,
    kind: 'progress',
    to,
    imageDigests,
    accelerator: to === 'RUNNING' ? (status.accelerator ?? pod.accelerator) : pod.accelerator,
    reason: to === null ? null : status.reason,
    message: to === null ? null : status.message,
  };
}

/** Re-placement backoff (ADR-002): base · 2^(losses before this one), at most max. */
export function replaceBackoffMs(lostCountBefore: number, baseMs: number, maxMs: number): number {
  const exponent = Math.min(Math.max(lostCountBefore, 0), 40);
  return Math.min(baseMs * 2 ** exponent, maxMs);
}
