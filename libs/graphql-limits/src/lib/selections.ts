import type { FieldNode, FragmentDefinitionNode, SelectionNode, SelectionSetNode } from 'graphql';
import { Kind } from 'graphql';

/** How to value a selection set: one field, given its sub-selection's value on demand, and siblings together. */
export interface Measure {
  field(node: FieldNode, selection: () => number): number;
  combine(a: number, b: number): number;
}

export type FragmentLookup = (name: string) => FragmentDefinitionNode | null | undefined;

/**
 * Folds a selection set with fragment spreads and inline fragments expanded in place. Each named fragment is
 * measured once and memoised, so repeated spreads stay linear; a spread of a fragment that is still being
 * measured (a cycle, which NoFragmentCycles reports) counts as an empty selection, so the fold always ends.
 */
export function measureSelections(selectionSet: SelectionSetNode, fragments: FragmentLookup, measure: Measure): number {
  const memo = new Map<string, number>();

  const fragmentValue = (name: string): number => {
    const known = memo.get(name);
    if (known !== undefined) return known;
    memo.set(name, 0);
    const value = setValue(fragments(name)?.selectionSet);
    memo.set(name, value);
    return value;
  };

  const selectionValue = (selection: SelectionNode): number => {
    switch (selection.kind) {
      case Kind.FIELD:
        return measure.field(selection, () => setValue(selection.selectionSet));
      case Kind.INLINE_FRAGMENT:
        return setValue(selection.selectionSet);
      case Kind.FRAGMENT_SPREAD:
        return fragmentValue(selection.name.value);
    }
  };

  const setValue = (set: SelectionSetNode | undefined): number =>
    (set?.selections ?? []).reduce((total, selection) => measure.combine(total, selectionValue(selection)), 0);

  return setValue(selectionSet);
}
