import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { QueueName } from '@caas/queue-contracts';
import type { ControlPlaneQueues } from '../outbox/outbox-relay';

/**
 * One BullMQ `Queue` (producer side) per control-plane queue, sharing the caller's connection (which BullMQ
 * then leaves open on close). Every job is added with `jobOptionsFor(job)`, so no queue-level defaults here.
 */
export function createControlPlaneQueues(connection: Redis, prefix: string, log: Logger): ControlPlaneQueues {
  const create = (name: QueueName): Queue => {
    const queue = new Queue(name, { connection, prefix });
    // Without a listener an 'error' event would crash the process; the failing call reports it anyway.
    queue.on('error', (error) => log.warn({ err: error, queue: name }, 'queue connection error'));
    return queue;
  };
  return { [QueueName.Placement]: create(QueueName.Placement) };
}

export async function closeControlPlaneQueues(queues: ControlPlaneQueues): Promise<void> {
  await Promise.allSettled(Object.values(queues).map((queue) => queue.close()));
}
