import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { joinCluster } from '@caas/node-client';
import { nodeJoinResponseSchema, type NodeCapacity, type NodeJoinResponse } from '@caas/queue-contracts';

export const IDENTITY_FILE = 'identity.json';

export class IdentityError extends Error {
  override readonly name = 'IdentityError';
}

export interface IdentityOptions {
  stateDir: string;
  apiUrl: string;
  joinToken: string | undefined;
  name: string;
  capacity: NodeCapacity;
  accelerator: 'KVM' | 'TCG' | null;
  /** Where other hosts send this host's tenant VXLAN traffic (ADR-006); none on a host without a pod network. */
  underlayAddress?: string;
  /** Injected by tests; defaults to `joinCluster`. */
  join?: typeof joinCluster;
}

/**
 * The node's identity (ADR-009): read from `STATE_DIR/identity.json` when the node has joined before, otherwise
 * obtained by joining with the one-time token and written there (file 0600: it holds the node's Redis password,
 * shown once). The directory is 0711: not listable, but traversable by the per-VM uids, whose files live below it.
 */
export async function loadOrJoin(options: IdentityOptions): Promise<{ identity: NodeJoinResponse; joined: boolean }> {
  await mkdir(options.stateDir, { recursive: true, mode: 0o711 });
  await chmod(options.stateDir, 0o711);
  const file = join(options.stateDir, IDENTITY_FILE);
  const existing = await readIdentity(file);
  if (existing) return { identity: existing, joined: false };
  if (!options.joinToken) {
    throw new IdentityError(
      `the node has not joined yet (no ${file}): set JOIN_TOKEN to a token from the createNodeJoinToken mutation`,
    );
  }
  const identity = await (options.join ?? joinCluster)(options.apiUrl, {
    token: options.joinToken,
    name: options.name,
    capacity: options.capacity,
    accelerator: options.accelerator,
    ...(options.underlayAddress && { underlayAddress: options.underlayAddress }),
  });
  const temp = `${file}.tmp`;
  await writeFile(temp, `${JSON.stringify(identity, null, 2)}\n`, { mode: 0o600 });
  await rename(temp, file);
  return { identity, joined: true };
}

async function readIdentity(file: string): Promise<NodeJoinResponse | undefined> {
  let raw: string;
  try {
    raw = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw new IdentityError(`${file} is not JSON: remove it and join again with a new JOIN_TOKEN`);
  }
  const parsed = nodeJoinResponseSchema.safeParse(json);
  if (!parsed.success) {
    throw new IdentityError(`${file} is not a node identity (${parsed.error.issues[0]?.message ?? 'invalid'})`);
  }
  return parsed.data;
}
