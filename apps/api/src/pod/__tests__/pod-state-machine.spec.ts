import type { DesiredState, PodPhase } from '@caas/db';
import type { PodAction } from '../pod-state-machine';
import { decide } from '../pod-state-machine';

/** ADR-002, "Mutations by phase", row by row: ok (transition number) / no-op / CONFLICT. */
const TABLE: [PodPhase, DesiredState, Record<PodAction, number | 'noop' | 'CONFLICT'>][] = [
  ['PENDING', 'RUNNING', { stop: 12, start: 'noop', restart: 'noop', delete: 19 }],
  ['SCHEDULED', 'RUNNING', { stop: 13, start: 'noop', restart: 'noop', delete: 17 }],
  ['STARTING', 'RUNNING', { stop: 13, start: 'noop', restart: 'noop', delete: 17 }],
  ['RUNNING', 'RUNNING', { stop: 13, start: 'noop', restart: 16, delete: 17 }],
  ['SCHEDULED', 'STOPPED', { stop: 'noop', start: 'CONFLICT', restart: 'CONFLICT', delete: 17 }],
  ['STARTING', 'STOPPED', { stop: 'noop', start: 'CONFLICT', restart: 'CONFLICT', delete: 17 }],
  ['RUNNING', 'STOPPED', { stop: 'noop', start: 'CONFLICT', restart: 'CONFLICT', delete: 17 }],
  ['STOPPED', 'STOPPED', { stop: 'noop', start: 15, restart: 'CONFLICT', delete: 19 }],
  ['SUCCEEDED', 'RUNNING', { stop: 'noop', start: 15, restart: 'CONFLICT', delete: 19 }],
  ['FAILED', 'RUNNING', { stop: 'noop', start: 15, restart: 'CONFLICT', delete: 19 }],
  ['DELETING', 'DELETED', { stop: 'CONFLICT', start: 'CONFLICT', restart: 'CONFLICT', delete: 'noop' }],
];

describe('pod state machine (the API rows of ADR-002)', () => {
  const cases = TABLE.flatMap(([phase, desired, row]) =>
    (Object.keys(row) as PodAction[]).map((action) => [phase, desired, action, row[action]] as const),
  );

  it.each(cases)('%s (desired %s): %s → %s', (phase, desired, action, expected) => {
    const decision = decide(action, phase, desired);
    if (expected === 'noop') expect(decision).toEqual({ kind: 'noop' });
    else if (expected === 'CONFLICT') {
      expect(decision.kind).toBe('conflict');
      expect((decision as { message: string }).message).toContain(phase);
    } else {
      expect(decision).toMatchObject({ kind: 'change', change: { transition: expected } });
    }
  });

  it('writes exactly the desired state and phase ADR-002 gives each transition', () => {
    expect(decide('stop', 'PENDING', 'RUNNING')).toEqual({
      kind: 'change',
      change: { transition: 12, phase: 'STOPPED', desiredState: 'STOPPED' },
    });
    expect(decide('stop', 'RUNNING', 'RUNNING')).toEqual({
      kind: 'change',
      change: { transition: 13, phase: null, desiredState: 'STOPPED' },
    });
    expect(decide('start', 'FAILED', 'RUNNING')).toEqual({
      kind: 'change',
      change: { transition: 15, phase: 'PENDING', desiredState: 'RUNNING' },
    });
    expect(decide('restart', 'RUNNING', 'RUNNING')).toEqual({
      kind: 'change',
      change: { transition: 16, phase: null, desiredState: null },
    });
    expect(decide('delete', 'STARTING', 'STOPPED')).toEqual({
      kind: 'change',
      change: { transition: 17, phase: 'DELETING', desiredState: 'DELETED' },
    });
    expect(decide('delete', 'SUCCEEDED', 'RUNNING')).toEqual({
      kind: 'change',
      change: { transition: 19, phase: null, desiredState: 'DELETED' },
    });
  });

  it('treats a VM phase with desired DELETED as deleting', () => {
    expect(decide('delete', 'RUNNING', 'DELETED')).toEqual({ kind: 'noop' });
    expect(decide('stop', 'RUNNING', 'DELETED').kind).toBe('conflict');
  });

  it('says to use startPod when restarting a pod that does not run', () => {
    expect(decide('restart', 'STOPPED', 'STOPPED')).toMatchObject({ message: expect.stringContaining('startPod') });
  });
});
