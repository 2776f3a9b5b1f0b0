import type { Role } from '@caas/db';
import type { CreatedTenant, GqlResponse, TestApi } from './test-api';
import { firstError, ROLES } from './test-api';

/**
 * The role matrix: for every root operation, which callers may use it. Each module declares its operations
 * in `matrix/<module>.matrix.ts`; `auth.integration-spec.ts` runs them all and checks that together they
 * cover every root operation of the running schema.
 */
export type Caller = Role | 'OPERATOR';
export const CALLERS: readonly Caller[] = [...ROLES, 'OPERATOR'];
export const TENANT_ROLES_FROM = (minimum: Role): Caller[] => ROLES.slice(ROLES.indexOf(minimum));

export interface MatrixContext {
  api: TestApi;
  /** The callers' own tenant (every tenant token of the matrix belongs to it). */
  home: CreatedTenant;
  /** Another tenant, for operator operations that act on a tenant. */
  target: CreatedTenant;
}

export interface MatrixEntry {
  allowed: Caller[];
  /** One call of the operation over HTTP, with whatever it needs prepared fresh for each caller. */
  call?: (context: MatrixContext) => Promise<{ query: string; variables?: Record<string, unknown> }>;
  /** For operations not callable over HTTP (subscriptions): runs it and returns the outcome string. */
  run?: (context: MatrixContext, token: string) => Promise<string>;
}

export type MatrixEntries = Record<string, MatrixEntry>;

/** `allowed`, or `CODE/REASON` of the first error. */
export function outcomeOf(response: GqlResponse): string {
  if (response.body.errors === undefined && response.body.data !== null) return 'allowed';
  const { code, reason } = firstError(response);
  return `${code}/${reason}`;
}

export function expectedOutcome(entry: MatrixEntry, caller: Caller): string {
  if (entry.allowed.includes(caller)) return 'allowed';
  if (caller === 'OPERATOR') return 'FORBIDDEN/TENANT_ONLY';
  return entry.allowed.includes('OPERATOR') ? 'FORBIDDEN/OPERATOR_ONLY' : 'FORBIDDEN/ROLE_TOO_LOW';
}

export async function runEntry(
  operation: string,
  entry: MatrixEntry,
  context: MatrixContext,
  token: string,
): Promise<string> {
  if (entry.run) return entry.run(context, token);
  if (!entry.call) throw new Error(`${operation}: a matrix entry needs call or run`);
  const { query, variables } = await entry.call(context);
  const response = await context.api.gql(query, variables, token);
  const outcome = outcomeOf(response);
  const field = operation.split('.')[1];
  if (outcome === 'allowed' && !response.body.data?.[field]) return `allowed but ${field} is empty`;
  if (outcome !== 'allowed' && response.body.data !== null) return `${outcome} with data`;
  return outcome;
}
