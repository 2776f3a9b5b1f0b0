import type { IncomingMessage, ServerResponse } from 'node:http';
import { digestOf } from '../../digest';
import { backoffDelay, RegistryClient, type RegistryClientOptions } from '../client';
import { MediaTypes } from '../manifest';
import { parseReference } from '../reference';
import { addImage, FakeServer, sendError, serveContent } from './fake-registry';
import { drain, failure, nth } from './test-helpers';

const FAST: RegistryClientOptions = { retry: { attempts: 4, baseMs: 1, maxMs: 5 }, timeoutMs: 2000 };
const alice = { username: 'alice', password: 'alice-pw' };
const bob = { username: 'bob', password: 'bob-pw' };

let registry: FakeServer;
let tokens: FakeServer;
let storage: FakeServer;

beforeEach(async () => {
  [registry, tokens, storage] = await Promise.all([FakeServer.start(), FakeServer.start(), FakeServer.start()]);
});
afterEach(async () => {
  await Promise.all([registry.close(), tokens.close(), storage.close()]);
});

function basicUser(req: IncomingMessage): { user: string; password: string } | undefined {
  const match = /^Basic (.+)$/.exec(req.headers.authorization ?? '');
  if (match?.[1] === undefined) return undefined;
  const [user = '', password = ''] = Buffer.from(match[1], 'base64').toString().split(':');
  return { user, password };
}

/** A token service issuing `<user>-<n>` tokens to known users (anonymous: `anonymous-<n>`). */
function serveTokens(users: Record<string, string>, expiresIn = 300): Array<{ user: string; token: string; url: URL }> {
  const issued: Array<{ user: string; token: string; url: URL }> = [];
  tokens.handler = (req, res) => {
    const credentials = basicUser(req);
    if (credentials !== undefined && users[credentials.user] !== credentials.password) {
      return sendError(res, 401, 'UNAUTHORIZED', 'bad credentials');
    }
    const user = credentials?.user ?? 'anonymous';
    const token = `${user}-${issued.length + 1}`;
    issued.push({ user, token, url: new URL(req.url ?? '/', 'http://x') });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ token, expires_in: expiresIn }));
  };
  return issued;
}

/** The registry wants a bearer token that `accept` likes. */
function requireBearer(accept: (token: string) => boolean): void {
  registry.handler = (req, res, server) => {
    const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (token === undefined || !accept(token)) {
      const error = token === undefined ? '' : ',error="insufficient_scope"';
      return sendError(res, 401, 'UNAUTHORIZED', 'authentication required', {
        'www-authenticate': `Bearer realm="${tokens.origin}/token",service="fake-registry",scope="repository:team/app:pull"${error}`,
      });
    }
    serveContent(req, res, server);
  };
}

