import { Parent, Query, ResolveField, Resolver } from '@nestjs/graphql';
import type { Principal } from '@caas/api-auth';
import { Authenticated } from '../common/auth/access.decorator';
import { CurrentPrincipal } from '../common/auth/principal.decorator';
import { Tenant } from '../tenant/dtos/tenant.dto';
import { TenantService } from '../tenant/tenant.service';
import { PrincipalKind, Viewer } from './dtos/viewer.dto';

@Resolver(() => Viewer)
export class ViewerResolver {
  constructor(private readonly tenants: TenantService) {}

  @Authenticated()
  @Query(() => Viewer)
  viewer(@CurrentPrincipal() principal: Principal): Viewer {
    return principal.kind === 'operator'
      ? { kind: PrincipalKind.OPERATOR, role: null, tenantId: null }
      : { kind: PrincipalKind.TENANT, role: principal.role, tenantId: principal.tenantId };
  }

  @ResolveField(() => Tenant, { nullable: true, description: "The caller's tenant; null for the operator." })
  tenant(@Parent() viewer: Viewer): Promise<Tenant> | null {
    return viewer.tenantId === null ? null : this.tenants.get(viewer.tenantId);
  }
}
