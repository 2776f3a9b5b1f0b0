import { existsSync } from 'node:fs';
import { cpus, hostname, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { parseEnv } from '@caas/config';

/** Memory kept for the host itself (kernel, agent, QEMU overheads) when NODE_MEMORY_MIB is not set. */
const HOST_MEMORY_RESERVE_MIB = 1024;
/** vCPUs kept for the host itself when NODE_VCPUS is not set (only on hosts with more than two). */
const HOST_VCPU_RESERVE = 1;

const flag = (fallback: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' })
    .optional()
    .transform((value) => (value === undefined ? fallback : ['true', '1', 'yes'].includes(value)));

const ifname = z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,14}$/, 'must be a network interface name');

const positiveInt = (what: string) =>
  z.coerce
    .number({ message: `${what} must be a number` })
    .int()
    .positive()
    .optional();

/** The checkout (or install) the agent runs from: where `nx run runtime:build-guest` leaves dist/guest. */
function installRoot(): string {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'nx.json'))) return dir;
    if (dirname(dir) === dir) return '/usr/lib/caas';
  }
}

/** Node names are DNS labels (the node contract refuses anything else). */
const defaultNodeName = (): string =>
  (hostname().toLowerCase().split('.')[0] ?? '')
    .replace(/[^a-z0-9-]/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63) || 'node';

const schema = z
  .object({
    /** Where the agent joins the control plane (the API's HTTP endpoint). */
    API_URL: z.string().url(),
    /** Directory for the node identity, VM state and the image cache. */
    STATE_DIR: z.string().startsWith('/', 'must be an absolute path').default('/var/lib/caas-agent'),
    /** Redis host and port (`redis://host:port`); the node's own user and password come from its identity. */
    REDIS_URL: z
      .string()
      .url()
      .refine((url) => /^rediss?:\/\//.test(url), 'must be a redis:// or rediss:// URL')
      .default('redis://127.0.0.1:6379'),
    /** One-time join token: needed only until the node has joined (its identity is then kept in STATE_DIR). */
    JOIN_TOKEN: z.string().min(16, 'must be at least 16 characters').max(256).optional(),
    NODE_NAME: z
      .string()
      .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'must be a DNS label: a-z, 0-9 and -, at most 63 characters')
      .optional(),
    NODE_VCPUS: positiveInt('NODE_VCPUS'),
    NODE_MEMORY_MIB: positiveInt('NODE_MEMORY_MIB'),
    NODE_PODS: positiveInt('NODE_PODS'),
    /** TCG is not a security boundary: development and CI only. */
    ALLOW_TCG: flag(false),
    GUEST_KERNEL: z.string().startsWith('/', 'must be an absolute path').optional(),
    GUEST_INITRD: z.string().startsWith('/', 'must be an absolute path').optional(),
    IMAGE_CACHE_LIMIT_BYTES: z.coerce
      .number({ message: 'must be a number of bytes' })
      .int()
      .min(64 * 1024 * 1024, 'must be at least 64 MiB')
      .default(20 * 1024 * 1024 * 1024),
    /** Destroy every VM when reports cannot be written for longer than the lease grace period. */
    SELF_FENCE: flag(true),
    /**
     * A network namespace (by `ip netns` name) the agent creates if missing and runs its VMs in: a simulated host
     * of infra/topology. Unset on a real host, whose VMs run in the host's own namespace.
     */
    HOST_NETNS: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_.-]{0,31}$/, 'must be a name: a-z, 0-9, _ . -, at most 32 characters')
      .optional(),
    /**
     * The pods' network (ADR-006). Without UNDERLAY_IFNAME the host runs pods with no network device at all (and
     * says so). UNDERLAY_* is the link and address other hosts send VXLAN to (told to the control plane at join);
     * UPLINK_* the link tenant egress leaves by (masqueraded); FORBIDDEN_CIDRS the operator's underlay and
     * control-plane ranges, unreachable for guests on top of the fixed list.
     */
    UNDERLAY_IFNAME: ifname.optional(),
    UNDERLAY_ADDRESS: z.string().ip({ version: 'v4', message: 'must be an IPv4 address' }).optional(),
    UPLINK_IFNAME: ifname.optional(),
    UPLINK_ADDRESS: z.string().ip({ version: 'v4', message: 'must be an IPv4 address' }).optional(),
    FORBIDDEN_CIDRS: z
      .string()
      .regex(
        /^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}(,(\d{1,3}\.){3}\d{1,3}\/\d{1,2})*$/,
        'must be IPv4 CIDRs separated by commas',
      )
      .optional(),
    /** Prefix of the tenant namespaces' names (`caas-t<networkId>`); simulated hosts sharing a machine need their own. */
    TENANT_NETNS_PREFIX: z
      .string()
      .regex(/^[a-z][a-z0-9-]{0,15}$/, 'must be a-z, 0-9 and -, at most 16 characters')
      .default('caas-t'),
    /** The uids the VMs run as: VM_UID_BASE … VM_UID_BASE + VM_UID_COUNT - 1 (agents sharing a machine need their own). */
    VM_UID_BASE: z.coerce
      .number({ message: 'must be a number' })
      .int()
      .min(1000, 'must be at least 1000')
      .default(420_000),
    VM_UID_COUNT: z.coerce.number({ message: 'must be a number' }).int().min(1).max(1_000_000).default(10_000),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .refine((env) => (env.UNDERLAY_IFNAME === undefined) === (env.UNDERLAY_ADDRESS === undefined), {
    message: 'UNDERLAY_IFNAME and UNDERLAY_ADDRESS go together',
    path: ['UNDERLAY_ADDRESS'],
  })
  .refine((env) => env.UNDERLAY_IFNAME === undefined || env.UPLINK_IFNAME !== undefined, {
    message: 'a host with a pod network needs UPLINK_IFNAME (tenant egress)',
    path: ['UPLINK_IFNAME'],
  })
  .transform((env) => {
    const vcpus = env.NODE_VCPUS ?? Math.max(1, cpus().length - (cpus().length > 2 ? HOST_VCPU_RESERVE : 0));
    const memoryMiB =
      env.NODE_MEMORY_MIB ?? Math.max(256, Math.floor(totalmem() / (1024 * 1024)) - HOST_MEMORY_RESERVE_MIB);
    return {
      ...env,
      NODE_NAME: env.NODE_NAME ?? defaultNodeName(),
      NODE_VCPUS: vcpus,
      NODE_MEMORY_MIB: memoryMiB,
      // One small pod per 256 MiB is the most that can fit; the scheduler places by vCPUs and memory as well.
      NODE_PODS: env.NODE_PODS ?? Math.max(1, Math.min(256, Math.floor(memoryMiB / 256))),
      GUEST_KERNEL: env.GUEST_KERNEL ?? join(installRoot(), 'dist/guest/kernel'),
      GUEST_INITRD: env.GUEST_INITRD ?? join(installRoot(), 'dist/guest/initrd.cpio'),
    };
  });

export type AgentConfig = z.infer<typeof schema>;

export const loadAgentConfig = (env: Record<string, string | undefined> = process.env): AgentConfig =>
  parseEnv('agent', schema, env);
