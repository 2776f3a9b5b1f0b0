import { z } from 'zod';

/**
 * A node's desired set (ADR-009): every pod the node must run, stop or destroy, written by the scheduler under
 * the node's `desiredSet` key with a version that only grows. The agent converges on the whole set; a VM whose
 * pod is not in the set (or is there with another `placement`) is destroyed.
 */

const uuid = z.string().uuid();

const envEntrySchema = z.object({
  name: z.string().min(1).max(256),
  value: z.string().max(65_536),
  /** The value is a secret: the agent must not put it in events or logs. */
  secret: z.boolean(),
});

export const desiredContainerSchema = z.object({
  name: z.string().min(1).max(63),
  image: z.string().min(1).max(512),
  /** The digest recorded at the first pull, so a re-placed pod runs exactly the same image; null before that. */
  imageDigest: z.string().nullable(),
  command: z.array(z.string()),
  args: z.array(z.string()),
  env: z.array(envEntrySchema),
  workingDir: z.string().nullable(),
  user: z.string().nullable(),
  cpuLimitMillis: z.number().int().positive().nullable(),
  memoryLimitMiB: z.number().int().positive().nullable(),
});
export type DesiredContainer = z.infer<typeof desiredContainerSchema>;

export const desiredPodSchema = z.object({
  podId: uuid,
  tenantId: uuid,
  name: z.string(),
  generation: z.number().int().positive(),
  /** Which placement of the pod this is (`pods.placement`): reports carry it back. */
  placement: z.number().int().positive(),
  desiredState: z.enum(['RUNNING', 'STOPPED', 'DELETED']),
  restartPolicy: z.enum(['NEVER', 'ON_FAILURE', 'ALWAYS']),
  /** A `restartPod` of this generation asks for the containers to be restarted in place. */
  restartGeneration: z.number().int().positive().nullable(),
  vcpus: z.number().int().positive(),
  memoryMiB: z.number().int().positive(),
  ip: z.string().ip({ version: 'v4' }).nullable(),
  /** The tenant's network: its VXLAN VNI and subnet (the whole network is in the set's `networks`). */
  network: z.object({ vni: z.number().int().positive(), subnet: z.string() }),
  labels: z.record(z.string()),
  containers: z.array(desiredContainerSchema).min(1),
});
export type DesiredPod = z.infer<typeof desiredPodSchema>;

/** Bounds on the network part of a set (a set is untrusted input to the agent as much as a report is to us). */
export const DESIRED_NETWORK_LIMITS = Object.freeze({
  /** Tenants with pods on one node (at most one per pod: `nodeCapacitySchema.pods` ≤ 10,000). */
  maxNetworks: 10_000,
  /** Placed pods of one tenant, cluster-wide (a /16 holds 65,534 hosts). */
  maxTenantPods: 65_536,
  maxPolicies: 1_000,
  maxVteps: 10_000,
});

const ipv4 = z.string().ip({ version: 'v4' });
/** A canonical IPv4 CIDR, as `tenants.subnet` stores it. */
const ipv4Cidr = z.string().regex(/^(?:\d{1,3}\.){3}\d{1,3}\/(?:[0-9]|[12][0-9]|3[0-2])$/, 'must be an IPv4 CIDR');

/**
 * One of the tenant's network policies in its stored (normalised) shape (ADR-004). The scheduler validated it with
 * `@caas/network-policy-model`'s `networkPolicySpecSchema` before publishing (a row that fails is left out and
 * logged). This contract only checks the outline (a contract may not depend on another contract): the agent reads
 * each entry back with `parseNetworkPolicySpec` before handing it to the compiler.
 */
export const desiredNetworkPolicySchema = z.object({
  name: z.string().min(1).max(63),
  podSelector: z.object({ matchLabels: z.record(z.string()) }),
  policyTypes: z.array(z.enum(['INGRESS', 'EGRESS'])).max(2),
  ingress: z.array(z.unknown()).max(64),
  egress: z.array(z.unknown()).max(64),
  deny: z.array(z.unknown()).max(64),
});
export type DesiredNetworkPolicy = z.infer<typeof desiredNetworkPolicySchema>;

