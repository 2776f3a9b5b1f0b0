export type { LimitReason } from './lib/errors';
export { DEFAULT_QUERY_LIMITS, queryLimitRules } from './lib/query-limits';
export type { QueryLimits } from './lib/query-limits';
export { checkPageSizeVariables } from './lib/page-size';
export { checkBatch } from './lib/batch';
export { introspectionDisabledRule, isIntrospectionQuery } from './lib/introspection';
