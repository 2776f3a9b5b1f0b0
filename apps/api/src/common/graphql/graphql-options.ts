import type { MercuriusDriverConfig } from '@nestjs/mercurius';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { DocumentNode, ExecutionResult, GraphQLSchema, ValidationRule } from 'graphql';
import { GraphQLError, specifiedRules, validate } from 'graphql';
import type { MercuriusContext } from 'mercurius';
import type { QueryLimits } from '@caas/graphql-limits';
import { checkPageSizeVariables, introspectionDisabledRule, queryLimitRules } from '@caas/graphql-limits';
import type { ApiConfig } from '../../config/api-config';
import type { RequestContext } from '../auth/principal.decorator';
import type { BearerAuthenticator } from '../auth/request-authentication';
import { authFailure } from '../auth/request-authentication';
import { AuthException, AuthExceptionCode } from '../errors/common.exception';
import { ERROR_CODES, ErrorCode } from '../errors/error-code';
import { toPublicError } from '../errors/graphql-error.mapper';

export function queryLimitsOf(config: ApiConfig): QueryLimits {
  return {
    maxDepth: config.GRAPHQL_MAX_DEPTH,
    maxAliases: config.GRAPHQL_MAX_ALIASES,
    maxCost: config.GRAPHQL_MAX_COST,
    maxRootFields: config.GRAPHQL_MAX_ROOT_FIELDS,
    maxPageSize: config.GRAPHQL_MAX_PAGE_SIZE,
  };
}

/** Every error leaves through here: a public code and message, never a stack, SQL or internal detail. */
function formatErrors(execution: ExecutionResult & { errors: readonly GraphQLError[] }, context: MercuriusContext) {
  const log = context.reply?.log ?? context.app.log;
  // Mercurius reports validation failures (and a mutation over GET) as one error carrying the real ones.
  const flat = execution.errors.flatMap((error) => {
    const nested = (error.originalError as { errors?: unknown } | undefined)?.errors;
    if (!Array.isArray(nested)) return [error];
    return (nested as Error[]).map((inner) =>
      inner instanceof GraphQLError ? inner : new GraphQLError(inner.message, { originalError: error.originalError }),
    );
  });
  const errors = flat.map((error) => {
    const mapped = toPublicError(error);
    if (mapped.internal !== undefined)
      log.error({ err: mapped.internal, path: error.path }, 'unhandled error in GraphQL request');
    return {
      message: mapped.message,
      ...(error.locations && { locations: error.locations }),
      ...(error.path && { path: error.path }),
      extensions: { code: mapped.code, ...(mapped.reason !== undefined && { reason: mapped.reason }) },
    };
  });
  // Our own failure before execution is a 500; a request refused before execution (syntax, validation, limits)
  // is the client's fault: 400. Once executed, errors travel next to the data with 200.
  const executed = execution.data !== undefined;
  const statusCode = executed ? 200 : errors.some((e) => e.extensions.code === ErrorCode.INTERNAL) ? 500 : 400;
  return { statusCode, response: { data: execution.data ?? null, errors } };
}

/**
 * Any error as the caller may see it: a public code and reason, the module's message or a generic one.
 * For errors that do not pass through `errorFormatter` (those a subscription meets before or between its
 * events); `logInternal` receives what is ours, not the caller's, to be logged and never shown.
 */
export function publicGraphQLError(error: unknown, logInternal: (internal: unknown) => void): GraphQLError {
  const mapped = toPublicError(error);
  if (mapped.internal !== undefined) logInternal(mapped.internal);
  const located = error instanceof GraphQLError ? error : undefined;
  return new GraphQLError(mapped.message, {
    nodes: located?.nodes,
    source: located?.source,
    positions: located?.positions,
    path: located?.path,
    extensions: { code: mapped.code, ...(mapped.reason !== undefined && { reason: mapped.reason }) },
  });
}

// ───────────────────────────── subscriptions (graphql-ws) ─────────────────────────────

/** What a subscription's GraphQL context holds beyond the HTTP one. */
interface SubscriptionContext extends RequestContext {
  /** The `Authorization` value of `connection_init`, checked again when each subscription starts. */
  authorization?: string;
}

interface SerializedError {
  message?: unknown;
  locations?: unknown;
  path?: unknown;
  extensions?: { code?: unknown; reason?: unknown };
}

