/**
 * Manifests as registries serve them: OCI image manifests and indexes, Docker v2 schema 2 manifests and manifest
 * lists. Parsed from verified bytes; anything this platform cannot run (zstd or foreign layers, artifacts that are
 * not container images, schema 1) is refused here with UNSUPPORTED_MANIFEST rather than half-pulled.
 */
import { z } from 'zod';
import { parseDigest, type Digest } from '../digest';
import { ImageError } from '../errors';

export const MediaTypes = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  ociLayerTar: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerTarGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerLayerTarGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

export type ImageManifestMediaType = typeof MediaTypes.ociManifest | typeof MediaTypes.dockerManifest;
export type IndexMediaType = typeof MediaTypes.ociIndex | typeof MediaTypes.dockerManifestList;
export type ManifestMediaType = ImageManifestMediaType | IndexMediaType;
export type ConfigMediaType = typeof MediaTypes.ociConfig | typeof MediaTypes.dockerConfig;
export type LayerMediaType =
  typeof MediaTypes.ociLayerTar | typeof MediaTypes.ociLayerTarGzip | typeof MediaTypes.dockerLayerTarGzip;

/** What every manifest request accepts, most preferred first. */
export const MANIFEST_ACCEPT: readonly ManifestMediaType[] = [
  MediaTypes.ociIndex,
  MediaTypes.ociManifest,
  MediaTypes.dockerManifestList,
  MediaTypes.dockerManifest,
];

/** A content descriptor: what a blob is, its digest and its exact size. */
export interface Descriptor {
  readonly mediaType: string;
  readonly digest: Digest;
  readonly size: number;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface ConfigDescriptor extends Descriptor {
  readonly mediaType: ConfigMediaType;
}

export interface LayerDescriptor extends Descriptor {
  readonly mediaType: LayerMediaType;
}

export interface Platform {
  readonly architecture: string;
  readonly os: string;
  readonly variant?: string;
}

export interface PlatformDescriptor extends Descriptor {
  readonly platform?: Platform;
}

export type Manifest =
  | {
      readonly kind: 'image';
      readonly mediaType: ImageManifestMediaType;
      readonly config: ConfigDescriptor;
      readonly layers: readonly LayerDescriptor[];
    }
  | { readonly kind: 'index'; readonly mediaType: IndexMediaType; readonly manifests: readonly PlatformDescriptor[] };

/** How a layer's bytes are compressed. */
export function layerCompression(mediaType: LayerMediaType): 'gzip' | 'none' {
  switch (mediaType) {
    case MediaTypes.ociLayerTar:
      return 'none';
    case MediaTypes.ociLayerTarGzip:
    case MediaTypes.dockerLayerTarGzip:
      return 'gzip';
  }
}

const MANIFEST_TYPES = new Set<string>(MANIFEST_ACCEPT);
const CONFIG_TYPES = new Set<string>([MediaTypes.ociConfig, MediaTypes.dockerConfig]);
const LAYER_TYPES = new Set<string>([
  MediaTypes.ociLayerTar,
  MediaTypes.ociLayerTarGzip,
  MediaTypes.dockerLayerTarGzip,
]);

const descriptorSchema = z.object({
  mediaType: z.string().max(255),
  digest: z.string().max(255),
  size: z.number().int().nonnegative().safe(),
  annotations: z.record(z.string()).optional(),
});
const platformSchema = z.object({
  architecture: z.string().max(64),
  os: z.string().max(64),
  variant: z.string().max(64).optional(),
});
const imageManifestSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  config: descriptorSchema,
  layers: z.array(descriptorSchema),
});
const indexSchema = z.object({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  manifests: z.array(descriptorSchema.extend({ platform: platformSchema.optional() })),
});

/**
 * Parses a manifest's bytes (already verified against their digest). The media type is the body's own
 * `mediaType` when it has one (the digest covers it; the Content-Type header is not covered), else the header's,
 * else what the fields say (OCI 1.0 manifests may omit it).
 */