describe('bearer token auth', () => {
  it('fetches a token on a challenge, retries once with it, and caches it', async () => {
    const image = addImage(registry, 'team/app', '1.0');
    const issued = serveTokens({});
    requireBearer((token) => issued.some((t) => t.token === token));
    const client = new RegistryClient(FAST);

    const resolved = await client.resolve(`${registry.host}/team/app:1.0`);
    expect(resolved).toMatchObject({
      digest: image.digest,
      manifestDigest: image.digest,
      mediaType: MediaTypes.ociManifest,
    });
    expect(issued).toHaveLength(1);
    expect(issued[0]?.url.searchParams.get('service')).toBe('fake-registry');
    expect(issued[0]?.url.searchParams.get('scope')).toBe('repository:team/app:pull');
    expect(tokens.requests[0]?.headers.authorization).toBeUndefined();

    const blob = await drain(await client.fetchBlob(resolved.reference, nth(resolved.layers, 0)));
    expect(blob.toString()).toBe('layer');
    await client.resolve(`${registry.host}/team/app:1.0`);
    expect(issued).toHaveLength(1); // cached
    expect(registry.requests.map((r) => r.headers.authorization)).toEqual([
      undefined,
      'Bearer anonymous-1',
      'Bearer anonymous-1',
      'Bearer anonymous-1',
    ]);
  });

  it('never presents one tenant’s token for another', async () => {
    addImage(registry, 'team/app', '1.0');
    const issued = serveTokens({ alice: alice.password, bob: bob.password });
    // Only alice may pull: bob's token is refused.
    requireBearer((token) => issued.some((t) => t.token === token && t.user === 'alice'));
    const client = new RegistryClient(FAST);
    const ref = `${registry.host}/team/app:1.0`;

    await client.resolve(ref, alice);
    const refused = await failure(client.resolve(ref, bob));
    expect(refused.code).toBe('UNAUTHORIZED');
    expect(refused.message).toContain('do not grant pull access');
    const anonymous = await failure(client.resolve(ref));
    expect(anonymous.code).toBe('UNAUTHORIZED');
    await client.resolve(ref, alice);

    expect(issued.map((t) => t.user)).toEqual(['alice', 'bob', 'anonymous']);
    expect(tokens.requests.map((r) => basicUser(r as unknown as IncomingMessage)?.user)).toEqual([
      'alice',
      'bob',
      undefined,
    ]);
    const sent = registry.requests.map((r) => r.headers.authorization);
    expect(sent).toEqual([
      undefined,
      'Bearer alice-1', // alice: challenge, token
      undefined,
      'Bearer bob-2', // bob: no token of his cached, alice's not used
      undefined,
      'Bearer anonymous-3',
      'Bearer alice-1', // alice again: her cached token
    ]);
  });

  it('shares one token fetch between concurrent requests of one tenant', async () => {
    const image = addImage(registry, 'team/app', '1.0', [Buffer.from('a'), Buffer.from('b'), Buffer.from('c')]);
    const issued = serveTokens({ alice: alice.password });
    requireBearer((token) => issued.some((t) => t.token === token));
    const client = new RegistryClient(FAST);
    const ref = parseReference(`${registry.host}/team/app:1.0`);
    const blobs = await Promise.all(
      image.layers.map(async (layer) => drain(await client.fetchBlob(ref, layer, alice))),
    );
    expect(blobs.map(String)).toEqual(['a', 'b', 'c']);
    expect(issued).toHaveLength(1);
  });

  it('replaces a cached token the registry refuses, once', async () => {
    addImage(registry, 'team/app', '1.0');
    const issued = serveTokens({ alice: alice.password });
    requireBearer((token) => token === issued.at(-1)?.token); // only the newest token is good
    const client = new RegistryClient(FAST);
    const ref = `${registry.host}/team/app:1.0`;
    await client.resolve(ref, alice);
    issued.push({ user: 'alice', token: 'rotated', url: new URL('http://x') }); // the registry's keys rotated
    await client.resolve(ref, alice);
    expect(registry.requests.map((r) => r.headers.authorization)).toEqual([
      undefined,
      'Bearer alice-1',
      'Bearer alice-1',
      'Bearer alice-3',
    ]);
  });

  it('maps a token service refusing the credentials to UNAUTHORIZED, and a bad answer to BAD_RESPONSE', async () => {
    addImage(registry, 'team/app', '1.0');
    serveTokens({ alice: alice.password });
    requireBearer(() => true);
    const client = new RegistryClient(FAST);
    const ref = `${registry.host}/team/app:1.0`;
    const wrong = await failure(client.resolve(ref, { username: 'alice', password: 'wrong' }));
    expect(wrong.code).toBe('UNAUTHORIZED');
    expect(wrong.message).toContain('refused the credentials');

    tokens.handler = (_req, res) => res.end('{"token": ""}');
    expect((await failure(client.resolve(ref, alice))).code).toBe('BAD_RESPONSE');
    tokens.handler = (_req, res) => res.end('not json');
    expect((await failure(client.resolve(ref, alice))).code).toBe('BAD_RESPONSE');
  });

  it('never sends credentials to a token realm on plain HTTP that is not allowed it', async () => {
    addImage(registry, 'team/app', '1.0');
    serveTokens({ alice: alice.password });
    registry.handler = (_req, res) =>
      sendError(res, 401, 'UNAUTHORIZED', 'authentication required', {
        'www-authenticate': `Bearer realm="http://localhost:${tokens.port}/token",service="x"`,
      });
    const client = new RegistryClient({ ...FAST, plainHttp: (host) => host === '127.0.0.1' });
    const error = await failure(client.resolve(`${registry.host}/team/app:1.0`, alice));
    expect(error.code).toBe('BAD_RESPONSE');
    expect(error.message).toContain('not HTTPS');
    expect(tokens.connections).toBe(0);
  });
});

