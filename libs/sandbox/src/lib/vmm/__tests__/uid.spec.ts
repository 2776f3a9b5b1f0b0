import { chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VmmError } from '../errors';
import { allocateUid, allocateVmUid, DEFAULT_UID_RANGE, listUsedUids } from '../uid';

describe('allocateUid (pure)', () => {
  const range = { base: 420000, count: 4 };

  it('takes the lowest free uid of the range', () => {
    expect(allocateUid([], range)).toBe(420000);
    expect(allocateUid([420000, 420001, 420003], range)).toBe(420002);
    expect(allocateUid(new Set([420001]), range)).toBe(420000);
  });

  it('ignores uids outside the range', () => {
    expect(allocateUid([0, 1000, 419999, 420004, 65534], range)).toBe(420000);
  });

  it('throws UID_RANGE_EXHAUSTED when all are used', () => {
    expect(() => allocateUid([420000, 420001, 420002, 420003], range)).toThrow(
      expect.objectContaining({ code: 'UID_RANGE_EXHAUSTED' }),
    );
  });

  it.each([
    { base: 0, count: 10 },
    { base: 999, count: 10 },
    { base: 420000, count: 0 },
    { base: 0xffff_fff0, count: 100 },
    { base: 420000.5, count: 10 },
  ])('refuses the range %j', (bad) => {
    expect(() => allocateUid([], bad)).toThrow(VmmError);
  });

  it('defaults to 420000 + 10000', () => {
    expect(DEFAULT_UID_RANGE).toEqual({ base: 420000, count: 10000 });
    expect(allocateUid([])).toBe(420000);
  });
});

describe('listUsedUids', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'vms-'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('collects the owners of VM dirs within the range (as root)', async () => {
    const range = { base: 430000, count: 100 };
    for (const [name, uid] of [
      ['a', 430000],
      ['b', 430002],
      ['c', 1000],
    ] as const) {
      mkdirSync(join(root, name));
      chownSync(join(root, name), uid, uid);
    }
    const used = await listUsedUids(root, range);
    expect([...used].filter((uid) => uid < 430050).sort()).toEqual([430000, 430002]);
    expect(await allocateVmUid(root, range)).toBe(430001);
  });

  it('treats a missing VM root as empty', async () => {
    await expect(listUsedUids(join(root, 'missing'), { base: 430000, count: 10 })).resolves.toBeInstanceOf(Set);
  });
});
