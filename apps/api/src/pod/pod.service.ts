import { Inject, Injectable } from '@nestjs/common';
import type { PrismaClient } from '@caas/db';
import { Prisma } from '@caas/db';
import { SecretBox, podEnvSecretContext } from '@caas/security';
import { PodEventBus } from '../common/events/pod-event-bus';
import { PRISMA } from '../common/infra/tokens';
import type { ApiConfig } from '../config/api-config';
import { API_CONFIG } from '../config/api-config';
import type { ConnectionShape } from '../common/pagination/connection';
import { pageQuery, toConnection } from '../common/pagination/connection';
import type { Pod, StoredEnvVar } from './dtos/pod.dto';
import { NODE_NAME_ONLY, toPod } from './dtos/pod.dto';
import type { CreatePodInput, PodsArgs } from './dtos/pod.inputs';
import { allocatePodAddress } from './ip-allocation';
import type { ContainerSpec } from './pod-input';
import { checkLabels, validateCreatePodInput } from './pod-input';
import { POD_EVENT_REASONS, publishEvent, recordEvent } from './pod-events';
import { PodException, PodExceptionCode } from './pod.exception';
import { chargeQuota } from './tenant-quota';

/** Interactive transactions wait this long for a connection and may run this long (a burst queues on one tenant row). */
export const POD_TRANSACTION_OPTIONS = { maxWait: 10_000, timeout: 20_000 } as const;

export const podNotFound = () => new PodException(PodExceptionCode.POD_NOT_FOUND, 'Pod not found.');

@Injectable()
export class PodService {
  constructor(
    @Inject(PRISMA) private readonly prisma: PrismaClient,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
    private readonly secrets: SecretBox,
    private readonly events: PodEventBus,
  ) {}

  async get(tenantId: string, id: string): Promise<Pod> {
    const row = await this.prisma.pod.findFirst({ where: { id, tenantId }, include: NODE_NAME_ONLY });
    if (row === null) throw podNotFound();
    return toPod(row);
  }

  /** The tenant's pods, oldest first; with a selector, only those carrying every label of it. */
  async list(tenantId: string, args: PodsArgs): Promise<ConnectionShape<Pod>> {
    const query = pageQuery(args, this.config.GRAPHQL_MAX_PAGE_SIZE);
    const selector =
      args.labelSelector === undefined || args.labelSelector === null
        ? {}
        : checkLabels('labelSelector.matchLabels', args.labelSelector.matchLabels);
    const where: Prisma.PodWhereInput = {
      tenantId,
      AND: Object.entries(selector).map(([key, value]) => ({ labels: { path: [key], equals: value } })),
    };
    const [rows, total] = await Promise.all([
      this.prisma.pod.findMany({
        where: { ...where, ...query.after },
        orderBy: query.orderBy,
        take: query.take,
        include: NODE_NAME_ONLY,
      }),
      this.prisma.pod.count({ where }),
    ]);
    return toConnection(rows, query, total, (row) => toPod(row));
  }

  /**
   * ADR-002 transition 1, in one transaction: charge the quota (the conditional update that row-locks the
   * tenant), write the pod, give it the lowest free address, its containers (secret env values sealed),
   * an event and the outbox row. Nothing is written when any step refuses.
   */
  async create(tenantId: string, input: CreatePodInput): Promise<Pod> {
    const spec = validateCreatePodInput(input);
    try {
      const { pod, event } = await this.prisma.$transaction(async (tx) => {
        const subnet = await chargeQuota(tx, tenantId, spec);
        const row = await tx.pod.create({
          data: {
            tenantId,
            name: spec.name,
            labels: spec.labels,
            vcpus: spec.vcpus,
            memoryMiB: spec.memoryMiB,
            restartPolicy: spec.restartPolicy,
            spec: { nodeSelector: spec.nodeSelector },
            phase: 'PENDING',
            desiredState: 'RUNNING',
            generation: 1,
          },
        });
        const ip = await allocatePodAddress(tx, tenantId, row.id, subnet);
        await tx.container.createMany({
          data: spec.containers.map((container, ordinal) => ({
            podId: row.id,
            ordinal,
            name: container.name,
            image: container.image,
            command: container.command,
            args: container.args,
            env: this.storedEnv(tenantId, row.id, container),
            workingDir: container.workingDir,
            user: container.user,
            cpuLimitMillis: container.cpuLimitMillis,
            memoryLimitMiB: container.memoryLimitMiB,
          })),
        });
        const count = spec.containers.length;
        const event = await recordEvent(tx, {
          tenantId,
          podId: row.id,
          reason: POD_EVENT_REASONS.created,
          message:
            `Pod ${spec.name} created: ${count} container${count === 1 ? '' : 's'}, ${spec.vcpus} vCPU, ` +
            `${spec.memoryMiB} MiB, address ${ip}.`,
        });
        await tx.outboxMessage.create({
          data: {
            aggregateType: 'pod',
            aggregateId: row.id,
            tenantId,
            generation: row.generation,
            kind: 'pod.created',
            payload: {
              phase: row.phase,
              desiredState: row.desiredState,
              vcpus: row.vcpus,
              memoryMiB: row.memoryMiB,
              ip,
            },
          },
        });
        return { pod: { ...row, ip, node: null }, event };
      }, POD_TRANSACTION_OPTIONS);
      await publishEvent(this.events, event, pod.id);
      return toPod(pod);
    } catch (error) {
      // The only unique constraint a validated pod can hit: (tenantId, name). Addresses conflict quietly.
      if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002') {
        throw new PodException(PodExceptionCode.POD_NAME_TAKEN, `A pod named "${spec.name}" already exists.`);
      }
      throw error;
    }
  }

  /** Plain values as they are; secret ones sealed for this tenant, pod, container and name, never stored in clear. */
  private storedEnv(tenantId: string, podId: string, container: ContainerSpec): StoredEnvVar[] {
    return container.env.map((entry) =>
      entry.secret
        ? {
            name: entry.name,
            secret: true,
            ciphertext: Buffer.from(
              this.secrets.seal(entry.value, podEnvSecretContext(tenantId, podId, container.name, entry.name)),
            ).toString('base64'),
          }
        : { name: entry.name, value: entry.value },
    );
  }
}
