/**
 * BullMQ queues of the control plane. Keys live under `<prefix>:<queue>:…` (BullMQ's `prefix` option,
 * default `bull`). A queue name never contains `:` (BullMQ refuses it) and is never `node`, which is
 * reserved for the per-node namespace below.
 */
export enum QueueName {
  /**
   * The scheduler's inbound queue: every outbox announcement (pods first, and for now also tenant, node and
   * network-policy changes), produced by the outbox relay and consumed by the scheduler's handlers. A kind
   * moves to a queue of its own by changing `JOB_QUEUE` (see `jobs.ts`).
   */
  Placement = 'placement',
}

/** BullMQ's own default prefix; the control plane keeps it unless configured otherwise. */
export const DEFAULT_QUEUE_PREFIX = 'bull';

/**
 * Queues of one node, all under that node's own prefix (see `nodeQueuePrefix`), so that a single ACL key
 * pattern confines the node's Redis user to them. Filled in with the node contract; named here so the
 * derivation is fixed.
 */
export enum NodeQueueName {
  /** "Desired set version N is ready": the agent converges on the whole set (level-triggered). */
  Desired = 'desired',
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The BullMQ `prefix` of one node's queues: `<base>:node:<nodeId>`, so its queue `desired` lives under
 * `<base>:node:<nodeId>:desired:…`. The node id must be a lower-case UUID: it ends up in an ACL key pattern,
 * where `*`, `?`, `[` or `:` would widen what the node may touch.
 */
export function nodeQueuePrefix(nodeId: string, base: string = DEFAULT_QUEUE_PREFIX): string {
  if (!UUID.test(nodeId)) throw new Error(`nodeQueuePrefix: not a lower-case UUID: ${JSON.stringify(nodeId)}`);
  if (base === '' || /[*?[\]\\]/.test(base))
    throw new Error(`nodeQueuePrefix: unusable base prefix ${JSON.stringify(base)}`);
  return `${base}:node:${nodeId}`;
}

/** The Redis ACL key pattern (`~…`) covering every queue of one node and nothing else. */
export function nodeKeyPattern(nodeId: string, base: string = DEFAULT_QUEUE_PREFIX): string {
  return `${nodeQueuePrefix(nodeId, base)}:*`;
}
