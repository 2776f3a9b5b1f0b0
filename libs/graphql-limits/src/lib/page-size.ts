import type { ArgumentNode, DocumentNode, FieldNode, GraphQLError, ValidationRule } from 'graphql';
import { Kind, valueFromASTUntyped, visit } from 'graphql';
import { limitError } from './errors';
import type { QueryLimits } from './query-limits';

const PAGE_ARGUMENTS = new Set(['first', 'last']);

const isPageArgument = (argument: ArgumentNode): boolean => PAGE_ARGUMENTS.has(argument.name.value);

const withinPageSize = (size: number, maxPageSize: number): boolean => size >= 0 && size <= maxPageSize;

function pageSizeError(argument: ArgumentNode, size: number, maxPageSize: number): GraphQLError {
  return limitError(
    'PAGE_SIZE_TOO_LARGE',
    `Page size ${size} for "${argument.name.value}" is outside the allowed range 0 to ${maxPageSize}.`,
    maxPageSize,
    size,
    argument,
  );
}

/**
 * How many times a field's sub-selection may be resolved: its largest `first`/`last`, clamped to
 * 0..maxPageSize (a larger page is the page-size rule's to report). Anything but an integer literal, a
 * variable in particular, is unknown at validation time and counts as a full page.
 */
export function pageMultiplier(field: FieldNode, maxPageSize: number): number {
  const sizes = (field.arguments ?? [])
    .filter(isPageArgument)
    .map((argument) =>
      argument.value.kind === Kind.INT ? Math.min(Math.max(Number(argument.value.value), 0), maxPageSize) : maxPageSize,
    );
  return sizes.length === 0 ? 1 : Math.max(...sizes);
}

/** Integer literals given to `first`/`last` on any field; one error per document. */
export const pageSizeRule =
  (maxPageSize: number): ValidationRule =>
  (context) => {
    let reported = false;
    return {
      Field(field) {
        for (const argument of field.arguments ?? []) {
          if (reported || !isPageArgument(argument) || argument.value.kind !== Kind.INT) continue;
          const size = Number(argument.value.value);
          if (withinPageSize(size, maxPageSize)) continue;
          reported = true;
          context.reportError(pageSizeError(argument, size, maxPageSize));
        }
      },
    };
  };

/**
 * The part of the page-size limit validation cannot see: `first`/`last` bound to variables, checked against
 * the request's variables (or the variable's default when the request leaves it out). Call after validation.
 */
export function checkPageSizeVariables(
  document: DocumentNode,
  variables: Record<string, unknown> | undefined,
  limits: QueryLimits,
): GraphQLError | null {
  const defaults = new Map<string, unknown>();
  const bound: [ArgumentNode, string][] = [];
  visit(document, {
    VariableDefinition(definition) {
      if (definition.defaultValue) {
        defaults.set(definition.variable.name.value, valueFromASTUntyped(definition.defaultValue));
      }
    },
    Field(field) {
      for (const argument of field.arguments ?? []) {
        if (isPageArgument(argument) && argument.value.kind === Kind.VARIABLE) {
          bound.push([argument, argument.value.name.value]);
        }
      }
    },
  });
  for (const [argument, name] of bound) {
    const size = variables && Object.hasOwn(variables, name) ? variables[name] : defaults.get(name);
    if (typeof size === 'number' && !withinPageSize(size, limits.maxPageSize)) {
      return pageSizeError(argument, size, limits.maxPageSize);
    }
  }
  return null;
}
