import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { digestOf } from '../../digest';
import type { Digest } from '../../digest';
import { ContentStore } from '../content-store';

export interface TestBlob {
  data: Buffer;
  digest: Digest;
  size: number;
}

/** Random (incompressible) bytes, so that what they occupy on disk does not depend on the file system. */
export function makeBlob(size: number): TestBlob {
  const data = randomBytes(size);
  return { data, digest: digestOf(data), size };
}

export function tempDirs(): { make(): string; cleanup(): void } {
  const made: string[] = [];
  return {
    make() {
      const dir = mkdtempSync(join(tmpdir(), 'oci-store-'));
      made.push(dir);
      return dir;
    },
    cleanup() {
      for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Content stores (64 MiB limit) on fresh directories: `open` one per test, `closeAll` after each test. */
export function freshStores(): { open(): Promise<{ root: string; store: ContentStore }>; closeAll(): Promise<void> } {
  const dirs = tempDirs();
  const opened: ContentStore[] = [];
  return {
    async open() {
      const root = dirs.make();
      const store = await ContentStore.open(root, { limitBytes: 64 * 1024 * 1024 });
      opened.push(store);
      return { root, store };
    },
    async closeAll() {
      for (const store of opened.splice(0)) await store.close();
      dirs.cleanup();
    },
  };
}

/** A fetch that serves `data` in chunks, counting its calls. */
export function fetchOf(data: Buffer, chunk = 4096): jest.Mock<Promise<Readable>, []> {
  return jest.fn(async () => {
    const chunks: Buffer[] = [];
    for (let offset = 0; offset < data.length; offset += chunk) chunks.push(data.subarray(offset, offset + chunk));
    return Readable.from(chunks);
  });
}

/** A stream the test feeds by hand. */
export function manualStream(): PassThrough {
  return new PassThrough();
}

export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export function listTmp(root: string): string[] {
  return readdirSync(join(root, 'tmp'));
}

/** What one blob of `size` random bytes occupies on this file system (its st_blocks × 512). */
export async function blobCost(dir: string, size: number): Promise<number> {
  const store = await ContentStore.open(dir, { limitBytes: Number.MAX_SAFE_INTEGER });
  const blob = makeBlob(size);
  await store.ensureBlob(blob.digest, blob.size, fetchOf(blob.data));
  const cost = store.usage().usedBytes;
  await store.close();
  rmSync(dir, { recursive: true, force: true });
  return cost;
}
