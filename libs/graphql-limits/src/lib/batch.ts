import type { GraphQLError } from 'graphql';
import { limitError } from './errors';

/** A request body that is a JSON array batches operations; allow at most `maxOperations` of them. */
export function checkBatch(body: unknown, maxOperations = 1): GraphQLError | null {
  if (!Array.isArray(body) || body.length <= maxOperations) return null;
  return limitError(
    'BATCH_TOO_LARGE',
    `Batch of ${body.length} operations exceeds the maximum of ${maxOperations}.`,
    maxOperations,
    body.length,
  );
}
