import type { MercuriusDriverConfig } from '@nestjs/mercurius';
import type { FastifyRequest } from 'fastify';
import type { ExecutionResult } from 'graphql';
import { GraphQLError } from 'graphql';
import type { MercuriusContext } from 'mercurius';
import type { QueryLimits } from '@caas/graphql-limits';
import { checkPageSizeVariables, introspectionDisabledRule, queryLimitRules } from '@caas/graphql-limits';
import type { ApiConfig } from '../../config/api-config';
import type { RequestContext } from '../auth/principal.decorator';
import { ErrorCode } from '../errors/error-code';
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

export function graphqlOptions(config: ApiConfig): MercuriusDriverConfig {
  const limits = queryLimitsOf(config);
  return {
    path: '/graphql',
    autoSchemaFile: true,
    sortSchema: true,
    graphiql: config.GRAPHQL_PLAYGROUND,
    // Compile a query to JavaScript after its first use (graphql-jit); parsed and validated documents are cached.
    jit: 1,
    allowBatchedQueries: false,
    validationRules: [...queryLimitRules(limits), ...(config.GRAPHQL_INTROSPECTION ? [] : [introspectionDisabledRule])],
    errorFormatter: formatErrors as unknown as MercuriusDriverConfig['errorFormatter'],
    context: (request: FastifyRequest): RequestContext => ({ principal: request.principal ?? null }),
    hooks: {
      // Page sizes given through variables can only be checked once the variables are known.
      preExecution: (_schema, document, _context, variables) => {
        const error = checkPageSizeVariables(document, variables, limits);
        if (error !== null) throw error;
      },
    },
  };
}
