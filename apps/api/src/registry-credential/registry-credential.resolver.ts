import { Args, ID, Mutation, Query, Resolver } from '@nestjs/graphql';
import type { TenantPrincipal } from '@caas/api-auth';
import { TenantRole } from '../common/auth/access.decorator';
import { CurrentTenant } from '../common/auth/principal.decorator';
import { assertId } from '../common/graphql/ids';
import { Connection, PageArgs } from '../common/pagination/connection';
import { CreateRegistryCredentialInput, RegistryCredential } from './dtos/registry-credential.dto';
import { RegistryCredentialService } from './registry-credential.service';

const RegistryCredentialConnection = Connection(RegistryCredential, 'RegistryCredential');

@Resolver(() => RegistryCredential)
export class RegistryCredentialResolver {
  constructor(private readonly credentials: RegistryCredentialService) {}

  @TenantRole('MEMBER')
  @Query(() => RegistryCredentialConnection, {
    description: "The tenant's registry credentials (never their secrets).",
  })
  registryCredentials(@CurrentTenant() caller: TenantPrincipal, @Args() page: PageArgs) {
    return this.credentials.list(caller.tenantId, page);
  }

  @TenantRole('ADMIN')
  @Mutation(() => RegistryCredential)
  createRegistryCredential(
    @CurrentTenant() caller: TenantPrincipal,
    @Args('input') input: CreateRegistryCredentialInput,
  ): Promise<RegistryCredential> {
    return this.credentials.create(caller.tenantId, input);
  }

  @TenantRole('ADMIN')
  @Mutation(() => RegistryCredential, { description: 'Deletes the credential and returns what it was.' })
  deleteRegistryCredential(
    @CurrentTenant() caller: TenantPrincipal,
    @Args('id', { type: () => ID }) id: string,
  ): Promise<RegistryCredential> {
    return this.credentials.delete(caller.tenantId, assertId(id));
  }
}
