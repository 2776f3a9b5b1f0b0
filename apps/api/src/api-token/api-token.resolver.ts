import { Args, ID, Mutation, Query, Resolver } from '@nestjs/graphql';
import type { TenantPrincipal } from '@caas/api-auth';
import { TenantRole } from '../common/auth/access.decorator';
import { CurrentTenant } from '../common/auth/principal.decorator';
import { assertId } from '../common/graphql/ids';
import { Connection, PageArgs } from '../common/pagination/connection';
import { ApiTokenService } from './api-token.service';
import { ApiToken, CreateApiTokenInput, CreateApiTokenPayload } from './dtos/api-token.dto';

const ApiTokenConnection = Connection(ApiToken, 'ApiToken');

@Resolver(() => ApiToken)
export class ApiTokenResolver {
  constructor(private readonly apiTokenService: ApiTokenService) {}

  @TenantRole('ADMIN')
  @Query(() => ApiTokenConnection, { description: "The tenant's API tokens, revoked and expired ones included." })
  apiTokens(@CurrentTenant() caller: TenantPrincipal, @Args() page: PageArgs) {
    return this.apiTokenService.list(caller.tenantId, page);
  }

  @TenantRole('ADMIN')
  @Mutation(() => CreateApiTokenPayload)
  createApiToken(
    @CurrentTenant() caller: TenantPrincipal,
    @Args('input') input: CreateApiTokenInput,
  ): Promise<CreateApiTokenPayload> {
    return this.apiTokenService.create(caller, input);
  }

  @TenantRole('ADMIN')
  @Mutation(() => ApiToken)
  revokeApiToken(
    @CurrentTenant() caller: TenantPrincipal,
    @Args('id', { type: () => ID }) id: string,
  ): Promise<ApiToken> {
    return this.apiTokenService.revoke(caller, assertId(id));
  }
}
