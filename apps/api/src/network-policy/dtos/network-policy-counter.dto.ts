import { Field, Float, Int, ObjectType, registerEnumType } from '@nestjs/graphql';

/** Which rule list of the policy a counter belongs to. */
export const NetworkPolicyRuleList = { INGRESS: 'INGRESS', EGRESS: 'EGRESS', DENY: 'DENY' } as const;
export type NetworkPolicyRuleList = (typeof NetworkPolicyRuleList)[keyof typeof NetworkPolicyRuleList];

registerEnumType(NetworkPolicyRuleList, {
  name: 'NetworkPolicyRuleList',
  description: 'The rule list a counter belongs to: `ingress`, `egress` or `deny` of the policy.',
});

@ObjectType({
  description:
    'What one rule of the policy matched so far, summed over the nodes that run pods it selects: packets and ' +
    'bytes the rule allowed (INGRESS, EGRESS) or dropped (DENY). Totals since each node compiled the rule, as ' +
    'the nodes last reported them (every few seconds); a node that stopped running the tenant no longer counts.',
})
export class NetworkPolicyRuleCounter {
  @Field(() => NetworkPolicyRuleList) direction!: NetworkPolicyRuleList;
  @Field(() => Int, { description: 'The index of the rule in its list (`ingress`, `egress` or `deny`).' })
  rule!: number;
  @Field(() => Float, { description: 'Packets (an integer; exact up to 2^53).' }) packets!: number;
  @Field(() => Float, { description: 'Bytes (an integer; exact up to 2^53).' }) bytes!: number;
  @Field(() => Int, { description: 'How many nodes reported this rule (0: no report yet, the totals are 0).' })
  nodes!: number;
}
