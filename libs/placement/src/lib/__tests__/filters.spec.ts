import { emptyCounts, filterNode, formatUnschedulable } from '../filter';
import { place } from '../place';
import { prepareNodes } from '../prepared-nodes';
import { fitsOnNode, reservationFor } from '../reservation';
import type { PlacementSettings } from '../settings';
import type { NodeInfo, PodRequest, Taint, Toleration } from '../types';
import { node, pod } from './fixtures';

const settings = { topK: 1 };

function only(n: NodeInfo, p: PodRequest = pod(), s: Partial<PlacementSettings> = settings) {
  return place(p, prepareNodes([n]), { settings: s });
}

describe('filters, each alone', () => {
  const cases: [string, NodeInfo, string, PodRequest][] = [
    ['notReady', node('a', { ready: false }), 'not ready', pod()],
    ['cordoned', node('a', { cordoned: true }), 'cordoned', pod()],
    ['draining', node('a', { draining: true }), 'draining', pod()],
    ['diskPressure', node('a', { diskPressure: true }), 'disk pressure', pod()],
    [
      'nodeSelector',
      node('a', { labels: { pool: 'x' } }),
      'did not match the node selector',
      pod({ nodeSelector: { pool: 'y' } }),
    ],
    [
      'untoleratedTaint',
      node('a', { taints: [{ key: 'dedicated', value: 't1', effect: 'NoSchedule' }] }),
      'had an untolerated taint',
      pod(),
    ],
    ['insufficientVcpus', node('a', { allocated: { vcpus: 16, memoryMiB: 0, pods: 0 } }), 'insufficient vcpus', pod()],
    [
      'insufficientMemory',
      node('a', { allocated: { vcpus: 0, memoryMiB: 32768, pods: 0 } }),
      'insufficient memory',
      pod(),
    ],
    ['tooManyPods', node('a', { allocated: { vcpus: 0, memoryMiB: 0, pods: 100 } }), 'too many pods', pod()],
  ];

  it.each(cases)('%s', (name, n, phrase, p) => {
    const result = only(n, p);
    expect(result).toEqual({
      kind: 'unschedulable',
      reason: `0/1 nodes are available: 1 ${phrase}`,
      counts: { ...emptyCounts(), [name]: 1 },
    });
    expect(filterNode(p, n, { vmOverheadMiB: 256 })).toBe(name);
  });

  it('passes a healthy node', () => {
    expect(only(node('a'))).toMatchObject({ kind: 'placed', nodeId: 'a', feasible: 1 });
    expect(filterNode(pod(), node('a'), { vmOverheadMiB: 256 })).toBeUndefined();
  });

  it('counts each node once, for the first filter it fails', () => {
    const n = node('a', { cordoned: true, ready: false, allocated: { vcpus: 99, memoryMiB: 0, pods: 0 } });
    const r = only(n);
    expect(r.kind === 'unschedulable' && r.counts).toEqual({ ...emptyCounts(), notReady: 1 });
  });
});

describe('the unschedulable reason', () => {
  it('sorts the counts, largest first', () => {
    const nodes = [
      ...Array.from({ length: 4 }, (_, i) => node(`c${i}`, { cordoned: true })),
      ...Array.from({ length: 3 }, (_, i) => node(`s${i}`, { labels: { pool: 'other' } })),
      ...Array.from({ length: 5 }, (_, i) =>
        node(`m${i}`, { labels: { pool: 'gpu' }, allocated: { vcpus: 0, memoryMiB: 32300, pods: 1 } }),
      ),
    ];
    const r = place(pod({ nodeSelector: { pool: 'gpu' } }), prepareNodes(nodes));
    expect(r).toMatchObject({
      kind: 'unschedulable',
      reason: '0/12 nodes are available: 5 insufficient memory, 4 cordoned, 3 did not match the node selector',
    });
  });

  it('breaks ties in filter order, whatever the node order', () => {
    const nodes = [node('m', { allocated: { vcpus: 0, memoryMiB: 32768, pods: 0 } }), node('r', { ready: false })];
    const expected = '0/2 nodes are available: 1 not ready, 1 insufficient memory';
    expect(place(pod(), prepareNodes(nodes))).toMatchObject({ reason: expected });
    expect(place(pod(), prepareNodes([...nodes].reverse()))).toMatchObject({ reason: expected });
  });

  it('says so when there are no nodes', () => {
    expect(place(pod(), prepareNodes([]))).toMatchObject({ reason: '0/0 nodes are available: no nodes' });
    expect(formatUnschedulable(0, emptyCounts())).toBe('0/0 nodes are available: no nodes');
  });
});

describe('memory with the per-VM overhead', () => {
  const capacity = { vcpus: 4, memoryMiB: 1024, pods: 10 };

  it('counts the overhead in the fit', () => {
    expect(only(node('a', { capacity }), pod({ memoryMiB: 768 }))).toMatchObject({ kind: 'placed' });
    expect(only(node('a', { capacity }), pod({ memoryMiB: 769 }))).toMatchObject({
      kind: 'unschedulable',
      counts: { insufficientMemory: 1 },
    });
    expect(only(node('a', { capacity }), pod({ memoryMiB: 1024 }), { topK: 1, vmOverheadMiB: 0 })).toMatchObject({
      kind: 'placed',
    });
  });

  it('exports the same arithmetic for the conditional reservation', () => {
    expect(reservationFor(pod({ vcpus: 2, memoryMiB: 768 }), { vmOverheadMiB: 256 })).toEqual({
      vcpus: 2,
      memoryMiB: 1024,
      pods: 1,
    });
    const allocated = { vcpus: 2, memoryMiB: 0, pods: 9 };
    expect(fitsOnNode(pod({ vcpus: 2, memoryMiB: 768 }), { capacity, allocated }, { vmOverheadMiB: 256 })).toBe(true);
    expect(fitsOnNode(pod({ vcpus: 3, memoryMiB: 768 }), { capacity, allocated }, { vmOverheadMiB: 256 })).toBe(false);
    expect(fitsOnNode(pod({ memoryMiB: 769 }), { capacity, allocated }, { vmOverheadMiB: 256 })).toBe(false);
    expect(fitsOnNode(pod(), { capacity, allocated: { ...allocated, pods: 10 } }, { vmOverheadMiB: 0 })).toBe(false);
  });
});

