import type { Redis } from 'ioredis';
import { DEFAULT_QUEUE_PREFIX, nodeAclRules, nodeAclUser, nodeKeys } from '@caas/queue-contracts';

/**
 * A node's Redis ACL user is derived state (ADR-009): PostgreSQL keeps SHA-256 of the node's password
 * (`nodes.credentialHash`), and these functions (re-)create the user from it. Redis ACLs are neither replicated
 * nor kept across a restart without an aclfile, so the scheduler re-applies them in a loop (`syncNodeUsers`).
 * Every function needs a client with admin rights (`ACL`, and `CONFIG GET` when available).
 */

/** `node-<lower-case uuid>`: the only user names these functions create, change or delete. */
const NODE_USER = /^node-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A node to keep a user for; no user is kept for a node without a credential hash. */
export interface NodeCredential {
  id: string;
  credentialHash: Buffer | Uint8Array | null;
}

export interface NodeUserSyncResult {
  created: number;
  updated: number;
  removed: number;
  /** Node ids with a user of this base but no credential in `nodes` (removed, unless `mayRemove` said no). */
  unknown: string[];
}

const toHex = (hash: Buffer | Uint8Array): string =>
  Buffer.from(hash.buffer, hash.byteOffset, hash.byteLength).toString('hex');

/** Creates or replaces the node's user (`ACL SETUSER … reset …`: one atomic change), then persists it. */
export async function applyNodeUser(
  redis: Redis,
  nodeId: string,
  passwordSha256Hex: string,
  base: string = DEFAULT_QUEUE_PREFIX,
): Promise<void> {
  await redis.call('ACL', 'SETUSER', nodeAclUser(nodeId), ...nodeAclRules(nodeId, passwordSha256Hex, base));
  await saveAcl(redis);
}

/** Deletes the node's user (its open connections are closed by Redis). True when a user was deleted. */
export async function removeNodeUser(redis: Redis, nodeId: string): Promise<boolean> {
  const removed = Number(await redis.call('ACL', 'DELUSER', nodeAclUser(nodeId)));
  if (removed > 0) await saveAcl(redis);
  return removed > 0;
}

/**
 * Makes Redis hold exactly one user per node of `nodes` that has a credential hash, with the rules of
 * `nodeAclRules`: missing users are created, users whose rules or password differ are replaced, and `node-<uuid>`
 * users of this `base` (their key pattern says so) of nodes not in the list (or without a hash) are deleted. Users
 * with any other name, or of another base, are never deleted.
 *
 * Users are compared on their canonical `ACL LIST` line: a template user is created, listed and deleted in one
 * MULTI/EXEC (so no replica ever sees it, and a crash cannot leave it behind), and each node's expected line is
 * the template's line with the node's id and hash put in.
 */
export interface SyncOptions {
  /**
   * Whether the user of a node missing from `nodes` may be deleted now. A join creates the user just before its
   * transaction commits, so a pass that read the nodes a moment earlier sees a user of a node it does not know
   * yet; callers delete a user only once it was unknown in an earlier pass too.
   */
  mayRemove?: (nodeId: string) => boolean;
}

export async function syncNodeUsers(
  redis: Redis,
  nodes: readonly NodeCredential[],
  base: string = DEFAULT_QUEUE_PREFIX,
  options: SyncOptions = {},
): Promise<NodeUserSyncResult> {
  const wanted = new Map<string, string>();
  for (const node of nodes) {
    if (node.credentialHash !== null) wanted.set(node.id, toHex(node.credentialHash));
  }
  const current = await listUsers(redis, base);
  const result: NodeUserSyncResult = { created: 0, updated: 0, removed: 0, unknown: [] };

  for (const [nodeId, hashHex] of wanted) {
    const user = nodeAclUser(nodeId);
    const line = current.users.get(user);
    if (line === expectedLine(current.template, nodeId, hashHex)) continue;
    await redis.call('ACL', 'SETUSER', user, ...nodeAclRules(nodeId, hashHex, base));
    if (line === undefined) result.created += 1;
    else result.updated += 1;
  }
  for (const [user, line] of current.users) {
    const nodeId = user.slice('node-'.length);
    // Only users of this base: another deployment (or test) sharing the Redis keeps its own.
    if (wanted.has(nodeId) || !line.includes(`~${nodeKeys(nodeId, base).prefix}:`)) continue;
    result.unknown.push(nodeId);
    if (options.mayRemove?.(nodeId) === false) continue;
    result.removed += Number(await redis.call('ACL', 'DELUSER', user));
  }
  if (result.created + result.updated + result.removed > 0) await saveAcl(redis);
  return result;
}

// A node id and hash no real node has, so the template's line can be rewritten into any node's.
const TEMPLATE_ID = '00000000-0000-4000-8000-00000000ac10';
const TEMPLATE_HASH = '0'.repeat(64);
const TEMPLATE_USER = 'caas-node-acl-template';

interface CurrentUsers {
  /** `ACL LIST` line of a node user built for TEMPLATE_ID and TEMPLATE_HASH, named TEMPLATE_USER. */
  template: string;
  /** Every `node-<uuid>` user and its `ACL LIST` line. */
  users: Map<string, string>;
}

async function listUsers(redis: Redis, base: string): Promise<CurrentUsers> {
  const results = await redis
    .multi()
    .call('ACL', 'SETUSER', TEMPLATE_USER, ...nodeAclRules(TEMPLATE_ID, TEMPLATE_HASH, base).map(offTemplate))
    .call('ACL', 'LIST')
    .call('ACL', 'DELUSER', TEMPLATE_USER)
    .exec();
  if (results === null) throw new Error('syncNodeUsers: ACL transaction aborted');
  for (const [error] of results) if (error !== null) throw error;
  const lines = results[1]?.[1] as string[];
  let template: string | undefined;
  const users = new Map<string, string>();
  for (const line of lines) {
    const name = line.split(' ', 2)[1] ?? '';
    if (name === TEMPLATE_USER) template = line;
    else if (NODE_USER.test(name)) users.set(name, line);
  }
  if (template === undefined) throw new Error('syncNodeUsers: the template user was not listed');
  return { template, users };
}

/** The template user is created disabled: it exists only inside the transaction, but it must never log in. */
const offTemplate = (rule: string): string => (rule === 'on' ? 'off' : rule);

function expectedLine(template: string, nodeId: string, hashHex: string): string {
  return template
    .replace(`user ${TEMPLATE_USER} off `, `user ${nodeAclUser(nodeId)} on `)
    .split(TEMPLATE_ID)
    .join(nodeId)
    .split(TEMPLATE_HASH)
    .join(hashHex);
}

/**
 * `ACL SAVE` when Redis loads its users from an aclfile (otherwise there is nothing to save to and the command
 * fails). `CONFIG` may be renamed or refused to this client: then the sync loop alone keeps the users.
 */
async function saveAcl(redis: Redis): Promise<void> {
  let aclfile: string;
  try {
    const reply = (await redis.call('CONFIG', 'GET', 'aclfile')) as string[];
    aclfile = reply[1] ?? '';
  } catch {
    return;
  }
  if (aclfile !== '') await redis.call('ACL', 'SAVE');
}
