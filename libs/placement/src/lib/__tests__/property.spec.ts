import { filterNode } from '../filter';
import type { FilterName } from '../filter';
import { emptyCounts } from '../filter';
import { place } from '../place';
import { prepareNodes } from '../prepared-nodes';
import { seededRandom } from '../random';
import { addResources, fitsOnNode, reservationFor, subtractResources } from '../reservation';
import { resolveSettings } from '../settings';
import { SpreadIndex } from '../spread-index';
import type { NodeInfo, PodRequest, Taint, Toleration } from '../types';
import { ZONE } from './fixtures';

function generator(seed: number) {
  const r = seededRandom(seed);
  const int = (lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const chance = (p: number): boolean => r() < p;
  const taints: Taint[] = [
    { key: 'dedicated', value: 't1', effect: 'NoSchedule' },
    { key: 'dedicated', value: 't2', effect: 'NoSchedule' },
    { key: 'spot', value: 'true', effect: 'PreferNoSchedule' },
    { key: 'gpu', effect: 'NoSchedule' },
  ];
  const tolerations: Toleration[] = [
    { key: 'dedicated', operator: 'Equal', value: 't1' },
    { key: 'dedicated', operator: 'Exists', effect: 'NoSchedule' },
    { key: 'spot', operator: 'Exists' },
    { key: 'gpu', operator: 'Equal', value: '', effect: 'NoSchedule' },
  ];
  const node = (i: number): NodeInfo => ({
    id: `n${i}`,
    name: `node-${i}`,
    ready: !chance(0.05),
    cordoned: chance(0.05),
    draining: chance(0.03),
    diskPressure: chance(0.03),
    labels: { [ZONE]: pick(['z1', 'z2', 'z3']), pool: pick(['general', 'general', 'highmem', 'gpu']) },
    taints: chance(0.3) ? [pick(taints), ...(chance(0.3) ? [pick(taints)] : [])] : [],
    capacity: { vcpus: pick([4, 8, 16, 32]), memoryMiB: pick([8192, 16384, 65536]), pods: int(5, 40) },
    allocated: { vcpus: 0, memoryMiB: 0, pods: 0 },
  });
  const pod = (i: number): PodRequest => ({
    id: `p${i}`,
    tenantId: pick(['t1', 't2', 't3']),
    vcpus: pick([1, 1, 2, 4]),
    memoryMiB: pick([128, 512, 1024, 4096]),
    labels: { app: pick(['web', 'db', 'worker']) },
    nodeSelector: chance(0.2) ? { pool: pick(['general', 'highmem', 'gpu', 'none']) } : {},
    tolerations: chance(0.3) ? [pick(tolerations)] : [],
  });
  return { node, pod, random: r };
}

describe.each([1, 2, 3, 4, 5])('many placements in a row (seed %i)', (seed) => {
  it('never overcommits a node and agrees with the plain filters', () => {
    const g = generator(seed);
    const settings = resolveSettings({ topK: 1 + (seed % 4), vmOverheadMiB: 64 * seed });
    const mirror = Array.from({ length: 80 }, (_, i) => g.node(i));
    const byId = new Map(mirror.map((n) => [n.id, n]));
    const prepared = prepareNodes(mirror);
    const spread = new SpreadIndex();
    const running: [PodRequest, NodeInfo][] = [];
    let placed = 0;
    let unschedulable = 0;

    for (let i = 0; i < 3000; i++) {
      const p = g.pod(i);
      const expected = emptyCounts();
      let anyFeasible = false;
      for (const n of mirror) {
        const failed: FilterName | undefined = filterNode(p, n, settings);
        if (failed) expected[failed]++;
        else anyFeasible = true;
      }
      const r = place(p, prepared, { spread, settings, random: g.random });
      if (r.kind === 'unschedulable') {
        expect(anyFeasible).toBe(false);
        expect(r.counts).toEqual(expected);
        unschedulable++;
        continue;
      }
      const n = byId.get(r.nodeId);
      if (!n) throw new Error(`unknown node ${r.nodeId}`);
      expect(filterNode(p, n, settings)).toBeUndefined();
      expect(fitsOnNode(p, n, settings)).toBe(true);
      n.allocated = addResources(n.allocated, reservationFor(p, settings));
      prepared.update(n.id, n.allocated);
      spread.add(p.tenantId, p.labels, n.id);
      running.push([p, n]);
      placed++;
      // Now and then a pod leaves: its reservation is released the same way.
      if (i % 5 === 0) {
        const [gone, from] = running.splice(Math.floor(g.random() * running.length), 1)[0] as [PodRequest, NodeInfo];
        from.allocated = subtractResources(from.allocated, reservationFor(gone, settings));
        prepared.update(from.id, from.allocated);
        expect(spread.remove(gone.tenantId, gone.labels, from.id)).toBe(true);
      }
    }

    for (const n of mirror) {
      expect(n.allocated.vcpus).toBeLessThanOrEqual(n.capacity.vcpus);
      expect(n.allocated.memoryMiB).toBeLessThanOrEqual(n.capacity.memoryMiB);
      expect(n.allocated.pods).toBeLessThanOrEqual(n.capacity.pods);
      expect(prepared.allocated(n.id)).toEqual(n.allocated);
      expect(spread.countOn('t1', { app: 'web' }, n.id)).toBe(
        running.filter(([q, m]) => m === n && q.tenantId === 't1' && q.labels['app'] === 'web').length,
      );
    }
    // The run filled the cluster: both outcomes were exercised.
    expect(placed).toBeGreaterThan(300);
    expect(unschedulable).toBeGreaterThan(300);
  });
});
