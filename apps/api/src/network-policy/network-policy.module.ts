import { Module } from '@nestjs/common';
import { NetworkPolicyCountersLoader } from './network-policy-counters.loader';
import { NetworkPolicyCountersResolver } from './network-policy-counters.resolver';
import { NetworkPolicyResolver } from './network-policy.resolver';
import { NetworkPolicyService } from './network-policy.service';

@Module({
  providers: [NetworkPolicyResolver, NetworkPolicyService, NetworkPolicyCountersResolver, NetworkPolicyCountersLoader],
})
export class NetworkPolicyModule {}
