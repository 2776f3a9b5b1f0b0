import type { Cidr } from '@caas/ipv4';
import { blockSize, contains, formatCidr, parseAddress, parseCidr } from '@caas/ipv4';
import { dnsLabelProblem, labelKeyProblem, labelValueProblem, quote } from './labels';
import type {
  DenyRule,
  Direction,
  EgressRule,
  IngressRule,
  IpBlock,
  LabelSelector,
  NormalizedNetworkPolicy,
  Peer,
  PolicyType,
  PortRange,
  Protocol,
} from './model';
import { DEFAULT_PROTOCOL, NETWORK_POLICY_LIMITS as LIMITS, POLICY_TYPES, PROTOCOLS } from './model';

// ─── input: what a caller (the GraphQL API, later a CLI manifest) gives; optional lists may be null ───

type Maybe<T> = T | null | undefined;

export interface LabelInput {
  key: string;
  value: string;
}
export interface LabelSelectorInput {
  matchLabels?: Maybe<readonly LabelInput[]>;
}
export interface IpBlockInput {
  cidr: string;
  except?: Maybe<readonly string[]>;
}
/** Exactly one of the two must be set (GraphQL has no input unions). */
export interface PeerInput {
  podSelector?: Maybe<LabelSelectorInput>;
  ipBlock?: Maybe<IpBlockInput>;
}
export interface PortInput {
  protocol?: Maybe<string>;
  port?: Maybe<number>;
  endPort?: Maybe<number>;
}
export interface IngressRuleInput {
  from?: Maybe<readonly PeerInput[]>;
  ports?: Maybe<readonly PortInput[]>;
}
export interface EgressRuleInput {
  to?: Maybe<readonly PeerInput[]>;
  ports?: Maybe<readonly PortInput[]>;
}
export interface DenyRuleInput {
  direction: string;
  priority: number;
  peers?: Maybe<readonly PeerInput[]>;
  ports?: Maybe<readonly PortInput[]>;
}
export interface NetworkPolicyInput {
  name: string;
  podSelector: Maybe<LabelSelectorInput>;
  policyTypes?: Maybe<readonly string[]>;
  ingress?: Maybe<readonly IngressRuleInput[]>;
  egress?: Maybe<readonly EgressRuleInput[]>;
  deny?: Maybe<readonly DenyRuleInput[]>;
}

// ─── result ───

/** One refusal, naming the field: `ingress[0].from[1].ipBlock.except[0]`. */
export interface NetworkPolicyIssue {
  path: string;
  message: string;
}

export type NormalizeResult =
  { ok: true; policy: NormalizedNetworkPolicy } | { ok: false; issues: NetworkPolicyIssue[]; omitted: number };

/** At most this many issues are collected; the rest are only counted. */
export const MAX_ISSUES = 20;

/** `path: message. path: message. (and 3 more problems)` — for one error message (each message ends with '.'). */
export function formatIssues(issues: readonly NetworkPolicyIssue[], omitted = 0, shown = 5): string {
  const text = issues
    .slice(0, shown)
    .map((issue) => `${issue.path}: ${issue.message}`)
    .join(' ');
  const more = issues.length - Math.min(issues.length, shown) + omitted;
  return more > 0 ? `${text} (and ${more} more ${more === 1 ? 'problem' : 'problems'})` : text;
}

class Issues {
  readonly list: NetworkPolicyIssue[] = [];
  omitted = 0;

  add(path: string, message: string): void {
    if (this.list.length < MAX_ISSUES) this.list.push({ path, message });
    else this.omitted++;
  }
}

const isInt = (value: unknown): value is number => typeof value === 'number' && Number.isInteger(value);
const show = (value: unknown): string => (typeof value === 'string' ? quote(value) : String(value));

/**
 * Validates a network policy and returns its normalised form (docs/adr-004-network-policy-model.md), or every
 * problem found (up to {@link MAX_ISSUES}), each naming its field. Pure: no I/O, no clock, no randomness.
 */
export function normalizeNetworkPolicy(input: NetworkPolicyInput): NormalizeResult {
  const issues = new Issues();

  const name = typeof input.name === 'string' ? input.name : '';
  const nameProblem = dnsLabelProblem(name);
  if (nameProblem !== null) issues.add('name', nameProblem);

  let podSelector: LabelSelector = { matchLabels: {} };
  if (input.podSelector === null || input.podSelector === undefined) {
    issues.add('podSelector', 'is required; give an empty selector ({}) to select every pod of the tenant.');
  } else {
    podSelector = selector(input.podSelector, 'podSelector', issues);
  }

  const ingress = (list(input.ingress, 'ingress', LIMITS.maxRulesPerDirection, 'rules', issues) ?? []).map(
    (rule, i): IngressRule => ({
      from: peers(rule.from, `ingress[${i}].from`, issues),
      ports: ports(rule.ports, `ingress[${i}].ports`, issues),
    }),
  );
  const egress = (list(input.egress, 'egress', LIMITS.maxRulesPerDirection, 'rules', issues) ?? []).map(
    (rule, i): EgressRule => ({
      to: peers(rule.to, `egress[${i}].to`, issues),
      ports: ports(rule.ports, `egress[${i}].ports`, issues),
    }),
  );
  const deny = (list(input.deny, 'deny', LIMITS.maxDenyRules, 'deny rules', issues) ?? []).map((rule, i): DenyRule =>
    denyRule(rule, `deny[${i}]`, issues),
  );
  const policyTypes = types(input.policyTypes, ingress.length > 0, egress.length > 0, issues);

  if (issues.list.length > 0 || issues.omitted > 0) return { ok: false, issues: issues.list, omitted: issues.omitted };
  return { ok: true, policy: { name, podSelector, policyTypes, ingress, egress, deny } };
}

