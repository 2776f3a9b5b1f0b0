import { place } from '../place';
import { prepareNodes } from '../prepared-nodes';
import { seededRandom } from '../random';
import { addResources, reservationFor } from '../reservation';
import { resolveSettings } from '../settings';
import { SpreadIndex } from '../spread-index';
import type { PodRequest } from '../types';
import { ZONE, node, pod } from './fixtures';

describe('bin-packing', () => {
  const nodes = () =>
    prepareNodes([
      node('empty'),
      node('half', { allocated: { vcpus: 8, memoryMiB: 16384, pods: 5 } }),
      node('most', { allocated: { vcpus: 12, memoryMiB: 24576, pods: 5 } }),
      node('full', { allocated: { vcpus: 16, memoryMiB: 32768, pods: 5 } }),
    ]);

  it('prefers the node that will be the most allocated', () => {
    const r = place(pod(), nodes(), { settings: { topK: 1 } });
    expect(r).toMatchObject({ kind: 'placed', nodeId: 'most', feasible: 3 });
    // (13/16 + (24576 + 512 + 256)/32768) / 2 × 100
    expect(r.kind === 'placed' && r.score).toBeCloseTo(((13 / 16 + 25344 / 32768) / 2) * 100);
  });

  it('prefers the emptiest node with a negative weight', () => {
    expect(place(pod(), nodes(), { settings: { topK: 1, binpackWeight: -100 } })).toMatchObject({ nodeId: 'empty' });
  });

  it('keeps the earlier node on a tie', () => {
    expect(place(pod(), prepareNodes([node('x'), node('y')]), { settings: { topK: 1 } })).toMatchObject({
      nodeId: 'x',
    });
  });
});

describe('spread', () => {
  // Six equal nodes, two per zone.
  const zones = ['z1', 'z1', 'z2', 'z2', 'z3', 'z3'];
  const nodes = () => prepareNodes(zones.map((z, i) => node(`n${i}`, { labels: { [ZONE]: z } })));
  const settings = resolveSettings({ topK: 1 });

  function placeAll(pods: PodRequest[]): string[] {
    const prepared = nodes();
    const spread = new SpreadIndex();
    return pods.map((p) => {
      const r = place(p, prepared, { spread, settings });
      if (r.kind !== 'placed') throw new Error(r.reason);
      const allocated = prepared.allocated(r.nodeId);
      if (!allocated) throw new Error(`unknown node ${r.nodeId}`);
      prepared.update(r.nodeId, addResources(allocated, reservationFor(p, settings)));
      spread.add(p.tenantId, p.labels, r.nodeId);
      return r.nodeId;
    });
  }

  it('moves the second pod of a tenant+labels to another node in another failure domain', () => {
    expect(placeAll([pod(), pod({ id: 'p2' })])).toEqual(['n0', 'n2']);
  });

  it('fills every domain once, then every node once, before stacking', () => {
    const placed = placeAll(Array.from({ length: 7 }, (_, i) => pod({ id: `p${i}` })));
    expect(placed.slice(0, 3).map((id) => zones[Number(id.slice(1))])).toEqual(['z1', 'z2', 'z3']);
    expect(new Set(placed.slice(0, 6)).size).toBe(6);
    expect(placed[6]).toBe('n0');
  });

  it('sees labels in any order as the same group, and nothing else', () => {
    const a = pod({ labels: { app: 'web', tier: 'front' } });
    expect(placeAll([a, pod({ labels: { tier: 'front', app: 'web' } })])).toEqual(['n0', 'n2']);
    // Another tenant, or other labels: bin-packing decides (the fuller n0).
    expect(placeAll([a, pod({ tenantId: 'tenant-b', labels: a.labels })])).toEqual(['n0', 'n0']);
    expect(placeAll([a, pod({ labels: { app: 'web' } })])).toEqual(['n0', 'n0']);
  });

  it('treats a node without the domain label as its own domain', () => {
    const prepared = prepareNodes([node('a'), node('b')]);
    const spread = new SpreadIndex();
    spread.add('tenant-a', { app: 'web' }, 'a');
    expect(place(pod(), prepared, { spread, settings })).toMatchObject({ nodeId: 'b' });
  });

  it('uses the configured failure-domain label', () => {
    const prepared = prepareNodes([
      node('a', { labels: { rack: 'r1' } }),
      node('b', { labels: { rack: 'r1' } }),
      node('c', { labels: { rack: 'r2' } }),
    ]);
    const spread = new SpreadIndex();
    spread.add('tenant-a', { app: 'web' }, 'a');
    expect(place(pod(), prepared, { spread, settings: { topK: 1, failureDomainLabel: 'rack' } })).toMatchObject({
      nodeId: 'c',
    });
    // With the default label (absent here), each node is its own domain: b comes first.
    expect(place(pod(), prepared, { spread, settings })).toMatchObject({ nodeId: 'b' });
  });

  it('leaves no trace between decisions', () => {
    const prepared = nodes();
    const spread = new SpreadIndex();
    spread.add('tenant-a', { app: 'web' }, 'n0');
    expect(place(pod(), prepared, { spread, settings })).toMatchObject({ nodeId: 'n2' });
    expect(place(pod(), prepared, { settings })).toMatchObject({ nodeId: 'n0' });
    expect(place(pod({ tenantId: 'other' }), prepared, { spread, settings })).toMatchObject({ nodeId: 'n0' });
  });
});

