// The whole pull path against a real registry: resolve with the tenant's credentials, fetch into the node's
// content store, apply layers with whiteouts, build the ext4 image, and the cache rules across tenants.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImageError } from '../errors';
import { ImageService, type PullProgress } from '../image-service';
import { TestRegistry } from './support/registry-harness';
import { pushImage } from './support/registry-push';
import { tarGz } from './support/registry-tar';

jest.setTimeout(60_000);

const tenantA = { username: 'tenant-a', password: 'a-secret' };
const tenantB = { username: 'tenant-b', password: 'b-secret' };

/** Lists a path inside an ext4 image without mounting it. */
function ext4Cat(image: string, path: string): string {
  return execFileSync('debugfs', ['-R', `cat ${path}`, image], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
}
function ext4Has(image: string, path: string): boolean {
  const out = execFileSync('debugfs', ['-R', `stat ${path}`, image], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return out.includes('Inode:');
}

describe('ImageService (real registry, real mkfs)', () => {
  let registry: TestRegistry;
  let dir: string;
  let service: ImageService;

  beforeAll(async () => {
    registry = await TestRegistry.start({
      flavour: 'token',
      users: {
        'tenant-a': { password: tenantA.password, repositories: ['a/private', 'shared/app'] },
        'tenant-b': { password: tenantB.password, repositories: ['shared/app'] },
      },
    });
    dir = mkdtempSync(join(tmpdir(), 'caas-images-'));
  });

  beforeEach(async () => {
    await service?.close();
    rmSync(join(dir, 'cache'), { recursive: true, force: true });
    service = await ImageService.open({
      cacheDir: join(dir, 'cache'),
      cacheLimitBytes: 512 * 1024 * 1024,
      registry: { retry: { attempts: 2, baseMs: 5, maxMs: 20 }, timeoutMs: 5000 },
    });
  });

  afterAll(async () => {
    await service?.close();
    await registry?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('pulls a multi-layer image with whiteouts into an ext4 image with its run config', async () => {
    const base = tarGz([
      { path: 'bin/', type: 'directory' },
      { path: 'etc/', type: 'directory' },
      { path: 'etc/passwd', content: 'root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n' },
      { path: 'etc/group', content: 'root:x:0:\napp:x:1000:\nextra:x:2000:app\n' },
      { path: 'etc/old.conf', content: 'deleted later\n' },
      { path: 'var/', type: 'directory' },
      { path: 'var/cache/', type: 'directory' },
      { path: 'var/cache/stale', content: 'hidden by an opaque dir\n' },
      { path: 'app/', type: 'directory' },
      { path: 'app/run.sh', content: '#!/bin/sh\necho v1\n', mode: 0o755 },
    ]);
    const update = tarGz([
      { path: 'etc/.wh.old.conf' },
      { path: 'var/cache/.wh..wh..opq' },
      { path: 'var/cache/fresh', content: 'kept\n' },
      { path: 'app/run.sh', content: '#!/bin/sh\necho v2\n', mode: 0o755 },
      { path: 'app/link', type: 'symlink', linkname: '/etc/passwd' },
    ]);
    const pushed = await pushImage(registry, 'a/private', {
      tag: 'v2',
      layers: [base, update],
      config: {
        os: 'linux',
        architecture: 'amd64',
        config: {
          Entrypoint: ['/app/run.sh'],
          Cmd: ['--serve'],
          Env: ['PATH=/bin', 'MODE=prod'],
          WorkingDir: '/app',
          User: 'app',
        },
        rootfs: { type: 'layers', diff_ids: [] },
      },
    });
    const progress: PullProgress[] = [];
    const image = await service.pull(registry.ref('a/private:v2'), {
      credentials: tenantA,
      onProgress: (p) => progress.push(p),
    });
    expect(image.digest).toBe(pushed.digest);
    expect(image.config).toEqual({
      entrypoint: ['/app/run.sh'],
      cmd: ['--serve'],
      env: ['PATH=/bin', 'MODE=prod'],
      workingDir: '/app',
      user: 'app',
    });
    expect(image.user).toEqual({ uid: 1000, gid: 1000, additionalGids: [2000] });
    const fs = image.fsImage.path;
    expect(ext4Cat(fs, '/app/run.sh')).toBe('#!/bin/sh\necho v2\n');
    expect(ext4Has(fs, '/etc/old.conf')).toBe(false);
    expect(ext4Has(fs, '/var/cache/stale')).toBe(false);
    expect(ext4Cat(fs, '/var/cache/fresh')).toBe('kept\n');
    expect(ext4Has(fs, '/etc/.wh.old.conf')).toBe(false);
    // Progress: bytes of the total, per layer, ending ready.
    const total = pushed.config.size + pushed.layers.reduce((sum, layer) => sum + layer.size, 0);
    expect(progress[0]).toMatchObject({ phase: 'resolved', totalBytes: total, cached: false });
    expect(progress.some((p) => p.phase === 'download' && p.layer?.index === 1)).toBe(true);
    expect(progress.at(-1)).toMatchObject({ phase: 'ready', bytes: total });
    image.lease.release();
  });

  it('serves a cached image to a tenant only after that tenant could fetch its manifest itself', async () => {
    await pushImage(registry, 'a/private', {
      tag: 'secret',
      layers: [tarGz([{ path: 'secret.txt', content: 'A only\n' }])],
    });
    const first = await service.pull(registry.ref('a/private:secret'), { credentials: tenantA });
    expect(existsSync(first.fsImage.path)).toBe(true);

    // Tenant B holds valid credentials, but not for this repository: the cached image is not theirs to use.
    const byB = await service.pull(registry.ref('a/private:secret'), { credentials: tenantB }).catch((e: unknown) => e);
    expect(byB).toBeInstanceOf(ImageError);
    expect((byB as ImageError).code).toBe('UNAUTHORIZED');
    const anonymous = await service.pull(registry.ref(`a/private@${first.digest}`)).catch((e: unknown) => e);
    expect((anonymous as ImageError).code).toBe('UNAUTHORIZED');

    // Tenant A again: served from the cache (nothing downloaded), after the manifest was fetched again.
    const progress: PullProgress[] = [];
    const again = await service.pull(registry.ref('a/private:secret'), {
      credentials: tenantA,
      onProgress: (p) => progress.push(p),
    });
    expect(again.fsImage.path).toBe(first.fsImage.path);
    expect(progress[0]).toMatchObject({ cached: true });
    expect(progress.some((p) => p.phase === 'download')).toBe(false);
    first.lease.release();
    again.lease.release();
  });

  it('coalesces two concurrent pulls of one image', async () => {
    const layers = [tarGz([{ path: 'a', content: 'x'.repeat(100_000) }]), tarGz([{ path: 'b', content: 'y' }])];
    await pushImage(registry, 'shared/app', { tag: 'v1', layers });
    const seen: PullProgress[][] = [[], []];
    const [one, two] = await Promise.all([
      service.pull(registry.ref('shared/app:v1'), { credentials: tenantA, onProgress: (p) => seen[0]?.push(p) }),
      service.pull(registry.ref('shared/app:v1'), { credentials: tenantB, onProgress: (p) => seen[1]?.push(p) }),
    ]);
    expect(one.fsImage.path).toBe(two.fsImage.path);
    // One download and one build between them: only one of the two pulls ever fetched.
    const fetching = seen.filter((list) => list.some((p) => p.phase === 'download'));
    expect(fetching).toHaveLength(1);
    one.lease.release();
    two.lease.release();
  });

  it('refuses a tampered blob and keeps nothing of it', async () => {
    const pushed = await pushImage(registry, 'shared/app', {
      tag: 'tampered',
      layers: [tarGz([{ path: 'f', content: 'original\n' }])],
    });
    const layer = pushed.layers[0];
    if (!layer) throw new Error('no layer');
    registry.tamperBlob(layer.digest);
    const error = await service
      .pull(registry.ref('shared/app:tampered'), { credentials: tenantA })
      .catch((e: unknown) => e);
    expect((error as ImageError).code).toBe('DIGEST_MISMATCH');
    expect(service.usage().artifacts).toBe(0);
  });

  it('refuses a layer that escapes the root', async () => {
    await pushImage(registry, 'shared/app', {
      tag: 'evil',
      layers: [tarGz([{ path: '../../escape', content: 'out\n' }])],
    });
    const error = await service
      .pull(registry.ref('shared/app:evil'), { credentials: tenantA })
      .catch((e: unknown) => e);
    expect((error as ImageError).code).toBe('UNSAFE_LAYER');
    expect(service.usage().artifacts).toBe(0);
  });

  it('collects unused images under a small cache limit, never one a pod still uses', async () => {
    const big = (name: string) => tarGz([{ path: name, content: randomBytes(400_000) }]);
    for (const tag of ['gc1', 'gc2', 'gc3']) await pushImage(registry, 'shared/app', { tag, layers: [big(tag)] });
    // What one image costs in the cache (its blobs and its filesystem image), measured here.
    const first = await service.pull(registry.ref('shared/app:gc1'), { credentials: tenantA });
    const perImage = service.usage().usedBytes;
    first.lease.release();
    await service.close();
    rmSync(join(dir, 'cache'), { recursive: true, force: true });
    const limit = Math.floor(perImage * 2.5);
    service = await ImageService.open({ cacheDir: join(dir, 'cache'), cacheLimitBytes: limit });

    const inUse = await service.pull(registry.ref('shared/app:gc1'), { credentials: tenantA });
    const unused = await service.pull(registry.ref('shared/app:gc2'), { credentials: tenantA });
    unused.lease.release();
    const third = await service.pull(registry.ref('shared/app:gc3'), { credentials: tenantA });
    // Room for two and a half: the released image went, the one a pod still uses stayed.
    expect(existsSync(inUse.fsImage.path)).toBe(true);
    expect(existsSync(third.fsImage.path)).toBe(true);
    expect(existsSync(unused.fsImage.path)).toBe(false);
    expect(service.usage().usedBytes).toBeLessThanOrEqual(limit);

    // With everything leased, a further image cannot be made room for.
    await pushImage(registry, 'shared/app', { tag: 'gc4', layers: [big('gc4')] });
    const full = await service.pull(registry.ref('shared/app:gc4'), { credentials: tenantA }).catch((e: unknown) => e);
    expect((full as ImageError).code).toBe('CACHE_FULL');
    inUse.lease.release();
    third.lease.release();
  });
});
