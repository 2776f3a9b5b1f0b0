import { Inject, Injectable, Logger } from '@nestjs/common';
import type { Event as EventRow, Prisma, PrismaClient } from '@caas/db';
import { PodEventBus } from '../common/events/pod-event-bus';
import { PRISMA } from '../common/infra/tokens';
import type { Pod, PodRowWithNode } from './dtos/pod.dto';
import { NODE_NAME_ONLY, toPod } from './dtos/pod.dto';
import type { PodAction, PodChange } from './pod-state-machine';
import { decide } from './pod-state-machine';
import { POD_EVENT_REASONS, publishEvent, recordEvent } from './pod-events';
import { PodException, PodExceptionCode } from './pod.exception';
import { POD_TRANSACTION_OPTIONS, podNotFound } from './pod.service';
import { releaseQuota } from './tenant-quota';

interface Applied {
  pod: Pod;
  event: EventRow;
}

/** Outbox kinds of the API's pod changes (the relay routes them; handlers are idempotent on (id, generation)). */
const OUTBOX_KIND: Record<PodChange['transition'], string> = {
  12: 'pod.desired-state-changed',
  13: 'pod.desired-state-changed',
  15: 'pod.desired-state-changed',
  16: 'pod.restart-requested',
  17: 'pod.desired-state-changed',
  19: 'pod.deleted',
};

/**
 * Reads and decisions per request before CONFLICT. A placed pod moves on its own (SCHEDULED → STARTING → RUNNING,
 * placement of a waiting pod as capacity frees), so losing one race is common; losing four in a row is not.
 */
const MAX_ATTEMPTS = 4;

/**
 * stopPod, startPod, restartPod and deletePod: the API's rows of ADR-002. Each reads the pod, decides
 * (no-op, CONFLICT or a transition), then writes the change, its outbox row and an event in one
 * transaction, conditional on the phase and generation it read. Losing that race re-reads and decides
 * again, up to MAX_ATTEMPTS times in all, then CONFLICT. Nothing here waits for a node.
 */
@Injectable()
export class PodLifecycleService {
  private readonly logger = new Logger(PodLifecycleService.name);

  constructor(
    @Inject(PRISMA) private readonly prisma: PrismaClient,
    private readonly events: PodEventBus,
  ) {}

  stop(tenantId: string, podId: string): Promise<Pod> {
    return this.apply(tenantId, podId, 'stop');
  }

  start(tenantId: string, podId: string): Promise<Pod> {
    return this.apply(tenantId, podId, 'start');
  }

  restart(tenantId: string, podId: string): Promise<Pod> {
    return this.apply(tenantId, podId, 'restart');
  }

  /** Returns the pod as of the deletion: DELETING while a VM is torn down, else the removed pod's last state. */
  delete(tenantId: string, podId: string): Promise<Pod> {
    return this.apply(tenantId, podId, 'delete');
  }

  private async apply(tenantId: string, podId: string, action: PodAction): Promise<Pod> {
    for (let attempt = 1; ; attempt++) {
      const row = await this.prisma.pod.findFirst({ where: { id: podId, tenantId }, include: NODE_NAME_ONLY });
      if (row === null) throw podNotFound();
      const decision = decide(action, row.phase, row.desiredState);
      if (decision.kind === 'noop') return toPod(row);
      if (decision.kind === 'conflict') throw new PodException(PodExceptionCode.INVALID_POD_STATE, decision.message);

      const applied = await this.prisma.$transaction(
        (tx) => (decision.change.transition === 19 ? this.remove(tx, row) : this.change(tx, row, decision.change)),
        POD_TRANSACTION_OPTIONS,
      );
      if (applied !== null) {
        await publishEvent(this.events, applied.event, row.id);
        return applied.pod;
      }
      if (attempt >= MAX_ATTEMPTS) {
        throw new PodException(
          PodExceptionCode.INVALID_POD_STATE,
          'The pod changed while this request was applied; read it again and retry.',
        );
      }
    }
  }

