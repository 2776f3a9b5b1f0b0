import type { Cidr } from '@caas/ipv4';
import { contains, formatAddress, parseAddress, parseCidr } from '@caas/ipv4';
import type { NormalizedNetworkPolicy, Peer, PortRange, Protocol } from '@caas/network-policy-model';
import { selectsLabels } from '@caas/network-policy-model';
import type { AddressField, Chain, Expr, L4Protocol, NamedSet, Rule, Ruleset, VerdictMap } from './ir';
import { TABLE_FAMILY, TABLE_NAME } from './ir';

export type EgressDefault = 'ALLOW_NAT' | 'DENY';

/** One pod of the tenant, on any host. */
export interface TenantPod {
  id: string;
  labels: Readonly<Record<string, string>>;
  /** IPv4 address, unique in the tenant. */
  address: string;
  /** The node (host) name the pod runs on. */
  node: string;
}

export interface CompileInput {
  policies: readonly NormalizedNetworkPolicy[];
  pods: readonly TenantPod[];
  /** This host's name: its pods are the ones this ruleset filters. */
  host: string;
  egressDefault: EgressDefault;
}

/** Fixed names of the skeleton. Policy names are DNS labels (no `_`), so `_` separators never collide. */
export const NAMES = Object.freeze({
  tenantPods: 'tenant_pods',
  localPods: 'local_pods',
  inMap: 'pod_in_map',
  outMap: 'pod_out_map',
  egressChain: 'policy_out',
  ingressChain: 'policy_in',
  ctInvalid: 'ct_invalid',
  tenantIn: 'tenant_in',
  tenantOut: 'tenant_out',
  isolatedInDrop: 'isolated_in_drop',
  isolatedOutDrop: 'isolated_out_drop',
  outsideInDrop: 'outside_in_drop',
  egressNat: 'egress_default_allow',
  egressDeny: 'egress_default_deny',
});

export const allowCounterName = (policy: string, dir: 'in' | 'out', index: number): string =>
  `np_${policy}_${dir}_${index}`;
export const allowChainName = (policy: string, dir: 'in' | 'out'): string => `np_${policy}_${dir}`;
export const denyName = (policy: string, index: number): string => `deny_${policy}_${index}`;
export const podChainName = (dir: 'in' | 'out', address: string): string => `pod_${dir}_${address.replace(/\./g, '_')}`;

const PROTOCOL_ORDER: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];
const L4: Record<Protocol, L4Protocol> = { TCP: 'tcp', UDP: 'udp', SCTP: 'sctp' };

const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function addressValue(text: string): number {
  const value = parseAddress(text);
  if (value === null) throw new Error(`invalid pod address ${JSON.stringify(text)}`);
  return value;
}

function cidrOf(text: string): Cidr {
  const cidr = parseCidr(text);
  if (cidr === null) throw new Error(`invalid CIDR ${JSON.stringify(text)}`);
  return cidr;
}

/** Sorted by address; a block contained in another is dropped (CIDRs either nest or are disjoint). */
export function canonicalCidrs(texts: readonly string[]): string[] {
  const cidrs = [...new Set(texts)].map((text) => ({ text, cidr: cidrOf(text) }));
  cidrs.sort((a, b) => a.cidr.base - b.cidr.base || a.cidr.prefix - b.cidr.prefix);
  const kept: typeof cidrs = [];
  for (const item of cidrs) {
    const last = kept[kept.length - 1];
    if (last !== undefined && contains(last.cidr, item.cidr)) continue;
    kept.push(item);
  }
  return kept.map((item) => (item.cidr.prefix === 32 ? formatAddress(item.cidr.base) : item.text));
}

function sortAddresses(addresses: Iterable<string>): string[] {
  return [...new Set(addresses)]
    .map((a) => ({ a, v: addressValue(a) }))
    .sort((x, y) => x.v - y.v)
    .map((x) => x.a);
}

