import { Field, ID, Int, ObjectType } from '@nestjs/graphql';
import type { NetworkPolicy as NetworkPolicyRow } from '@caas/db';
import type { LabelSelector, Peer, PortRange } from '@caas/network-policy-model';
import { parseNetworkPolicySpec } from '@caas/network-policy-model';
import { NetworkProtocol, PolicyType, TrafficDirection } from './network-policy.enums';

@ObjectType({ description: 'A label the selected pods must carry, with this exact value.' })
export class MatchLabel {
  @Field(() => String) key!: string;
  @Field(() => String) value!: string;
}

@ObjectType({ description: 'Selects the pods carrying every label listed (ordered by key); none: every pod.' })
export class PodSelector {
  @Field(() => [MatchLabel]) matchLabels!: MatchLabel[];
}

@ObjectType({ description: 'IPv4 addresses: those of `cidr`, minus those of every `except` block.' })
export class IpBlock {
  @Field(() => String, { description: 'A canonical IPv4 CIDR.' }) cidr!: string;
  @Field(() => [String], { description: 'Canonical IPv4 CIDRs strictly inside `cidr`.' }) except!: string[];
}

@ObjectType({ description: 'Pods of the tenant (podSelector) or addresses (ipBlock): exactly one is set.' })
export class NetworkPolicyPeer {
  @Field(() => PodSelector, { nullable: true }) podSelector!: PodSelector | null;
  @Field(() => IpBlock, { nullable: true }) ipBlock!: IpBlock | null;
}

@ObjectType({
  description: 'A protocol and destination port range. No port: every port of the protocol; no endPort: one port.',
})
export class NetworkPolicyPort {
  @Field(() => NetworkProtocol) protocol!: NetworkProtocol;
  @Field(() => Int, { nullable: true }) port!: number | null;
  @Field(() => Int, { nullable: true }) endPort!: number | null;
}

@ObjectType({ description: 'Allows traffic to the selected pods from any of `from` on any of `ports`.' })
export class NetworkPolicyIngressRule {
  @Field(() => [NetworkPolicyPeer], { description: 'Empty: every peer.' }) from!: NetworkPolicyPeer[];
  @Field(() => [NetworkPolicyPort], { description: 'Empty: every port and protocol.' }) ports!: NetworkPolicyPort[];
}

@ObjectType({ description: 'Allows traffic from the selected pods to any of `to` on any of `ports`.' })
export class NetworkPolicyEgressRule {
  @Field(() => [NetworkPolicyPeer], { description: 'Empty: every peer.' }) to!: NetworkPolicyPeer[];
  @Field(() => [NetworkPolicyPort], { description: 'Empty: every port and protocol.' }) ports!: NetworkPolicyPort[];
}

@ObjectType({
  description:
    'Drops matching traffic of the selected pods whatever any policy allows. Lower priorities are evaluated first.',
})
export class NetworkPolicyDenyRule {
  @Field(() => TrafficDirection) direction!: TrafficDirection;
  @Field(() => Int, { description: '0 to 1000.' }) priority!: number;
  @Field(() => [NetworkPolicyPeer], { description: 'Empty: every peer.' }) peers!: NetworkPolicyPeer[];
  @Field(() => [NetworkPolicyPort], { description: 'Empty: every port and protocol.' }) ports!: NetworkPolicyPort[];
}

@ObjectType({
  description:
    "Which traffic the tenant's selected pods may send and receive (Kubernetes semantics, plus deny rules). " +
    'Shown normalised: defaults filled, CIDRs canonical.',
})
export class NetworkPolicy {
  @Field(() => ID) id!: string;
  @Field(() => String) name!: string;
  @Field(() => PodSelector, { description: 'The pods this policy applies to.' }) podSelector!: PodSelector;
  @Field(() => [PolicyType]) policyTypes!: PolicyType[];
  @Field(() => [NetworkPolicyIngressRule]) ingress!: NetworkPolicyIngressRule[];
  @Field(() => [NetworkPolicyEgressRule]) egress!: NetworkPolicyEgressRule[];
  @Field(() => [NetworkPolicyDenyRule]) deny!: NetworkPolicyDenyRule[];
  @Field(() => Int, { description: 'Bumped on every change (1 at creation).' }) generation!: number;
  @Field(() => Date) createdAt!: Date;
  @Field(() => Date) updatedAt!: Date;
}

// jsonb keeps object keys in its own order (shorter first): the read model sorts them.
const selectorOf = (selector: LabelSelector): PodSelector => ({
  matchLabels: Object.entries(selector.matchLabels)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => ({ key, value })),
});

const peerOf = (peer: Peer): NetworkPolicyPeer => ({
  podSelector: peer.podSelector ? selectorOf(peer.podSelector) : null,
  ipBlock: peer.ipBlock ? { cidr: peer.ipBlock.cidr, except: [...peer.ipBlock.except] } : null,
});

const portOf = ({ protocol, port, endPort }: PortRange): NetworkPolicyPort => ({ protocol, port, endPort });

/** The read model of a stored row (its JSON columns are checked against the stored shape on the way). */
export function toNetworkPolicy(row: NetworkPolicyRow): NetworkPolicy {
  const spec = parseNetworkPolicySpec(row);
  const { id, name, generation, createdAt, updatedAt } = row;
  return {
    id,
    name,
    podSelector: selectorOf(spec.podSelector),
    policyTypes: spec.policyTypes,
    ingress: spec.ingress.map((rule) => ({ from: rule.from.map(peerOf), ports: rule.ports.map(portOf) })),
    egress: spec.egress.map((rule) => ({ to: rule.to.map(peerOf), ports: rule.ports.map(portOf) })),
    deny: spec.deny.map((rule) => ({
      direction: rule.direction,
      priority: rule.priority,
      peers: rule.peers.map(peerOf),
      ports: rule.ports.map(portOf),
    })),
    generation,
    createdAt,
    updatedAt,
  };
}
