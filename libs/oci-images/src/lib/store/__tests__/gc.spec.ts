import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { digestHex } from '../../digest';
import { ContentStore } from '../content-store';
import type { TestBlob } from './helpers';
import { blobCost, fetchOf, listTmp, makeBlob, manualStream, tempDirs, tick } from './helpers';

const SIZE = 8192;
const dirs = tempDirs();
/** What one test blob occupies on disk here (8 KiB on ext4, tmpfs, xfs, …). */
let unit: number;
let root: string;
const stores: ContentStore[] = [];

beforeAll(async () => {
  unit = await blobCost(dirs.make(), SIZE);
});

beforeEach(() => {
  root = dirs.make();
});

afterEach(async () => {
  for (const store of stores.splice(0)) await store.close();
  dirs.cleanup();
});

async function openStore(units: number): Promise<ContentStore> {
  const store = await ContentStore.open(root, { limitBytes: Math.floor(units * unit) });
  stores.push(store);
  return store;
}

async function reopen(store: ContentStore, units: number): Promise<ContentStore> {
  await store.close();
  return openStore(units);
}

const add = (store: ContentStore, blob: TestBlob): Promise<string> =>
  store.ensureBlob(blob.digest, blob.size, fetchOf(blob.data));

/** Presence on disk (`blobPath` would count as a use and change the LRU order). */
const onDisk = (blob: TestBlob): boolean => existsSync(join(root, 'blobs', 'sha256', digestHex(blob.digest)));

const blobs = (n: number): TestBlob[] => Array.from({ length: n }, () => makeBlob(SIZE));

