import { z } from 'zod';
import { DEFAULT_QUEUE_PREFIX, NodeQueueName, nodeQueuePrefix } from './queue-names';

/**
 * The node contract (ADR-009): how a host joins, which Redis keys belong to it, and what its Redis user may do.
 * Everything a node touches lives under its own prefix `<base>:node:<nodeId>`; the control plane takes a node's
 * identity from the key a message was written to, never from the message.
 */

/** The HTTP endpoint of the API that exchanges a one-time join token for a node identity. */
export const NODE_JOIN_PATH = '/v1/nodes/join';

/** Node names: DNS labels, as Kubernetes node names. */
const nodeName = z
  .string()
  .min(1)
  .max(63)
  .regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/, 'must be a DNS label: a-z, 0-9 and -, starting and ending alphanumeric');

export const nodeCapacitySchema = z.object({
  vcpus: z.number().int().positive().max(4096),
  memoryMiB: z
    .number()
    .int()
    .positive()
    .max(64 * 1024 * 1024),
  pods: z.number().int().positive().max(10_000),
  diskBytes: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
});
export type NodeCapacity = z.infer<typeof nodeCapacitySchema>;

export const acceleratorSchema = z.enum(['KVM', 'TCG']);

/** `0.0.0.0/8` (this network), `224.0.0.0/4` (multicast) and `240.0.0.0/4` (reserved, broadcast) are no VTEP. */
const NOT_UNICAST_FIRST_OCTET = (octet: number) => octet === 0 || octet >= 224;

export const underlayAddressSchema = z
  .string()
  .ip({ version: 'v4' })
  .refine((address) => !NOT_UNICAST_FIRST_OCTET(Number(address.split('.')[0])), 'must be a unicast IPv4 address');

/** `POST /v1/nodes/join` body. Labels and taints come from the join token, never from the node. */
export const nodeJoinRequestSchema = z
  .object({
    token: z.string().min(16).max(256),
    name: nodeName,
    capacity: nodeCapacitySchema,
    /**
     * The address other hosts send this host's tenant VXLAN traffic to (ADR-006): a unicast IPv4 address. Stored in
     * `nodes.underlayAddress`; a node without one gets no peers pointing at it (its pods are unreachable from other
     * hosts).
     */
    underlayAddress: underlayAddressSchema.nullable().default(null),
    accelerator: acceleratorSchema.nullable().default(null),
  })
  .strict();
export type NodeJoinRequest = z.infer<typeof nodeJoinRequestSchema>;

/** What a node stores on disk after joining; the password is returned once and kept only as a hash. */
export const nodeJoinResponseSchema = z.object({
  nodeId: z.string().uuid(),
  name: nodeName,
  epoch: z.number().int().positive(),
  redis: z.object({ username: z.string(), password: z.string() }),
  /** BullMQ `prefix` of the node's queues, and the base of every key below. */
  queuePrefix: z.string(),
  keys: z.object({ desiredSet: z.string(), status: z.string() }),
  heartbeatIntervalMs: z.number().int().positive(),
  leaseGraceMs: z.number().int().positive(),
});
export type NodeJoinResponse = z.infer<typeof nodeJoinResponseSchema>;

/** The Redis keys of one node (besides its BullMQ queue `desired`, under `prefix`). */
export interface NodeKeys {
  /** `<base>:node:<id>`: BullMQ prefix of the node's queues. */
  prefix: string;
  /** The node's desired set (JSON, `DesiredSet`), written only by the scheduler, read-only for the node. */
  desiredSet: string;
  /** The node's report stream (heartbeats and pod reports), appended only by the node. */
  status: string;
  /** Key pattern of the node's BullMQ queue `desired`. */
  desiredQueuePattern: string;
  /** Key pattern of the node's log streams (`nodeLogStreamKey`), write-only for the node. */
  logsPattern: string;
}

export function nodeKeys(nodeId: string, base: string = DEFAULT_QUEUE_PREFIX): NodeKeys {
  const prefix = nodeQueuePrefix(nodeId, base);
  return {
    prefix,
    desiredSet: `${prefix}:desired-set`,
    status: `${prefix}:status`,
    desiredQueuePattern: `${prefix}:${NodeQueueName.Desired}:*`,
    logsPattern: `${prefix}:logs:*`,
  };
}

/** The consumer group the scheduler replicas share on every node's status stream. */
export const STATUS_CONSUMER_GROUP = 'ingest';

/** Entries of a status stream have one field holding the JSON report. */
export const STATUS_FIELD = 'r';

/** Status streams are capped (`XADD … MAXLEN ~ n`) so a stalled control plane cannot fill Redis. */
export const STATUS_STREAM_MAXLEN = 10_000;

