import { Args, Query, Resolver } from '@nestjs/graphql';
import type { TenantPrincipal } from '@caas/api-auth';
import { TenantRole } from '../common/auth/access.decorator';
import { CurrentTenant } from '../common/auth/principal.decorator';
import { assertId } from '../common/graphql/ids';
import { Connection } from '../common/pagination/connection';
import { Event } from './dtos/event.dto';
import { EventsArgs } from './dtos/pod.inputs';
import { EventService } from './event.service';

const EventConnection = Connection(Event, 'Event');

@Resolver(() => Event)
export class EventResolver {
  constructor(private readonly eventService: EventService) {}

  @TenantRole('VIEWER')
  @Query(() => EventConnection, { description: "The tenant's events, newest first; with podId, that pod's only." })
  events(@CurrentTenant() caller: TenantPrincipal, @Args() args: EventsArgs) {
    const podId = args.podId === undefined || args.podId === null ? null : assertId(args.podId, 'podId');
    return this.eventService.list(caller.tenantId, args, podId);
  }
}
