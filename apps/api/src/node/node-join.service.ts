import { createHash, randomBytes } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { Redis } from 'ioredis';
import type { Node as NodeRow } from '@caas/db';
import { Prisma, PrismaClient } from '@caas/db';
import { RateLimiter } from '@caas/api-auth';
import { applyNodeUser, removeNodeUser } from '@caas/node-acl';
import type { NodeJoinResponse } from '@caas/queue-contracts';
import { nodeAclUser, nodeJoinRequestSchema, nodeKeys } from '@caas/queue-contracts';
import { hashToken } from '@caas/security';
import type { ApiConfig } from '../config/api-config';
import { API_CONFIG } from '../config/api-config';
import { PRISMA, REDIS } from '../common/infra/tokens';
import { NodeJoinException, NodeJoinExceptionCode } from './node-join.exception';

const PASSWORD_BYTES = 32;
const INVALID_TOKEN_MESSAGE = 'The join token is not valid: it is unknown, already used or expired.';

const isUniqueViolation = (error: unknown): boolean =>
  error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002';

/**
 * `POST /v1/nodes/join` (ADR-009): exchanges a one-time join token for a node identity and a Redis user confined
 * to the node's keys. Everything happens in one transaction, and the ACL user is applied before the commit: a
 * refused token, a taken name or an unreachable Redis leave nothing behind (the token stays unused).
 */
/**
 * Prisma's defaults (2 s to get a connection, 5 s to finish) fail joins when many hosts join at once (seen with 40
 * simultaneous joins under CI load: INTERNAL). A join holds its connection only for a few statements and one ACL
 * command, so waiting longer is safe.
 */
const JOIN_TRANSACTION_OPTIONS = { maxWait: 10_000, timeout: 20_000 } as const;

@Injectable()
export class NodeJoinService {
  private readonly logger = new Logger(NodeJoinService.name);
  private readonly limiter: RateLimiter;

  constructor(
    @Inject(PRISMA) private readonly prisma: PrismaClient,
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {
    this.limiter = new RateLimiter(redis, {
      limit: config.NODE_JOIN_RATE_LIMIT,
      windowMs: config.RATE_LIMIT_WINDOW_MS,
      prefix: 'caas:rl:node-join:',
    });
  }

  /** Charges one attempt to the client address; refuses when its window is used up. */
  async checkRate(clientAddress: string): Promise<void> {
    let allowed: boolean;
    try {
      allowed = (await this.limiter.hit(clientAddress)).allowed;
    } catch (error) {
      this.logger.warn(`join rate limit unavailable: ${String(error)}`);
      throw new NodeJoinException(NodeJoinExceptionCode.UNAVAILABLE, 'The control plane is unavailable; retry later.');
    }
    if (!allowed) {
      throw new NodeJoinException(NodeJoinExceptionCode.RATE_LIMITED, 'Too many join attempts; retry later.');
    }
  }

  async join(body: unknown): Promise<NodeJoinResponse> {
    const parsed = nodeJoinRequestSchema.safeParse(body);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(body)'}: ${issue.message}`);
      throw new NodeJoinException(NodeJoinExceptionCode.BAD_REQUEST, `Invalid join request: ${issues.join('; ')}`);
    }
    const request = parsed.data;
    const password = randomBytes(PASSWORD_BYTES).toString('base64url');
    const credentialHash = createHash('sha256').update(password, 'utf8').digest();
    let aclNodeId: string | null = null;

    let node: NodeRow;
    try {
      node = await this.prisma.$transaction(async (tx) => {
        const now = new Date();
        const tokenHash = hashToken(request.token);
        // Conditional: of two joins with one token, the second waits for the first's row lock, then matches nothing.
        const { count } = await tx.nodeJoinToken.updateMany({
          where: { tokenHash, usedAt: null, expiresAt: { gt: now } },
          data: { usedAt: now },
        });
        if (count !== 1) throw new NodeJoinException(NodeJoinExceptionCode.INVALID_JOIN_TOKEN, INVALID_TOKEN_MESSAGE);
        const token = await tx.nodeJoinToken.findUniqueOrThrow({ where: { tokenHash } });

        const created = await tx.node.create({
          data: {
            name: request.name,
            status: 'REGISTERED',
            capacityVcpus: request.capacity.vcpus,
            capacityMemoryMiB: request.capacity.memoryMiB,
            capacityPods: request.capacity.pods,
            capacityDiskBytes: BigInt(request.capacity.diskBytes),
            underlayAddress: request.underlayAddress,
            accelerator: request.accelerator,
            labels: token.labels ?? {},
            taints: token.taints ?? [],
            credentialHash: new Uint8Array(credentialHash),
          },
        });
        await tx.nodeJoinToken.update({ where: { id: token.id }, data: { nodeId: created.id } });
        await tx.event.create({
          data: {
            nodeId: created.id,
            reason: 'NodeJoined',
            message: `Node ${created.name} joined with join token ${token.prefix}…`,
          },
        });

        // Last, so that nothing else can fail after it: a Redis failure rolls the transaction back.
        try {
          aclNodeId = created.id;
          await applyNodeUser(this.redis, created.id, credentialHash.toString('hex'), this.config.QUEUE_PREFIX);
        } catch (error) {
          this.logger.warn(`applying the Redis user of joining node ${created.id} failed: ${String(error)}`);
          throw new NodeJoinException(
            NodeJoinExceptionCode.UNAVAILABLE,
            'The control plane could not create the node credentials; retry later.',
          );
        }
        return created;
      }, JOIN_TRANSACTION_OPTIONS);
    } catch (error) {
      // The transaction did not commit: a user applied for the node that does not exist goes too (best effort;
      // the scheduler's ACL sync would remove it anyway).
      if (aclNodeId !== null) {
        await removeNodeUser(this.redis, aclNodeId).catch((cleanup: unknown) =>
          this.logger.warn(`removing the Redis user of uncommitted node ${aclNodeId} failed: ${String(cleanup)}`),
        );
      }
      throw this.toJoinException(error);
    }

    this.logger.log(`node ${node.name} (${node.id}) joined`);
    const keys = nodeKeys(node.id, this.config.QUEUE_PREFIX);
    return {
      nodeId: node.id,
      name: node.name,
      epoch: node.epoch,
      redis: { username: nodeAclUser(node.id), password },
      queuePrefix: keys.prefix,
      keys: { desiredSet: keys.desiredSet, status: keys.status },
      heartbeatIntervalMs: this.config.NODE_HEARTBEAT_INTERVAL_MS,
      leaseGraceMs: this.config.NODE_LEASE_GRACE_MS,
    };
  }

  private toJoinException(error: unknown): NodeJoinException {
    if (error instanceof NodeJoinException) return error;
    if (isUniqueViolation(error)) {
      return new NodeJoinException(NodeJoinExceptionCode.NODE_NAME_TAKEN, 'A node with this name already exists.');
    }
    if (error instanceof Prisma.PrismaClientInitializationError || error instanceof Prisma.PrismaClientRustPanicError) {
      return new NodeJoinException(NodeJoinExceptionCode.UNAVAILABLE, 'The control plane is unavailable; retry later.');
    }
    this.logger.error(`node join failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    return new NodeJoinException(NodeJoinExceptionCode.INTERNAL, 'The join failed; retry later.');
  }
}