export function parseManifest(
  body: Uint8Array,
  contentType: string | undefined,
  limits: { maxLayers: number },
): Manifest {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(body).toString('utf8'));
  } catch {
    throw new ImageError('BAD_RESPONSE', 'the manifest is not JSON');
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ImageError('BAD_RESPONSE', 'the manifest is not a JSON object');
  }
  const fields = json as Record<string, unknown>;
  if (fields['schemaVersion'] === 1) {
    throw new ImageError('UNSUPPORTED_MANIFEST', 'Docker schema 1 manifests are not supported: push the image again');
  }
  const headerType = contentType?.split(';')[0]?.trim().toLowerCase();
  let mediaType: string | undefined = typeof fields['mediaType'] === 'string' ? fields['mediaType'] : undefined;
  if (mediaType === undefined && headerType !== undefined && MANIFEST_TYPES.has(headerType)) mediaType = headerType;
  if (mediaType === undefined) {
    if ('manifests' in fields && !('layers' in fields)) mediaType = MediaTypes.ociIndex;
    else if ('layers' in fields && !('manifests' in fields)) mediaType = MediaTypes.ociManifest;
  }
  if (mediaType === undefined || !MANIFEST_TYPES.has(mediaType)) {
    throw new ImageError(
      'UNSUPPORTED_MANIFEST',
      `unsupported manifest media type ${JSON.stringify(mediaType ?? headerType ?? '(none)')}`,
    );
  }

  if (mediaType === MediaTypes.ociIndex || mediaType === MediaTypes.dockerManifestList) {
    const index = validate(indexSchema, json, 'index');
    return {
      kind: 'index',
      mediaType,
      manifests: index.manifests.map((m) => ({
        ...descriptor(m),
        ...(m.platform === undefined ? {} : { platform: m.platform }),
      })),
    };
  }

  const manifest = validate(imageManifestSchema, json, 'manifest');
  if (!CONFIG_TYPES.has(manifest.config.mediaType)) {
    throw new ImageError(
      'UNSUPPORTED_MANIFEST',
      `not a container image: config media type ${JSON.stringify(manifest.config.mediaType)}`,
    );
  }
  if (manifest.layers.length > limits.maxLayers) {
    throw new ImageError('TOO_LARGE', `${manifest.layers.length} layers, at most ${limits.maxLayers} are allowed`);
  }
  return {
    kind: 'image',
    mediaType: mediaType as ImageManifestMediaType,
    config: descriptor(manifest.config) as ConfigDescriptor,
    layers: manifest.layers.map((layer, i) => {
      checkLayerType(layer.mediaType, i);
      return descriptor(layer) as LayerDescriptor;
    }),
  };
}

function checkLayerType(mediaType: string, index: number): void {
  if (LAYER_TYPES.has(mediaType)) return;
  const which = `layer ${index} (${mediaType})`;
  if (mediaType.endsWith('+zstd') || mediaType.endsWith('.zstd')) {
    throw new ImageError('UNSUPPORTED_MANIFEST', `${which}: zstd-compressed layers are not supported, use gzip`);
  }
  if (mediaType.includes('nondistributable') || mediaType.includes('.foreign.')) {
    throw new ImageError(
      'UNSUPPORTED_MANIFEST',
      `${which}: foreign (non-distributable) layers are not supported: the registry does not hold them`,
    );
  }
  throw new ImageError('UNSUPPORTED_MANIFEST', `${which}: not a supported layer media type (tar or tar+gzip)`);
}

function descriptor(d: z.infer<typeof descriptorSchema>): Descriptor {
  return {
    mediaType: d.mediaType,
    digest: parseDigest(d.digest),
    size: d.size,
    ...(d.annotations === undefined ? {} : { annotations: d.annotations }),
  };
}

function validate<T>(schema: z.ZodType<T>, json: unknown, what: string): T {
  const result = schema.safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0];
    const where = issue === undefined || issue.path.length === 0 ? '' : ` at ${issue.path.join('.')}`;
    throw new ImageError('UNSUPPORTED_MANIFEST', `invalid ${what}${where}: ${issue?.message ?? 'invalid'}`);
  }
  return result.data;
}

/**
 * The index entry for a platform (linux/amd64 unless told otherwise; an amd64 variant is ignored). Entries that
 * are not image manifests (nested indexes, attestations' `unknown/unknown`) never match.
 */
export function selectPlatform(
  manifests: readonly PlatformDescriptor[],
  wanted: { os: string; architecture: string } = { os: 'linux', architecture: 'amd64' },
): PlatformDescriptor {
  const match = manifests.find(
    (m) =>
      (m.mediaType === MediaTypes.ociManifest || m.mediaType === MediaTypes.dockerManifest) &&
      m.platform?.os === wanted.os &&
      m.platform.architecture === wanted.architecture,
  );
  if (match !== undefined) return match;
  const available = manifests
    .map((m) =>
      m.platform === undefined
        ? '(no platform)'
        : `${m.platform.os}/${m.platform.architecture}${m.platform.variant === undefined ? '' : `/${m.platform.variant}`}`,
    )
    .slice(0, 20);
  throw new ImageError(
    'NO_MATCHING_PLATFORM',
    `no ${wanted.os}/${wanted.architecture} image in the index (it has: ${available.join(', ') || 'nothing'})`,
  );
}
