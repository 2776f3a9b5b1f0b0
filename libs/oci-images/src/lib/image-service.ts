/**
 * What a node agent asks for: "give me a bootable filesystem image of this reference, for this tenant". It
 * resolves the reference with the tenant's own credentials every time (a cached image is never used for a tenant
 * who could not pull it), fetches the blobs it lacks into the node's content store (verified, coalesced,
 * garbage-collected), applies the layers in order into a scratch tree, builds an ext4 image from it, and keeps
 * that image, with the image's run config, keyed by the manifest digest.
 */
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { Digest } from './digest';
import { ImageError } from './errors';
import {
  RegistryClient,
  parseReference,
  type Credentials,
  type Descriptor,
  type RegistryClientOptions,
  type ResolvedImage,
} from './registry';
import { ContentStore, type Lease } from './store';
import {
  UnpackBudget,
  applyLayer,
  buildExt4Image,
  parseImageRunConfig,
  resolveUser,
  type ImageRunConfig,
  type ResolvedUser,
  type UnpackLimits,
} from './unpack';

export interface ImageServiceOptions {
  /** The node's image cache (root-only). */
  cacheDir: string;
  /** Disk the cache may use; least recently used images and blobs not in use by a pod are collected beyond it. */
  cacheLimitBytes: number;
  registry?: RegistryClientOptions;
  unpackLimits?: Partial<UnpackLimits>;
  /** Blobs downloaded at once. Default 4. */
  parallelDownloads?: number;
}

export type PullPhase = 'resolved' | 'download' | 'unpack' | 'filesystem' | 'ready';

export interface PullProgress {
  phase: PullPhase;
  /** The layer being downloaded or unpacked (download and unpack phases). */
  layer?: { index: number; digest: Digest; bytes: number; totalBytes: number };
  /** Layers in the image. */
  layers: number;
  /** Bytes downloaded so far of `totalBytes` (the compressed layers and the config). */
  bytes: number;
  totalBytes: number;
  /** True when the filesystem image was already on the node (nothing downloaded). */
  cached: boolean;
}

export interface PullOptions {
  /** The tenant's registry credentials for this registry; none = anonymous. */
  credentials?: Credentials;
  onProgress?: (progress: PullProgress) => void;
  signal?: AbortSignal;
}

export interface PulledImage {
  /** The reference as asked, in canonical form. */
  reference: string;
  /** What the reference resolved to: pin the pod to `<repository>@<digest>`. */
  digest: Digest;
  manifestDigest: Digest;
  /** The read-only root filesystem for the VM (pass it to the sandbox as an image disk). */
  fsImage: { path: string; fsType: 'ext4'; sizeBytes: number };
  /** Entrypoint, cmd, env, working dir and user from the image, to merge with the pod's container spec. */
  config: ImageRunConfig;
  /** The image's `User` resolved against its own /etc/passwd and /etc/group. */
  user: ResolvedUser;
  /** Keeps the filesystem image from garbage collection: release it when the pod no longer runs. */
  lease: Lease;
}

const artifactSchema = z.object({
  manifestDigest: z.string(),
  config: z.object({
    entrypoint: z.array(z.string()).optional(),
    cmd: z.array(z.string()).optional(),
    env: z.array(z.string()),
    workingDir: z.string().optional(),
    user: z.string().optional(),
  }),
  user: z.object({ uid: z.number(), gid: z.number(), additionalGids: z.array(z.number()) }),
  fsSizeBytes: z.number(),
});
type ArtifactMeta = z.infer<typeof artifactSchema>;

const FS_IMAGE = 'fs.ext4';
const META = 'image.json';

export class ImageService {
  private readonly removals = new Set<Promise<void>>();

  private constructor(
    private readonly store: ContentStore,
    private readonly registry: RegistryClient,
    private readonly options: ImageServiceOptions,
    /** Scratch trees images are unpacked into, beside the cache (same file system, not counted in it). */
    private readonly scratchDir: string,
  ) {}

  static async open(options: ImageServiceOptions): Promise<ImageService> {
    const store = await ContentStore.open(options.cacheDir, { limitBytes: options.cacheLimitBytes });
    const scratchDir = `${options.cacheDir.replace(/\/+$/, '')}.scratch`;
    // Trees left by a process that died mid-pull.
    await rm(scratchDir, { recursive: true, force: true });
    await mkdir(scratchDir, { recursive: true, mode: 0o700 });
    return new ImageService(store, new RegistryClient(options.registry), options, scratchDir);
  }

  /** Disk usage of the node's image cache (for disk-pressure reports). */
  usage(): ReturnType<ContentStore['usage']> {
    return this.store.usage();
  }

  gc(): ReturnType<ContentStore['gc']> {
    return this.store.gc();
  }

  async close(): Promise<void> {
    await Promise.all(this.removals);
    await this.store.close();
  }