/** The node id a status stream key belongs to, or null when the key is not a node's status stream. */
export function nodeIdOfStatusKey(key: string, base: string = DEFAULT_QUEUE_PREFIX): string | null {
  const match = /^(.*):node:([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}):status$/.exec(key);
  return match !== null && match[1] === base ? (match[2] ?? null) : null;
}

/** The node's Redis ACL user name. */
export const nodeAclUser = (nodeId: string): string => `node-${nodeId}`;

/** The job of the node queue `desired`: "desired-set version N is ready". */
export const DESIRED_SET_READY_JOB = 'desired-set.ready';

export const desiredSetReadySchema = z.object({
  version: z.string().regex(/^[0-9]{1,19}$/),
  epoch: z.number().int().positive(),
});
export type DesiredSetReady = z.infer<typeof desiredSetReadySchema>;

/** Job id of an announcement: one per version, so a second publisher of the same version adds nothing. */
export const desiredSetReadyJobId = (version: bigint | string): string => `v${String(version)}`;

/**
 * The ACL rules of a node's Redis user (for `ACL SETUSER <user> …`), from the SHA-256 (hex) of its password:
 * its own BullMQ queue with the commands a BullMQ worker needs, and two selectors (Redis 7) that allow exactly `GET`
 * of its desired set and `XADD` to its status stream (so it can neither change its set nor read, trim or delete its
 * stream or the scheduler's consumer group on it); no channels. Key-listing commands are refused (ACL key patterns
 * do not filter `SCAN`/`KEYS`, which would reveal other nodes' key names).
 */
export function nodeAclRules(nodeId: string, passwordSha256Hex: string, base: string = DEFAULT_QUEUE_PREFIX): string[] {
  if (!/^[0-9a-f]{64}$/.test(passwordSha256Hex)) throw new Error('nodeAclRules: not a SHA-256 hex digest');
  const keys = nodeKeys(nodeId, base);
  return [
    'reset',
    'on',
    `#${passwordSha256Hex}`,
    'resetchannels',
    `~${keys.desiredQueuePattern}`,
    '-@all',
    ...NODE_ALLOWED_COMMAND_CATEGORIES.map((category) => `+@${category}`),
    ...NODE_REFUSED_COMMANDS.map((command) => `-${command}`),
    ...NODE_ALLOWED_COMMANDS.map((command) => `+${command}`),
    `(%R~${keys.desiredSet} +get)`,
    `(%W~${keys.status} +xadd)`,
    `(%W~${keys.logsPattern} +xadd +expire)`,
  ];
}

/**
 * The stream a node ships one pod's container output to (ADR-005 entry format, `@caas/log-stream-contract`). It
 * lives under the node's own prefix, so a node can write only its own log streams; the API reads a pod's output
 * from the streams of the nodes the pod was placed on, never trusting a node for any other pod.
 */
export function nodeLogStreamKey(nodeId: string, podId: string, base: string = DEFAULT_QUEUE_PREFIX): string {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(podId)) {
    throw new Error(`nodeLogStreamKey: not a lower-case UUID: ${JSON.stringify(podId)}`);
  }
  return `${nodeKeys(nodeId, base).prefix}:logs:${podId}`;
}

/** Data commands are confined by the key patterns above. */
const NODE_ALLOWED_COMMAND_CATEGORIES = [
  'read',
  'write',
  'string',
  'list',
  'hash',
  'set',
  'sortedset',
  'stream',
  'scripting',
  'blocking',
  'transaction',
  'connection',
];

/**
 * Refused after the categories: key listing and key counting, server-wide and other users' business, and every
 * `SCRIPT` subcommand (`SCRIPT DEBUG SYNC` would block the server, `SCRIPT FLUSH`/`KILL` touch every client's
 * scripts; ioredis and BullMQ run their scripts with EVALSHA, falling back to EVAL).
 */
const NODE_REFUSED_COMMANDS = [
  '@dangerous',
  '@admin',
  '@pubsub',
  'scan',
  'keys',
  'randomkey',
  'dbsize',
  'client',
  'script',
  'function',
];

/**
 * Added back: naming its own connection (BullMQ names its worker connections). Not `INFO` (server-wide: clients,
 * memory, replicas' addresses, key counts) nor `CLIENT SETINFO` (unknown to Redis 7.0, where it would make the
 * whole `ACL SETUSER` fail): a node's clients connect with ioredis `enableReadyCheck: false` and
 * `disableClientInfo: true` and BullMQ `skipVersionCheck: true` (see `@caas/node-client`).
 */
const NODE_ALLOWED_COMMANDS = ['client|setname'];