/** Port alternatives of one rule: one expr list per protocol (empty list of ports: one empty alternative). */
function portAlternatives(ports: readonly PortRange[]): Expr[][] {
  if (ports.length === 0) return [[]];
  const result: Expr[][] = [];
  for (const protocol of PROTOCOL_ORDER) {
    const mine = ports.filter((p) => p.protocol === protocol);
    if (mine.length === 0) continue;
    const l4: Expr = { kind: 'l4proto', protocol: L4[protocol] };
    if (mine.some((p) => p.port === null)) {
      result.push([l4]);
      continue;
    }
    const ranges = mine
      .map((p): [number, number] => [p.port as number, p.endPort ?? (p.port as number)])
      .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    const merged: [number, number][] = [];
    for (const range of ranges) {
      const last = merged[merged.length - 1];
      if (last !== undefined && range[0] <= last[1] + 1) last[1] = Math.max(last[1], range[1]);
      else merged.push([range[0], range[1]]);
    }
    result.push([l4, { kind: 'dport', ranges: merged }]);
  }
  return result;
}

interface Context {
  pods: readonly TenantPod[];
  sets: NamedSet[];
}

/** Peer alternatives of one rule; registers the named sets it needs under `prefix`. */
function peerAlternatives(peers: readonly Peer[], field: AddressField, prefix: string, ctx: Context): Expr[][] {
  if (peers.length === 0) return [[]];
  const result: Expr[][] = [];
  const selectors = peers.flatMap((p) => (p.podSelector ? [p.podSelector] : []));
  if (selectors.length > 0) {
    const addresses = ctx.pods
      .filter((pod) => selectors.some((s) => selectsLabels(s, pod.labels)))
      .map((p) => p.address);
    const name = `${prefix}_pods`;
    ctx.sets.push({ name, interval: false, elements: sortAddresses(addresses) });
    result.push([{ kind: 'addrSet', field, negate: false, set: name }]);
  }
  const blocks = peers.flatMap((p) => (p.ipBlock ? [p.ipBlock] : []));
  const plain = blocks.filter((b) => b.except.length === 0).map((b) => b.cidr);
  if (plain.length > 0) {
    const name = `${prefix}_cidrs`;
    ctx.sets.push({ name, interval: true, elements: canonicalCidrs(plain) });
    result.push([{ kind: 'addrSet', field, negate: false, set: name }]);
  }
  const withExcept = blocks
    .filter((b) => b.except.length > 0)
    .map((b) => ({ cidr: b.cidr, except: canonicalCidrs(b.except) }))
    .sort((a, b) => byString(a.cidr, b.cidr) || byString(a.except.join(','), b.except.join(',')));
  for (const block of withExcept) {
    result.push([
      { kind: 'addrList', field, negate: false, values: [block.cidr] },
      { kind: 'addrList', field, negate: true, values: block.except },
    ]);
  }
  return result;
}

function expand(peerAlts: Expr[][], portAlts: Expr[][], counter: string, verdict: Rule['verdict']): Rule[] {
  return peerAlts.flatMap((peer) => portAlts.map((port) => ({ exprs: [...peer, ...port], counter, verdict })));
}

