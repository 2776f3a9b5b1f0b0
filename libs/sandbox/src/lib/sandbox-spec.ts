/**
 * What a caller asks a sandbox for: the VM's size and its containers, each with a root filesystem image on the
 * host. Validated before anything is started, so bad input fails with a clear message and leaves nothing behind.
 */
import { z } from 'zod';
import { FS_TYPES, isProtocolError, parseContainerSpec, type ContainerSpec, type FsType } from '@caas/guest-protocol';

export interface SandboxContainerSpec extends Omit<ContainerSpec, 'disk' | 'fsType'> {
  /** A filesystem image on the host (read-only to the guest): ext4 or erofs. */
  image: { path: string; fsType: FsType };
}

export interface SandboxSpec {
  /** A DNS label: it names the VM's directory and cgroup. */
  id: string;
  vcpus: number;
  memoryMiB: number;
  containers: SandboxContainerSpec[];
  /** Extra guest kernel parameters (debugging, tests), one word each. */
  kernelParams?: string[];
  /** The pod's network (ADR-006); without it the VM has no network device at all. */
  network?: SandboxNetwork;
}

/**
 * The VM runs in `netns` (the tenant's namespace on this host) on the tap `tap`, which the network layer has
 * created and routed there (it owns the tap: it outlives the VM, e.g. across a restart); QEMU gets it as a file
 * descriptor. The guest configures its interface (`mac`) with `address`, `gateway` and `mtu` before the first
 * container starts.
 */
export interface SandboxNetwork {
  netns: string;
  tap: string;
  mac: string;
  /** `10.0.0.2/24` */
  address: string;
  gateway: string;
  mtu: number;
}

export const MAX_CONTAINERS = 16;

export class SandboxSpecError extends Error {
  override readonly name = 'SandboxSpecError';
}

const SANDBOX_ID = /^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$/;

// The rest of each container is checked against the guest protocol's own schema (validateSandboxSpec).
const containerSchema = z
  .object({ image: z.object({ path: z.string().startsWith('/').max(4096), fsType: z.enum(FS_TYPES) }).strict() })
  .passthrough();

const sandboxSchema = z
  .object({
    id: z.string().regex(SANDBOX_ID, 'a DNS label of at most 40 characters'),
    vcpus: z.number().int().min(1).max(32),
    memoryMiB: z.number().int().min(64).max(65_536),
    containers: z.array(containerSchema).min(1).max(MAX_CONTAINERS),
    kernelParams: z
      .array(z.string().regex(/^[^\s"]{1,256}$/, 'one word, no quotes'))
      .max(32)
      .optional(),
    network: z
      .object({
        netns: z.string().regex(/^\/[A-Za-z0-9_./-]{1,200}$/, 'an absolute path such as /run/netns/<name>'),
        tap: z.string().regex(/^[a-z][a-z0-9]{0,14}$/, '1..15 of a-z and 0-9, starting with a letter'),
        mac: z.string().regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/, 'a lower-case MAC address'),
        address: z.string().regex(/^(\d{1,3}\.){3}\d{1,3}\/([1-9]|[12]\d|30)$/, 'an IPv4 address with a prefix'),
        gateway: z.string().regex(/^(\d{1,3}\.){3}\d{1,3}$/, 'an IPv4 address'),
        mtu: z.number().int().min(576).max(9000),
      })
      .strict()
      .optional(),
  })
  .strict();

/** Throws SandboxSpecError naming the first problem found. */
export function validateSandboxSpec(spec: unknown): SandboxSpec {
  const parsed = sandboxSchema.safeParse(spec);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new SandboxSpecError(`${issue?.path.join('.') || 'spec'}: ${issue?.message ?? 'invalid'}`);
  }
  const containers = parsed.data.containers.map((container, index) => {
    const { image, ...rest } = container;
    try {
      const {
        disk: _disk,
        fsType: _fsType,
        ...checked
      } = parseContainerSpec({
        ...rest,
        disk: diskSerial(index),
        fsType: image.fsType,
      });
      return { ...checked, image };
    } catch (error) {
      if (!isProtocolError(error)) throw error;
      throw new SandboxSpecError(`containers.${index}: ${error.message}`);
    }
  });
  const names = new Set<string>();
  for (const [index, container] of containers.entries()) {
    if (names.has(container.name)) throw new SandboxSpecError(`containers.${index}.name: duplicate container name`);
    names.add(container.name);
  }
  return { ...parsed.data, containers };
}

/** The guest-side spec of container `index`: its image disk gets serial `c<index>`. */
export function guestContainerSpec(container: SandboxContainerSpec, index: number): ContainerSpec {
  const { image, ...rest } = container;
  return { ...rest, disk: diskSerial(index), fsType: image.fsType };
}

export const diskSerial = (index: number): string => `c${index}`;
