import { Logger } from '@nestjs/common';
import type { Event as EventRow, EventType, Prisma } from '@caas/db';
import type { PodEventBus } from '../common/events/pod-event-bus';

/**
 * Event reasons the API writes. Facts the API itself makes true are in the past tense (`Created`,
 * `Stopped` for a pod that never had a VM, `Deleted`); requests a node still has to carry out say so
 * (`StopRequested`, …). The facts that follow (`Scheduled`, `Started`, `Stopped`, …) are the scheduler's.
 */
export const POD_EVENT_REASONS = {
  created: 'Created',
  stopped: 'Stopped',
  stopRequested: 'StopRequested',
  startRequested: 'StartRequested',
  restartRequested: 'RestartRequested',
  deleteRequested: 'DeleteRequested',
  deleted: 'Deleted',
} as const;

export interface NewPodEvent {
  tenantId: string;
  /** Null when the event outlives its pod row in the same transaction (deletion). */
  podId: string | null;
  type?: EventType;
  reason: string;
  /** Never a secret value. */
  message: string;
}

export async function recordEvent(tx: Prisma.TransactionClient, event: NewPodEvent): Promise<EventRow> {
  return tx.event.create({
    data: {
      tenantId: event.tenantId,
      podId: event.podId,
      type: event.type ?? 'NORMAL',
      reason: event.reason,
      message: event.message.slice(0, 2000),
    },
  });
}

const logger = new Logger('PodEvents');

/**
 * Publishes a committed event to the pod's subscribers. Called after the commit only; a failure to publish
 * is logged, never reported to the caller (the change is committed, and the event row is the record).
 */
export async function publishEvent(bus: PodEventBus, row: EventRow, podId: string): Promise<void> {
  if (row.tenantId === null) return;
  try {
    await bus.publish({
      id: row.id.toString(),
      tenantId: row.tenantId,
      podId,
      type: row.type,
      reason: row.reason,
      message: row.message,
      createdAt: row.createdAt.toISOString(),
    });
  } catch (error) {
    logger.warn(`publishing event ${row.id} of pod ${podId} failed: ${String(error)}`);
  }
}
