import type { DynamicModule } from '@nestjs/common';
import { Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { GraphQLModule } from '@nestjs/graphql';
import type { MercuriusDriverConfig } from '@nestjs/mercurius';
import { MercuriusDriver } from '@nestjs/mercurius';
import { ApiTokenModule } from './api-token/api-token.module';
import { AccessGuard } from './common/auth/access.guard';
import { graphqlOptions } from './common/graphql/graphql-options';
import { InfraModule } from './common/infra/infra.module';
import type { ApiConfig } from './config/api-config';
import { API_CONFIG } from './config/api-config';
import { HealthController } from './health/health.controller';
import { NetworkPolicyModule } from './network-policy/network-policy.module';
import { NodeModule } from './node/node.module';
import { PodLogModule } from './pod-log/pod-log.module';
import { PodModule } from './pod/pod.module';
import { RegistryCredentialModule } from './registry-credential/registry-credential.module';
import { TenantModule } from './tenant/tenant.module';
import { ViewerModule } from './viewer/viewer.module';

@Module({})
export class AppModule {
  static forConfig(config: ApiConfig): DynamicModule {
    return {
      module: AppModule,
      global: true,
      imports: [
        InfraModule,
        GraphQLModule.forRoot<MercuriusDriverConfig>({ driver: MercuriusDriver, ...graphqlOptions(config) }),
        ViewerModule,
        TenantModule,
        ApiTokenModule,
        RegistryCredentialModule,
        PodModule,
        NetworkPolicyModule,
        NodeModule,
        PodLogModule,
      ],
      controllers: [HealthController],
      providers: [
        { provide: API_CONFIG, useValue: config },
        { provide: APP_GUARD, useClass: AccessGuard },
      ],
      exports: [API_CONFIG],
    };
  }
}