/** A pod of the tenant, on any node: the compiler's `TenantPod` (`{ id: podId, labels, address, node }`). */
export const desiredTenantPodSchema = z.object({
  podId: uuid,
  address: ipv4,
  labels: z.record(z.string()),
  /** The NAME of the node the pod is placed on (the compiler compares it with its `host`). */
  node: z.string().min(1).max(63),
});
export type DesiredTenantPod = z.infer<typeof desiredTenantPodSchema>;

/** A pod of the tenant on another node that has an underlay address: route + neighbour + FDB entry (ADR-006). */
export const desiredPeerSchema = z.object({
  podId: uuid,
  address: ipv4,
  /** The underlay address of the pod's node. */
  vtep: ipv4,
});
export type DesiredPeer = z.infer<typeof desiredPeerSchema>;

/** The network of one tenant with at least one pod in the set (ADR-006: the tenant namespace `caas-t<networkId>`). */
export const desiredNetworkSchema = z.object({
  tenantId: uuid,
  /** `Tenant.networkId`: the VXLAN VNI. */
  networkId: z.number().int().positive().max(16_777_215),
  subnet: ipv4Cidr,
  /** The first host address of the subnet, which the API never gives a pod. */
  gateway: ipv4,
  egressDefault: z.enum(['ALLOW_NAT', 'DENY']),
  policies: z.array(desiredNetworkPolicySchema).max(DESIRED_NETWORK_LIMITS.maxPolicies),
  /** Every placed pod of the tenant that holds an address, on every node (this one included), by pod id. */
  pods: z.array(desiredTenantPodSchema).max(DESIRED_NETWORK_LIMITS.maxTenantPods),
  /** The tenant's pods on other nodes whose node has an underlay address, by pod id. */
  peers: z.array(desiredPeerSchema).max(DESIRED_NETWORK_LIMITS.maxTenantPods),
});
export type DesiredNetwork = z.infer<typeof desiredNetworkSchema>;

/** Registry credentials of the tenants whose pods are in the set, for the registries their images name. */
export const desiredRegistryCredentialSchema = z.object({
  tenantId: uuid,
  registry: z.string(),
  username: z.string(),
  password: z.string(),
});

export const desiredSetSchema = z.object({
  nodeId: uuid,
  /** `nodes.desiredVersion` this set was read at (a decimal BIGINT). */
  version: z.string().regex(/^[0-9]{1,19}$/),
  /** The node's epoch: an agent holding an older one must first destroy whatever the set does not contain. */
  epoch: z.number().int().positive(),
  cordoned: z.boolean(),
  draining: z.boolean(),
  pods: z.array(desiredPodSchema),
  registryCredentials: z.array(desiredRegistryCredentialSchema),
  /**
   * One entry per tenant with a pod in `pods`, by tenant id. Absent only in sets written before issue 9: read it
   * as empty then.
   */
  networks: z.array(desiredNetworkSchema).max(DESIRED_NETWORK_LIMITS.maxNetworks).optional(),
  /** The underlay addresses of every other registered node (the host's `@vteps` set), sorted; absent as above. */
  vteps: z.array(ipv4).max(DESIRED_NETWORK_LIMITS.maxVteps).optional(),
  generatedAt: z.string().datetime(),
});
export type DesiredSet = z.infer<typeof desiredSetSchema>;

export type ParsedDesiredSet = { ok: true; set: DesiredSet } | { ok: false; error: string };

export function parseDesiredSet(json: string): ParsedDesiredSet {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return { ok: false, error: 'desired set is not JSON' };
  }
  const result = desiredSetSchema.safeParse(value);
  return result.success ? { ok: true, set: result.data } : { ok: false, error: result.error.message };
}