describe('top-K random pick', () => {
  // Ten nodes, each fuller than the next: scores strictly ordered n0 > n1 > … .
  const prepared = prepareNodes(
    Array.from({ length: 10 }, (_, i) => node(`n${i}`, { allocated: { vcpus: 10 - i, memoryMiB: 0, pods: 0 } })),
  );
  // A tolerance wide enough that every kept node takes part (the next test narrows it).
  const draw = (seed: number, topK: number, count = 200, topKTolerance = 1e9): string[] => {
    const random = seededRandom(seed);
    return Array.from({ length: count }, () => {
      const r = place(pod(), prepared, { settings: { topK, topKTolerance }, random });
      return r.kind === 'placed' ? r.nodeId : r.reason;
    });
  };

  it('picks among the best K only, each of them sometimes', () => {
    const picks = draw(42, 3);
    expect(new Set(picks)).toEqual(new Set(['n0', 'n1', 'n2']));
    expect(new Set(draw(7, 5))).toEqual(new Set(['n0', 'n1', 'n2', 'n3', 'n4']));
  });

  it('leaves out of the draw kept nodes scoring more than topKTolerance below the best', () => {
    // Each node is emptier than the previous, so it scores a few bin-pack points less.
    const narrow = new Set(draw(7, 5, 200, 10));
    expect(narrow.has('n0')).toBe(true);
    expect(narrow.has('n4')).toBe(false);
    expect(new Set(draw(7, 5, 200, 0))).toEqual(new Set(['n0']));
  });

  it('is deterministic for a seed', () => {
    expect(draw(42, 3)).toEqual(draw(42, 3));
    expect(draw(42, 3)).not.toEqual(draw(43, 3));
    // The pick is floor(random × 3) into the best three, best first.
    const random = seededRandom(42);
    expect(draw(42, 3, 20)).toEqual(Array.from({ length: 20 }, () => `n${Math.floor(random() * 3)}`));
  });

  it('K = 1 gives the single best and draws nothing', () => {
    const random = jest.fn(() => 0.99);
    expect(place(pod(), prepared, { settings: { topK: 1 }, random })).toMatchObject({ nodeId: 'n0' });
    expect(random).not.toHaveBeenCalled();
  });

  it('draws among fewer when fewer nodes are feasible', () => {
    const two = prepareNodes([node('a'), node('b', { cordoned: true }), node('c')]);
    const picks = new Set(
      Array.from({ length: 50 }, (_, i) => place(pod(), two, { settings: { topK: 3 }, random: seededRandom(i) })),
    );
    expect(new Set([...picks].map((r) => r.kind === 'placed' && r.nodeId))).toEqual(new Set(['a', 'c']));
  });
});
