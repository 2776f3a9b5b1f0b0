import { place } from '../place';
import { prepareNodes } from '../prepared-nodes';
import { resolveSettings } from '../settings';
import { SpreadIndex } from '../spread-index';
import { ZONE, node, pod } from './fixtures';

describe('PreparedNodes', () => {
  it('applies reservations with update()', () => {
    const prepared = prepareNodes([node('a', { capacity: { vcpus: 2, memoryMiB: 4096, pods: 10 } })]);
    expect(place(pod({ vcpus: 2 }), prepared)).toMatchObject({ kind: 'placed' });
    expect(prepared.update('a', { vcpus: 1, memoryMiB: 768, pods: 1 })).toBe(true);
    expect(place(pod({ vcpus: 2 }), prepared)).toMatchObject({ counts: { insufficientVcpus: 1 } });
    expect(prepared.allocated('a')).toEqual({ vcpus: 1, memoryMiB: 768, pods: 1 });
    expect(prepared.update('nope', { vcpus: 0, memoryMiB: 0, pods: 0 })).toBe(false);
  });

  it('applies status changes with setStatus()', () => {
    const prepared = prepareNodes([node('a')]);
    prepared.setStatus('a', { cordoned: true });
    expect(place(pod(), prepared)).toMatchObject({ counts: { cordoned: 1 } });
    prepared.setStatus('a', { ready: false });
    expect(place(pod(), prepared)).toMatchObject({ counts: { notReady: 1, cordoned: 0 } });
    prepared.setStatus('a', { ready: true, cordoned: false, diskPressure: true });
    expect(place(pod(), prepared)).toMatchObject({ counts: { diskPressure: 1 } });
    prepared.setStatus('a', { diskPressure: false });
    expect(place(pod(), prepared)).toMatchObject({ kind: 'placed' });
  });

  it('answers labels and capacities', () => {
    const prepared = prepareNodes([node('a', { labels: { [ZONE]: 'z1' } }), node('b')]);
    expect(prepared.label('a', ZONE)).toBe('z1');
    expect(prepared.label('b', ZONE)).toBeUndefined();
    expect(prepared.capacity('b')).toEqual({ vcpus: 16, memoryMiB: 32768, pods: 100 });
    expect(prepared.indexOf('b')).toBe(1);
  });

  it('refuses duplicate ids and non-numeric resources', () => {
    expect(() => prepareNodes([node('a'), node('a')])).toThrow(/duplicate/);
    expect(() => prepareNodes([node('a', { capacity: { vcpus: NaN, memoryMiB: 1, pods: 1 } })])).toThrow(RangeError);
    const prepared = prepareNodes([node('a')]);
    expect(() => prepared.update('a', { vcpus: 1, memoryMiB: Number.NaN, pods: 0 })).toThrow(RangeError);
    expect(() => place(pod({ memoryMiB: Number.NaN }), prepared)).toThrow(RangeError);
    expect(() => place(pod(), prepared, { settings: { topK: 0 } })).toThrow(RangeError);
  });
});

describe('resolveSettings', () => {
  it('completes, freezes and returns a resolved object as is', () => {
    const s = resolveSettings({ topK: 5 });
    expect(s).toMatchObject({ topK: 5, vmOverheadMiB: 256, failureDomainLabel: ZONE });
    expect(Object.isFrozen(s)).toBe(true);
    expect(resolveSettings(s)).toBe(s);
  });
});

describe('SpreadIndex', () => {
  it('counts per node and per domain, adds and removes', () => {
    const index = new SpreadIndex();
    const labels = { app: 'web', tier: 'front' };
    index.add('t', labels, 'a');
    index.add('t', { tier: 'front', app: 'web' }, 'a');
    index.add('t', labels, 'b');
    index.add('t', labels, 'c');
    index.add('t', { app: 'web' }, 'a');
    index.add('u', labels, 'a');
    expect(index.countOn('t', labels, 'a')).toBe(2);
    const zone: Record<string, string> = { a: 'z1', b: 'z1', c: 'z2' };
    expect(index.domainCounts('t', labels, (id) => zone[id])).toEqual(
      new Map([
        ['z1', 3],
        ['z2', 1],
      ]),
    );
    expect(index.groupCount).toBe(3);
    expect(index.remove('t', labels, 'a')).toBe(true);
    expect(index.remove('t', labels, 'a')).toBe(true);
    expect(index.remove('t', labels, 'a')).toBe(false);
    expect(index.countOn('t', labels, 'a')).toBe(0);
    expect(index.remove('t', { app: 'web' }, 'a')).toBe(true);
    expect(index.nodeCounts('t', { app: 'web' })).toBeUndefined();
    expect(index.groupCount).toBe(2);
  });

  it('does not confuse tenants and labels that concatenate alike', () => {
    expect(SpreadIndex.key('t', { a: 'b=c' })).not.toBe(SpreadIndex.key('t', { 'a=b': 'c' }));
    expect(SpreadIndex.key('t', { a: 'b', c: 'd' })).not.toBe(SpreadIndex.key('t', { a: 'b\u0000c\u0001d' }) + 'x');
  });
});
