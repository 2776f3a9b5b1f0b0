import { Module } from '@nestjs/common';
import { NetworkPolicyResolver } from './network-policy.resolver';
import { NetworkPolicyService } from './network-policy.service';

@Module({ providers: [NetworkPolicyResolver, NetworkPolicyService] })
export class NetworkPolicyModule {}
