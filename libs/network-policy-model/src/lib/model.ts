/**
 * The stored (normalised) shape of a network policy: what the API writes to the `network_policies` JSON columns
 * and what the policy compiler reads back. Every default is filled and every CIDR is canonical, so one policy
 * has exactly one representation. Design and semantics: docs/adr-004-network-policy-model.md.
 */
import { z } from 'zod';

export const POLICY_TYPES = ['INGRESS', 'EGRESS'] as const;
/** Which side of a selected pod a rule governs: traffic to it (INGRESS) or from it (EGRESS). */
export type PolicyType = (typeof POLICY_TYPES)[number];
/** The direction of a deny rule; the same values as policy types. */
export type Direction = PolicyType;

export const PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;
export type Protocol = (typeof PROTOCOLS)[number];
export const DEFAULT_PROTOCOL: Protocol = 'TCP';

/** Bounds on one policy. Every count is checked before its items are, so refusing costs little. */
export const NETWORK_POLICY_LIMITS = Object.freeze({
  maxNameLength: 63,
  maxMatchLabels: 32,
  maxRulesPerDirection: 64,
  maxPeersPerRule: 64,
  maxPortsPerRule: 64,
  maxExceptPerIpBlock: 64,
  maxDenyRules: 64,
  minPriority: 0,
  maxPriority: 1000,
  minPort: 1,
  maxPort: 65535,
});

/** Label key → value. Key order carries no meaning (jsonb reorders keys). Empty: every pod of the tenant. */
export type MatchLabels = Record<string, string>;

export interface LabelSelector {
  matchLabels: MatchLabels;
}

export interface IpBlock {
  /** A canonical IPv4 CIDR (no host bits set). */
  cidr: string;
  /** Canonical IPv4 CIDRs, each strictly inside `cidr`; in the order given. */
  except: string[];
}

/** Exactly one of the two keys is present. */
export type Peer = { podSelector: LabelSelector; ipBlock?: never } | { ipBlock: IpBlock; podSelector?: never };

/**
 * A protocol and a destination port range. `port: null` (and then `endPort: null`): every port of the protocol.
 * `endPort: null` with a port: that one port. `endPort` is never equal to `port` (stored as null then).
 */
export interface PortRange {
  protocol: Protocol;
  port: number | null;
  endPort: number | null;
}

/** Empty `from` / `ports`: every peer / every port and protocol. */
export interface IngressRule {
  from: Peer[];
  ports: PortRange[];
}

export interface EgressRule {
  to: Peer[];
  ports: PortRange[];
}

/** Drops matching traffic whatever any policy allows. Lower `priority` is evaluated first. */
export interface DenyRule {
  direction: Direction;
  priority: number;
  peers: Peer[];
  ports: PortRange[];
}

/** The stored spec: one JSON/array column each. */
export interface NetworkPolicySpec {
  podSelector: LabelSelector;
  /** Without duplicates, in the order INGRESS, EGRESS. */
  policyTypes: PolicyType[];
  ingress: IngressRule[];
  egress: EgressRule[];
  deny: DenyRule[];
}

export interface NormalizedNetworkPolicy extends NetworkPolicySpec {
  name: string;
}

// ─── runtime schema for reading the stored shape back (rows are untrusted input to the compiler) ───

const matchLabelsSchema = z.record(z.string(), z.string());
const labelSelectorSchema = z.object({ matchLabels: matchLabelsSchema }).strict();
const ipBlockSchema = z.object({ cidr: z.string(), except: z.array(z.string()) }).strict();
const peerSchema = z.union([
  z.object({ podSelector: labelSelectorSchema }).strict(),
  z.object({ ipBlock: ipBlockSchema }).strict(),
]);
const portNumber = z.number().int().min(NETWORK_POLICY_LIMITS.minPort).max(NETWORK_POLICY_LIMITS.maxPort);
const portRangeSchema = z
  .object({ protocol: z.enum(PROTOCOLS), port: portNumber.nullable(), endPort: portNumber.nullable() })
  .strict()
  .refine((p) => p.endPort === null || (p.port !== null && p.endPort > p.port), 'endPort needs a smaller port');
const directionSchema = z.enum(POLICY_TYPES);

export const networkPolicySpecSchema = z
  .object({
    podSelector: labelSelectorSchema,
    policyTypes: z.array(directionSchema),
    ingress: z.array(z.object({ from: z.array(peerSchema), ports: z.array(portRangeSchema) }).strict()),
    egress: z.array(z.object({ to: z.array(peerSchema), ports: z.array(portRangeSchema) }).strict()),
    deny: z.array(
      z
        .object({
          direction: directionSchema,
          priority: z.number().int().min(NETWORK_POLICY_LIMITS.minPriority).max(NETWORK_POLICY_LIMITS.maxPriority),
          peers: z.array(peerSchema),
          ports: z.array(portRangeSchema),
        })
        .strict(),
    ),
  })
  .strict();

/**
 * Reads a stored spec back (the columns of one row, as JSON). Throws when the stored value is not the shape
 * this module writes: a row changed behind the API's back is a bug to surface, never something to guess at.
 */
export function parseNetworkPolicySpec(stored: Record<keyof NetworkPolicySpec, unknown>): NetworkPolicySpec {
  const { podSelector, policyTypes, ingress, egress, deny } = stored;
  return networkPolicySpecSchema.parse({ podSelector, policyTypes, ingress, egress, deny }) as NetworkPolicySpec;
}

/** Whether a pod with these labels is selected: every label of the selector present with the same value. */
export function selectsLabels(selector: LabelSelector, labels: Readonly<Record<string, string>>): boolean {
  return Object.entries(selector.matchLabels).every(
    ([key, value]) => Object.prototype.hasOwnProperty.call(labels, key) && labels[key] === value,
  );
}
