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
  /** The tenant's network: its VXLAN VNI and subnet. */
  network: z.object({ vni: z.number().int().positive(), subnet: z.string() }),
  labels: z.record(z.string()),
  containers: z.array(desiredContainerSchema).min(1),
});
export type DesiredPod = z.infer<typeof desiredPodSchema>;

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
