import type { Chain, CounterValues, Expr, NamedSet, Rule, Ruleset, Verdict } from './ir';

/** Counter, set, map and chain names are `[a-z0-9_.-]` (policy names are DNS labels), quoted where nft allows. */
const q = (name: string): string => JSON.stringify(name);

function values(list: readonly string[]): string {
  return list.length === 1 ? (list[0] as string) : `{ ${list.join(', ')} }`;
}

export function renderExpr(expr: Expr): string {
  switch (expr.kind) {
    case 'addrSet':
      return `ip ${expr.field} ${expr.negate ? '!= ' : ''}@${expr.set}`;
    case 'addrList':
      return `ip ${expr.field} ${expr.negate ? '!= ' : ''}${values(expr.values)}`;
    case 'l4proto':
      return `meta l4proto ${expr.protocol}`;
    case 'dport':
      return `th dport ${values(expr.ranges.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)))}`;
    case 'ctState':
      return `ct state ${expr.states.join(',')}`;
  }
}

function renderVerdict(verdict: Verdict): string {
  switch (verdict.kind) {
    case 'accept':
    case 'drop':
      return verdict.kind;
    case 'jump':
      return `jump ${verdict.chain}`;
    case 'vmap':
      return `ip ${verdict.field} vmap @${verdict.map}`;
  }
}

/** One rule as nft statement text (what follows `add rule inet caas_tenant CHAIN`). */
export function renderRule(rule: Rule): string {
  const parts = rule.exprs.map(renderExpr);
  if (rule.counter !== undefined) parts.push(`counter name ${q(rule.counter)}`);
  parts.push(renderVerdict(rule.verdict));
  return parts.join(' ');
}

function setBody(set: NamedSet, withElements: boolean): string[] {
  const lines = ['type ipv4_addr'];
  if (set.interval) lines.push('flags interval');
  if (withElements && set.elements.length > 0) lines.push(`elements = { ${set.elements.join(', ')} }`);
  return lines;
}

/** `add set …` one-liner (diff scripts). */
export function renderSetDeclaration(table: string, set: NamedSet): string {
  return `add set ${table} ${set.name} { ${setBody(set, false).join('; ')}; }`;
}

function chainBlock(chain: Chain): string[] {
  const lines = [`\tchain ${chain.name} {`];
  if (chain.base) {
    lines.push(`\t\ttype filter hook ${chain.base.hook} priority ${chain.base.priority}; policy ${chain.base.policy};`);
  }
  for (const rule of chain.rules) lines.push(`\t\t${renderRule(rule)}`);
  lines.push('\t}');
  return lines;
}

export const tableRef = (ruleset: Pick<Ruleset, 'family' | 'table'>): string => `${ruleset.family} ${ruleset.table}`;

/**
 * The whole table as one `nft -f` script, applied as ONE transaction: create the table if missing, delete it
 * (so chains, sets and counters that no longer exist go too), define it again. Map elements come after the
 * chains they jump to. A replacement resets counters: pass the values read just before (`nft -j list counters`)
 * as `counters` to carry them over.
 */
export function renderText(ruleset: Ruleset, counters: CounterValues = {}): string {
  const table = tableRef(ruleset);
  const lines = [`table ${table}`, `delete table ${table}`, `table ${table} {`];
  for (const name of ruleset.counters) {
    const value = counters[name];
    lines.push(`\tcounter ${name} {`);
    lines.push(`\t\tpackets ${value?.packets ?? 0} bytes ${value?.bytes ?? 0}`);
    lines.push('\t}');
  }
  for (const set of ruleset.sets) {
    lines.push(`\tset ${set.name} {`, ...setBody(set, true).map((l) => `\t\t${l}`), '\t}');
  }
  for (const map of ruleset.maps) {
    lines.push(`\tmap ${map.name} {`, '\t\ttype ipv4_addr : verdict', '\t}');
  }
  for (const chain of ruleset.chains) lines.push(...chainBlock(chain));
  lines.push('}');
  for (const map of ruleset.maps) {
    if (map.elements.length === 0) continue;
    const elements = map.elements.map((e) => `${e.key} : jump ${e.chain}`).join(', ');
    lines.push(`add element ${table} ${map.name} { ${elements} }`);
  }
  return `${lines.join('\n')}\n`;
}
