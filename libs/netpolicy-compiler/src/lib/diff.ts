import { parseAddress } from '@caas/ipv4';
import type { Chain, NamedSet, Rule, Ruleset, VerdictMap } from './ir';
import { renderRule, renderSetDeclaration, tableRef } from './render';

/**
 * One change of the incremental path. Applied in the order `diff` returns them, they turn the previous ruleset
 * into the next; rendered with `renderChanges` they are one `nft -f` script, i.e. ONE transaction.
 */
export type Change =
  | { op: 'addCounter'; name: string }
  | { op: 'deleteCounter'; name: string }
  | { op: 'addSet'; set: NamedSet }
  | { op: 'deleteSet'; name: string }
  | { op: 'addElements'; set: string; elements: string[] }
  | { op: 'deleteElements'; set: string; elements: string[] }
  | { op: 'addMap'; name: string }
  | { op: 'deleteMap'; name: string }
  | { op: 'addMapElements'; map: string; elements: VerdictMap['elements'] }
  | { op: 'deleteMapElements'; map: string; keys: string[] }
  | { op: 'addChain'; name: string; base?: Chain['base'] }
  | { op: 'replaceRules'; chain: string; rules: Rule[] }
  | { op: 'deleteChain'; name: string };

const sameRules = (a: readonly Rule[], b: readonly Rule[]): boolean =>
  a.length === b.length && a.every((rule, i) => JSON.stringify(rule) === JSON.stringify(b[i]));

/**
 * The minimal changes from `prev` to `next`: counters are added and deleted, never re-created (so surviving
 * counters keep their values — the reason we prefer this path over a full replacement, which resets them);
 * set and map elements are added or deleted one by one; a chain whose rules changed is flushed and refilled.
 * Order: create new objects (empty chains first, so jumps resolve) → elements → chain contents → map elements →
 * delete what is gone (chains, then the sets, maps and counters they referenced).
 */
export function diff(prev: Ruleset, next: Ruleset): Change[] {
  const changes: Change[] = [];
  const prevCounters = new Set(prev.counters);
  const nextCounters = new Set(next.counters);
  for (const name of next.counters) if (!prevCounters.has(name)) changes.push({ op: 'addCounter', name });

  const prevSets = new Map(prev.sets.map((s) => [s.name, s]));
  const nextSets = new Map(next.sets.map((s) => [s.name, s]));
  for (const set of next.sets) {
    const old = prevSets.get(set.name);
    // Rulesets derived from one another (recompilePolicy) share what did not change: nothing to compare.
    if (old === set) continue;
    if (old === undefined || old.interval !== set.interval) {
      if (old !== undefined) throw new Error(`set ${set.name} changed type; use a full replacement`);
      changes.push({ op: 'addSet', set });
      continue;
    }
    const before = new Set(old.elements);
    const after = new Set(set.elements);
    const removed = old.elements.filter((e) => !after.has(e));
    const added = set.elements.filter((e) => !before.has(e));
    if (removed.length > 0) changes.push({ op: 'deleteElements', set: set.name, elements: removed });
    if (added.length > 0) changes.push({ op: 'addElements', set: set.name, elements: added });
  }

  const prevMaps = new Map(prev.maps.map((m) => [m.name, m]));
  for (const map of next.maps) if (!prevMaps.has(map.name)) changes.push({ op: 'addMap', name: map.name });

  const prevChains = new Map(prev.chains.map((c) => [c.name, c]));
  const nextChains = new Map(next.chains.map((c) => [c.name, c]));
  for (const chain of next.chains) {
    const old = prevChains.get(chain.name);
    if (old !== undefined && JSON.stringify(old.base) !== JSON.stringify(chain.base)) {
      throw new Error(`chain ${chain.name} changed its hook; use a full replacement`);
    }
    if (old === undefined) changes.push({ op: 'addChain', name: chain.name, base: chain.base });
  }
  for (const chain of next.chains) {
    const old = prevChains.get(chain.name);
    if (old === chain) continue;
    if (old === undefined ? chain.rules.length > 0 : !sameRules(old.rules, chain.rules)) {
      changes.push({ op: 'replaceRules', chain: chain.name, rules: chain.rules });
    }
  }

  for (const map of next.maps) {
    if (prevMaps.get(map.name) === map) continue;
    const old = new Map((prevMaps.get(map.name)?.elements ?? []).map((e) => [e.key, e.chain]));
    const now = new Map(map.elements.map((e) => [e.key, e.chain]));
    const removed = [...old].filter(([key, chain]) => now.get(key) !== chain).map(([key]) => key);
    const added = map.elements.filter((e) => old.get(e.key) !== e.chain);
    if (removed.length > 0) changes.push({ op: 'deleteMapElements', map: map.name, keys: removed });
    if (added.length > 0) changes.push({ op: 'addMapElements', map: map.name, elements: added });
  }

  const goneChains = prev.chains.filter((c) => !nextChains.has(c.name));
  for (const chain of goneChains)
    if (chain.rules.length > 0) changes.push({ op: 'replaceRules', chain: chain.name, rules: [] });
  for (const chain of goneChains) changes.push({ op: 'deleteChain', name: chain.name });
  const nextMaps = new Set(next.maps.map((m) => m.name));
  for (const map of prev.maps) if (!nextMaps.has(map.name)) changes.push({ op: 'deleteMap', name: map.name });
  for (const set of prev.sets) if (!nextSets.has(set.name)) changes.push({ op: 'deleteSet', name: set.name });
  for (const name of prev.counters) if (!nextCounters.has(name)) changes.push({ op: 'deleteCounter', name });
  return changes;
}