describe('basic auth', () => {
  beforeEach(() => {
    addImage(registry, 'team/app', '1.0');
    registry.handler = (req, res, server) => {
      const credentials = basicUser(req);
      if (credentials?.user !== 'alice' || credentials.password !== alice.password) {
        return sendError(res, 401, 'UNAUTHORIZED', 'authentication required', {
          'www-authenticate': 'Basic realm="fake"',
        });
      }
      serveContent(req, res, server);
    };
  });

  it('answers a Basic challenge with the credentials, then sends them at once', async () => {
    const client = new RegistryClient(FAST);
    const ref = `${registry.host}/team/app:1.0`;
    await client.resolve(ref, alice);
    await client.resolve(ref, alice);
    expect(registry.requests.map((r) => basicUser(r as unknown as IncomingMessage)?.user)).toEqual([
      undefined,
      'alice',
      'alice',
    ]);
  });

  it('is UNAUTHORIZED without credentials or with wrong ones', async () => {
    const client = new RegistryClient(FAST);
    const ref = `${registry.host}/team/app:1.0`;
    const none = await failure(client.resolve(ref));
    expect(none).toMatchObject({ code: 'UNAUTHORIZED' });
    expect(none.message).toContain('wants credentials');
    expect(registry.requests).toHaveLength(1);
    const wrong = await failure(client.resolve(ref, { username: 'alice', password: 'nope' }));
    expect(wrong.code).toBe('UNAUTHORIZED');
    expect(wrong.message).toContain('refused the credentials');
  });

  it('never sends credentials over plain HTTP to a host not allowed it', async () => {
    const client = new RegistryClient({ ...FAST, plainHttp: () => false, retry: { attempts: 2, baseMs: 1 } });
    const error = await failure(client.resolve(`${registry.host}/team/app:1.0`, alice));
    expect(error.code).toBe('REGISTRY_UNAVAILABLE'); // it spoke TLS to a plain HTTP server
    expect(registry.connections).toBeGreaterThan(0);
    expect(registry.requests).toHaveLength(0);
  });
});

