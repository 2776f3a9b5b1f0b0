import type { DesiredState, PodPhase } from '@caas/db';

/**
 * The API's rows of ADR-002 (docs/adr-002-pod-state-machine.md, "Transitions" and "Mutations by phase"),
 * as one pure function: what a mutation does to a pod in a given phase and desired state.
 */

export type PodAction = 'stop' | 'start' | 'restart' | 'delete';

export type PodChange =
  /** 12: PENDING → STOPPED (no VM exists). */
  | { transition: 12; phase: 'STOPPED'; desiredState: 'STOPPED' }
  /** 13: the VM stays until the node shuts it down; only the desired state changes. */
  | { transition: 13; phase: null; desiredState: 'STOPPED' }
  /** 15: STOPPED/SUCCEEDED/FAILED → PENDING, placed again (possibly on another node). */
  | { transition: 15; phase: 'PENDING'; desiredState: 'RUNNING' }
  /** 16: RUNNING stays RUNNING; a restart request for the node. */
  | { transition: 16; phase: null; desiredState: null }
  /** 17: a VM may exist → DELETING until the node reports it gone. */
  | { transition: 17; phase: 'DELETING'; desiredState: 'DELETED' }
  /** 19: no VM → the row is removed now, with its IP and quota. */
  | { transition: 19; phase: null; desiredState: 'DELETED' };

export type PodDecision =
  { kind: 'noop' } | { kind: 'conflict'; message: string } | { kind: 'change'; change: PodChange };

const NOOP: PodDecision = { kind: 'noop' };
const change = (value: PodChange): PodDecision => ({ kind: 'change', change: value });
const conflict = (message: string): PodDecision => ({ kind: 'conflict', message });

/** The row of the "Mutations by phase" table a pod is in. */
type Situation = 'PENDING' | 'PLACED' | 'RUNNING' | 'STOPPING' | 'STOPPED' | 'FINISHED' | 'DELETING';

function situationOf(phase: PodPhase, desiredState: DesiredState): Situation {
  switch (phase) {
    case 'PENDING':
      return 'PENDING';
    case 'SCHEDULED':
    case 'STARTING':
    case 'RUNNING':
      // A VM exists. Desired DELETED outside DELETING is not a state the API writes; treat it as deleting.
      if (desiredState === 'DELETED') return 'DELETING';
      if (desiredState === 'STOPPED') return 'STOPPING';
      return phase === 'RUNNING' ? 'RUNNING' : 'PLACED';
    case 'STOPPED':
      return 'STOPPED';
    case 'SUCCEEDED':
    case 'FAILED':
      return 'FINISHED';
    case 'DELETING':
      return 'DELETING';
  }
}

export function decide(action: PodAction, phase: PodPhase, desiredState: DesiredState): PodDecision {
  const situation = situationOf(phase, desiredState);
  const described = situation === 'STOPPING' ? `${phase} and stopping` : phase;
  switch (action) {
    case 'stop':
      return stop(situation, phase);
    case 'start':
      return start(situation, phase, described);
    case 'restart':
      return restart(situation, phase, described);
    case 'delete':
      return remove(situation);
  }
}

function stop(situation: Situation, phase: PodPhase): PodDecision {
  switch (situation) {
    case 'PENDING':
      return change({ transition: 12, phase: 'STOPPED', desiredState: 'STOPPED' });
    case 'PLACED':
    case 'RUNNING':
      return change({ transition: 13, phase: null, desiredState: 'STOPPED' });
    case 'STOPPING':
    case 'STOPPED':
    case 'FINISHED':
      return NOOP;
    case 'DELETING':
      return conflict(`The pod is being deleted (${phase}); it cannot be stopped.`);
  }
}

function start(situation: Situation, phase: PodPhase, described: string): PodDecision {
  switch (situation) {
    case 'PENDING':
    case 'PLACED':
    case 'RUNNING':
      return NOOP;
    case 'STOPPING':
      return conflict(`The pod is ${described}; start it again once it is STOPPED.`);
    case 'STOPPED':
    case 'FINISHED':
      return change({ transition: 15, phase: 'PENDING', desiredState: 'RUNNING' });
    case 'DELETING':
      return conflict(`The pod is being deleted (${phase}); it cannot be started.`);
  }
}

function restart(situation: Situation, phase: PodPhase, described: string): PodDecision {
  switch (situation) {
    case 'PENDING':
    case 'PLACED':
      // Nothing runs yet, or the containers are about to start fresh.
      return NOOP;
    case 'RUNNING':
      return change({ transition: 16, phase: null, desiredState: null });
    case 'STOPPING':
      return conflict(`The pod is ${described}; it cannot be restarted.`);
    case 'STOPPED':
    case 'FINISHED':
      return conflict(`The pod is ${phase}: nothing runs to restart; use startPod.`);
    case 'DELETING':
      return conflict(`The pod is being deleted (${phase}); it cannot be restarted.`);
  }
}

function remove(situation: Situation): PodDecision {
  switch (situation) {
    case 'PENDING':
    case 'STOPPED':
    case 'FINISHED':
      return change({ transition: 19, phase: null, desiredState: 'DELETED' });
    case 'PLACED':
    case 'RUNNING':
    case 'STOPPING':
      return change({ transition: 17, phase: 'DELETING', desiredState: 'DELETED' });
    case 'DELETING':
      return NOOP;
  }
}
