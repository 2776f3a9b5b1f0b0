import { Inject, Injectable } from '@nestjs/common';
import type { Node as NodeRow, PrismaClient } from '@caas/db';
import { issueToken } from '@caas/security';
import type { ApiConfig } from '../config/api-config';
import { API_CONFIG } from '../config/api-config';
import { PRISMA } from '../common/infra/tokens';
import type { ConnectionShape, PageArgs } from '../common/pagination/connection';
import { pageQuery, toConnection } from '../common/pagination/connection';
import type { CreateNodeJoinTokenPayload, Node } from './dtos/node.dto';
import { toNode, toNodeJoinToken } from './dtos/node.dto';
import type { CreateNodeJoinTokenInput } from './dtos/node.inputs';
import { NodeException, NodeExceptionCode } from './node.exception';
import { checkJoinTokenTtl, checkNodeLabels, checkTaints, JOIN_TOKEN_TTL_MINUTES } from './utils/node-labels.util';

type SchedulingChange = 'cordon' | 'uncordon' | 'drain';

/** What each operator request wants the node's flags to be, and the outbox kind announcing it. */
const SCHEDULING: Record<SchedulingChange, { flags: { cordoned: boolean; draining?: boolean }; kind: string }> = {
  cordon: { flags: { cordoned: true }, kind: 'node.cordoned' },
  // Uncordoning a draining node also stops the drain: pods already moved stay where they are.
  uncordon: { flags: { cordoned: false, draining: false }, kind: 'node.uncordoned' },
  drain: { flags: { cordoned: true, draining: true }, kind: 'node.drained' },
};

const notFound = () => new NodeException(NodeExceptionCode.NODE_NOT_FOUND, 'Node not found.');

@Injectable()
export class NodeService {
  constructor(
    @Inject(PRISMA) private readonly prisma: PrismaClient,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {}

  async list(args: PageArgs): Promise<ConnectionShape<Node>> {
    const query = pageQuery(args, this.config.GRAPHQL_MAX_PAGE_SIZE);
    const [rows, total] = await Promise.all([
      this.prisma.node.findMany({ where: query.after, orderBy: query.orderBy, take: query.take }),
      this.prisma.node.count(),
    ]);
    return toConnection(rows, query, total, toNode);
  }

  async get(id: string): Promise<Node> {
    const row = await this.prisma.node.findUnique({ where: { id } });
    if (row === null) throw notFound();
    return toNode(row);
  }

  /** A one-time join token: 256 random bits, stored as SHA-256 and a display prefix, returned once. */
  async createJoinToken(input: CreateNodeJoinTokenInput): Promise<CreateNodeJoinTokenPayload> {
    const labels = checkNodeLabels('labels', input.labels ?? []);
    const taints = checkTaints('taints', input.taints ?? []);
    const minutes = checkJoinTokenTtl(input.expiresInMinutes ?? JOIN_TOKEN_TTL_MINUTES.default);
    const issued = issueToken('caasjoin');
    const row = await this.prisma.nodeJoinToken.create({
      data: {
        tokenHash: issued.hash,
        prefix: issued.prefix,
        labels,
        taints: taints.map(({ key, value, effect }) => ({ key, value, effect })),
        expiresAt: new Date(Date.now() + minutes * 60_000),
      },
    });
    return { token: issued.token, joinToken: toNodeJoinToken(row) };
  }

  cordon(id: string): Promise<Node> {
    return this.changeScheduling(id, 'cordon');
  }

  uncordon(id: string): Promise<Node> {
    return this.changeScheduling(id, 'uncordon');
  }

  drain(id: string): Promise<Node> {
    return this.changeScheduling(id, 'drain');
  }

  /**
   * Records what the operator wants; the scheduler acts on it later (no placement on a cordoned node,
   * pods moved off a draining one). In one transaction: a conditional update that changes the row only if
   * its flags differ (a repeated request is a no-op: no version bump, no outbox row, and two concurrent
   * requests change it once), the node's `desiredVersion` bumped, and an outbox row carrying that version
   * as its generation, so handlers stay idempotent on (node id, generation) across cordon/uncordon flips.
   */
  private async changeScheduling(id: string, change: SchedulingChange): Promise<Node> {
    const { flags, kind } = SCHEDULING[change];
    const differs = Object.entries(flags).map(([flag, value]) => ({ [flag]: !value }));
    const row = await this.prisma.$transaction(async (tx): Promise<NodeRow> => {
      const { count } = await tx.node.updateMany({
        where: { id, OR: differs },
        data: { ...flags, desiredVersion: { increment: 1 } },
      });
      const current = await tx.node.findUnique({ where: { id } });
      if (current === null) throw notFound();
      if (count === 1) {
        await tx.outboxMessage.create({
          data: {
            aggregateType: 'node',
            aggregateId: id,
            generation: Number(current.desiredVersion),
            kind,
            payload: {
              cordoned: current.cordoned,
              draining: current.draining,
              epoch: current.epoch,
              desiredVersion: current.desiredVersion.toString(),
            },
          },
        });
      }
      return current;
    });
    return toNode(row);
  }
}