describe('size limit and LRU eviction', () => {
  it('evicts the least recently used first, in touch order (ensure and blobPath hits count)', async () => {
    const store = await openStore(3.5);
    const [a, b, c, d, e] = blobs(5);
    await add(store, a);
    await add(store, b);
    await add(store, c);
    expect(await store.gc()).toEqual({ removed: 0, freedBytes: 0 });
    store.blobPath(a.digest);
    await add(store, b); // a hit: no fetch, but a use
    // Order now: c, a, b.
    await add(store, d);
    expect([a, b, c, d].map(onDisk)).toEqual([true, true, false, true]);
    await add(store, e);
    expect([a, b, c, d, e].map(onDisk)).toEqual([false, true, false, true, true]);
    expect(store.usage()).toMatchObject({ entries: 3, usedBytes: 3 * unit });
  });

  it('never removes a leased entry, even over the limit; a released lease makes it collectable', async () => {
    let store = await openStore(10);
    const [a, b, c, d] = blobs(4);
    for (const blob of [a, b, c]) await add(store, blob);
    store = await reopen(store, 1.5); // a smaller limit: the store is now over it

    const lease1 = store.lease([a.digest, b.digest]);
    expect(await store.gc()).toEqual({ removed: 1, freedBytes: unit });
    expect([a, b, c].map(onDisk)).toEqual([true, true, false]);
    expect(store.usage()).toMatchObject({
      usedBytes: 2 * unit,
      pinnedBytes: 2 * unit,
      limitBytes: Math.floor(1.5 * unit),
    });
    expect(await store.gc()).toEqual({ removed: 0, freedBytes: 0 });

    const lease2 = store.lease([a.digest]);
    lease1.release();
    lease1.release(); // idempotent: does not take lease2's pin away
    expect(lease1.released).toBe(true);
    expect(await store.gc()).toEqual({ removed: 1, freedBytes: unit });
    expect([a, b].map(onDisk)).toEqual([true, false]);

    lease2.release();
    expect(store.usage().pinnedBytes).toBe(0);
    await add(store, d); // needs a's room, which is collectable now
    expect([a, d].map(onDisk)).toEqual([false, true]);
  });

  it('a lease taken before the entry exists pins it as soon as it is written', async () => {
    const store = await openStore(2.5);
    const [a, b, c] = blobs(3);
    const lease = store.lease([a.digest]);
    await add(store, a);
    await add(store, b);
    await add(store, c); // a is the least recently used, but leased: b goes
    expect([a, b, c].map(onDisk)).toEqual([true, false, true]);
    lease.release();
  });

  it('CACHE_FULL when the only room is leased: nothing fetched, evicted or left behind', async () => {
    const store = await openStore(2.5);
    const [a, b, c] = blobs(3);
    await add(store, a);
    await add(store, b);
    const lease = store.lease([a.digest, b.digest]);
    const fetch = fetchOf(c.data);
    await expect(store.ensureBlob(c.digest, c.size, fetch)).rejects.toMatchObject({ code: 'CACHE_FULL' });
    expect(fetch).not.toHaveBeenCalled();

    // An artifact is measured once built: refused then, and its temp dir removed.
    const key = makeBlob(10).digest;
    const build = jest.fn(async (dir: string) => writeFile(join(dir, 'fs.ext4'), makeBlob(SIZE).data));
    await expect(store.ensureArtifact(key, build)).rejects.toMatchObject({ code: 'CACHE_FULL' });
    expect(build).toHaveBeenCalledTimes(1);
    expect(store.artifactPath(key)).toBeUndefined();

    expect(listTmp(root)).toEqual([]);
    expect([a, b, c].map(onDisk)).toEqual([true, true, false]);
    expect(store.usage()).toMatchObject({ usedBytes: 2 * unit, inFlightBytes: 0 });

    lease.release();
    await add(store, c);
    expect([a, b, c].map(onDisk)).toEqual([false, true, true]);
  });

  it('CACHE_FULL for a blob larger than the limit, without evicting anything', async () => {
    const store = await openStore(2.5);
    const [a] = blobs(1);
    await add(store, a);
    const huge = makeBlob(4 * SIZE);
    const fetch = fetchOf(huge.data);
    await expect(store.ensureBlob(huge.digest, huge.size, fetch)).rejects.toMatchObject({ code: 'CACHE_FULL' });
    expect(fetch).not.toHaveBeenCalled();
    expect(onDisk(a)).toBe(true);
  });

  it('counts writes in progress against the limit (the announced size, reserved up front)', async () => {
    const store = await openStore(1.5);
    const [a, b] = blobs(2);
    const stream = manualStream();
    const writing = store.ensureBlob(a.digest, a.size, async () => stream);
    await tick();
    expect(store.usage()).toMatchObject({ usedBytes: SIZE, inFlightBytes: SIZE, entries: 0 });
    const fetchB = fetchOf(b.data);
    await expect(store.ensureBlob(b.digest, b.size, fetchB)).rejects.toMatchObject({ code: 'CACHE_FULL' });
    expect(fetchB).not.toHaveBeenCalled();
    stream.end(a.data);
    await writing;
    expect(store.usage()).toMatchObject({ usedBytes: unit, inFlightBytes: 0, entries: 1 });
    await add(store, b);
    expect([a, b].map(onDisk)).toEqual([false, true]);
  });

  it('an artifact reservation counts while it builds', async () => {
    const store = await openStore(10);
    const key = makeBlob(10).digest;
    let during = 0;
    await store.ensureArtifact(
      key,
      async (dir) => {
        during = store.usage().inFlightBytes;
        await writeFile(join(dir, 'fs.ext4'), makeBlob(SIZE).data);
      },
      { reserveBytes: 5 * unit },
    );
    expect(during).toBe(5 * unit);
    expect(store.usage().inFlightBytes).toBe(0);
    expect(store.usage().usedBytes).toBeGreaterThanOrEqual(unit);
  });
});

