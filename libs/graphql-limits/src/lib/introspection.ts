import type { DocumentNode, ValidationRule } from 'graphql';
import { GraphQLError, Kind } from 'graphql';
import type { Measure } from './selections';
import { measureSelections } from './selections';

const INTROSPECTION_FIELDS = new Set(['__schema', '__type']);

const selectsIntrospection: Measure = {
  field: (node, selection) => (INTROSPECTION_FIELDS.has(node.name.value) ? 1 : selection()),
  combine: (a, b) => Math.max(a, b),
};

/** Whether any operation selects `__schema` or `__type`, at any depth, fragments followed. `__typename` is not. */
export function isIntrospectionQuery(document: DocumentNode): boolean {
  const fragments = new Map(
    document.definitions.flatMap((definition) =>
      definition.kind === Kind.FRAGMENT_DEFINITION ? [[definition.name.value, definition] as const] : [],
    ),
  );
  return document.definitions.some(
    (definition) =>
      definition.kind === Kind.OPERATION_DEFINITION &&
      measureSelections(definition.selectionSet, (name) => fragments.get(name), selectsIntrospection) > 0,
  );
}

/** One `FORBIDDEN` error for a document that uses introspection. */
export const introspectionDisabledRule: ValidationRule = (context) => ({
  Document(document) {
    if (isIntrospectionQuery(document)) {
      context.reportError(
        new GraphQLError('GraphQL introspection is disabled.', {
          extensions: { code: 'FORBIDDEN', reason: 'INTROSPECTION_DISABLED' },
        }),
      );
    }
  },
});