/** The chains and sets of one policy (independent of which pods it selects). */
export function compilePolicy(
  policy: NormalizedNetworkPolicy,
  pods: readonly TenantPod[],
): { chains: Chain[]; sets: NamedSet[]; counters: string[] } {
  const ctx: Context = { pods, sets: [] };
  const chains: Chain[] = [];
  const counters: string[] = [];
  policy.deny.forEach((deny, index) => {
    const name = denyName(policy.name, index);
    const field: AddressField = deny.direction === 'INGRESS' ? 'saddr' : 'daddr';
    const rules = expand(peerAlternatives(deny.peers, field, name, ctx), portAlternatives(deny.ports), name, {
      kind: 'drop',
    });
    chains.push({ name, rules });
    counters.push(name);
  });
  for (const dir of ['in', 'out'] as const) {
    const type = dir === 'in' ? 'INGRESS' : 'EGRESS';
    const list =
      dir === 'in'
        ? policy.ingress.map((r) => ({ peers: r.from, ports: r.ports }))
        : policy.egress.map((r) => ({ peers: r.to, ports: r.ports }));
    if (!policy.policyTypes.includes(type) || list.length === 0) continue;
    const field: AddressField = dir === 'in' ? 'saddr' : 'daddr';
    const rules = list.flatMap((rule, index) => {
      const counter = allowCounterName(policy.name, dir, index);
      counters.push(counter);
      return expand(peerAlternatives(rule.peers, field, counter, ctx), portAlternatives(rule.ports), counter, {
        kind: 'accept',
      });
    });
    chains.push({ name: allowChainName(policy.name, dir), rules });
  }
  return { chains, sets: ctx.sets, counters };
}

/** The two chains of one local pod: deny jumps by (priority, policy name, position), then allows or defaults. */
export function compilePodChains(
  pod: TenantPod,
  policies: readonly NormalizedNetworkPolicy[],
  egressDefault: EgressDefault,
): [Chain, Chain] {
  const selecting = policies.filter((p) => selectsLabels(p.podSelector, pod.labels));
  const result: Chain[] = [];
  for (const dir of ['in', 'out'] as const) {
    const type = dir === 'in' ? 'INGRESS' : 'EGRESS';
    const denies = selecting
      .flatMap((p) =>
        p.deny.map((d, index) => ({ policy: p.name, priority: d.priority, direction: d.direction, index })),
      )
      .filter((d) => d.direction === type)
      .sort((a, b) => a.priority - b.priority || byString(a.policy, b.policy) || a.index - b.index);
    const rules: Rule[] = denies.map((d) => ({
      exprs: [],
      verdict: { kind: 'jump', chain: denyName(d.policy, d.index) },
    }));
    const isolating = selecting.filter((p) => p.policyTypes.includes(type));
    if (isolating.length > 0) {
      for (const p of isolating) {
        if ((dir === 'in' ? p.ingress : p.egress).length > 0) {
          rules.push({ exprs: [], verdict: { kind: 'jump', chain: allowChainName(p.name, dir) } });
        }
      }
      rules.push({
        exprs: [],
        counter: dir === 'in' ? NAMES.isolatedInDrop : NAMES.isolatedOutDrop,
        verdict: { kind: 'drop' },
      });
    } else if (dir === 'in') {
      rules.push({
        exprs: [{ kind: 'addrSet', field: 'saddr', negate: false, set: NAMES.tenantPods }],
        counter: NAMES.tenantIn,
        verdict: { kind: 'accept' },
      });
      rules.push({ exprs: [], counter: NAMES.outsideInDrop, verdict: { kind: 'drop' } });
    } else {
      rules.push({
        exprs: [{ kind: 'addrSet', field: 'daddr', negate: false, set: NAMES.tenantPods }],
        counter: NAMES.tenantOut,
        verdict: { kind: 'accept' },
      });
      rules.push(
        egressDefault === 'ALLOW_NAT'
          ? { exprs: [], counter: NAMES.egressNat, verdict: { kind: 'accept' } }
          : { exprs: [], counter: NAMES.egressDeny, verdict: { kind: 'drop' } },
      );
    }
    result.push({ name: podChainName(dir, pod.address), rules });
  }
  return [result[0] as Chain, result[1] as Chain];
}

const CT_RULES: Rule[] = [
  { exprs: [{ kind: 'ctState', states: ['invalid'] }], counter: NAMES.ctInvalid, verdict: { kind: 'drop' } },
  { exprs: [{ kind: 'ctState', states: ['established', 'related'] }], verdict: { kind: 'accept' } },
];