  /** 12, 13, 15, 16, 17: the row stays; desired state and/or phase change, the generation is bumped. */
  private async change(tx: Prisma.TransactionClient, row: PodRowWithNode, change: PodChange): Promise<Applied | null> {
    const generation = row.generation + 1;
    const data: Prisma.PodUpdateManyMutationInput = { generation };
    if (change.desiredState !== null) data.desiredState = change.desiredState;
    if (change.phase !== null) data.phase = change.phase;
    let reason: string;
    let message: string;
    switch (change.transition) {
      case 12:
        Object.assign(data, { reason: null, message: null });
        reason = POD_EVENT_REASONS.stopped;
        message = `Pod ${row.name} stopped before it was placed on a node; it keeps its address and quota.`;
        break;
      case 13:
        reason = POD_EVENT_REASONS.stopRequested;
        message = `Stop of pod ${row.name} requested; its node shuts the VM down.`;
        break;
      case 15:
        // A fresh run: it is placed again (possibly elsewhere) with the image digests it recorded.
        Object.assign(data, {
          reason: null,
          message: null,
          scheduledAt: null,
          startedAt: null,
          finishedAt: null,
          accelerator: null,
        });
        reason = POD_EVENT_REASONS.startRequested;
        message = `Start of pod ${row.name} requested; it waits for placement.`;
        break;
      case 16:
        // Recorded as state in the spec (ADR-002, Consequences), so it reaches the node with its desired set.
        data.spec = { ...specObject(row.spec), restartRequest: { generation, at: new Date().toISOString() } };
        reason = POD_EVENT_REASONS.restartRequested;
        message = `Restart of the containers of pod ${row.name} requested.`;
        break;
      case 17:
        reason = POD_EVENT_REASONS.deleteRequested;
        message = `Deletion of pod ${row.name} requested; its node destroys the VM, then the pod is removed.`;
        break;
      case 19:
        throw new Error('transition 19 removes the row');
    }
    const { count } = await tx.pod.updateMany({
      where: { id: row.id, tenantId: row.tenantId, generation: row.generation, phase: row.phase },
      data,
    });
    if (count !== 1) return null;
    if (change.transition === 15) {
      await tx.container.updateMany({
        where: { podId: row.id },
        data: {
          phase: 'WAITING',
          exitCode: null,
          signal: null,
          reason: null,
          startedAt: null,
          finishedAt: null,
          restartCount: 0,
        },
      });
    }
    const updated = await tx.pod.findUniqueOrThrow({ where: { id: row.id }, include: NODE_NAME_ONLY });
    await this.outbox(tx, updated, change, row.phase);
    const event = await recordEvent(tx, { tenantId: row.tenantId, podId: row.id, reason, message });
    return { pod: toPod(updated), event };
  }

  /** 19: no VM exists, so the pod goes now, with its containers, its address (cascade) and its quota. */
  private async remove(tx: Prisma.TransactionClient, row: PodRowWithNode): Promise<Applied | null> {
    const containers = await tx.container.findMany({ where: { podId: row.id }, orderBy: { ordinal: 'asc' } });
    const { count } = await tx.pod.deleteMany({
      where: { id: row.id, tenantId: row.tenantId, generation: row.generation, phase: row.phase },
    });
    if (count !== 1) return null;
    await releaseQuota(tx, row.tenantId, row, (problem) => this.logger.error(problem));
    const removed: PodRowWithNode = { ...row, desiredState: 'DELETED', generation: row.generation + 1 };
    await this.outbox(tx, removed, { transition: 19, phase: null, desiredState: 'DELETED' }, row.phase);
    // The pod row is gone, so the event is linked to the tenant only (as the pod's older events now are).
    const event = await recordEvent(tx, {
      tenantId: row.tenantId,
      podId: null,
      reason: POD_EVENT_REASONS.deleted,
      message: `Pod ${row.name} deleted; its address ${row.ip ?? '(none)'} and its quota were released.`,
    });
    return { pod: toPod(removed, containers), event };
  }

  private async outbox(
    tx: Prisma.TransactionClient,
    pod: PodRowWithNode,
    change: PodChange,
    previousPhase: string,
  ): Promise<void> {
    await tx.outboxMessage.create({
      data: {
        aggregateType: 'pod',
        aggregateId: pod.id,
        tenantId: pod.tenantId,
        generation: pod.generation,
        kind: OUTBOX_KIND[change.transition],
        payload: {
          transition: change.transition,
          previousPhase,
          phase: change.transition === 19 ? null : pod.phase,
          desiredState: pod.desiredState,
          nodeId: pod.nodeId,
          nodeEpoch: pod.nodeEpoch,
          ...(change.transition === 19 && { releasedIp: pod.ip }),
        },
      },
    });
  }
}

function specObject(spec: Prisma.JsonValue): Prisma.JsonObject {
  return spec !== null && typeof spec === 'object' && !Array.isArray(spec) ? spec : {};
}
