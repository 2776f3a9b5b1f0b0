import { parseAddress, parseCidr } from '@caas/ipv4';
import type { Chain, CtState, Expr, L4Protocol, Rule, Ruleset } from './ir';

export interface Flow {
  src: string;
  dst: string;
  protocol: L4Protocol | 'icmp';
  /** Destination port (tcp, udp, sctp). */
  dport?: number;
  ct?: CtState;
}

export interface EvaluationResult {
  verdict: 'accept' | 'drop';
  /** The named counters the packet hit, in order (egress rule, then ingress rule). */
  counters: string[];
  /** The chains traversed, for debugging a test. */
  trace: string[];
}

type Outcome = 'accept' | 'drop' | 'continue';

function inBlock(address: number, element: string): boolean {
  const cidr = element.includes('/') ? parseCidr(element) : { base: parseAddress(element) ?? -1, prefix: 32 };
  if (cidr === null) throw new Error(`bad set element ${element}`);
  const size = 2 ** (32 - cidr.prefix);
  return address >= cidr.base && address < cidr.base + size;
}

/**
 * Interprets a compiled ruleset for one packet, as the kernel would: base chains of the forward hook by
 * priority; an accept ends one base chain (the next one still sees the packet), a drop ends all; `jump`
 * returns when the callee ends without a verdict; a vmap without the key gives no verdict.
 */
export function evaluate(ruleset: Ruleset, flow: Flow): EvaluationResult {
  const chains = new Map(ruleset.chains.map((c) => [c.name, c]));
  const sets = new Map(ruleset.sets.map((s) => [s.name, s.elements]));
  const maps = new Map(ruleset.maps.map((m) => [m.name, new Map(m.elements.map((e) => [e.key, e.chain]))]));
  const src = parseAddress(flow.src);
  const dst = parseAddress(flow.dst);
  if (src === null || dst === null) throw new Error('flow addresses must be IPv4');
  const ct = flow.ct ?? 'new';
  const counters: string[] = [];
  const trace: string[] = [];

  const matches = (expr: Expr): boolean => {
    switch (expr.kind) {
      case 'addrSet':
      case 'addrList': {
        const address = expr.field === 'saddr' ? src : dst;
        const list = expr.kind === 'addrSet' ? sets.get(expr.set) : expr.values;
        if (list === undefined) throw new Error(`unknown set ${expr.kind === 'addrSet' ? expr.set : ''}`);
        return list.some((e) => inBlock(address, e)) !== expr.negate;
      }
      case 'l4proto':
        return flow.protocol === expr.protocol;
      case 'dport': {
        const port = flow.dport;
        return port !== undefined && expr.ranges.some(([a, b]) => port >= a && port <= b);
      }
      case 'ctState':
        return expr.states.includes(ct);
    }
  };

  const call = (name: string, depth: number): Outcome => {
    const chain = chains.get(name);
    if (chain === undefined) throw new Error(`jump to unknown chain ${name}`);
    if (depth > 16) throw new Error('jump depth exceeded');
    return run(chain, depth);
  };

  const apply = (rule: Rule, depth: number): Outcome => {
    if (rule.counter !== undefined) counters.push(rule.counter);
    const verdict = rule.verdict;
    switch (verdict.kind) {
      case 'accept':
      case 'drop':
        return verdict.kind;
      case 'jump':
        return call(verdict.chain, depth + 1);
      case 'vmap': {
        const key = verdict.field === 'saddr' ? flow.src : flow.dst;
        const target = maps.get(verdict.map)?.get(key);
        return target === undefined ? 'continue' : call(target, depth + 1);
      }
    }
  };

  const run = (chain: Chain, depth: number): Outcome => {
    trace.push(chain.name);
    for (const rule of chain.rules) {
      if (!rule.exprs.every(matches)) continue;
      const outcome = apply(rule, depth);
      if (outcome !== 'continue') return outcome;
    }
    return 'continue';
  };

  const bases = ruleset.chains
    .flatMap((chain) => (chain.base ? [{ chain, spec: chain.base }] : []))
    .sort((a, b) => a.spec.priority - b.spec.priority);
  for (const { chain, spec } of bases) {
    const outcome = run(chain, 0);
    const final = outcome === 'continue' ? spec.policy : outcome;
    if (final === 'drop') return { verdict: 'drop', counters, trace };
  }
  return { verdict: 'accept', counters, trace };
}