/**
 * The skeleton: two base chains on the forward hook. `policy_out` (priority -10, policy accept) judges egress of
 * local pods: its accept only ends that base chain, so the packet then meets `policy_in` (priority 0, policy
 * drop), which judges ingress of local pods and lets through what a local pod sent (already judged) elsewhere.
 */
function baseChains(): Chain[] {
  return [
    {
      name: NAMES.egressChain,
      base: { hook: 'forward', priority: -10, policy: 'accept' },
      rules: [...CT_RULES, { exprs: [], verdict: { kind: 'vmap', field: 'saddr', map: NAMES.outMap } }],
    },
    {
      name: NAMES.ingressChain,
      base: { hook: 'forward', priority: 0, policy: 'drop' },
      rules: [
        ...CT_RULES,
        { exprs: [], verdict: { kind: 'vmap', field: 'daddr', map: NAMES.inMap } },
        {
          exprs: [{ kind: 'addrSet', field: 'saddr', negate: false, set: NAMES.localPods }],
          verdict: { kind: 'accept' },
        },
      ],
    },
  ];
}

const SKELETON_COUNTERS = [
  NAMES.ctInvalid,
  NAMES.tenantIn,
  NAMES.tenantOut,
  NAMES.isolatedInDrop,
  NAMES.isolatedOutDrop,
  NAMES.outsideInDrop,
  NAMES.egressNat,
  NAMES.egressDeny,
];

/** Pods in the order every ruleset lists them: by address, then id. */
export function orderedPods(pods: readonly TenantPod[]): TenantPod[] {
  return [...pods]
    .map((pod) => ({ pod, value: addressValue(pod.address) }))
    .sort((a, b) => a.value - b.value || byString(a.pod.id, b.pod.id))
    .map((x) => x.pod);
}

export const orderedPolicies = (policies: readonly NormalizedNetworkPolicy[]): NormalizedNetworkPolicy[] =>
  [...policies].sort((a, b) => byString(a.name, b.name));

export const byName = <T extends { name: string }>(a: T, b: T): number => byString(a.name, b.name);

/** Pure and deterministic: the same input in any order gives the same ruleset. */
export function compile(input: CompileInput): Ruleset {
  const policies = orderedPolicies(input.policies);
  const names = new Set<string>();
  for (const p of policies) {
    if (names.has(p.name)) throw new Error(`duplicate policy name ${JSON.stringify(p.name)}`);
    names.add(p.name);
  }
  const pods = orderedPods(input.pods);
  const local = pods.filter((p) => p.node === input.host);

  const sets: NamedSet[] = [
    { name: NAMES.localPods, interval: false, elements: sortAddresses(local.map((p) => p.address)) },
    { name: NAMES.tenantPods, interval: false, elements: sortAddresses(pods.map((p) => p.address)) },
  ];
  const counters: string[] = [...SKELETON_COUNTERS];
  const policyChains: Chain[] = [];
  for (const policy of policies) {
    const compiled = compilePolicy(policy, pods);
    sets.push(...compiled.sets);
    counters.push(...compiled.counters);
    policyChains.push(...compiled.chains);
  }
  const podChains: Chain[] = [];
  const inMap: VerdictMap = { name: NAMES.inMap, elements: [] };
  const outMap: VerdictMap = { name: NAMES.outMap, elements: [] };
  for (const pod of local) {
    const [inChain, outChain] = compilePodChains(pod, policies, input.egressDefault);
    podChains.push(inChain, outChain);
    inMap.elements.push({ key: pod.address, chain: inChain.name });
    outMap.elements.push({ key: pod.address, chain: outChain.name });
  }
  policyChains.sort((a, b) => byString(a.name, b.name));
  sets.sort((a, b) => byString(a.name, b.name));
  counters.sort(byString);
  return {
    family: TABLE_FAMILY,
    table: TABLE_NAME,
    counters,
    sets,
    maps: [inMap, outMap].sort((a, b) => byString(a.name, b.name)),
    chains: [...policyChains, ...podChains, ...baseChains()],
  };
}