// Refusals Mercurius sends itself (before our hooks run) whose text is about the request, never internals.
const MERCURIUS_REQUEST_ERROR =
  /^(Syntax Error|Variable "\$|Invalid operation|Unknown extension|Must provide|Message must be|Invalid payload type)/;

/** One error of an `error` frame, as the HTTP path would answer it. */
function publicFrameError(item: SerializedError): SerializedError {
  const code = item.extensions?.code;
  if (typeof code === 'string' && ERROR_CODES.has(code)) return item;
  if (item.message === 'Forbidden') {
    return {
      message: 'Invalid, expired or revoked token.',
      extensions: { code: ErrorCode.UNAUTHENTICATED, reason: AuthExceptionCode.INVALID_TOKEN },
    };
  }
  const message = typeof item.message === 'string' ? item.message : '';
  return {
    message:
      MERCURIUS_REQUEST_ERROR.test(message) || item.locations !== undefined
        ? message
        : 'The subscription request is not valid.',
    ...(item.locations !== undefined && { locations: item.locations }),
    extensions: { code: ErrorCode.BAD_USER_INPUT, reason: 'INVALID_QUERY' },
  };
}

/**
 * Mercurius sends some refusals of a subscription (an unparsable document, a missing operation, variables
 * that do not coerce) straight to the socket, past `errorFormatter`. Every `error` frame leaving a
 * connection goes through here, so each of its errors carries a public `extensions.code` like on HTTP.
 * Our own errors arrive already public (`publicGraphQLError`) and pass unchanged.
 */
function guardErrorFrames(socket: unknown): void {
  const ws = socket as { send: (data: unknown, ...rest: unknown[]) => unknown };
  const send = ws.send.bind(ws);
  ws.send = (data: unknown, ...rest: unknown[]) => {
    if (typeof data !== 'string' || !data.startsWith('{"type":"error"')) return send(data, ...rest);
    let frame: { type: string; id?: unknown; payload?: unknown };
    try {
      frame = JSON.parse(data) as typeof frame;
    } catch {
      return send(data, ...rest);
    }
    const errors = (Array.isArray(frame.payload) ? frame.payload : [frame.payload]) as SerializedError[];
    return send(JSON.stringify({ ...frame, payload: errors.map((e) => publicFrameError(e ?? {})) }), ...rest);
  };
}

/**
 * graphql-ws (Mercurius' own server, `graphql-transport-ws` and the legacy `graphql-ws` protocols) on the
 * same `/graphql` route:
 * - `connection_init` must carry `{ authorization: "Bearer caas_…" }`, checked by the same
 *   `authenticate()` as HTTP requests (token, revocation, suspension, rate limit); anything else is
 *   refused at connect. The principal goes into the subscription context, so the access guard and
 *   `@CurrentTenant()` work unchanged.
 * - Mercurius neither validates subscription documents nor runs `validationRules` on them: the hook
 *   below runs graphql-js' rules plus our abuse limits, and checks the token again (revoked or suspended
 *   since the connection opened: refused) before each subscription starts.
 */
function subscriptionSupport(validationRules: readonly ValidationRule[]) {
  // Filled at boot from the Fastify instance (`registerRequestAuthentication` decorates it). Until then,
  // or if it never is, every connection is refused.
  let authenticateBearer: BearerAuthenticator | undefined;
  const rules = [...specifiedRules, ...validationRules];
  const fail = (error: unknown, log: FastifyInstance['log'] | undefined) =>
    publicGraphQLError(error, (internal) => log?.error({ err: internal }, 'subscription refused by an error'));

  return {
    plugin: {
      plugin: async (fastify: FastifyInstance) => {
        authenticateBearer = fastify.authenticateBearer;
      },
    },
    options: {
      // A ping every 30 s keeps proxies from closing idle connections and surfaces dead ones.
      keepAlive: 30_000,
      context: (socket: unknown): SubscriptionContext => {
        guardErrorFrames(socket);
        return { principal: null };
      },
      onConnect: async ({ payload }: { payload: unknown }): Promise<SubscriptionContext | false> => {
        const authorization = (payload as { authorization?: unknown } | null | undefined)?.authorization;
        if (typeof authorization !== 'string' || authorization === '' || authenticateBearer === undefined) {
          return false;
        }
        const outcome = await authenticateBearer(authorization);
        return outcome.ok && outcome.principal !== null ? { principal: outcome.principal, authorization } : false;
      },
    },
    preSubscriptionExecution: async (
      schema: GraphQLSchema,
      document: DocumentNode,
      context: MercuriusContext & SubscriptionContext,
    ): Promise<void> => {
      const log = context.app?.log;
      const [invalid] = validate(schema, document, rules);
      if (invalid !== undefined) throw fail(invalid, log);
      if (authenticateBearer === undefined || context.authorization === undefined) {
        throw fail(new AuthException(AuthExceptionCode.NOT_AUTHENTICATED, 'Authentication required.'), log);
      }
      const outcome = await authenticateBearer(context.authorization).catch((error: unknown) => {
        throw fail(error, log);
      });
      if (!outcome.ok) throw fail(authFailure(outcome), log);
      context.principal = outcome.principal;
    },
  };
}

export function graphqlOptions(config: ApiConfig): MercuriusDriverConfig {
  const limits = queryLimitsOf(config);
  const validationRules = [
    ...queryLimitRules(limits),
    ...(config.GRAPHQL_INTROSPECTION ? [] : [introspectionDisabledRule]),
  ];
  const subscriptions = subscriptionSupport(validationRules);
  return {
    path: '/graphql',
    autoSchemaFile: true,
    sortSchema: true,
    graphiql: config.GRAPHQL_PLAYGROUND,
    // Compile a query to JavaScript after its first use (graphql-jit); parsed and validated documents are cached.
    jit: 1,
    allowBatchedQueries: false,
    validationRules,
    errorFormatter: formatErrors as unknown as MercuriusDriverConfig['errorFormatter'],
    context: (request: FastifyRequest): RequestContext => ({ principal: request.principal ?? null }),
    subscription: subscriptions.options as MercuriusDriverConfig['subscription'],
    plugins: [subscriptions.plugin],
    hooks: {
      // Page sizes given through variables can only be checked once the variables are known.
      preExecution: (_schema, document, _context, variables) => {
        const error = checkPageSizeVariables(document, variables, limits);
        if (error !== null) throw error;
      },
      preSubscriptionExecution: subscriptions.preSubscriptionExecution as unknown as NonNullable<
        MercuriusDriverConfig['hooks']
      >['preSubscriptionExecution'],
    },
  };
}
