import { Args, ID, Mutation, Query, Resolver } from '@nestjs/graphql';
import type { TenantPrincipal } from '@caas/api-auth';
import { TenantRole } from '../common/auth/access.decorator';
import { CurrentTenant } from '../common/auth/principal.decorator';
import { assertId } from '../common/graphql/ids';
import { Connection, PageArgs } from '../common/pagination/connection';
import { NetworkPolicy } from './dtos/network-policy.dto';
import { CreateNetworkPolicyInput, UpdateNetworkPolicyInput } from './dtos/network-policy.inputs';
import { NetworkPolicyService } from './network-policy.service';

const NetworkPolicyConnection = Connection(NetworkPolicy, 'NetworkPolicy');

/** Reading policies is for every role; changing them is for ADMIN and up (they are a security control). */
@Resolver(() => NetworkPolicy)
export class NetworkPolicyResolver {
  constructor(private readonly policies: NetworkPolicyService) {}

  @TenantRole('VIEWER')
  @Query(() => NetworkPolicyConnection, { description: "The tenant's network policies, oldest first." })
  networkPolicies(@CurrentTenant() caller: TenantPrincipal, @Args() page: PageArgs) {
    return this.policies.list(caller.tenantId, page);
  }

  @TenantRole('VIEWER')
  @Query(() => NetworkPolicy)
  networkPolicy(
    @CurrentTenant() caller: TenantPrincipal,
    @Args('id', { type: () => ID }) id: string,
  ): Promise<NetworkPolicy> {
    return this.policies.get(caller.tenantId, assertId(id));
  }

  @TenantRole('ADMIN')
  @Mutation(() => NetworkPolicy, { description: 'Creates a policy at generation 1.' })
  createNetworkPolicy(
    @CurrentTenant() caller: TenantPrincipal,
    @Args('input') input: CreateNetworkPolicyInput,
  ): Promise<NetworkPolicy> {
    return this.policies.create(caller.tenantId, input);
  }

  @TenantRole('ADMIN')
  @Mutation(() => NetworkPolicy, {
    description: 'Replaces the whole policy and bumps its generation; CONFLICT when another update won the race.',
  })
  updateNetworkPolicy(
    @CurrentTenant() caller: TenantPrincipal,
    @Args('id', { type: () => ID }) id: string,
    @Args('input') input: UpdateNetworkPolicyInput,
  ): Promise<NetworkPolicy> {
    return this.policies.update(caller.tenantId, assertId(id), input);
  }

  @TenantRole('ADMIN')
  @Mutation(() => NetworkPolicy, {
    description: 'Deletes the policy and returns what it was, with the generation of its deletion.',
  })
  deleteNetworkPolicy(
    @CurrentTenant() caller: TenantPrincipal,
    @Args('id', { type: () => ID }) id: string,
  ): Promise<NetworkPolicy> {
    return this.policies.delete(caller.tenantId, assertId(id));
  }
}