describe('errors and retries', () => {
  const ref = () => `${registry.host}/team/app:1.0`;

  it.each([
    [403, 'DENIED', 'FORBIDDEN'],
    [404, 'MANIFEST_UNKNOWN', 'NOT_FOUND'],
    [404, 'NAME_UNKNOWN', 'NOT_FOUND'],
    [400, 'NAME_UNKNOWN', 'NOT_FOUND'],
    [400, 'DENIED', 'FORBIDDEN'],
    [400, 'TAG_INVALID', 'BAD_REFERENCE'],
    [400, 'SOMETHING', 'BAD_RESPONSE'],
    [418, 'TEAPOT', 'BAD_RESPONSE'],
  ])('maps HTTP %i %s to %s, with the registry’s message', async (status, code, expected) => {
    registry.handler = (_req, res) => sendError(res, status, code, 'told by the registry');
    const error = await failure(new RegistryClient(FAST).resolve(ref()));
    expect(error.code).toBe(expected);
    expect(error.message).toContain(`HTTP ${status}: ${code} told by the registry`);
    expect(registry.requests).toHaveLength(1); // not retried
  });

  it('retries 5xx and 429 (honouring Retry-After), then succeeds', async () => {
    const image = addImage(registry, 'team/app', '1.0');
    const statuses = [503, 500, 429];
    registry.handler = (req, res, server) => {
      const status = statuses.shift();
      if (status === undefined) return serveContent(req, res, server);
      res.writeHead(status, status === 429 ? { 'retry-after': '0' } : {});
      res.end();
    };
    const resolved = await new RegistryClient(FAST).resolve(ref());
    expect(resolved.digest).toBe(image.digest);
    expect(registry.requests).toHaveLength(4);
  });

  it('gives up with REGISTRY_UNAVAILABLE after the attempts', async () => {
    registry.handler = (_req, res) => {
      res.writeHead(502);
      res.end('bad gateway');
    };
    const error = await failure(new RegistryClient(FAST).resolve(ref()));
    expect(error.code).toBe('REGISTRY_UNAVAILABLE');
    expect(error.message).toContain('HTTP 502 (after 4 attempts)');
    expect(registry.requests).toHaveLength(4);
  });

  it('retries connection errors and timeouts', async () => {
    const port = registry.port;
    await registry.close();
    const closed = await failure(new RegistryClient(FAST).resolve(`127.0.0.1:${port}/team/app:1.0`));
    expect(closed.code).toBe('REGISTRY_UNAVAILABLE');
    expect(closed.message).toContain('ECONNREFUSED');

    registry = await FakeServer.start(() => undefined); // never answers
    const started = Date.now();
    const silent = await failure(
      new RegistryClient({ ...FAST, timeoutMs: 100, retry: { attempts: 2, baseMs: 1 } }).resolve(ref()),
    );
    expect(silent.code).toBe('REGISTRY_UNAVAILABLE');
    expect(silent.message).toContain('no response within 100 ms');
    expect(registry.requests).toHaveLength(2);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('backs off exponentially with jitter, capped', () => {
    const options = { baseMs: 100, maxMs: 1000 };
    expect([1, 2, 3, 4, 5].map((n) => backoffDelay(n, options, () => 0))).toEqual([50, 100, 200, 400, 500]);
    expect([1, 2, 3, 4, 5].map((n) => backoffDelay(n, options, () => 1))).toEqual([100, 200, 400, 800, 1000]);
  });

  it('stops when the caller aborts', async () => {
    registry.handler = () => undefined;
    const controller = new AbortController();
    const pending = new RegistryClient(FAST).resolve(ref(), undefined, { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('pod deleted')), 50);
    await expect(pending).rejects.toThrow('pod deleted');
  });
});

describe('manifests', () => {
  it('sends the four manifest media types in Accept', async () => {
    addImage(registry, 'team/app', '1.0');
    await new RegistryClient(FAST).resolve(`${registry.host}/team/app:1.0`);
    const accept = registry.requests[0]?.headers.accept ?? '';
    for (const type of [
      MediaTypes.ociIndex,
      MediaTypes.ociManifest,
      MediaTypes.dockerManifestList,
      MediaTypes.dockerManifest,
    ]) {
      expect(accept).toContain(type);
    }
  });

  it('resolves an index to its linux/amd64 manifest, fetched by digest and verified', async () => {
    const amd64 = addImage(registry, 'team/app', 'amd64');
    const arm64 = addImage(registry, 'team/app', 'arm64', [Buffer.from('arm')]);
    const entry = (image: typeof amd64, architecture: string) => ({
      mediaType: MediaTypes.ociManifest,
      digest: image.digest,
      size: image.manifest.length,
      platform: { os: 'linux', architecture },
    });
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaTypes.ociIndex,
        manifests: [entry(arm64, 'arm64'), entry(amd64, 'amd64')],
      }),
    );
    registry.content.set('/v2/team/app/manifests/multi', {
      body: index,
      headers: { 'content-type': MediaTypes.ociIndex },
    });
    const resolved = await new RegistryClient(FAST).resolve(`${registry.host}/team/app:multi`);
    expect(resolved).toMatchObject({ digest: digestOf(index), manifestDigest: amd64.digest, layers: amd64.layers });
    expect(registry.requests.map((r) => r.path)).toEqual([
      '/v2/team/app/manifests/multi',
      `/v2/team/app/manifests/${amd64.digest}`,
    ]);

    // The child the registry serves must be the one the index names.
    registry.content.set(`/v2/team/app/manifests/${amd64.digest}`, { body: arm64.manifest });
    expect((await failure(new RegistryClient(FAST).resolve(`${registry.host}/team/app:multi`))).code).toBe(
      'DIGEST_MISMATCH',
    );
  });

  it('verifies the body against the digest asked for and against Docker-Content-Digest', async () => {
    const image = addImage(registry, 'team/app', '1.0');
    const other = addImage(registry, 'team/other', '1.0', [Buffer.from('other layer')]);
    registry.content.set(`/v2/team/app/manifests/${image.digest}`, { body: other.manifest });
    const byDigest = await failure(new RegistryClient(FAST).resolve(`${registry.host}/team/app@${image.digest}`));
    expect(byDigest.code).toBe('DIGEST_MISMATCH');

    registry.content.set('/v2/team/app/manifests/1.0', {
      body: image.manifest,
      headers: { 'docker-content-digest': other.digest },
    });
    const byHeader = await failure(new RegistryClient(FAST).resolve(`${registry.host}/team/app:1.0`));
    expect(byHeader.code).toBe('DIGEST_MISMATCH');
    expect(byHeader.message).toContain('Docker-Content-Digest');
  });

  it('bounds a manifest’s size, announced or not', async () => {
    const big = Buffer.alloc(2048, 0x20);
    registry.content.set('/v2/team/app/manifests/big', { body: big });
    const client = new RegistryClient({ ...FAST, maxManifestBytes: 1024 });
    expect((await failure(client.resolve(`${registry.host}/team/app:big`))).code).toBe('TOO_LARGE');
    registry.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': MediaTypes.ociManifest }); // chunked: no length announced
      res.write(big);
      res.end(big);
    };
    expect((await failure(client.resolve(`${registry.host}/team/app:big`))).code).toBe('TOO_LARGE');
  });
});

