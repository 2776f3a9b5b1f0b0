import { Field, InputType, Int } from '@nestjs/graphql';
import { NetworkProtocol, PolicyType, TrafficDirection } from './network-policy.enums';

// Every check beyond GraphQL's types (names, labels, CIDRs, ranges, counts, "exactly one of") is done by
// `normalizeNetworkPolicy` from @caas/network-policy-model, which names the offending field.

@InputType()
export class MatchLabelInput {
  @Field(() => String, { description: 'A label key: `name` or `dns.prefix/name`.' }) key!: string;
  @Field(() => String, { description: 'Empty, or up to 63 letters, digits, `-`, `_`, `.`.' }) value!: string;
}

@InputType()
export class PodSelectorInput {
  @Field(() => [MatchLabelInput], {
    nullable: true,
    description: 'At most 32, each key once. Omitted or empty: every pod of the tenant.',
  })
  matchLabels?: MatchLabelInput[] | null;
}

@InputType()
export class IpBlockInput {
  @Field(() => String, { description: 'A canonical IPv4 CIDR, such as 10.0.0.0/8 (IPv6 is not supported yet).' })
  cidr!: string;
  @Field(() => [String], { nullable: true, description: 'Canonical IPv4 CIDRs strictly inside `cidr` (at most 64).' })
  except?: string[] | null;
}

@InputType({ description: 'Set exactly one of podSelector and ipBlock.' })
export class NetworkPolicyPeerInput {
  @Field(() => PodSelectorInput, { nullable: true, description: 'Pods of the tenant; `{}`: all of them.' })
  podSelector?: PodSelectorInput | null;
  @Field(() => IpBlockInput, { nullable: true }) ipBlock?: IpBlockInput | null;
}

@InputType()
export class NetworkPolicyPortInput {
  @Field(() => NetworkProtocol, { nullable: true, description: 'Default TCP.' }) protocol?: NetworkProtocol | null;
  @Field(() => Int, { nullable: true, description: '1 to 65535. Omitted: every port of the protocol.' })
  port?: number | null;
  @Field(() => Int, { nullable: true, description: 'Makes a range port..endPort (endPort ≥ port; needs port).' })
  endPort?: number | null;
}

@InputType()
export class NetworkPolicyIngressRuleInput {
  @Field(() => [NetworkPolicyPeerInput], { nullable: true, description: 'At most 64. Omitted or empty: every peer.' })
  from?: NetworkPolicyPeerInput[] | null;
  @Field(() => [NetworkPolicyPortInput], {
    nullable: true,
    description: 'At most 64. Omitted or empty: every port and protocol.',
  })
  ports?: NetworkPolicyPortInput[] | null;
}

@InputType()
export class NetworkPolicyEgressRuleInput {
  @Field(() => [NetworkPolicyPeerInput], { nullable: true, description: 'At most 64. Omitted or empty: every peer.' })
  to?: NetworkPolicyPeerInput[] | null;
  @Field(() => [NetworkPolicyPortInput], {
    nullable: true,
    description: 'At most 64. Omitted or empty: every port and protocol.',
  })
  ports?: NetworkPolicyPortInput[] | null;
}

@InputType()
export class NetworkPolicyDenyRuleInput {
  @Field(() => TrafficDirection) direction!: TrafficDirection;
  @Field(() => Int, { description: '0 to 1000; lower is evaluated first.' }) priority!: number;
  @Field(() => [NetworkPolicyPeerInput], { nullable: true, description: 'At most 64. Omitted or empty: every peer.' })
  peers?: NetworkPolicyPeerInput[] | null;
  @Field(() => [NetworkPolicyPortInput], {
    nullable: true,
    description: 'At most 64. Omitted or empty: every port and protocol.',
  })
  ports?: NetworkPolicyPortInput[] | null;
}

@InputType({ description: 'A whole network policy; Kubernetes semantics (docs/adr-004-network-policy-model.md).' })
export class CreateNetworkPolicyInput {
  @Field(() => String, { description: 'A DNS label, unique in the tenant.' }) name!: string;
  @Field(() => PodSelectorInput, { description: 'The pods the policy applies to; `{}`: every pod of the tenant.' })
  podSelector!: PodSelectorInput;
  @Field(() => [PolicyType], {
    nullable: true,
    description: 'Omitted or empty: INGRESS, plus EGRESS when egress rules are given.',
  })
  policyTypes?: PolicyType[] | null;
  @Field(() => [NetworkPolicyIngressRuleInput], { nullable: true, description: 'At most 64.' })
  ingress?: NetworkPolicyIngressRuleInput[] | null;
  @Field(() => [NetworkPolicyEgressRuleInput], { nullable: true, description: 'At most 64.' })
  egress?: NetworkPolicyEgressRuleInput[] | null;
  @Field(() => [NetworkPolicyDenyRuleInput], { nullable: true, description: 'At most 64.' })
  deny?: NetworkPolicyDenyRuleInput[] | null;
}

@InputType({ description: 'Replaces the whole policy (the name may change, if still unique).' })
export class UpdateNetworkPolicyInput extends CreateNetworkPolicyInput {}