describe('open', () => {
  it('creates the layout root-only, and refuses a second instance on the directory in this process', async () => {
    const store = await openStore(10);
    for (const dir of ['', 'tmp', 'blobs', 'blobs/sha256', 'artifacts', 'artifacts/sha256']) {
      expect(statSync(join(root, dir)).mode & 0o777).toBe(0o700);
    }
    await expect(ContentStore.open(join(root, '.'), { limitBytes: 1 })).rejects.toThrow('already open');
    await store.close();
    expect(() => store.blobPath(makeBlob(1).digest)).toThrow('closed');
    await openStore(10);
  });

  it('after a crash: removes temp files and strays, rebuilds the index and the usage', async () => {
    let store = await openStore(100);
    const [a, b] = blobs(2);
    await add(store, a);
    await add(store, b);
    const key = makeBlob(10).digest;
    await store.ensureArtifact(key, async (dir) => writeFile(join(dir, 'fs.ext4'), Buffer.alloc(3 * SIZE, 7)));
    const before = store.usage();
    await store.close();

    // What a crash in the middle of writes and evictions leaves behind.
    const c = makeBlob(SIZE);
    writeFileSync(join(root, 'tmp', `blob-${digestHex(c.digest)}-0123456789ab`), c.data.subarray(0, 100));
    mkdirSync(join(root, 'tmp', 'artifact-xyz', 'deep'), { recursive: true });
    writeFileSync(join(root, 'tmp', 'artifact-xyz', 'deep', 'fs.ext4'), 'half');
    writeFileSync(join(root, 'blobs', 'sha256', 'not-a-digest'), 'stray');

    store = await openStore(100);
    expect(listTmp(root)).toEqual([]);
    expect(readdirSync(join(root, 'blobs', 'sha256')).sort()).toEqual([a, b].map((x) => digestHex(x.digest)).sort());
    expect(store.usage()).toEqual(before);
    expect(store.usage()).toMatchObject({ entries: 3, blobs: 2, artifacts: 1 });
    expect(store.blobPath(c.digest)).toBeUndefined();
    expect(store.blobPath(a.digest)).toBeDefined();
    expect(store.artifactPath(key)).toBeDefined();
  });

  it('keeps the LRU order across a reopen', async () => {
    let store = await openStore(100);
    const [a, b, c] = blobs(3);
    for (const blob of [a, b, c]) await add(store, blob);
    store.blobPath(a.digest); // order: b, c, a (a was written first)
    store = await reopen(store, 2.5);
    expect(await store.gc()).toEqual({ removed: 1, freedBytes: unit });
    expect([a, b, c].map(onDisk)).toEqual([true, false, true]);

    // The touches of a lease count too, and survive as well.
    const lease = store.lease([c.digest]);
    lease.release(); // order: a, c
    store = await reopen(store, 1.5);
    expect(await store.gc()).toEqual({ removed: 1, freedBytes: unit });
    expect([a, c].map(onDisk)).toEqual([false, true]);
  });
});

describe('accounting under concurrency', () => {
  it('many concurrent writers, leases and gc under a tight limit: index, disk and usage agree', async () => {
    const store = await openStore(4.5);
    const all = blobs(24);
    let maxUsed = 0;
    const results = await Promise.allSettled(
      all.map(async (blob, i) => {
        const lease = i % 5 === 0 ? store.lease([blob.digest]) : undefined;
        try {
          for (let k = 0; k < i % 3; k++) await tick();
          const path = await add(store, blob);
          maxUsed = Math.max(maxUsed, store.usage().usedBytes);
          if (i % 4 === 0) await store.gc();
          return path;
        } finally {
          lease?.release();
        }
      }),
    );
    for (const result of results) {
      if (result.status === 'rejected') expect(result.reason).toMatchObject({ code: 'CACHE_FULL' });
    }
    expect(results.filter((r) => r.status === 'fulfilled').length).toBeGreaterThanOrEqual(4);
    expect(maxUsed).toBeLessThanOrEqual(store.limitBytes);
    const names = readdirSync(join(root, 'blobs', 'sha256'));
    const usage = store.usage();
    expect(usage).toMatchObject({ entries: names.length, inFlightBytes: 0, pinnedBytes: 0 });
    expect(usage.usedBytes).toBe(names.length * unit);
    expect(usage.usedBytes).toBeLessThanOrEqual(store.limitBytes);
    expect(listTmp(root)).toEqual([]);
    for (const name of names) expect(store.blobPath(`sha256:${name}`)).toBe(join(root, 'blobs', 'sha256', name));
  });
});
