import { Module } from '@nestjs/common';
import { RegistryCredentialResolver } from './registry-credential.resolver';
import { RegistryCredentialService } from './registry-credential.service';

@Module({ providers: [RegistryCredentialResolver, RegistryCredentialService] })
export class RegistryCredentialModule {}
