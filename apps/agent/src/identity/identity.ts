import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NodeJoinError, joinCluster } from '@caas/node-client';
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
  /** A join the API answers with "retry later" (429, 5xx) or cannot be reached for is tried again (default 5 times). */
  retries?: number;
  /** First wait between attempts, doubling up to 30 s. Default 1 s. */
  retryDelayMs?: number;
  /** Told of every attempt that will be retried. */
  onRetry?: (error: unknown, attempt: number, delayMs: number) => void;
}

/** Whether a failed join may succeed later: rate-limited, the API unavailable, or the API not reachable. */
const retryable = (error: unknown): boolean =>
  error instanceof NodeJoinError ? error.status === 429 || error.status >= 500 : error instanceof TypeError;

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
  const request = {
    token: options.joinToken,
    name: options.name,
    capacity: options.capacity,
    accelerator: options.accelerator,
    ...(options.underlayAddress && { underlayAddress: options.underlayAddress }),
  };
  let identity: NodeJoinResponse | undefined;
  for (let attempt = 1; identity === undefined; attempt++) {
    try {
      identity = await (options.join ?? joinCluster)(options.apiUrl, request);
    } catch (error) {
      if (!retryable(error) || attempt > (options.retries ?? 5)) throw error;
      const delayMs = Math.min(30_000, (options.retryDelayMs ?? 1_000) * 2 ** (attempt - 1));
      options.onRetry?.(error, attempt, delayMs);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
  }
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
