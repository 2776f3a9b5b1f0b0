import { Context, Parent, ResolveField, Resolver } from '@nestjs/graphql';
import type { TenantPrincipal } from '@caas/api-auth';
import { CurrentTenant } from '../common/auth/principal.decorator';
import { NetworkPolicy } from './dtos/network-policy.dto';
import { NetworkPolicyRuleCounter } from './dtos/network-policy-counter.dto';
import { NetworkPolicyCountersLoader, ruleCounterNames } from './network-policy-counters.loader';

/**
 * `NetworkPolicy.counters`. The field hangs off a policy the caller already read through an operation that checked
 * its role and tenant; the counters are still read under the caller's tenant id, never under the policy's name alone.
 */
@Resolver(() => NetworkPolicy)
export class NetworkPolicyCountersResolver {
  constructor(private readonly loader: NetworkPolicyCountersLoader) {}

  @ResolveField(() => [NetworkPolicyRuleCounter], {
    description:
      'Per-rule packet and byte counters summed over the nodes, in list order: every ingress rule (when the policy ' +
      'isolates INGRESS), every egress rule (when it isolates EGRESS), every deny rule. A rule no node has ' +
      'reported yet reads 0.',
  })
  async counters(
    @Parent() policy: NetworkPolicy,
    @CurrentTenant() caller: TenantPrincipal,
    @Context() context: object,
  ): Promise<NetworkPolicyRuleCounter[]> {
    const rules = ruleCounterNames(policy);
    const loader = this.loader.forRequest(context);
    const totals = await loader.loadMany(rules.map(({ name }) => ({ tenantId: caller.tenantId, name })));
    return rules.map(({ direction, rule }, i) => {
      const total = totals[i];
      if (total === undefined || total instanceof Error) throw total ?? new Error('counter total missing');
      return { direction, rule, ...total };
    });
  }
}
