// Pushes test images to a TestRegistry with the distribution push API (our own few lines, no tool): blobs by
// monolithic upload (POST /v2/<name>/blobs/uploads/, then PUT <location>&digest=…), manifests by PUT.
import { gunzipSync } from 'node:zlib';
import { digestOf, type Digest } from '../../digest';
import { MediaTypes } from '../../registry/manifest';
import type { TestRegistry } from './registry-harness';
import { tarGz } from './registry-tar';

export type ImageFormat = 'oci' | 'docker';

export interface PushedBlob {
  readonly mediaType: string;
  readonly digest: Digest;
  readonly size: number;
}

export interface PushedImage {
  readonly repository: string;
  /** The image manifest's digest. */
  readonly digest: Digest;
  readonly mediaType: string;
  readonly size: number;
  readonly manifest: Buffer;
  readonly config: PushedBlob;
  readonly layers: readonly PushedBlob[];
}

export interface ImageSpec {
  /** Layer bytes as stored (tar+gzip unless `layerMediaType` says otherwise). Default: one small layer. */
  readonly layers?: readonly Buffer[];
  readonly layerMediaType?: string;
  /** The config JSON; default: defaultConfig(layers). */
  readonly config?: unknown;
  readonly format?: ImageFormat;
  /** The tag to push the manifest under; by digest only when absent. */
  readonly tag?: string;
}

export interface IndexEntry {
  readonly image: PushedImage;
  readonly platform: { readonly os: string; readonly architecture: string; readonly variant?: string };
}

async function call(
  registry: TestRegistry,
  repository: string,
  method: string,
  url: string,
  init: { body?: Buffer; headers?: Record<string, string> } = {},
): Promise<Response> {
  const authorization = registry.pushAuthorization(repository);
  const response = await fetch(new URL(url, registry.url), {
    method,
    headers: { ...init.headers, ...(authorization === undefined ? {} : { authorization }) },
    ...(init.body === undefined ? {} : { body: init.body }),
    redirect: 'manual',
  });
  return response;
}

async function expectStatus(response: Response, status: number, what: string): Promise<void> {
  if (response.status !== status) {
    throw new Error(`push ${what}: HTTP ${response.status} ${await response.text()}`);
  }
  await response.body?.cancel();
}

export async function pushBlob(
  registry: TestRegistry,
  repository: string,
  data: Buffer,
  mediaType = 'application/octet-stream',
): Promise<PushedBlob> {
  const digest = digestOf(data);
  const start = await call(registry, repository, 'POST', `/v2/${repository}/blobs/uploads/`);
  const location = start.headers.get('location');
  await expectStatus(start, 202, `blob upload start for ${repository}`);
  if (location === null) throw new Error('push: no upload location');
  const upload = new URL(location, registry.url);
  upload.searchParams.set('digest', digest);
  const put = await call(registry, repository, 'PUT', upload.toString(), {
    body: data,
    headers: { 'content-type': 'application/octet-stream' },
  });
  await expectStatus(put, 201, `blob ${digest}`);
  return { mediaType, digest, size: data.length };
}

/** PUTs a manifest (any bytes, any media type) by tag or by its digest. */
export async function pushManifest(
  registry: TestRegistry,
  repository: string,
  manifest: Buffer,
  mediaType: string,
  tag?: string,
): Promise<Digest> {
  const digest = digestOf(manifest);
  const response = await call(registry, repository, 'PUT', `/v2/${repository}/manifests/${tag ?? digest}`, {
    body: manifest,
    headers: { 'content-type': mediaType },
  });
  await expectStatus(response, 201, `manifest ${repository}:${tag ?? digest}`);
  return digest;
}

/** A linux/amd64 (by default) image config whose diff_ids match the layers (gunzipped when gzip). */
export function defaultConfig(
  layers: readonly Buffer[],
  platform: { os: string; architecture: string } = { os: 'linux', architecture: 'amd64' },
): unknown {
  const isGzip = (data: Buffer): boolean => data[0] === 0x1f && data[1] === 0x8b;
  return {
    ...platform,
    config: { Env: ['PATH=/usr/bin:/bin'], Cmd: ['/bin/sh'], WorkingDir: '/' },
    rootfs: { type: 'layers', diff_ids: layers.map((data) => digestOf(isGzip(data) ? gunzipSync(data) : data)) },
  };
}

export async function pushImage(
  registry: TestRegistry,
  repository: string,
  spec: ImageSpec = {},
): Promise<PushedImage> {
  const format = spec.format ?? 'oci';
  const layerType =
    spec.layerMediaType ?? (format === 'oci' ? MediaTypes.ociLayerTarGzip : MediaTypes.dockerLayerTarGzip);
  const layerData = spec.layers ?? [tarGz([{ path: 'hello.txt', content: `hello from ${repository}\n` }])];
  const layers: PushedBlob[] = [];
  for (const data of layerData) layers.push(await pushBlob(registry, repository, data, layerType));
  const configType = format === 'oci' ? MediaTypes.ociConfig : MediaTypes.dockerConfig;
  const config = await pushBlob(
    registry,
    repository,
    Buffer.from(JSON.stringify(spec.config ?? defaultConfig(layerData))),
    configType,
  );
  const mediaType = format === 'oci' ? MediaTypes.ociManifest : MediaTypes.dockerManifest;
  const manifest = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType, config, layers }, null, 2), // indented, like real tools
  );
  const digest = await pushManifest(registry, repository, manifest, mediaType, spec.tag);
  return { repository, digest, mediaType, size: manifest.length, manifest, config, layers };
}

/** Pushes an OCI index (or a Docker manifest list) of images already pushed to the same repository. */
export async function pushIndex(
  registry: TestRegistry,
  repository: string,
  entries: readonly IndexEntry[],
  options: { format?: ImageFormat; tag?: string } = {},
): Promise<{ digest: Digest; manifest: Buffer; mediaType: string }> {
  const mediaType = (options.format ?? 'oci') === 'oci' ? MediaTypes.ociIndex : MediaTypes.dockerManifestList;
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType,
      manifests: entries.map(({ image, platform }) => ({
        mediaType: image.mediaType,
        digest: image.digest,
        size: image.size,
        platform,
      })),
    }),
  );
  const digest = await pushManifest(registry, repository, manifest, mediaType, options.tag);
  return { digest, manifest, mediaType };
}