describe('node selector', () => {
  const n = node('a', { labels: { pool: 'general', 'topology.caas.dev/zone': 'z1' } });
  it.each([
    [{}, true],
    [{ pool: 'general' }, true],
    [{ pool: 'general', 'topology.caas.dev/zone': 'z1' }, true],
    [{ pool: 'general', 'topology.caas.dev/zone': 'z2' }, false],
    [{ pool: 'gpu' }, false],
    [{ missing: 'general' }, false],
    [{ pool: 'never-seen-anywhere' }, false],
  ])('%j → %s', (nodeSelector, ok) => {
    expect(only(n, pod({ nodeSelector })).kind).toBe(ok ? 'placed' : 'unschedulable');
    expect(filterNode(pod({ nodeSelector }), n, { vmOverheadMiB: 256 })).toBe(ok ? undefined : 'nodeSelector');
  });

  it('does not match a value that only another key has', () => {
    const nodes = [node('a', { labels: { pool: 'x', tier: 'y' } })];
    expect(place(pod({ nodeSelector: { pool: 'y' } }), prepareNodes(nodes)).kind).toBe('unschedulable');
  });
});

describe('taints and tolerations', () => {
  const dedicated: Taint = { key: 'dedicated', value: 'tenant-a', effect: 'NoSchedule' };
  const soft: Taint = { key: 'spot', value: 'true', effect: 'PreferNoSchedule' };
  const tol = (t: Partial<Toleration>): Toleration => ({ key: 'dedicated', operator: 'Equal', ...t });

  it.each<[string, Toleration[], boolean]>([
    ['none', [], false],
    ['Equal, same value', [tol({ value: 'tenant-a' })], true],
    ['Equal, other value', [tol({ value: 'tenant-b' })], false],
    ['Equal, other key', [tol({ key: 'other', value: 'tenant-a' })], false],
    ['Exists, any value', [tol({ operator: 'Exists' })], true],
    ['Exists, other key', [tol({ key: 'other', operator: 'Exists' })], false],
    ['effect NoSchedule', [tol({ value: 'tenant-a', effect: 'NoSchedule' })], true],
    ['effect PreferNoSchedule only', [tol({ value: 'tenant-a', effect: 'PreferNoSchedule' })], false],
    [
      'one of several',
      [tol({ key: 'x', operator: 'Exists' }), tol({ operator: 'Exists', effect: 'NoSchedule' })],
      true,
    ],
  ])('NoSchedule taint, toleration %s', (_, tolerations, ok) => {
    const n = node('a', { taints: [dedicated] });
    expect(only(n, pod({ tolerations })).kind).toBe(ok ? 'placed' : 'unschedulable');
    expect(filterNode(pod({ tolerations }), n, { vmOverheadMiB: 256 })).toBe(ok ? undefined : 'untoleratedTaint');
  });

  it('matches a taint without value with Equal and an empty value', () => {
    const n = node('a', { taints: [{ key: 'maintenance', effect: 'NoSchedule' }] });
    expect(only(n, pod({ tolerations: [{ key: 'maintenance', operator: 'Equal' }] })).kind).toBe('placed');
    expect(only(n, pod({ tolerations: [{ key: 'maintenance', operator: 'Equal', value: 'x' }] })).kind).toBe(
      'unschedulable',
    );
  });

  it('needs every NoSchedule taint tolerated', () => {
    const n = node('a', { taints: [dedicated, { key: 'gpu', value: 'a100', effect: 'NoSchedule' }] });
    expect(only(n, pod({ tolerations: [tol({ value: 'tenant-a' })] })).kind).toBe('unschedulable');
    expect(only(n, pod({ tolerations: [tol({ value: 'tenant-a' }), { key: 'gpu', operator: 'Exists' }] })).kind).toBe(
      'placed',
    );
  });

  it('never filters on PreferNoSchedule, only lowers the score', () => {
    const n = node('a', { taints: [soft, { ...soft, key: 'old-kernel' }] });
    expect(filterNode(pod(), n, { vmOverheadMiB: 256 })).toBeUndefined();
    const tainted = only(n);
    const clean = only(node('a'));
    expect(tainted.kind === 'placed' && clean.kind === 'placed' && clean.score - tainted.score).toBeCloseTo(200);

    const tolerated = only(n, pod({ tolerations: [{ key: 'spot', operator: 'Exists' }] }));
    expect(tolerated.kind === 'placed' && clean.kind === 'placed' && clean.score - tolerated.score).toBeCloseTo(100);
  });

  it('prefers the untainted node over a fuller PreferNoSchedule one', () => {
    const full = { vcpus: 12, memoryMiB: 24000, pods: 10 };
    const nodes = prepareNodes([node('spot', { taints: [soft], allocated: full }), node('plain')]);
    expect(place(pod(), nodes, { settings })).toMatchObject({ kind: 'placed', nodeId: 'plain' });
    expect(place(pod(), nodes, { settings: { topK: 1, preferNoSchedulePenalty: 0 } })).toMatchObject({
      nodeId: 'spot',
    });
  });
});
