/**
 * Pure parts of running a pod: the sandbox id of a placement, the registry credentials for an image, and the
 * container spec from the desired container merged with its image's run config.
 */
import type { PulledImage } from '@caas/oci-images';
import type { SandboxContainerSpec } from '@caas/sandbox';
import type { DesiredContainer, DesiredPod, DesiredSet } from '@caas/queue-contracts';

/**
 * The sandbox of placement `placement` of pod `podId`: a DNS label of at most 40 characters (32 hex digits of the
 * pod id, `-`, the placement in base 36), from which the pod and placement are read back after an agent restart.
 */
export function sandboxIdOf(podId: string, placement: number): string {
  return `${podId.replace(/-/g, '').toLowerCase()}-${placement.toString(36)}`;
}

export function parseSandboxId(id: string): { podId: string; placement: number } | undefined {
  const match = /^([0-9a-f]{32})-([0-9a-z]{1,7})$/.exec(id);
  const hex = match?.[1];
  const base36 = match?.[2];
  if (hex === undefined || base36 === undefined) return undefined;
  const placement = parseInt(base36, 36);
  if (!Number.isSafeInteger(placement) || placement <= 0) return undefined;
  const podId = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  return { podId, placement };
}

const DOCKER_HUB_NAMES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/** The registry host of an image reference, as the scheduler names it in `registryCredentials`. */
export function registryOf(image: string): string {
  const slash = image.indexOf('/');
  if (slash < 0) return 'docker.io';
  const first = image.slice(0, slash);
  return first.includes('.') || first.includes(':') || first === 'localhost' ? first : 'docker.io';
}

export function credentialsFor(
  set: Pick<DesiredSet, 'registryCredentials'>,
  tenantId: string,
  image: string,
): { username: string; password: string } | undefined {
  const registry = registryOf(image).toLowerCase();
  const same = (other: string) =>
    other.toLowerCase() === registry || (DOCKER_HUB_NAMES.has(registry) && DOCKER_HUB_NAMES.has(other.toLowerCase()));
  const found = set.registryCredentials.find((c) => c.tenantId === tenantId && same(c.registry));
  return found && { username: found.username, password: found.password };
}

/** The reference to pull: pinned to the digest recorded at the first pull, when there is one. */
export function pullReference(container: DesiredContainer): string {
  if (container.imageDigest === null || container.image.includes('@')) return container.image;
  return `${container.image}@${container.imageDigest}`;
}

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Each container's writable layer (tmpfs in the guest) when nothing says otherwise. */
export const WRITABLE_LAYER_BYTES = 64 * 1024 * 1024;

export class PodSpecError extends Error {
  override readonly name = 'PodSpecError';
}

/**
 * Kubernetes semantics: `command` replaces the image's entrypoint (and drops its cmd), `args` replaces its cmd;
 * env entries of the pod override the image's by name; working dir and user from the pod when set.
 */
export function containerSpecOf(
  pod: DesiredPod,
  container: DesiredContainer,
  image: Pick<PulledImage, 'fsImage' | 'config' | 'user'>,
): SandboxContainerSpec {
  const entrypoint = container.command.length > 0 ? container.command : (image.config.entrypoint ?? []);
  const args =
    container.args.length > 0 ? container.args : container.command.length > 0 ? [] : (image.config.cmd ?? []);
  const argv = [...entrypoint, ...args];
  if (argv.length === 0 || argv[0] === '') {
    throw new PodSpecError(`container ${container.name}: neither the pod nor the image says what to run`);
  }
  const env = new Map<string, string>();
  for (const entry of image.config.env.length > 0 ? image.config.env : [DEFAULT_PATH]) {
    const eq = entry.indexOf('=');
    if (eq > 0) env.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  if (!env.has('PATH')) env.set('PATH', DEFAULT_PATH.slice('PATH='.length));
  for (const entry of container.env) env.set(entry.name, entry.value);
  env.set('HOSTNAME', pod.name.slice(0, 64));
  const workingDir = container.workingDir ?? image.config.workingDir ?? '/';
  return {
    name: container.name,
    image: { path: image.fsImage.path, fsType: image.fsImage.fsType },
    argv,
    env: [...env].map(([key, value]) => `${key}=${value}`),
    workingDir: workingDir.startsWith('/') ? workingDir : `/${workingDir}`,
    user: container.user === null ? image.user : numericUser(container, image.user),
    hostname: hostnameOf(pod.name),
    limits: {
      ...(container.memoryLimitMiB === null ? {} : { memoryBytes: container.memoryLimitMiB * 1024 * 1024 }),
      ...(container.cpuLimitMillis === null ? {} : { cpuMillis: container.cpuLimitMillis }),
    },
    writableLayerBytes: WRITABLE_LAYER_BYTES,
  };
}

/** A pod's `user` must be numeric (`uid` or `uid:gid`): names are resolved only from the image's own config. */
function numericUser(container: DesiredContainer, imageUser: PulledImage['user']): PulledImage['user'] {
  const match = /^(\d{1,10})(?::(\d{1,10}))?$/.exec(container.user ?? '');
  if (!match) {
    throw new PodSpecError(
      `container ${container.name}: user ${JSON.stringify(container.user)} must be numeric (uid or uid:gid)`,
    );
  }
  const uid = Number(match[1]);
  const gid = match[2] === undefined ? (uid === imageUser.uid ? imageUser.gid : uid) : Number(match[2]);
  return { uid, gid, additionalGids: [] };
}

function hostnameOf(name: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9.-]/g, '-').slice(0, 64);
  return cleaned.length > 0 ? cleaned : 'pod';
}
