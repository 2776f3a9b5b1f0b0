import type { ValidationRule } from 'graphql';
import type { LimitReason } from './errors';
import { limitError } from './errors';
import { pageMultiplier, pageSizeRule } from './page-size';
import type { Measure } from './selections';
import { measureSelections } from './selections';

export interface QueryLimits {
  /** Deepest nesting of field selections in one operation; `{ a { b } }` has depth 2. */
  maxDepth: number;
  /** Aliased fields in one operation, fragments expanded. */
  maxAliases: number;
  /** Static cost of one operation: 1 per field, a `first`/`last` page multiplying its sub-selection. */
  maxCost: number;
  /** Top-level fields of one operation, fragments expanded. */
  maxRootFields: number;
  /** Largest `first`/`last`. */
  maxPageSize: number;
}

export const DEFAULT_QUERY_LIMITS: QueryLimits = Object.freeze({
  maxDepth: 10,
  maxAliases: 30,
  maxCost: 5000,
  maxRootFields: 20,
  maxPageSize: 100,
});

/** Sums saturate, so hostile fragment fan-out yields a large finite number rather than Infinity. */
const add = (a: number, b: number): number => Math.min(a + b, Number.MAX_SAFE_INTEGER);

const depth: Measure = { field: (_node, selection) => 1 + selection(), combine: (a, b) => Math.max(a, b) };
const aliases: Measure = { field: (node, selection) => add(node.alias ? 1 : 0, selection()), combine: add };
const rootFields: Measure = { field: () => 1, combine: add };
const cost = (maxPageSize: number): Measure => ({
  field: (node, selection) => add(1, pageMultiplier(node, maxPageSize) * selection()),
  combine: add,
});

/** Measures each operation; an operation over the limit gets one error. */
const operationRule =
  (measure: Measure, limit: number, reason: LimitReason, label: string): ValidationRule =>
  (context) => ({
    OperationDefinition(operation) {
      const actual = measureSelections(operation.selectionSet, (name) => context.getFragment(name), measure);
      if (actual > limit) {
        context.reportError(
          limitError(reason, `${label} ${actual} exceeds the maximum of ${limit}.`, limit, actual, operation),
        );
      }
    },
  });

/** Validation rules enforcing `limits`, to run alongside graphql's specified rules, before any resolver. */
export function queryLimitRules(limits: QueryLimits): ValidationRule[] {
  return [
    operationRule(depth, limits.maxDepth, 'QUERY_TOO_DEEP', 'Query depth'),
    operationRule(aliases, limits.maxAliases, 'TOO_MANY_ALIASES', 'Alias count'),
    operationRule(rootFields, limits.maxRootFields, 'TOO_MANY_ROOT_FIELDS', 'Root field count'),
    operationRule(cost(limits.maxPageSize), limits.maxCost, 'QUERY_TOO_COSTLY', 'Query cost'),
    pageSizeRule(limits.maxPageSize),
  ];
}