/** The items of an optional list (null and absent are empty), or `null` when there are too many to look at. */
function list<T>(
  value: Maybe<readonly T[]>,
  path: string,
  max: number,
  what: string,
  issues: Issues,
): readonly T[] | null {
  if (value === null || value === undefined) return [];
  if (!Array.isArray(value)) {
    issues.add(path, 'must be a list.');
    return null;
  }
  if (value.length > max) {
    issues.add(path, `at most ${max} ${what}; got ${value.length}.`);
    return null;
  }
  return value;
}

function types(value: Maybe<readonly string[]>, hasIngress: boolean, hasEgress: boolean, issues: Issues): PolicyType[] {
  // Kubernetes: absent or empty means INGRESS, plus EGRESS when the policy has egress rules.
  if (value === null || value === undefined || (Array.isArray(value) && value.length === 0)) {
    return hasEgress ? ['INGRESS', 'EGRESS'] : ['INGRESS'];
  }
  const given = list(value, 'policyTypes', POLICY_TYPES.length, 'entries (INGRESS, EGRESS) without repeats', issues);
  if (given === null) return [];
  const seen = new Set<string>();
  given.forEach((type, i) => {
    if (!(POLICY_TYPES as readonly string[]).includes(type))
      issues.add(`policyTypes[${i}]`, `unknown type ${show(type)}.`);
    else if (seen.has(type)) issues.add(`policyTypes[${i}]`, `${type} is listed twice.`);
    seen.add(type);
  });
  if (hasIngress && !seen.has('INGRESS')) {
    issues.add(
      'policyTypes',
      'ingress rules are given but policyTypes does not include INGRESS, so they would never apply; add INGRESS or remove the ingress rules.',
    );
  }
  if (hasEgress && !seen.has('EGRESS')) {
    issues.add(
      'policyTypes',
      'egress rules are given but policyTypes does not include EGRESS, so they would never apply; add EGRESS or remove the egress rules.',
    );
  }
  return POLICY_TYPES.filter((type) => seen.has(type));
}

function selector(value: LabelSelectorInput, path: string, issues: Issues): LabelSelector {
  const labels = list(value.matchLabels, `${path}.matchLabels`, LIMITS.maxMatchLabels, 'labels', issues) ?? [];
  const firstIndex = new Map<string, number>();
  labels.forEach((label, i) => {
    const at = `${path}.matchLabels[${i}]`;
    const key = typeof label?.key === 'string' ? label.key : '';
    const value = typeof label?.value === 'string' ? label.value : '';
    const keyProblem = labelKeyProblem(key);
    if (keyProblem !== null) issues.add(`${at}.key`, keyProblem);
    const valueProblem = labelValueProblem(value);
    if (valueProblem !== null) issues.add(`${at}.value`, valueProblem);
    const first = firstIndex.get(key);
    if (keyProblem === null && first !== undefined) {
      issues.add(
        `${at}.key`,
        `${quote(key)} is already given at matchLabels[${first}]; a selector takes each key once.`,
      );
    }
    if (first === undefined) firstIndex.set(key, i);
  });
  const entries = labels.map((label): [string, string] => [label?.key, label?.value]);
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return { matchLabels: Object.fromEntries(entries) };
}

function peers(value: Maybe<readonly PeerInput[]>, path: string, issues: Issues): Peer[] {
  const given = list(value, path, LIMITS.maxPeersPerRule, 'peers', issues) ?? [];
  return given.flatMap((peer, i) => {
    const normalised = peerOf(peer, `${path}[${i}]`, issues);
    return normalised === null ? [] : [normalised];
  });
}

function peerOf(value: PeerInput, path: string, issues: Issues): Peer | null {
  const podSelector = value?.podSelector ?? null;
  const block = value?.ipBlock ?? null;
  if (podSelector !== null && block !== null) {
    issues.add(path, 'give exactly one of podSelector or ipBlock, not both.');
    return null;
  }
  if (podSelector !== null) return { podSelector: selector(podSelector, `${path}.podSelector`, issues) };
  if (block !== null) return { ipBlock: ipBlock(block, `${path}.ipBlock`, issues) };
  issues.add(path, 'give exactly one of podSelector or ipBlock; neither is set.');
  return null;
}