describe('blobs', () => {
  const ref = () => parseReference(`${registry.host}/team/app:1.0`);
  const data = Buffer.alloc(100_000, 7);
  const descriptor = { mediaType: MediaTypes.ociLayerTarGzip, digest: digestOf(data), size: data.length };

  it('follows a redirect to storage without the registry’s Authorization', async () => {
    const image = addImage(registry, 'team/app', '1.0', [data]);
    const issued = serveTokens({ alice: alice.password });
    requireBearer((token) => issued.some((t) => t.token === token));
    const inner = registry.handler;
    registry.handler = (req, res, server) => {
      if (req.url?.includes('/blobs/') && req.headers.authorization !== undefined) {
        res.writeHead(307, { location: `${storage.origin}/bucket/blob?sig=abc` });
        return res.end();
      }
      inner(req, res, server);
    };
    storage.handler = (_req, res) => {
      res.writeHead(200, { 'content-length': String(data.length) });
      res.end(data);
    };
    const client = new RegistryClient(FAST);
    const blob = await drain(await client.fetchBlob(ref(), nth(image.layers, 0), alice));
    expect(blob.equals(data)).toBe(true);
    expect(storage.requests).toHaveLength(1);
    expect(storage.requests[0]?.path).toBe('/bucket/blob?sig=abc');
    expect(storage.requests[0]?.headers.authorization).toBeUndefined();
  });

  it('keeps the Authorization on a redirect within the registry, refuses plain HTTP and loops', async () => {
    registry.handler = (req, res) => {
      if (basicUser(req) === undefined) {
        return sendError(res, 401, 'UNAUTHORIZED', 'authentication required', {
          'www-authenticate': 'Basic realm="r"',
        });
      }
      if (req.url === `/v2/team/app/blobs/${descriptor.digest}`) {
        res.writeHead(302, { location: '/elsewhere' });
        return res.end();
      }
      res.writeHead(200);
      res.end(data);
    };
    const client = new RegistryClient(FAST);
    expect((await drain(await client.fetchBlob(ref(), descriptor, alice))).length).toBe(data.length);
    expect(registry.requests.at(-1)).toMatchObject({ path: '/elsewhere' });
    expect(basicUser(registry.requests.at(-1) as unknown as IncomingMessage)?.user).toBe('alice');

    registry.handler = (_req, res) => {
      res.writeHead(307, { location: `http://localhost:${storage.port}/blob` });
      res.end();
    };
    const strict = new RegistryClient({ ...FAST, plainHttp: (host) => host === '127.0.0.1' });
    const downgrade = await failure(strict.fetchBlob(ref(), descriptor, alice));
    expect(downgrade.code).toBe('BAD_RESPONSE');
    expect(downgrade.message).toContain('refusing a redirect to http://localhost');
    expect(storage.connections).toBe(0);

    registry.handler = (_req, res) => {
      res.writeHead(307, { location: '/again' });
      res.end();
    };
    expect((await failure(client.fetchBlob(ref(), descriptor))).message).toContain('more than 5 redirects');
  });

  function serveBlob(handler: (res: ServerResponse) => void): void {
    registry.handler = (_req, res) => handler(res);
  }

  it('refuses a blob whose announced length is not the descriptor’s size', async () => {
    serveBlob((res) => {
      res.writeHead(200, { 'content-length': '5' });
      res.end('12345');
    });
    expect((await failure(new RegistryClient(FAST).fetchBlob(ref(), descriptor))).code).toBe('SIZE_MISMATCH');
  });

  it('errors the stream as soon as more bytes than the size come', async () => {
    serveBlob((res) => {
      res.writeHead(200); // chunked
      res.write(data);
      res.write(data);
      res.end();
    });
    const stream = await new RegistryClient(FAST).fetchBlob(ref(), descriptor);
    expect((await failure(drain(stream))).code).toBe('SIZE_MISMATCH');
  });

  it('errors the stream at the end, instead of ending, when the bytes are not the digest', async () => {
    const wrong = Buffer.from(data);
    wrong[500] = 0;
    serveBlob((res) => {
      res.writeHead(200, { 'content-length': String(wrong.length) });
      res.end(wrong);
    });
    const stream = await new RegistryClient(FAST).fetchBlob(ref(), descriptor);
    let ended = false;
    stream.on('end', () => (ended = true));
    expect((await failure(drain(stream))).code).toBe('DIGEST_MISMATCH');
    expect(ended).toBe(false);
  });

  it('errors the stream when the connection breaks mid-way (no retry: the caller retries the blob)', async () => {
    serveBlob((res) => {
      res.writeHead(200, { 'content-length': String(data.length) });
      res.write(data.subarray(0, 30_000), () => setTimeout(() => res.socket?.destroy(), 20));
    });
    const stream = await new RegistryClient(FAST).fetchBlob(ref(), descriptor);
    const error = await failure(drain(stream));
    expect(error.code).toBe('REGISTRY_UNAVAILABLE');
    expect(error.message).toMatch(/connection broke after 30000 of 100000 bytes/);
    expect(registry.requests).toHaveLength(1);
  });

  it('errors the stream when the registry stops sending', async () => {
    serveBlob((res) => {
      res.writeHead(200, { 'content-length': String(data.length) });
      res.write(data.subarray(0, 1000));
    });
    const stream = await new RegistryClient({ ...FAST, timeoutMs: 200 }).fetchBlob(ref(), descriptor);
    const error = await failure(drain(stream));
    expect(error.code).toBe('REGISTRY_UNAVAILABLE');
    expect(error.message).toContain('no data for 200 ms after 1000 of 100000 bytes');
  });

  it('retries before the first byte only', async () => {
    let calls = 0;
    serveBlob((res) => {
      calls++;
      if (calls === 1) {
        res.writeHead(503);
        return res.end();
      }
      res.writeHead(200, { 'content-length': String(data.length) });
      res.end(data);
    });
    const blob = await drain(await new RegistryClient(FAST).fetchBlob(ref(), descriptor));
    expect(blob.equals(data)).toBe(true);
    expect(calls).toBe(2);
  });

  it('fetches a config: verified, bounded, a JSON object', async () => {
    const image = addImage(registry, 'team/app', '1.0');
    const client = new RegistryClient({ ...FAST, maxConfigBytes: 1000 });
    const config = await client.fetchConfig(ref(), image.config);
    expect(config.json).toMatchObject({ os: 'linux', architecture: 'amd64' });
    expect(digestOf(config.raw)).toBe(image.config.digest);
    const big = await failure(client.fetchConfig(ref(), { ...image.config, size: 2000 }));
    expect(big.code).toBe('TOO_LARGE');
    const array = Buffer.from('[1]');
    registry.content.set(`/v2/team/app/blobs/${digestOf(array)}`, { body: array });
    const notObject = await failure(client.fetchConfig(ref(), { ...image.config, digest: digestOf(array), size: 3 }));
    expect(notObject.code).toBe('UNSUPPORTED_MANIFEST');
  });

  it('destroying the stream ends the download', async () => {
    let closed = false;
    serveBlob((res) => {
      res.writeHead(200, { 'content-length': String(data.length * 100) });
      res.write(data);
      res.on('close', () => (closed = true));
    });
    const stream = await new RegistryClient(FAST).fetchBlob(ref(), { ...descriptor, size: data.length * 100 });
    stream.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(closed).toBe(true);
  });
});
