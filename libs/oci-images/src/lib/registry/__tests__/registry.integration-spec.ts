// The client against a real registry (Debian's docker-registry, distribution 2.8): open, Basic auth and token
// auth flavours, images pushed with our push helper (and one by skopeo from a umoci-built layout).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { digestOf } from '../../digest';
import { freePort, TestRegistry } from '../../__tests__/support/registry-harness';
import { pushBlob, pushImage, pushIndex, type PushedImage } from '../../__tests__/support/registry-push';
import { tarGz } from '../../__tests__/support/registry-tar';
import type { TokenService } from '../../__tests__/support/registry-token-service';
import { RegistryClient, type RegistryClientOptions } from '../client';
import { MediaTypes } from '../manifest';
import { drain, failure, nth } from './test-helpers';

jest.setTimeout(20_000);

const OPTIONS: RegistryClientOptions = { retry: { attempts: 3, baseMs: 5, maxMs: 20 }, timeoutMs: 5000 };
const alice = { username: 'alice', password: 'alice-secret' };
const bob = { username: 'bob', password: 'bob-secret' };
const users = {
  alice: { password: alice.password, repositories: ['team/private'] },
  bob: { password: bob.password, repositories: ['team/other'] },
};

let open: TestRegistry;
let basic: TestRegistry;
let token: TestRegistry;

beforeAll(async () => {
  [open, basic, token] = await Promise.all([
    TestRegistry.start({ flavour: 'open' }),
    TestRegistry.start({ flavour: 'basic', users }),
    TestRegistry.start({ flavour: 'token', users }),
  ]);
});

afterAll(async () => {
  await Promise.all([open?.stop(), basic?.stop(), token?.stop()]);
});

function tokenServiceOf(registry: TestRegistry): TokenService {
  if (registry.tokenService === undefined) throw new Error('not a token registry');
  return registry.tokenService;
}

const layer = (name: string, content: string | Buffer) =>
  tarGz([
    { path: 'etc', type: 'directory' },
    { path: `etc/${name}`, content },
  ]);

