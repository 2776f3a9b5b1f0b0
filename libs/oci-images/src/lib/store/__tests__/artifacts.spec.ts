import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { digestHex } from '../../digest';
import type { ContentStore } from '../content-store';
import { deferred, fetchOf, freshStores, listTmp, makeBlob, tick } from './helpers';

const stores = freshStores();
let store: ContentStore;
let root: string;

beforeEach(async () => ({ root, store } = await stores.open()));
afterEach(() => stores.closeAll());

const key = makeBlob(100).digest;
const finalDir = (): string => join(root, 'artifacts', 'sha256', digestHex(key));

async function buildImage(tempDir: string): Promise<void> {
  await writeFile(join(tempDir, 'fs.ext4'), Buffer.alloc(100_000, 1));
  await mkdir(join(tempDir, 'meta'));
  await writeFile(join(tempDir, 'meta', 'config.json'), '{"cmd":["sh"]}');
}

describe('ensureArtifact', () => {
  it('builds into a temp dir and renames it into place (0700); later calls do not build', async () => {
    const build = jest.fn(buildImage);
    const dir = await store.ensureArtifact(key, build);
    expect(dir).toBe(finalDir());
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(readFileSync(join(dir, 'meta', 'config.json'), 'utf8')).toBe('{"cmd":["sh"]}');
    expect(statSync(join(dir, 'fs.ext4')).size).toBe(100_000);
    expect(build.mock.calls[0][0]).toMatch(new RegExp(`^${join(root, 'tmp')}/`));
    expect(store.artifactPath(key)).toBe(dir);
    await expect(store.ensureArtifact(key, build)).resolves.toBe(dir);
    expect(build).toHaveBeenCalledTimes(1);
    expect(store.usage()).toMatchObject({ entries: 1, blobs: 0, artifacts: 1, inFlightBytes: 0 });
    expect(store.usage().usedBytes).toBeGreaterThanOrEqual(100_000);
    expect(listTmp(root)).toEqual([]);
  });

  it('coalesces concurrent builds and hides the artifact until it is complete', async () => {
    const gate = deferred<void>();
    const build = jest.fn(async (tempDir: string) => {
      await writeFile(join(tempDir, 'fs.ext4'), 'half');
      await gate.promise;
      await writeFile(join(tempDir, 'config.json'), '{}');
    });
    const calls = Array.from({ length: 10 }, () => store.ensureArtifact(key, build));
    for (let i = 0; i < 5; i++) {
      await tick();
      expect(store.artifactPath(key)).toBeUndefined();
      expect(existsSync(finalDir())).toBe(false);
    }
    gate.resolve();
    expect(new Set(await Promise.all(calls))).toEqual(new Set([finalDir()]));
    expect(build).toHaveBeenCalledTimes(1);
    expect(existsSync(join(finalDir(), 'config.json'))).toBe(true);
  });

  it('a failed build leaves nothing and is retried by the next call', async () => {
    const failing = jest.fn(async (tempDir: string) => {
      await writeFile(join(tempDir, 'fs.ext4'), 'partial');
      throw new Error('mkfs failed');
    });
    const calls = Array.from({ length: 3 }, () => store.ensureArtifact(key, failing));
    for (const call of calls) await expect(call).rejects.toThrow('mkfs failed');
    expect(failing).toHaveBeenCalledTimes(1);
    expect(store.artifactPath(key)).toBeUndefined();
    expect(existsSync(finalDir())).toBe(false);
    expect(listTmp(root)).toEqual([]);
    expect(store.usage()).toMatchObject({ usedBytes: 0, inFlightBytes: 0, entries: 0 });

    await expect(store.ensureArtifact(key, buildImage)).resolves.toBe(finalDir());
  });

  it('keeps a blob and an artifact of the same digest apart', async () => {
    const manifest = makeBlob(300);
    await store.ensureArtifact(manifest.digest, buildImage);
    expect(store.blobPath(manifest.digest)).toBeUndefined();
    await store.ensureBlob(manifest.digest, manifest.size, fetchOf(manifest.data));
    expect(store.usage()).toMatchObject({ entries: 2, blobs: 1, artifacts: 1 });
  });
});
