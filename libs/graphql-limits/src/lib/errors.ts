import type { ASTNode } from 'graphql';
import { GraphQLError } from 'graphql';

export type LimitReason =
  | 'QUERY_TOO_DEEP'
  | 'TOO_MANY_ALIASES'
  | 'QUERY_TOO_COSTLY'
  | 'TOO_MANY_ROOT_FIELDS'
  | 'PAGE_SIZE_TOO_LARGE'
  | 'BATCH_TOO_LARGE';

/** A request over one of the limits: `BAD_USER_INPUT`, with the limit that was hit and the request's own value. */
export function limitError(
  reason: LimitReason,
  message: string,
  limit: number,
  actual: number,
  node?: ASTNode,
): GraphQLError {
  return new GraphQLError(message, { nodes: node, extensions: { code: 'BAD_USER_INPUT', reason, limit, actual } });
}