  /**
   * Resolves `reference` with `credentials` (always against the registry: this is the tenant's authorization to
   * use the image), then returns the cached filesystem image or builds it. Throws ImageError.
   */
  async pull(reference: string, options: PullOptions = {}): Promise<PulledImage> {
    const ref = parseReference(reference);
    const resolved = await this.registry.resolve(ref, options.credentials, { signal: options.signal });
    const key = resolved.manifestDigest;
    const blobs = [resolved.config, ...resolved.layers];
    const totalBytes = blobs.reduce((sum, blob) => sum + blob.size, 0);
    const progress: PullProgress = {
      phase: 'resolved',
      layers: resolved.layers.length,
      bytes: 0,
      totalBytes,
      cached: this.store.artifactPath(key) !== undefined,
    };
    const report = (update: Partial<PullProgress>) => options.onProgress?.({ ...progress, ...update });
    report({});

    // Pinned before anything is fetched: a concurrent GC must not take what this pull is about to use.
    const working = this.store.lease([key, ...blobs.map((blob) => blob.digest)]);
    try {
      const dir = await this.store.ensureArtifact(key, (tempDir) => this.build(resolved, tempDir, options, report), {
        reserveBytes: totalBytes * 3,
      });
      const lease = this.store.lease([key]);
      const meta = await readMeta(dir).catch((error: unknown) => {
        lease.release();
        throw error;
      });
      report({ phase: 'ready', bytes: progress.cached ? 0 : totalBytes });
      return {
        reference: ref.toString(),
        digest: resolved.digest,
        manifestDigest: key,
        fsImage: { path: join(dir, FS_IMAGE), fsType: 'ext4', sizeBytes: meta.fsSizeBytes },
        config: meta.config,
        user: meta.user,
        lease,
      };
    } finally {
      working.release();
    }
  }

  private async build(
    resolved: ResolvedImage,
    tempDir: string,
    options: PullOptions,
    report: (update: Partial<PullProgress>) => void,
  ): Promise<void> {
    const { reference } = resolved;
    const fetched = new Map<Digest, number>();
    const downloaded = () => [...fetched.values()].reduce((sum, bytes) => sum + bytes, 0);
    const fetchBlob = (descriptor: Descriptor, index?: number) =>
      this.store.ensureBlob(
        descriptor.digest,
        descriptor.size,
        () => this.registry.fetchBlob(reference, descriptor, options.credentials, { signal: options.signal }),
        (bytes) => {
          fetched.set(descriptor.digest, bytes);
          report({
            phase: 'download',
            bytes: downloaded(),
            ...(index === undefined
              ? {}
              : { layer: { index, digest: descriptor.digest, bytes, totalBytes: descriptor.size } }),
          });
        },
      );

    // Every blob is requested at once (a few at a time) and each layer is applied as soon as it and the ones
    // before it are stored: unpacking overlaps the downloads still running.
    const limit = limiter(this.options.parallelDownloads ?? 4);
    const configPath = limit(() => fetchBlob(resolved.config));
    const layerPaths = resolved.layers.map((layer, index) => limit(() => fetchBlob(layer, index)));
    const settled = Promise.allSettled([configPath, ...layerPaths]); // no unhandled rejection if we stop early

    const rootfs = join(this.scratchDir, `${resolved.manifestDigest.slice(7, 23)}-${process.pid}-${Date.now()}`);
    await mkdir(rootfs, { recursive: true, mode: 0o755 });
    try {
      const config = parseImageRunConfig(await readFile(await configPath));
      const budget = new UnpackBudget(this.options.unpackLimits);
      for (const [index, layer] of resolved.layers.entries()) {
        const path = await layerPaths[index];
        if (path === undefined) throw new ImageError('BAD_LAYER', `layer ${index} was not fetched`);
        report({
          phase: 'unpack',
          bytes: downloaded(),
          layer: { index, digest: layer.digest, bytes: 0, totalBytes: layer.size },
        });
        await applyLayer(rootfs, createReadStream(path), budget);
      }
      const user = await resolveUser(config.user, rootfs);
      report({ phase: 'filesystem', bytes: downloaded() });
      const image = await buildExt4Image(rootfs, join(tempDir, FS_IMAGE));
      const meta: ArtifactMeta = {
        manifestDigest: resolved.manifestDigest,
        config,
        user,
        fsSizeBytes: image.sizeBytes,
      };
      await writeFile(join(tempDir, META), JSON.stringify(meta), { mode: 0o600 });
    } finally {
      await settled;
      // Deleting thousands of files takes a while: the pull does not wait for it (close() does).
      this.removeLater(rootfs);
    }
  }

  private removeLater(path: string): void {
    const removal = rm(path, { recursive: true, force: true }).finally(() => this.removals.delete(removal));
    this.removals.add(removal);
  }
}

async function readMeta(dir: string): Promise<ArtifactMeta> {
  let parsed: ReturnType<typeof artifactSchema.safeParse> | undefined;
  try {
    parsed = artifactSchema.safeParse(JSON.parse(await readFile(join(dir, META), 'utf8')));
  } catch {
    parsed = undefined;
  }
  if (!parsed?.success) throw new ImageError('FS_IMAGE_FAILED', `cached image metadata in ${dir} is not readable`);
  return parsed.data;
}

/** Runs the tasks given to it with at most `concurrency` of them at once, in the order given. */
function limiter(concurrency: number): <T>(task: () => Promise<T>) => Promise<T> {
  let running = 0;
  const waiting: Array<() => void> = [];
  return async (task) => {
    // A finishing task hands its slot straight to the next waiting one, so never more than `concurrency` run.
    if (running >= concurrency) await new Promise<void>((resolve) => waiting.push(resolve));
    else running++;
    try {
      return await task();
    } finally {
      const next = waiting.shift();
      if (next) next();
      else running--;
    }
  };
}
