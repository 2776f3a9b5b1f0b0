import type { NodeJoinRequest, NodeJoinResponse } from '@caas/queue-contracts';
import { NODE_JOIN_PATH, nodeJoinResponseSchema } from '@caas/queue-contracts';

/** A refused join, with the API's stable error code (`INVALID_JOIN_TOKEN`, `NODE_NAME_TAKEN`, …). */
export class NodeJoinError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number,
  ) {
    super(message);
    this.name = 'NodeJoinError';
  }
}

/**
 * Exchanges a one-time join token for the node's identity (`POST /v1/nodes/join`, ADR-009). The response holds
 * the node's Redis password, shown once: keep it on disk, readable by the agent only.
 */
export async function joinCluster(
  apiUrl: string,
  request: Omit<NodeJoinRequest, 'underlayAddress' | 'accelerator'> &
    Partial<Pick<NodeJoinRequest, 'underlayAddress' | 'accelerator'>>,
): Promise<NodeJoinResponse> {
  const response = await fetch(new URL(NODE_JOIN_PATH, apiUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(request),
  });
  const body: unknown = await response.json().catch(() => null);
  if (!response.ok) {
    const error = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
    throw new NodeJoinError(
      typeof error?.code === 'string' ? error.code : 'UNAVAILABLE',
      typeof error?.message === 'string' ? error.message : `join refused with HTTP ${response.status}`,
      response.status,
    );
  }
  const parsed = nodeJoinResponseSchema.safeParse(body);
  if (!parsed.success)
    throw new NodeJoinError('BAD_RESPONSE', `unexpected join response: ${parsed.error.message}`, 502);
  return parsed.data;
}
