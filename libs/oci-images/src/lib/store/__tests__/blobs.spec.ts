import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { digestHex } from '../../digest';
import { ImageError } from '../../errors';
import type { ContentStore } from '../content-store';
import { deferred, fetchOf, freshStores, listTmp, makeBlob, manualStream, tick } from './helpers';

const stores = freshStores();
let store: ContentStore;
let root: string;

beforeEach(async () => ({ root, store } = await stores.open()));
afterEach(() => stores.closeAll());

const finalPath = (digest: string): string => join(root, 'blobs', 'sha256', digest.slice('sha256:'.length));

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  await expect(promise).rejects.toBeInstanceOf(ImageError);
  await expect(promise).rejects.toMatchObject({ code });
}

function expectNothingKept(digest: string): void {
  expect(store.blobPath(digest)).toBeUndefined();
  expect(existsSync(finalPath(digest))).toBe(false);
  expect(listTmp(root)).toEqual([]);
  expect(store.usage()).toMatchObject({ usedBytes: 0, inFlightBytes: 0, entries: 0 });
}

describe('ensureBlob', () => {
  it('fetches, verifies and stores a blob (0600), then serves it without fetching', async () => {
    const blob = makeBlob(10_000);
    const fetch = fetchOf(blob.data);
    const progress: number[] = [];
    const path = await store.ensureBlob(blob.digest, blob.size, fetch, (bytes) => progress.push(bytes));
    expect(path).toBe(finalPath(blob.digest));
    expect(readFileSync(path)).toEqual(blob.data);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(progress).toEqual([4096, 8192, 10_000]);
    expect(store.blobPath(blob.digest)).toBe(path);
    await expect(store.ensureBlob(blob.digest, blob.size, fetch)).resolves.toBe(path);
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(store.usage()).toMatchObject({ entries: 1, blobs: 1, artifacts: 0, inFlightBytes: 0 });
    expect(store.usage().usedBytes).toBeGreaterThanOrEqual(10_000);
    expect(listTmp(root)).toEqual([]);
  });

  it('stores an empty blob', async () => {
    const blob = makeBlob(0);
    await expect(store.ensureBlob(blob.digest, 0, fetchOf(blob.data))).resolves.toBe(finalPath(blob.digest));
  });

  it('refuses content with the wrong digest: nothing visible, temp file removed', async () => {
    const blob = makeBlob(10_000);
    const other = makeBlob(10_000);
    await expectCode(store.ensureBlob(blob.digest, blob.size, fetchOf(other.data)), 'DIGEST_MISMATCH');
    expectNothingKept(blob.digest);
  });

  it('refuses content longer than announced, without reading it to the end', async () => {
    const blob = makeBlob(10_000);
    const longer = Buffer.concat([blob.data, Buffer.alloc(100_000)]);
    const stream = Readable.from([longer.subarray(0, 8192), longer.subarray(8192, 16_384), longer.subarray(16_384)]);
    await expectCode(
      store.ensureBlob(blob.digest, blob.size, async () => stream),
      'SIZE_MISMATCH',
    );
    expect(stream.destroyed).toBe(true);
    expectNothingKept(blob.digest);
  });

  it('refuses content shorter than announced', async () => {
    const blob = makeBlob(10_000);
    await expectCode(store.ensureBlob(blob.digest, blob.size, fetchOf(blob.data.subarray(0, 9000))), 'SIZE_MISMATCH');
    expectNothingKept(blob.digest);
  });

  it('refuses a present blob asked for with another size (as a fetch would)', async () => {
    const blob = makeBlob(1000);
    await store.ensureBlob(blob.digest, blob.size, fetchOf(blob.data));
    await expectCode(store.ensureBlob(blob.digest, 999, fetchOf(blob.data)), 'SIZE_MISMATCH');
    await expectCode(store.ensureBlob(blob.digest, -1, fetchOf(blob.data)), 'SIZE_MISMATCH');
  });

  it('a fetch failing mid-way keeps nothing, and the next call fetches again', async () => {
    const blob = makeBlob(20_000);
    const stream = manualStream();
    const received = deferred<void>();
    const failing = store.ensureBlob(
      blob.digest,
      blob.size,
      async () => stream,
      (bytes) => bytes === 8192 && received.resolve(),
    );
    stream.write(blob.data.subarray(0, 8192));
    await received.promise; // written to the temp file
    expect(listTmp(root)).toHaveLength(1);
    stream.destroy(new Error('connection reset'));
    await expect(failing).rejects.toThrow('connection reset');
    expectNothingKept(blob.digest);

    await expect(
      store.ensureBlob(blob.digest, blob.size, async () => {
        throw new ImageError('REGISTRY_UNAVAILABLE', 'down');
      }),
    ).rejects.toMatchObject({ code: 'REGISTRY_UNAVAILABLE' });
    expectNothingKept(blob.digest);

    const fetch = fetchOf(blob.data);
    await expect(store.ensureBlob(blob.digest, blob.size, fetch)).resolves.toBe(finalPath(blob.digest));
    expect(fetch).toHaveBeenCalledTimes(1);
  });

  it('coalesces concurrent requests: one fetch, every caller gets the path', async () => {
    const blob = makeBlob(50_000);
    const gate = deferred<void>();
    const fetch = jest.fn(async () => {
      await gate.promise;
      return Readable.from([blob.data]);
    });
    const progress = jest.fn();
    const calls = Array.from({ length: 10 }, (_, i) =>
      store.ensureBlob(blob.digest, blob.size, fetch, i === 9 ? progress : undefined),
    );
    await tick();
    gate.resolve();
    const paths = await Promise.all(calls);
    expect(new Set(paths)).toEqual(new Set([finalPath(blob.digest)]));
    expect(fetch).toHaveBeenCalledTimes(1);
    expect(progress).toHaveBeenLastCalledWith(50_000);
  });

  it('coalesces a failure too: every waiting caller gets the error, the next call retries', async () => {
    const blob = makeBlob(1000);
    const other = makeBlob(1000);
    const gate = deferred<void>();
    const fetch = jest.fn(async () => {
      await gate.promise;
      return Readable.from([other.data]);
    });
    const calls = Array.from({ length: 10 }, () => store.ensureBlob(blob.digest, blob.size, fetch));
    gate.resolve();
    const results = await Promise.allSettled(calls);
    expect(results.every((r) => r.status === 'rejected' && (r.reason as ImageError).code === 'DIGEST_MISMATCH')).toBe(
      true,
    );
    expect(fetch).toHaveBeenCalledTimes(1);
    await store.ensureBlob(blob.digest, blob.size, fetchOf(blob.data));
    expect(store.blobPath(blob.digest)).toBe(finalPath(blob.digest));
  });

  it('never shows a partial blob: absent until the whole verified content is in place', async () => {
    const blob = makeBlob(64 * 1024);
    const stream = manualStream();
    const done = store.ensureBlob(blob.digest, blob.size, async () => stream);
    for (let offset = 0; offset < blob.size; offset += 4096) {
      stream.write(blob.data.subarray(offset, offset + 4096));
      await tick();
      expect(store.blobPath(blob.digest)).toBeUndefined();
      expect(existsSync(finalPath(blob.digest))).toBe(false);
    }
    expect(store.usage().inFlightBytes).toBe(64 * 1024);
    stream.end();
    let seen: string | undefined;
    while ((seen = store.blobPath(blob.digest)) === undefined) await tick();
    // The first time it is visible, it is complete.
    expect(readFileSync(seen)).toEqual(blob.data);
    await expect(done).resolves.toBe(seen);
  });

  it('refuses bad keys without touching the disk', async () => {
    const hex = digestHex(makeBlob(1).digest);
    const bad = [
      '../../etc/passwd',
      `sha256:${hex.toUpperCase()}`,
      `sha256:../${hex.slice(3)}`,
      `sha512:${hex}${hex}`,
      `sha256:${hex}/`,
      hex,
      '',
    ];
    const fetch = fetchOf(Buffer.alloc(1));
    for (const key of bad) {
      expect(() => store.blobPath(key)).toThrow(expect.objectContaining({ code: 'BAD_DIGEST' }));
      expect(() => store.artifactPath(key)).toThrow(expect.objectContaining({ code: 'BAD_DIGEST' }));
      expect(() => store.lease([key])).toThrow(expect.objectContaining({ code: 'BAD_DIGEST' }));
      await expectCode(store.ensureBlob(key, 1, fetch), 'BAD_DIGEST');
      await expectCode(
        store.ensureArtifact(key, async () => undefined),
        'BAD_DIGEST',
      );
    }
    expect(fetch).not.toHaveBeenCalled();
    expect(listTmp(root)).toEqual([]);
  });
});
