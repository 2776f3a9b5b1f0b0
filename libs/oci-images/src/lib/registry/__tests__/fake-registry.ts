// An HTTP server standing in for a registry (or its token service, or blob storage) in unit tests: records every
// request, serves a map of paths, and lets a test replace the handler for its edge case.
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { digestOf, type Digest } from '../../digest';
import { MediaTypes } from '../manifest';

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
}

export interface FakeContent {
  readonly body: Buffer;
  readonly headers?: Record<string, string>;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, server: FakeServer) => void;

export class FakeServer {
  readonly requests: RecordedRequest[] = [];
  readonly content = new Map<string, FakeContent>();
  /** Connections accepted (a TLS handshake counts, though it never becomes a request). */
  connections = 0;
  /** Decides what a request gets; the default serves `content` (404 with MANIFEST_UNKNOWN otherwise). */
  handler: Handler = serveContent;
  private readonly sockets = new Set<Socket>();

  private constructor(private readonly server: Server) {}

  static async start(handler?: Handler): Promise<FakeServer> {
    const holder: { fake?: FakeServer } = {};
    const server = createServer((req, res) => {
      const fake = holder.fake;
      if (fake === undefined) return;
      fake.requests.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers });
      fake.handler(req, res, fake);
    });
    const fake = new FakeServer(server);
    holder.fake = fake;
    if (handler !== undefined) fake.handler = handler;
    server.on('connection', (socket: Socket) => {
      fake.connections++;
      fake.sockets.add(socket);
      socket.on('close', () => fake.sockets.delete(socket));
    });
    server.on('clientError', (_error, socket) => socket.destroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** `127.0.0.1:<port>`. */
  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  get origin(): string {
    return `http://${this.host}`;
  }

  /** Requests for a path (query left out). */
  requestsFor(path: string): RecordedRequest[] {
    return this.requests.filter((r) => r.path.split('?')[0] === path);
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export function serveContent(req: IncomingMessage, res: ServerResponse, server: FakeServer): void {
  const content = server.content.get((req.url ?? '').split('?')[0] ?? '');
  if (content === undefined) return sendError(res, 404, 'MANIFEST_UNKNOWN', 'manifest unknown');
  res.writeHead(200, { 'content-length': String(content.body.length), ...content.headers });
  res.end(content.body);
}

export function sendError(
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify({ errors: [{ code, message, detail: null }] }));
}

export interface FakeImage {
  readonly digest: Digest;
  readonly manifest: Buffer;
  readonly config: { mediaType: string; digest: Digest; size: number };
  readonly layers: Array<{ mediaType: string; digest: Digest; size: number }>;
  readonly blobs: Map<Digest, Buffer>;
}

/** An OCI image (manifest, config, layers: opaque bytes) in a FakeServer's content, under a tag and its digest. */
export function addImage(
  server: FakeServer,
  repository: string,
  tag: string,
  layers: Buffer[] = [Buffer.from('layer')],
): FakeImage {
  const blobs = new Map<Digest, Buffer>();
  const blob = (mediaType: string, data: Buffer) => {
    const digest = digestOf(data);
    blobs.set(digest, data);
    server.content.set(`/v2/${repository}/blobs/${digest}`, { body: data });
    return { mediaType, digest, size: data.length };
  };
  const configBytes = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [] } }),
  );
  const config = blob(MediaTypes.ociConfig, configBytes);
  const layerDescriptors = layers.map((data) => blob(MediaTypes.ociLayerTarGzip, data));
  const manifest = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.ociManifest, config, layers: layerDescriptors }),
  );
  const digest = digestOf(manifest);
  const served = {
    body: manifest,
    headers: { 'content-type': MediaTypes.ociManifest, 'docker-content-digest': digest },
  };
  server.content.set(`/v2/${repository}/manifests/${tag}`, served);
  server.content.set(`/v2/${repository}/manifests/${digest}`, served);
  return { digest, manifest, config, layers: layerDescriptors, blobs };
}
