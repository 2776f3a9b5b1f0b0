import { Inject, Injectable } from '@nestjs/common';
import type { NetworkPolicy as NetworkPolicyRow, PrismaClient } from '@caas/db';
import { Prisma } from '@caas/db';
import type { NormalizedNetworkPolicy } from '@caas/network-policy-model';
import { formatIssues, normalizeNetworkPolicy } from '@caas/network-policy-model';
import type { ApiConfig } from '../config/api-config';
import { API_CONFIG } from '../config/api-config';
import { PRISMA } from '../common/infra/tokens';
import type { ConnectionShape, PageArgs } from '../common/pagination/connection';
import { pageQuery, toConnection } from '../common/pagination/connection';
import type { NetworkPolicy } from './dtos/network-policy.dto';
import { toNetworkPolicy } from './dtos/network-policy.dto';
import type { CreateNetworkPolicyInput, UpdateNetworkPolicyInput } from './dtos/network-policy.inputs';
import { NetworkPolicyException, NetworkPolicyExceptionCode } from './network-policy.exception';

/** Outbox `aggregateType` and kinds: the compiler recompiles the tenant's policies on each (idempotent on generation). */
export const NETWORK_POLICY_AGGREGATE = 'network-policy';
export type NetworkPolicyOutboxKind = 'network-policy.created' | 'network-policy.updated' | 'network-policy.deleted';

/** A delete that keeps losing the race against updates gives up after this many reads. */
const DELETE_ATTEMPTS = 3;

type Tx = Prisma.TransactionClient;

const notFound = () =>
  new NetworkPolicyException(NetworkPolicyExceptionCode.NETWORK_POLICY_NOT_FOUND, 'Network policy not found.');

const changedConcurrently = () =>
  new NetworkPolicyException(
    NetworkPolicyExceptionCode.NETWORK_POLICY_CHANGED_CONCURRENTLY,
    'The network policy was changed by another request meanwhile; nothing was written. Read it again and retry.',
  );

/** Validates and normalises, or refuses with every problem found, each naming its field. */
function normalize(input: CreateNetworkPolicyInput): NormalizedNetworkPolicy {
  const result = normalizeNetworkPolicy(input);
  if (!result.ok) {
    throw new NetworkPolicyException(
      NetworkPolicyExceptionCode.INVALID_NETWORK_POLICY_INPUT,
      formatIssues(result.issues, result.omitted),
    );
  }
  return result.policy;
}

/** The columns a normalised policy is stored in (docs/adr-004-network-policy-model.md). */
function columns(policy: NormalizedNetworkPolicy) {
  const json = (value: unknown) => value as Prisma.InputJsonValue;
  return {
    name: policy.name,
    podSelector: json(policy.podSelector),
    policyTypes: policy.policyTypes,
    ingress: json(policy.ingress),
    egress: json(policy.egress),
    deny: json(policy.deny),
  };
}

/** Written in the transaction of the change it announces. */
async function announce(tx: Tx, row: NetworkPolicyRow, kind: NetworkPolicyOutboxKind): Promise<void> {
  await tx.outboxMessage.create({
    data: {
      aggregateType: NETWORK_POLICY_AGGREGATE,
      aggregateId: row.id,
      tenantId: row.tenantId,
      generation: row.generation,
      kind,
      payload: { name: row.name },
    },
  });
}

function isUniqueViolation(error: unknown): boolean {
  return error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002';
}

const nameTaken = (name: string) =>
  new NetworkPolicyException(
    NetworkPolicyExceptionCode.NETWORK_POLICY_NAME_TAKEN,
    `A network policy named "${name}" already exists in this tenant.`,
  );

@Injectable()
export class NetworkPolicyService {
  constructor(
    @Inject(PRISMA) private readonly prisma: PrismaClient,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {}

  async list(tenantId: string, args: PageArgs): Promise<ConnectionShape<NetworkPolicy>> {
    const query = pageQuery(args, this.config.GRAPHQL_MAX_PAGE_SIZE);
    const [rows, total] = await Promise.all([
      this.prisma.networkPolicy.findMany({
        where: { tenantId, ...query.after },
        orderBy: query.orderBy,
        take: query.take,
      }),
      this.prisma.networkPolicy.count({ where: { tenantId } }),
    ]);
    return toConnection(rows, query, total, toNetworkPolicy);
  }

  async get(tenantId: string, id: string): Promise<NetworkPolicy> {
    return toNetworkPolicy(await this.row(tenantId, id));
  }

  /** Generation 1, with its outbox row, in one transaction. */
  async create(tenantId: string, input: CreateNetworkPolicyInput): Promise<NetworkPolicy> {
    const policy = normalize(input);
    try {
      const row = await this.prisma.$transaction(async (tx) => {
        const created = await tx.networkPolicy.create({ data: { tenantId, ...columns(policy), generation: 1 } });
        await announce(tx, created, 'network-policy.created');
        return created;
      });
      return toNetworkPolicy(row);
    } catch (error) {
      throw isUniqueViolation(error) ? nameTaken(policy.name) : error;
    }
  }

  /**
   * Replaces the whole spec, conditional on the generation read: of two concurrent updates one wins and the
   * other gets CONFLICT, so no update is lost silently and each committed one has its own generation and
   * outbox row.
   */
  async update(tenantId: string, id: string, input: UpdateNetworkPolicyInput): Promise<NetworkPolicy> {
    const policy = normalize(input);
    const current = await this.row(tenantId, id);
    let row: NetworkPolicyRow | null;
    try {
      row = await this.prisma.$transaction(async (tx) => {
        const { count } = await tx.networkPolicy.updateMany({
          where: { id, tenantId, generation: current.generation },
          data: { ...columns(policy), generation: current.generation + 1 },
        });
        if (count !== 1) return null;
        const updated = await tx.networkPolicy.findUniqueOrThrow({ where: { id } });
        await announce(tx, updated, 'network-policy.updated');
        return updated;
      });
    } catch (error) {
      throw isUniqueViolation(error) ? nameTaken(policy.name) : error;
    }
    if (row === null) {
      await this.row(tenantId, id); // deleted meanwhile: NOT_FOUND
      throw changedConcurrently();
    }
    return toNetworkPolicy(row);
  }

  /**
   * Deletes the policy and returns it as it was, with the generation of its deletion (the one the outbox row
   * announces). Conditional on the generation read, so the announced generation is always a new one.
   */
  async delete(tenantId: string, id: string): Promise<NetworkPolicy> {
    for (let attempt = 0; attempt < DELETE_ATTEMPTS; attempt++) {
      const current = await this.row(tenantId, id);
      const tombstone = { ...current, generation: current.generation + 1 };
      const deleted = await this.prisma.$transaction(async (tx) => {
        const { count } = await tx.networkPolicy.deleteMany({
          where: { id, tenantId, generation: current.generation },
        });
        if (count !== 1) return false;
        await announce(tx, tombstone, 'network-policy.deleted');
        return true;
      });
      if (deleted) return toNetworkPolicy(tombstone);
    }
    throw changedConcurrently();
  }

  private async row(tenantId: string, id: string): Promise<NetworkPolicyRow> {
    const row = await this.prisma.networkPolicy.findFirst({ where: { id, tenantId } });
    if (row === null) throw notFound();
    return row;
  }
}
