import { digestOf } from '../../digest';
import { layerCompression, MediaTypes, parseManifest, selectPlatform, type PlatformDescriptor } from '../manifest';

const d = (n: number) => digestOf(Buffer.from(String(n)));
const limits = { maxLayers: 128 };
const json = (value: unknown) => Buffer.from(JSON.stringify(value));
const manifest = (overrides: Record<string, unknown> = {}, layerTypes: string[] = [MediaTypes.ociLayerTarGzip]) => ({
  schemaVersion: 2,
  mediaType: MediaTypes.ociManifest,
  config: { mediaType: MediaTypes.ociConfig, digest: d(0), size: 10 },
  layers: layerTypes.map((mediaType, i) => ({ mediaType, digest: d(i + 1), size: 100 + i })),
  ...overrides,
});

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
}

describe('parseManifest', () => {
  it('parses an OCI image manifest', () => {
    const parsed = parseManifest(
      json(manifest({}, [MediaTypes.ociLayerTarGzip, MediaTypes.ociLayerTar])),
      undefined,
      limits,
    );
    expect(parsed).toEqual({
      kind: 'image',
      mediaType: MediaTypes.ociManifest,
      config: { mediaType: MediaTypes.ociConfig, digest: d(0), size: 10 },
      layers: [
        { mediaType: MediaTypes.ociLayerTarGzip, digest: d(1), size: 100 },
        { mediaType: MediaTypes.ociLayerTar, digest: d(2), size: 101 },
      ],
    });
  });

  it('parses a Docker schema 2 manifest', () => {
    const docker = manifest(
      { mediaType: MediaTypes.dockerManifest, config: { mediaType: MediaTypes.dockerConfig, digest: d(0), size: 1 } },
      [MediaTypes.dockerLayerTarGzip],
    );
    expect(parseManifest(json(docker), undefined, limits)).toMatchObject({
      kind: 'image',
      mediaType: MediaTypes.dockerManifest,
    });
  });

  it('takes the media type from the body, else the Content-Type, else the fields', () => {
    const { mediaType: _, ...bare } = manifest();
    expect(parseManifest(json(bare), `${MediaTypes.dockerManifest}; charset=utf-8`, limits).mediaType).toBe(
      MediaTypes.dockerManifest,
    );
    expect(parseManifest(json(bare), 'application/json', limits).mediaType).toBe(MediaTypes.ociManifest);
    expect(parseManifest(json(manifest()), MediaTypes.dockerManifest, limits).mediaType).toBe(MediaTypes.ociManifest);
    expect(parseManifest(json({ schemaVersion: 2, manifests: [] }), undefined, limits)).toEqual({
      kind: 'index',
      mediaType: MediaTypes.ociIndex,
      manifests: [],
    });
  });

  it('parses indexes and manifest lists with their platforms', () => {
    const list = {
      schemaVersion: 2,
      mediaType: MediaTypes.dockerManifestList,
      manifests: [
        {
          mediaType: MediaTypes.dockerManifest,
          digest: d(1),
          size: 5,
          platform: { architecture: 'amd64', os: 'linux' },
        },
      ],
    };
    expect(parseManifest(json(list), undefined, limits)).toEqual({
      kind: 'index',
      mediaType: MediaTypes.dockerManifestList,
      manifests: list.manifests,
    });
  });

  it.each([
    ['a zstd layer', manifest({}, ['application/vnd.oci.image.layer.v1.tar+zstd']), 'UNSUPPORTED_MANIFEST', /zstd/],
    [
      'a foreign layer',
      manifest({}, ['application/vnd.docker.image.rootfs.foreign.diff.tar.gzip']),
      'UNSUPPORTED_MANIFEST',
      /foreign/,
    ],
    [
      'a non-distributable layer',
      manifest({}, ['application/vnd.oci.image.layer.nondistributable.v1.tar+gzip']),
      'UNSUPPORTED_MANIFEST',
      /non-distributable/,
    ],
    ['an unknown layer type', manifest({}, ['application/x-tar']), 'UNSUPPORTED_MANIFEST', /layer 0/],
    [
      'an artifact',
      manifest({ config: { mediaType: 'application/vnd.cncf.helm.config.v1+json', digest: d(0), size: 1 } }),
      'UNSUPPORTED_MANIFEST',
      /not a container image/,
    ],
    ['schema 1', { schemaVersion: 1, name: 'x', fsLayers: [] }, 'UNSUPPORTED_MANIFEST', /schema 1/],
    ['an unknown media type', manifest({ mediaType: 'application/vnd.foo+json' }), 'UNSUPPORTED_MANIFEST', /vnd\.foo/],
    [
      'a negative size',
      manifest({ config: { mediaType: MediaTypes.ociConfig, digest: d(0), size: -1 } }),
      'UNSUPPORTED_MANIFEST',
      /config\.size/,
    ],
    [
      'a sha512 digest',
      manifest({ config: { mediaType: MediaTypes.ociConfig, digest: `sha512:${'a'.repeat(128)}`, size: 1 } }),
      'BAD_DIGEST',
      /sha256/,
    ],
    ['too many layers', manifest({}, Array<string>(129).fill(MediaTypes.ociLayerTarGzip)), 'TOO_LARGE', /129 layers/],
    ['an array', [], 'BAD_RESPONSE', /object/],
  ])('refuses %s', (_, value, code, message) => {
    expect(() => parseManifest(json(value), undefined, limits)).toThrow(message);
    expect(codeOf(() => parseManifest(json(value), undefined, limits))).toBe(code);
  });

  it('refuses what is not JSON', () => {
    expect(codeOf(() => parseManifest(Buffer.from('<html>'), 'text/html', limits))).toBe('BAD_RESPONSE');
  });

  it('tells the unpacker how a layer is compressed', () => {
    expect(layerCompression(MediaTypes.ociLayerTar)).toBe('none');
    expect(layerCompression(MediaTypes.ociLayerTarGzip)).toBe('gzip');
    expect(layerCompression(MediaTypes.dockerLayerTarGzip)).toBe('gzip');
  });
});

describe('selectPlatform', () => {
  const entry = (
    n: number,
    os: string,
    architecture: string,
    variant?: string,
    mediaType: string = MediaTypes.ociManifest,
  ) =>
    ({
      mediaType,
      digest: d(n),
      size: n,
      platform: { os, architecture, ...(variant ? { variant } : {}) },
    }) as PlatformDescriptor;

  it('picks linux/amd64 whatever its variant, skipping other platforms and nested indexes', () => {
    const entries = [
      entry(1, 'linux', 'arm64', 'v8'),
      entry(2, 'linux', 'amd64', undefined, MediaTypes.ociIndex),
      entry(3, 'windows', 'amd64'),
      entry(4, 'linux', 'amd64', 'v3'),
      entry(5, 'linux', 'amd64'),
    ];
    expect(selectPlatform(entries).digest).toBe(d(4));
  });

  it('says which platforms there are when none matches', () => {
    const entries = [
      entry(1, 'linux', 'arm64', 'v8'),
      entry(2, 'unknown', 'unknown'),
      { mediaType: MediaTypes.ociManifest, digest: d(3), size: 1 },
    ];
    expect(() => selectPlatform(entries)).toThrow('linux/arm64/v8, unknown/unknown, (no platform)');
    expect(codeOf(() => selectPlatform(entries))).toBe('NO_MATCHING_PLATFORM');
    expect(codeOf(() => selectPlatform([]))).toBe('NO_MATCHING_PLATFORM');
  });
});