function ipBlock(value: IpBlockInput, path: string, issues: Issues): IpBlock {
  const outer = cidr(value.cidr, `${path}.cidr`, issues);
  const excepts = list(value.except, `${path}.except`, LIMITS.maxExceptPerIpBlock, 'entries', issues) ?? [];
  const except = excepts.map((text, i) => {
    const at = `${path}.except[${i}]`;
    const inner = cidr(text, at, issues);
    if (inner === null || outer === null) return String(text);
    if (!contains(outer, inner)) {
      issues.add(at, `${formatCidr(inner)} is not inside the cidr ${formatCidr(outer)}.`);
    } else if (inner.prefix === outer.prefix) {
      issues.add(
        at,
        `must be strictly smaller than the cidr ${formatCidr(outer)}; excepting all of it would match nothing.`,
      );
    }
    return formatCidr(inner);
  });
  return { cidr: outer === null ? String(value.cidr) : formatCidr(outer), except };
}

/** A canonical IPv4 CIDR, or an issue saying what is wrong and, when it can, what to write instead. */
function cidr(text: unknown, path: string, issues: Issues): Cidr | null {
  if (typeof text !== 'string') {
    issues.add(path, 'must be an IPv4 CIDR such as 10.0.0.0/24.');
    return null;
  }
  if (text.length > 64) {
    issues.add(path, `must be an IPv4 CIDR such as 10.0.0.0/24; got ${quote(text)}.`);
    return null;
  }
  if (text.includes(':')) {
    issues.add(path, `IPv6 is not supported yet; give an IPv4 CIDR such as 10.0.0.0/24 (got ${quote(text)}).`);
    return null;
  }
  const parsed = parseCidr(text);
  if (parsed !== null && formatCidr(parsed) === text) return parsed;
  if (parsed !== null) {
    issues.add(path, `${quote(text)} is not in canonical form; write ${formatCidr(parsed)}.`);
    return null;
  }
  const [addressText = '', prefixText, ...rest] = text.split('/');
  const address = parseAddress(addressText);
  if (address !== null && prefixText === undefined) {
    issues.add(path, `${quote(text)} has no prefix length; for this one address write ${text}/32.`);
    return null;
  }
  const prefix = prefixText !== undefined && /^\d{1,2}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (address !== null && rest.length === 0 && prefix <= 32) {
    const network = formatCidr({ base: address - (address % blockSize(prefix)), prefix });
    issues.add(path, `${quote(text)} has host bits set; the network is ${network}.`);
    return null;
  }
  issues.add(path, `must be an IPv4 CIDR such as 10.0.0.0/24; got ${quote(text)}.`);
  return null;
}

function ports(value: Maybe<readonly PortInput[]>, path: string, issues: Issues): PortRange[] {
  const given = list(value, path, LIMITS.maxPortsPerRule, 'ports', issues) ?? [];
  return given.map((port, i) => portOf(port, `${path}[${i}]`, issues));
}

function portOf(value: PortInput, path: string, issues: Issues): PortRange {
  const protocolText = value?.protocol ?? DEFAULT_PROTOCOL;
  const protocol = (PROTOCOLS as readonly string[]).includes(protocolText) ? (protocolText as Protocol) : 'TCP';
  if (protocol !== protocolText) issues.add(`${path}.protocol`, `must be TCP, UDP or SCTP; got ${show(protocolText)}.`);
  const port = value?.port ?? null;
  const endPort = value?.endPort ?? null;
  const inRange = (n: unknown) => isInt(n) && n >= LIMITS.minPort && n <= LIMITS.maxPort;
  if (port !== null && !inRange(port)) {
    issues.add(`${path}.port`, `must be between ${LIMITS.minPort} and ${LIMITS.maxPort}; got ${show(port)}.`);
  }
  if (endPort !== null) {
    if (port === null) {
      issues.add(`${path}.endPort`, 'needs port: endPort ends a range that port starts.');
    } else if (!inRange(endPort)) {
      issues.add(`${path}.endPort`, `must be between ${LIMITS.minPort} and ${LIMITS.maxPort}; got ${show(endPort)}.`);
    } else if (inRange(port) && endPort < port) {
      issues.add(`${path}.endPort`, `must be at least port (${port}); got ${endPort}.`);
    }
  }
  return { protocol, port, endPort: endPort === port ? null : endPort };
}

function denyRule(value: DenyRuleInput, path: string, issues: Issues): DenyRule {
  const directionText = value?.direction;
  if (!(POLICY_TYPES as readonly unknown[]).includes(directionText)) {
    issues.add(`${path}.direction`, `must be INGRESS or EGRESS; got ${show(directionText)}.`);
  }
  const priority = value?.priority;
  if (!isInt(priority) || priority < LIMITS.minPriority || priority > LIMITS.maxPriority) {
    issues.add(
      `${path}.priority`,
      `must be an integer between ${LIMITS.minPriority} and ${LIMITS.maxPriority}; got ${show(priority)}.`,
    );
  }
  return {
    direction: directionText as Direction,
    priority,
    peers: peers(value?.peers, `${path}.peers`, issues),
    ports: ports(value?.ports, `${path}.ports`, issues),
  };
}
