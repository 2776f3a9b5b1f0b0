// Debian's docker-registry (distribution 2.8) on 127.0.0.1, open (no auth), storage in a directory of the run,
// and our own few lines of the push API: blobs by monolithic upload (POST /v2/<name>/blobs/uploads/, then
// PUT <location>&digest=…), the OCI manifest by PUT.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { BuiltImage } from './test-image';

const REGISTRY_BINARY = '/usr/bin/docker-registry';
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
const OCI_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no free port');
  return address.port;
}

const sha256 = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

export class LocalRegistry {
  private log = '';
  private readonly exited: Promise<void>;

  private constructor(
    /** `127.0.0.1:<port>`. */
    readonly host: string,
    private readonly child: ChildProcess,
  ) {
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => (this.log = (this.log + text).slice(-10_000)));
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  /** Starts the registry with its storage under `dir` and waits until `GET /v2/` answers 200. */
  static async start(dir: string): Promise<LocalRegistry> {
    if (!existsSync(REGISTRY_BINARY)) throw new Error(`${REGISTRY_BINARY} is missing: apt-get install docker-registry`);
    const host = `127.0.0.1:${await freePort()}`;
    const config = join(dir, 'config.yml');
    writeFileSync(
      config,
      [
        'version: 0.1',
        'log: { level: warn, accesslog: { disabled: true } }',
        `storage: { filesystem: { rootdirectory: ${join(dir, 'storage')} }, maintenance: { uploadpurging: { enabled: false } } }`,
        `http: { addr: "${host}", secret: ${randomBytes(16).toString('hex')} }`,
        '',
      ].join('\n'),
    );
    // A clean environment: REGISTRY_* variables would override the config file.
    const child = spawn(REGISTRY_BINARY, ['serve', config], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
    });
    const registry = new LocalRegistry(host, child);
    let exited = false;
    void registry.exited.then(() => (exited = true));
    for (const deadline = Date.now() + 15_000; Date.now() < deadline;) {
      if (exited) throw new Error(`docker-registry exited at start:\n${registry.log}`);
      const ok = await fetch(`http://${host}/v2/`, { signal: AbortSignal.timeout(1000) }).then(
        async (response) => (await response.arrayBuffer(), response.status === 200),
        () => false,
      );
      if (ok) return registry;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    await registry.stop();
    throw new Error(`docker-registry did not answer on ${host} within 15 s:\n${registry.log}`);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }

  private async expect(response: Response, status: number, what: string): Promise<Response> {
    if (response.status !== status) throw new Error(`push ${what}: HTTP ${response.status} ${await response.text()}`);
    await response.arrayBuffer();
    return response;
  }

  private async pushBlob(repository: string, data: Buffer, mediaType: string) {
    const digest = sha256(data);
    const base = `http://${this.host}`;
    const start = await fetch(`${base}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
    const location = (await this.expect(start, 202, 'upload start')).headers.get('location');
    if (location === null) throw new Error('push: no upload location');
    const url = new URL(location, base);
    url.searchParams.set('digest', digest);
    const put = await fetch(url, {
      method: 'PUT',
      body: data,
      headers: { 'content-type': 'application/octet-stream' },
    });
    await this.expect(put, 201, `blob ${digest}`);
    return { mediaType, digest, size: data.length };
  }

  /** Pushes the layers, the config and an OCI manifest under `repository:tag`; returns the manifest's digest. */
  async push(repository: string, tag: string, image: BuiltImage): Promise<string> {
    const layers = [];
    for (const layer of image.layers) {
      layers.push(await this.pushBlob(repository, await readFile(layer.path), OCI_LAYER_GZIP));
    }
    const config = await this.pushBlob(repository, image.config, OCI_CONFIG);
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config, layers }));
    const response = await fetch(`http://${this.host}/v2/${repository}/manifests/${tag}`, {
      method: 'PUT',
      body: manifest,
      headers: { 'content-type': OCI_MANIFEST },
    });
    await this.expect(response, 201, `manifest ${repository}:${tag}`);
    return sha256(manifest);
  }
}
