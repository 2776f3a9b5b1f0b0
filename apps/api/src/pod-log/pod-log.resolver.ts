import { UseFilters } from '@nestjs/common';
import { Args, ID, Query, Resolver, Subscription } from '@nestjs/graphql';
import type { TenantPrincipal } from '@caas/api-auth';
import { TenantRole } from '../common/auth/access.decorator';
import { CurrentTenant } from '../common/auth/principal.decorator';
import { Event } from '../pod/dtos/event.dto';
import { FollowPodLogsArgs, LogLine, PodLogsArgs } from './dtos/log-line.dto';
import { PodEventStreamService } from './pod-event-stream.service';
import { PodLogService } from './pod-log.service';
import { SubscriptionExceptionFilter } from './subscription-exception.filter';

const passThrough = <T>(payload: T): T => payload;

@Resolver(() => LogLine)
export class PodLogResolver {
  constructor(
    private readonly podLogService: PodLogService,
    private readonly podEventStreamService: PodEventStreamService,
  ) {}

  @TenantRole('VIEWER')
  @Query(() => [LogLine], {
    description: "The last lines of a pod's containers, oldest first (a bounded tail: older output is trimmed).",
  })
  podLogs(@CurrentTenant() caller: TenantPrincipal, @Args() args: PodLogsArgs): Promise<LogLine[]> {
    return this.podLogService.read(caller.tenantId, args);
  }

  @TenantRole('VIEWER')
  @UseFilters(SubscriptionExceptionFilter)
  @Subscription(() => [LogLine], {
    name: 'podLogs',
    description: 'Lines the pod writes from now on, in batches (oldest first, at most 500 per message).',
    resolve: passThrough,
  })
  followPodLogs(@CurrentTenant() caller: TenantPrincipal, @Args() args: FollowPodLogsArgs) {
    return this.podLogService.follow(caller.tenantId, args);
  }

  @TenantRole('VIEWER')
  @UseFilters(SubscriptionExceptionFilter)
  @Subscription(() => Event, {
    name: 'podEvents',
    description: "The pod's events from now on (what happened before: the events query).",
    resolve: passThrough,
  })
  podEvents(@CurrentTenant() caller: TenantPrincipal, @Args('podId', { type: () => ID }) podId: string) {
    return this.podEventStreamService.follow(caller.tenantId, podId);
  }
}
