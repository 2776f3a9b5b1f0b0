import { Inject, Injectable, Logger } from '@nestjs/common';
import type { PrismaClient } from '@caas/db';
import type { PodEventMessage } from '../common/events/pod-event-bus';
import { PodEventBus } from '../common/events/pod-event-bus';
import { assertId } from '../common/graphql/ids';
import { PRISMA } from '../common/infra/tokens';
import type { Event } from '../pod/dtos/event.dto';
import { assertTenantPod } from './utils/pod-access.util';
import { PushQueue } from './utils/push-queue.util';

/** Events buffered per subscriber before the oldest are dropped (the `events` query has them all). */
const MAX_BUFFERED_EVENTS = 1000;

function toEvent(message: PodEventMessage): Event {
  return {
    id: message.id,
    type: message.type,
    reason: message.reason,
    message: message.message,
    podId: message.podId,
    createdAt: new Date(message.createdAt),
  };
}

/**
 * Live events of one pod, from Redis pub/sub (`PodEventBus`): published by whichever API replica or
 * scheduler wrote the event, received by whichever replica holds the subscriber. At most once: a
 * subscriber catches up on what it missed (while disconnected, or dropped for being slow) with `events`.
 */
@Injectable()
export class PodEventStreamService {
  private readonly logger = new Logger(PodEventStreamService.name);

  constructor(
    @Inject(PRISMA) private readonly prisma: PrismaClient,
    private readonly bus: PodEventBus,
  ) {}

  /** Subscribed in Redis when this resolves: every event published afterwards is delivered. */
  async follow(tenantId: string, rawPodId: string): Promise<AsyncIterableIterator<Event>> {
    const podId = assertId(rawPodId, 'podId');
    await assertTenantPod(this.prisma, tenantId, podId);
    const queue = new PushQueue<Event>(MAX_BUFFERED_EVENTS, (dropped) => {
      if (dropped === 1 || dropped % 100 === 0) {
        this.logger.warn(`pod ${podId}: a slow subscriber lost ${dropped} event(s)`);
      }
    });
    const unsubscribe = await this.bus.subscribe(podId, (message) => {
      // The channel is the pod's; the tenant check is defence in depth against a misrouted publish.
      if (message.tenantId === tenantId) queue.push(toEvent(message));
    });
    queue.onClose(unsubscribe);
    return queue;
  }
}
