/**
 * The typed IR of one tenant's nftables table on one host (`table inet caas_tenant` in the tenant's network
 * namespace). It renders to nft script text (render.ts) and is interpreted directly by the evaluator
 * (evaluate.ts), so tests judge what the rules do, never their text.
 */

export const TABLE_FAMILY = 'inet';
export const TABLE_NAME = 'caas_tenant';

export type CtState = 'new' | 'established' | 'related' | 'invalid';
export type L4Protocol = 'tcp' | 'udp' | 'sctp';
export type AddressField = 'saddr' | 'daddr';

export type Expr =
  /** `ip saddr @set` / `ip daddr != @set`. */
  | { kind: 'addrSet'; field: AddressField; negate: boolean; set: string }
  /** `ip daddr { 10.0.0.0/8, 10.1.2.3 }` (anonymous; one value rendered without braces). */
  | { kind: 'addrList'; field: AddressField; negate: boolean; values: string[] }
  /** `meta l4proto tcp`. */
  | { kind: 'l4proto'; protocol: L4Protocol }
  /** `th dport { 80, 8000-9000 }`: inclusive ranges; needs an `l4proto` before it. */
  | { kind: 'dport'; ranges: [number, number][] }
  /** `ct state established,related`. */
  | { kind: 'ctState'; states: CtState[] };

export type Verdict =
  | { kind: 'accept' }
  | { kind: 'drop' }
  | { kind: 'jump'; chain: string }
  /** `ip daddr vmap @map`: jump to the chain the map gives for the address; no element, no verdict. */
  | { kind: 'vmap'; field: AddressField; map: string };

export interface Rule {
  exprs: Expr[];
  /** A named counter object (`counter name "…"`), shared by every nft rule of one policy rule. */
  counter?: string;
  verdict: Verdict;
}

export interface BaseChainSpec {
  hook: 'forward';
  priority: number;
  policy: 'accept' | 'drop';
}

export interface Chain {
  name: string;
  base?: BaseChainSpec;
  rules: Rule[];
}

/** A named set of IPv4 addresses (`interval`: CIDRs, never nested — the compiler drops contained blocks). */
export interface NamedSet {
  name: string;
  interval: boolean;
  elements: string[];
}

/** A verdict map from an IPv4 address to `jump <chain>`. Elements sorted by address. */
export interface VerdictMap {
  name: string;
  elements: { key: string; chain: string }[];
}

/**
 * Everything in the table. Order is meaningful and deterministic: counters, sets and maps by name; chains in
 * dependency order (a chain comes after every chain it jumps to), base chains last.
 */
export interface Ruleset {
  family: typeof TABLE_FAMILY;
  table: typeof TABLE_NAME;
  counters: string[];
  sets: NamedSet[];
  maps: VerdictMap[];
  chains: Chain[];
}

/** Counter values carried over a full replacement (which would reset them). */
export type CounterValues = Readonly<Record<string, { packets: number; bytes: number }>>;
