import type { PodStatus } from '@caas/queue-contracts';
import type { PodState } from '../pod-status-decision';
import { containerUpdates, decidePodStatus, replaceBackoffMs } from '../pod-status-decision';

const NODE = '00000000-0000-4000-8000-000000000001';
const OTHER = '00000000-0000-4000-8000-000000000002';

const pod = (extra: Partial<PodState> = {}): PodState => ({
  id: '00000000-0000-4000-8000-0000000000aa',
  tenantId: '00000000-0000-4000-8000-0000000000bb',
  name: 'web',
  phase: 'RUNNING',
  desiredState: 'RUNNING',
  restartPolicy: 'ALWAYS',
  generation: 1,
  observedGeneration: 1,
  nodeId: NODE,
  nodeEpoch: 1,
  placement: 1,
  lostCount: 0,
  imageDigests: {},
  accelerator: null,
  vcpus: 1,
  memoryMiB: 512,
  ip: null,
  containers: [
    {
      name: 'app',
      image: 'nginx:1',
      phase: 'WAITING',
      exitCode: null,
      signal: null,
      reason: null,
      restartCount: 0,
      startedAt: null,
      finishedAt: null,
    },
  ],
  ...extra,
});

const status = (phase: PodStatus['phase'], extra: Partial<PodStatus> = {}): PodStatus => ({
  podId: pod().id,
  generation: 1,
  placement: 1,
  phase,
  reason: null,
  message: null,
  accelerator: null,
  imageDigests: {},
  containers: [],
  ...extra,
});

describe('decidePodStatus', () => {
  it('drops statuses from another node, epoch or placement', () => {
    expect(decidePodStatus(pod(), status('FAILED'), OTHER, 1).kind).toBe('drop');
    expect(decidePodStatus(pod(), status('FAILED'), NODE, 2).kind).toBe('drop');
    expect(decidePodStatus(pod(), status('FAILED', { placement: 2 }), NODE, 1).kind).toBe('drop');
    expect(decidePodStatus(pod({ phase: 'PENDING', nodeId: null }), status('RUNNING'), NODE, 1).kind).toBe('drop');
  });

  it('moves forward only', () => {
    expect(decidePodStatus(pod({ phase: 'SCHEDULED' }), status('STARTING'), NODE, 1)).toMatchObject({
      kind: 'progress',
      to: 'STARTING',
    });
    expect(decidePodStatus(pod({ phase: 'SCHEDULED' }), status('RUNNING'), NODE, 1)).toMatchObject({
      kind: 'progress',
      to: 'RUNNING',
    });
    expect(decidePodStatus(pod({ phase: 'RUNNING' }), status('STARTING'), NODE, 1)).toEqual({ kind: 'none' });
    expect(decidePodStatus(pod({ phase: 'DELETING', desiredState: 'DELETED' }), status('RUNNING'), NODE, 1)).toEqual({
      kind: 'none',
    });
  });

  it('decides terminal outcomes by desired state, restart policy and generation', () => {
    expect(decidePodStatus(pod(), status('SUCCEEDED'), NODE, 1)).toMatchObject({ kind: 'finish', transition: 7 });
    expect(decidePodStatus(pod(), status('FAILED'), NODE, 1)).toMatchObject({ kind: 'finish', transition: 8 });
    expect(decidePodStatus(pod(), status('LOST'), NODE, 1)).toMatchObject({ kind: 'replace' });
    expect(decidePodStatus(pod({ restartPolicy: 'NEVER' }), status('LOST'), NODE, 1)).toMatchObject({
      kind: 'finish',
      transition: 10,
      to: 'FAILED',
      reason: 'VMLost',
    });
    expect(decidePodStatus(pod({ desiredState: 'STOPPED', generation: 2 }), status('LOST'), NODE, 1)).toMatchObject({
      kind: 'finish',
      transition: 14,
      to: 'STOPPED',
    });
    expect(
      decidePodStatus(pod({ phase: 'DELETING', desiredState: 'DELETED', generation: 3 }), status('STOPPED'), NODE, 1),
    ).toEqual({ kind: 'remove' });
    // An older generation never decides a terminal outcome of a pod that wants to run.
    expect(decidePodStatus(pod({ generation: 2 }), status('SUCCEEDED'), NODE, 1)).toEqual({ kind: 'none' });
    expect(decidePodStatus(pod({ generation: 2, observedGeneration: 0 }), status('LOST'), NODE, 1)).toMatchObject({
      kind: 'progress',
      to: null,
      observedGeneration: 1,
    });
    // A STOPPED report while the pod wants to run changes nothing.
    expect(decidePodStatus(pod(), status('STOPPED'), NODE, 1)).toEqual({ kind: 'none' });
  });

  it('never records an observed generation above the pod generation, and digests only for its images', () => {
    const d = decidePodStatus(
      pod({ phase: 'SCHEDULED', observedGeneration: 0 }),
      status('STARTING', { generation: 99, imageDigests: { 'nginx:1': 'sha256:a', 'other:1': 'sha256:b' } }),
      NODE,
      1,
    );
    expect(d).toMatchObject({ kind: 'progress', observedGeneration: 1, imageDigests: { 'nginx:1': 'sha256:a' } });
    const kept = decidePodStatus(
      pod({ imageDigests: { 'nginx:1': 'sha256:first' } }),
      status('RUNNING', { imageDigests: { 'nginx:1': 'sha256:second' } }),
      NODE,
      1,
    );
    expect(kept).toEqual({ kind: 'none' });
  });
});

describe('containerUpdates', () => {
  const stored = pod({
    containers: [{ ...pod().containers[0], phase: 'EXITED', restartCount: 2 } as PodState['containers'][number]],
  }).containers;
  const reported = (phase: 'WAITING' | 'RUNNING' | 'EXITED', restartCount: number) => ({
    name: 'app',
    phase,
    exitCode: null,
    signal: null,
    reason: null,
    restartCount,
    startedAt: null,
    finishedAt: null,
  });

  it('ignores older container states and unknown containers', () => {
    expect(containerUpdates(stored, [reported('RUNNING', 1)])).toEqual([]);
    expect(containerUpdates(stored, [reported('RUNNING', 2)])).toEqual([]);
    expect(containerUpdates(stored, [{ ...reported('RUNNING', 9), name: 'ghost' }])).toEqual([]);
    expect(containerUpdates(stored, [reported('RUNNING', 3)])).toHaveLength(1);
  });
});

describe('replaceBackoffMs', () => {
  it('doubles from the base and stops at the maximum', () => {
    expect([0, 1, 2, 3, 20, 1000].map((n) => replaceBackoffMs(n, 1_000, 300_000))).toEqual([
      1_000, 2_000, 4_000, 8_000, 300_000, 300_000,
    ]);
  });
});