/** Sets and maps are unordered in the kernel; the IR keeps elements by address (then prefix length). */
function elementKey(element: string): number {
  const [address, prefix] = element.split('/');
  return (parseAddress(address ?? '') ?? 0) * 64 + Number(prefix ?? 32);
}
const byElement = (a: string, b: string): number => elementKey(a) - elementKey(b);

const byName = <T extends { name: string }>(a: T, b: T): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/**
 * Applies changes to a ruleset in the IR (what the kernel does with the script), for tests and for keeping
 * the agent's idea of the live table. Chain order follows `order` (the next ruleset's) when given.
 */
export function applyChanges(prev: Ruleset, changes: readonly Change[], order?: readonly string[]): Ruleset {
  const counters = new Set(prev.counters);
  const sets = new Map(prev.sets.map((s) => [s.name, { ...s, elements: [...s.elements] }]));
  const maps = new Map(prev.maps.map((m) => [m.name, new Map(m.elements.map((e) => [e.key, e.chain]))]));
  const chains = new Map(prev.chains.map((c) => [c.name, { ...c, rules: [...c.rules] }]));
  for (const change of changes) {
    switch (change.op) {
      case 'addCounter':
        counters.add(change.name);
        break;
      case 'deleteCounter':
        counters.delete(change.name);
        break;
      case 'addSet':
        sets.set(change.set.name, { ...change.set, elements: [...change.set.elements] });
        break;
      case 'deleteSet':
        sets.delete(change.name);
        break;
      case 'addElements':
      case 'deleteElements': {
        const set = sets.get(change.set);
        if (set === undefined) throw new Error(`no set ${change.set}`);
        const elements = new Set(set.elements);
        for (const e of change.elements) {
          if (change.op === 'addElements') elements.add(e);
          else elements.delete(e);
        }
        set.elements = [...elements];
        break;
      }
      case 'addMap':
        maps.set(change.name, new Map());
        break;
      case 'deleteMap':
        maps.delete(change.name);
        break;
      case 'addMapElements':
        for (const e of change.elements) maps.get(change.map)?.set(e.key, e.chain);
        break;
      case 'deleteMapElements':
        for (const key of change.keys) maps.get(change.map)?.delete(key);
        break;
      case 'addChain':
        chains.set(change.name, { name: change.name, ...(change.base ? { base: change.base } : {}), rules: [] });
        break;
      case 'replaceRules': {
        const chain = chains.get(change.chain);
        if (chain === undefined) throw new Error(`no chain ${change.chain}`);
        chain.rules = [...change.rules];
        break;
      }
      case 'deleteChain':
        chains.delete(change.name);
        break;
    }
  }
  const rank = new Map((order ?? []).map((name, i) => [name, i]));
  const chainList = [...chains.values()].sort(
    (a, b) => (rank.get(a.name) ?? Infinity) - (rank.get(b.name) ?? Infinity) || byName(a, b),
  );
  return {
    family: prev.family,
    table: prev.table,
    counters: [...counters].sort(),
    sets: [...sets.values()].map((s) => ({ ...s, elements: [...s.elements].sort(byElement) })).sort(byName),
    maps: [...maps]
      .map(([name, m]) => ({
        name,
        elements: [...m].sort(([a], [b]) => byElement(a, b)).map(([key, chain]) => ({ key, chain })),
      }))
      .sort(byName),
    chains: chainList,
  };
}

/** The changes as one `nft -f` script (one transaction). Empty changes: an empty script. */
export function renderChanges(ruleset: Pick<Ruleset, 'family' | 'table'>, changes: readonly Change[]): string {
  const t = tableRef(ruleset);
  const lines = changes.flatMap((change): string[] => {
    switch (change.op) {
      case 'addCounter':
        return [`add counter ${t} ${change.name}`];
      case 'deleteCounter':
        return [`delete counter ${t} ${change.name}`];
      case 'addSet':
        return [
          renderSetDeclaration(t, change.set),
          ...(change.set.elements.length > 0
            ? [`add element ${t} ${change.set.name} { ${change.set.elements.join(', ')} }`]
            : []),
        ];
      case 'deleteSet':
        return [`delete set ${t} ${change.name}`];
      case 'addElements':
        return [`add element ${t} ${change.set} { ${change.elements.join(', ')} }`];
      case 'deleteElements':
        return [`delete element ${t} ${change.set} { ${change.elements.join(', ')} }`];
      case 'addMap':
        return [`add map ${t} ${change.name} { type ipv4_addr : verdict; }`];
      case 'deleteMap':
        return [`delete map ${t} ${change.name}`];
      case 'addMapElements':
        return [
          `add element ${t} ${change.map} { ${change.elements.map((e) => `${e.key} : jump ${e.chain}`).join(', ')} }`,
        ];
      case 'deleteMapElements':
        return [`delete element ${t} ${change.map} { ${change.keys.join(', ')} }`];
      case 'addChain':
        return [
          change.base
            ? `add chain ${t} ${change.name} { type filter hook ${change.base.hook} priority ${change.base.priority}; policy ${change.base.policy}; }`
            : `add chain ${t} ${change.name}`,
        ];
      case 'replaceRules':
        return [
          `flush chain ${t} ${change.chain}`,
          ...change.rules.map((r) => `add rule ${t} ${change.chain} ${renderRule(r)}`),
        ];
      case 'deleteChain':
        return [`delete chain ${t} ${change.name}`];
    }
  });
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}
