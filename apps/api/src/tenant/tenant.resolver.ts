import { Args, ID, Mutation, Query, Resolver } from '@nestjs/graphql';
import type { TenantPrincipal } from '@caas/api-auth';
import { OperatorOnly, TenantRole } from '../common/auth/access.decorator';
import { CurrentTenant } from '../common/auth/principal.decorator';
import { assertId } from '../common/graphql/ids';
import { Connection, PageArgs } from '../common/pagination/connection';
import { Quota, Tenant } from './dtos/tenant.dto';
import { CreateTenantInput, CreateTenantPayload, QuotaInput } from './dtos/tenant.inputs';
import { TenantService } from './tenant.service';

const TenantConnection = Connection(Tenant, 'Tenant');

@Resolver(() => Tenant)
export class TenantResolver {
  constructor(private readonly tenantService: TenantService) {}

  @TenantRole('VIEWER')
  @Query(() => Tenant, { description: "The caller's tenant." })
  tenant(@CurrentTenant() caller: TenantPrincipal): Promise<Tenant> {
    return this.tenantService.get(caller.tenantId);
  }

  @TenantRole('VIEWER')
  @Query(() => Quota, { description: "The caller's tenant quota and usage." })
  quota(@CurrentTenant() caller: TenantPrincipal): Promise<Quota> {
    return this.tenantService.quota(caller.tenantId);
  }

  @OperatorOnly()
  @Query(() => TenantConnection, { description: 'Operator: every tenant.' })
  tenants(@Args() page: PageArgs) {
    return this.tenantService.list(page);
  }

  @OperatorOnly()
  @Mutation(() => CreateTenantPayload, {
    description:
      'Operator: create a tenant with its subnet, network id and first owner; the owner token is shown once.',
  })
  createTenant(@Args('input') input: CreateTenantInput): Promise<CreateTenantPayload> {
    return this.tenantService.create(input);
  }

  @OperatorOnly()
  @Mutation(() => Tenant, { description: "Operator: change a tenant's limits (omitted fields keep their value)." })
  updateTenantQuota(
    @Args('tenantId', { type: () => ID }) tenantId: string,
    @Args('input') input: QuotaInput,
  ): Promise<Tenant> {
    return this.tenantService.updateQuota(assertId(tenantId, 'tenantId'), input);
  }

  @OperatorOnly()
  @Mutation(() => Tenant, { description: "Operator: refuse the tenant's tokens and stop its pods." })
  suspendTenant(@Args('tenantId', { type: () => ID }) tenantId: string): Promise<Tenant> {
    return this.tenantService.suspend(assertId(tenantId, 'tenantId'));
  }

  @OperatorOnly()
  @Mutation(() => Tenant, { description: "Operator: accept the tenant's tokens again." })
  unsuspendTenant(@Args('tenantId', { type: () => ID }) tenantId: string): Promise<Tenant> {
    return this.tenantService.unsuspend(assertId(tenantId, 'tenantId'));
  }
}