describe('open registry', () => {
  it('pulls a multi-layer image: manifest, config and every layer verified', async () => {
    const layers = [layer('one', 'first'), layer('two', randomBytes(300_000)), layer('three', 'third')];
    const pushed = await pushImage(open, 'team/app', { layers, tag: '1.2' });
    const client = new RegistryClient(OPTIONS);

    const resolved = await client.resolve(open.ref('team/app:1.2'));
    expect(resolved).toMatchObject({
      digest: pushed.digest,
      manifestDigest: pushed.digest,
      mediaType: MediaTypes.ociManifest,
    });
    expect(resolved.layers).toEqual(pushed.layers);
    const config = await client.fetchConfig(resolved.reference, resolved.config);
    expect(config.json['rootfs']).toEqual({
      type: 'layers',
      diff_ids: layers.map((data) => digestOf(gunzipSync(data))),
    });
    for (const [i, descriptor] of resolved.layers.entries()) {
      expect((await drain(await client.fetchBlob(resolved.reference, descriptor))).equals(nth(layers, i))).toBe(true);
    }
    // Pinned by digest, it resolves to the same.
    expect((await client.resolve(open.ref(`team/app@${pushed.digest}`))).digest).toBe(pushed.digest);
  });

  it('resolves an OCI index to its linux/amd64 image, and pins the index digest', async () => {
    const platform = (architecture: string, variant?: string) => ({
      os: 'linux',
      architecture,
      ...(variant ? { variant } : {}),
    });
    const image = (architecture: string) =>
      pushImage(open, 'team/multi', {
        layers: [layer('arch', architecture)],
        config: { architecture, os: 'linux', rootfs: { type: 'layers', diff_ids: [] } },
      });
    const [arm64, amd64, s390x] = await Promise.all([image('arm64'), image('amd64'), image('s390x')]);
    const index = await pushIndex(
      open,
      'team/multi',
      [
        { image: arm64, platform: platform('arm64', 'v8') },
        { image: amd64, platform: platform('amd64') },
        { image: s390x, platform: platform('s390x') },
      ],
      { tag: 'latest' },
    );
    const client = new RegistryClient(OPTIONS);

    const resolved = await client.resolve(open.ref('team/multi'));
    expect(resolved).toMatchObject({ digest: index.digest, manifestDigest: amd64.digest, layers: amd64.layers });
    const config = await client.fetchConfig(resolved.reference, resolved.config);
    expect(config.json['architecture']).toBe('amd64');

    await pushIndex(
      open,
      'team/multi',
      [
        { image: arm64, platform: platform('arm64', 'v8') },
        { image: s390x, platform: platform('s390x') },
      ],
      { tag: 'no-amd64' },
    );
    const none = await failure(client.resolve(open.ref('team/multi:no-amd64')));
    expect(none.code).toBe('NO_MATCHING_PLATFORM');
    expect(none.message).toContain('linux/arm64/v8, linux/s390x');
  });

  it('resolves a Docker manifest list of schema 2 manifests', async () => {
    const amd64 = await pushImage(open, 'team/docker', { format: 'docker', layers: [layer('docker', 'amd64')] });
    const arm = await pushImage(open, 'team/docker', { format: 'docker', layers: [layer('docker', 'arm')] });
    const list = await pushIndex(
      open,
      'team/docker',
      [
        { image: arm, platform: { os: 'linux', architecture: 'arm', variant: 'v7' } },
        { image: amd64, platform: { os: 'linux', architecture: 'amd64' } },
      ],
      { format: 'docker', tag: 'list' },
    );
    const client = new RegistryClient(OPTIONS);
    const resolved = await client.resolve(open.ref('team/docker:list'));
    expect(resolved).toMatchObject({
      digest: list.digest,
      manifestDigest: amd64.digest,
      mediaType: MediaTypes.dockerManifest,
    });
    expect(resolved.config.mediaType).toBe(MediaTypes.dockerConfig);
    expect(resolved.layers.map((l) => l.mediaType)).toEqual([MediaTypes.dockerLayerTarGzip]);
    const data = await drain(await client.fetchBlob(resolved.reference, nth(resolved.layers, 0)));
    expect(digestOf(data)).toBe(nth(amd64.layers, 0).digest);
  });

  it('pulls an image built by umoci and pushed by skopeo (as OCI and as Docker schema 2)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'caas-umoci-'));
    try {
      const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { cwd: dir, stdio: 'pipe' });
      run('umoci', ['init', '--layout', 'layout']);
      run('umoci', ['new', '--image', 'layout:app']);
      run('umoci', ['unpack', '--rootless', '--image', 'layout:app', 'bundle']);
      execFileSync('sh', ['-c', 'mkdir -p bundle/rootfs/etc && echo hello > bundle/rootfs/etc/hello'], { cwd: dir });
      run('umoci', ['repack', '--image', 'layout:app', 'bundle']);
      run('umoci', ['config', '--image', 'layout:app', '--config.cmd', '/bin/true']);
      const skopeo = (format: string, tag: string) =>
        run('skopeo', [
          'copy',
          '--quiet',
          '--dest-tls-verify=false',
          '--format',
          format,
          'oci:layout:app',
          `docker://${open.ref(`team/skopeo:${tag}`)}`,
        ]);
      skopeo('oci', 'oci');
      skopeo('v2s2', 'docker');
      const client = new RegistryClient(OPTIONS);
      for (const [tag, mediaType, layerType] of [
        ['oci', MediaTypes.ociManifest, MediaTypes.ociLayerTarGzip],
        ['docker', MediaTypes.dockerManifest, MediaTypes.dockerLayerTarGzip],
      ] as const) {
        const resolved = await client.resolve(open.ref(`team/skopeo:${tag}`));
        expect(resolved.mediaType).toBe(mediaType);
        expect(resolved.layers.map((l) => l.mediaType)).toEqual([layerType]);
        const config = await client.fetchConfig(resolved.reference, resolved.config);
        expect(config.json).toMatchObject({ os: 'linux', architecture: 'amd64', config: { Cmd: ['/bin/true'] } });
        const data = await drain(await client.fetchBlob(resolved.reference, nth(resolved.layers, 0)));
        expect(config.json['rootfs']).toEqual({ type: 'layers', diff_ids: [digestOf(gunzipSync(data))] });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('is NOT_FOUND for a missing tag and a missing repository', async () => {
    await pushImage(open, 'team/exists', { tag: '1' });
    const client = new RegistryClient(OPTIONS);
    const tag = await failure(client.resolve(open.ref('team/exists:2')));
    expect(tag.code).toBe('NOT_FOUND');
    expect(tag.message).toContain('MANIFEST_UNKNOWN');
    const repository = await failure(client.resolve(open.ref('team/nothing-here:1')));
    expect(repository.code).toBe('NOT_FOUND');
    const blob = await failure(
      client.fetchBlob(open.ref('team/exists:1'), {
        mediaType: MediaTypes.ociLayerTarGzip,
        digest: digestOf(Buffer.from('none')),
        size: 4,
      }),
    );
    expect(blob.code).toBe('NOT_FOUND');
    expect(blob.message).toContain('BLOB_UNKNOWN');
  });

  it('detects a blob the registry serves with bytes that are not its digest', async () => {
    const pushed = await pushImage(open, 'team/tampered', {
      layers: [layer('tampered', randomBytes(50_000))],
      tag: '1',
    });
    const client = new RegistryClient(OPTIONS);
    const resolved = await client.resolve(open.ref('team/tampered:1'));
    const digest = nth(pushed.layers, 0).digest;

    open.tamperBlob(digest);
    const stream = await client.fetchBlob(resolved.reference, nth(resolved.layers, 0));
    let ended = false;
    stream.on('end', () => (ended = true));
    const mismatch = await failure(drain(stream));
    expect(mismatch.code).toBe('DIGEST_MISMATCH');
    expect(ended).toBe(false);

    open.tamperBlob(digest, (data) => data.subarray(0, 1000)); // truncated on disk
    expect((await failure(client.fetchBlob(resolved.reference, nth(resolved.layers, 0)))).code).toBe('SIZE_MISMATCH');
  });
});

describe('basic auth registry', () => {
  let pushed: PushedImage;
  beforeAll(async () => {
    pushed = await pushImage(basic, 'team/private', { tag: '1' });
  });

  it('pulls a private image with the right credentials', async () => {
    const client = new RegistryClient(OPTIONS);
    const resolved = await client.resolve(basic.ref('team/private:1'), alice);
    expect(resolved.digest).toBe(pushed.digest);
    const data = await drain(await client.fetchBlob(resolved.reference, nth(resolved.layers, 0), alice));
    expect(digestOf(data)).toBe(nth(pushed.layers, 0).digest);
  });

  it('is UNAUTHORIZED with wrong credentials or none', async () => {
    const client = new RegistryClient(OPTIONS);
    const wrong = await failure(client.resolve(basic.ref('team/private:1'), { username: 'alice', password: 'guess' }));
    expect(wrong.code).toBe('UNAUTHORIZED');
    const unknown = await failure(client.resolve(basic.ref('team/private:1'), { username: 'mallory', password: 'x' }));
    expect(unknown.code).toBe('UNAUTHORIZED');
    const none = await failure(client.resolve(basic.ref('team/private:1')));
    expect(none.code).toBe('UNAUTHORIZED');
    // The right credentials still work after the refusals, on the same client.
    expect((await client.resolve(basic.ref('team/private:1'), alice)).digest).toBe(pushed.digest);
  });
});

describe('token auth registry', () => {
  let privateImage: PushedImage;
  let otherImage: PushedImage;
  beforeAll(async () => {
    [privateImage, otherImage] = await Promise.all([
      pushImage(token, 'team/private', { tag: '1', layers: [layer('private', 'alice only')] }),
      pushImage(token, 'team/other', { tag: '1', layers: [layer('other', 'bob only')] }),
    ]);
  });

  it('lets a user with access pull, with one token per user and repository', async () => {
    const client = new RegistryClient(OPTIONS);
    const service = tokenServiceOf(token);
    const before = service.issuedTo('alice').length;
    const resolved = await client.resolve(token.ref('team/private:1'), alice);
    expect(resolved.digest).toBe(privateImage.digest);
    await client.fetchConfig(resolved.reference, resolved.config, alice);
    await drain(await client.fetchBlob(resolved.reference, nth(resolved.layers, 0), alice));
    await client.resolve(token.ref('team/private:1'), alice);
    const issued = service.issuedTo('alice').slice(before);
    expect(issued).toHaveLength(1);
    expect(issued[0]).toMatchObject({
      scope: 'repository:team/private:pull',
      granted: [{ name: 'team/private', actions: ['pull'] }],
    });
  });

  it('refuses a user without access to the repository, never with another user’s token', async () => {
    const client = new RegistryClient(OPTIONS);
    const service = tokenServiceOf(token);
    await client.resolve(token.ref('team/private:1'), alice); // alice's token is now cached in this client
    const bobBefore = service.issuedTo('bob').length;

    const refused = await failure(client.resolve(token.ref('team/private:1'), bob));
    // distribution 2.8 answers a token that grants nothing with 401 and error="insufficient_scope".
    expect(refused.code).toBe('UNAUTHORIZED');
    expect(refused.message).toContain('do not grant pull access');
    const bobTokens = service.issuedTo('bob').slice(bobBefore);
    expect(bobTokens).toHaveLength(1);
    expect(bobTokens[0]?.granted).toEqual([]);

    // bob pulls his own repository with his own token; alice cannot.
    expect((await client.resolve(token.ref('team/other:1'), bob)).digest).toBe(otherImage.digest);
    expect((await failure(client.resolve(token.ref('team/other:1'), alice))).code).toBe('UNAUTHORIZED');
    // Anonymous and wrong credentials are refused too.
    expect((await failure(client.resolve(token.ref('team/private:1')))).code).toBe('UNAUTHORIZED');
    const wrong = await failure(client.resolve(token.ref('team/private:1'), { username: 'alice', password: 'guess' }));
    expect(wrong.code).toBe('UNAUTHORIZED');
    expect(wrong.message).toContain('token service');
  });
});

describe('registry failures', () => {
  it('is REGISTRY_UNAVAILABLE after retries when nothing listens', async () => {
    const port = await freePort();
    const started = Date.now();
    const error = await failure(new RegistryClient(OPTIONS).resolve(`127.0.0.1:${port}/team/app:1`));
    expect(error.code).toBe('REGISTRY_UNAVAILABLE');
    expect(error.message).toMatch(/ECONNREFUSED.*after 3 attempts/);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('errors, without hanging or a short blob, when the registry dies mid-blob', async () => {
    const dying = await TestRegistry.start({ flavour: 'open' });
    try {
      const data = randomBytes(20 * 1024 * 1024);
      const blob = await pushBlob(dying, 'team/big', data, MediaTypes.ociLayerTar);
      const client = new RegistryClient({ ...OPTIONS, timeoutMs: 3000 });
      const stream = await client.fetchBlob(dying.ref('team/big:1'), blob);
      let received = 0;
      let killed = false;
      const consume = async () => {
        for await (const chunk of stream) {
          received += (chunk as Buffer).length;
          if (!killed) {
            killed = true;
            await dying.kill();
          }
          await new Promise((resolve) => setTimeout(resolve, 1)); // a slow consumer
        }
      };
      const error = await failure(consume());
      expect(error.code).toBe('REGISTRY_UNAVAILABLE');
      expect(error.message).toMatch(/connection broke after \d+ of 20971520 bytes/);
      expect(received).toBeLessThan(data.length);
    } finally {
      await dying.stop();
    }
  });

  it('errors, without hanging, when the registry freezes mid-blob or before answering', async () => {
    const frozen = await TestRegistry.start({ flavour: 'open' });
    try {
      const data = randomBytes(20 * 1024 * 1024);
      const blob = await pushBlob(frozen, 'team/big', data, MediaTypes.ociLayerTar);
      await pushImage(frozen, 'team/big', { tag: '1' });
      const client = new RegistryClient({ ...OPTIONS, timeoutMs: 300, retry: { attempts: 2, baseMs: 5 } });
      const stream = await client.fetchBlob(frozen.ref('team/big:1'), blob);
      let received = 0;
      const consume = async () => {
        for await (const chunk of stream) {
          if (received === 0) frozen.signal('SIGSTOP');
          received += (chunk as Buffer).length;
        }
      };
      const stalled = await failure(consume());
      expect(stalled.code).toBe('REGISTRY_UNAVAILABLE');
      expect(stalled.message).toMatch(/no data for 300 ms after \d+ of 20971520 bytes/);
      expect(received).toBeLessThan(data.length);

      const silent = await failure(client.resolve(frozen.ref('team/big:1')));
      expect(silent.code).toBe('REGISTRY_UNAVAILABLE');
      expect(silent.message).toContain('no response within 300 ms (after 2 attempts)');
    } finally {
      await frozen.stop();
    }
  });
});
