import { Inject, Injectable } from '@nestjs/common';
import type { PrismaClient, Tenant as TenantRow } from '@caas/db';
import { Prisma } from '@caas/db';
import { formatCidr, isPrivate, nthBlock, parseCidr } from '@caas/ipv4';
import { issueToken } from '@caas/security';
import type { ApiConfig } from '../config/api-config';
import { API_CONFIG } from '../config/api-config';
import { PRISMA } from '../common/infra/tokens';
import type { ConnectionShape, PageArgs } from '../common/pagination/connection';
import { pageQuery, toConnection } from '../common/pagination/connection';
import type { Quota, Tenant } from './dtos/tenant.dto';
import { toQuota, toTenant } from './dtos/tenant.dto';
import type { CreateTenantInput, QuotaInput } from './dtos/tenant.inputs';
import { TenantException, TenantExceptionCode } from './tenant.exception';

const SLUG = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;
const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,255}$/;
const MAX_VNI = 0xffffff;
/** Upper bounds keep a typo (an extra zero or three) from granting a tenant the whole fleet. */
const QUOTA_BOUNDS = { maxPods: 10_000, maxVcpus: 100_000, maxMemoryMiB: 100 * 1024 * 1024 } as const;

const invalid = (message: string) => new TenantException(TenantExceptionCode.INVALID_TENANT_INPUT, message);

@Injectable()
export class TenantService {
  constructor(
    @Inject(PRISMA) private readonly prisma: PrismaClient,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {}

  async get(tenantId: string): Promise<Tenant> {
    return toTenant(await this.row(tenantId));
  }

  async quota(tenantId: string): Promise<Quota> {
    return toQuota(await this.row(tenantId));
  }

  async list(args: PageArgs): Promise<ConnectionShape<Tenant>> {
    const query = pageQuery(args, this.config.GRAPHQL_MAX_PAGE_SIZE);
    const [rows, total] = await Promise.all([
      this.prisma.tenant.findMany({ where: query.after, orderBy: query.orderBy, take: query.take }),
      this.prisma.tenant.count(),
    ]);
    return toConnection(rows, query, total, toTenant);
  }

  /** Creates the tenant, its first member (OWNER) and that member's token, all or nothing. */
  async create(input: CreateTenantInput): Promise<{ tenant: Tenant; ownerToken: string }> {
    const slug = input.slug.trim();
    if (!SLUG.test(slug)) throw invalid('slug must be a lower-case DNS label (a-z, 0-9, -; at most 63).');
    const displayName = input.displayName.trim();
    if (displayName.length < 1 || displayName.length > 200) throw invalid('displayName must be 1 to 200 characters.');
    const ownerEmail = input.ownerEmail.trim().toLowerCase();
    if (!EMAIL.test(ownerEmail)) throw invalid('ownerEmail is not an e-mail address.');
    const requestedSubnet = input.subnet === undefined || input.subnet === null ? null : this.checkSubnet(input.subnet);
    const quota = this.checkQuota(input.quota ?? {});
    const issued = issueToken();

    try {
      const row = await this.prisma.$transaction(async (tx) => {
        const [{ id: networkId }] = await tx.$queryRaw<[{ id: bigint }]>`
          SELECT nextval(pg_get_serial_sequence('tenants', 'networkId')) AS id`;
        if (networkId > MAX_VNI) {
          throw new TenantException(
            TenantExceptionCode.NETWORK_IDS_EXHAUSTED,
            'No tenant network identifiers are left.',
          );
        }
        const tenant = await tx.tenant.create({
          data: {
            slug,
            displayName,
            networkId: Number(networkId),
            subnet: requestedSubnet ?? this.poolSubnet(Number(networkId)),
            egressDefault: input.egressDefault ?? undefined,
            ...quota,
          },
        });
        const owner = await tx.member.create({ data: { tenantId: tenant.id, email: ownerEmail, role: 'OWNER' } });
        await tx.apiToken.create({
          data: {
            tenantId: tenant.id,
            memberId: owner.id,
            name: 'initial owner token',
            role: 'OWNER',
            tokenHash: issued.hash,
            prefix: issued.prefix,
          },
        });
        return tenant;
      });
      return { tenant: toTenant(row), ownerToken: issued.token };
    } catch (error) {
      if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002') {
        throw new TenantException(TenantExceptionCode.SLUG_TAKEN, `A tenant with slug "${slug}" already exists.`);
      }
      throw error;
    }
  }

  async updateQuota(tenantId: string, input: QuotaInput): Promise<Tenant> {
    const quota = this.checkQuota(input);
    return this.mutate(tenantId, {}, quota, 'tenant.quota-changed');
  }

  /** Refuses the tenant's tokens at once; the outbox row lets the scheduler stop its pods. Idempotent. */
  suspend(tenantId: string): Promise<Tenant> {
    return this.mutate(
      tenantId,
      { status: 'ACTIVE' },
      { status: 'SUSPENDED', suspendedAt: new Date() },
      'tenant.suspended',
    );
  }

  unsuspend(tenantId: string): Promise<Tenant> {
    return this.mutate(
      tenantId,
      { status: 'SUSPENDED' },
      { status: 'ACTIVE', suspendedAt: null },
      'tenant.unsuspended',
    );
  }

  /**
   * Changes the tenant when it matches `when` (so racing callers change it once), bumping its generation
   * and recording an outbox row for the control plane in the same transaction. When the tenant exists but
   * no longer matches, nothing is written and its current state is returned.
   */
  private async mutate(
    tenantId: string,
    when: Prisma.TenantWhereInput,
    data: Prisma.TenantUpdateManyMutationInput,
    kind: string,
  ): Promise<Tenant> {
    const row = await this.prisma.$transaction(async (tx) => {
      const { count } = await tx.tenant.updateMany({
        where: { id: tenantId, ...when },
        data: { ...data, generation: { increment: 1 } },
      });
      const current = await tx.tenant.findUnique({ where: { id: tenantId } });
      if (current === null) throw new TenantException(TenantExceptionCode.TENANT_NOT_FOUND, 'Tenant not found.');
      if (count === 1) {
        await tx.outboxMessage.create({
          data: {
            aggregateType: 'tenant',
            aggregateId: tenantId,
            tenantId,
            generation: current.generation,
            kind,
            payload: { status: current.status },
          },
        });
      }
      return current;
    });
    return toTenant(row);
  }

  private async row(tenantId: string): Promise<TenantRow> {
    const row = await this.prisma.tenant.findUnique({ where: { id: tenantId } });
    if (row === null) throw new TenantException(TenantExceptionCode.TENANT_NOT_FOUND, 'Tenant not found.');
    return row;
  }

  private poolSubnet(networkId: number): string {
    const pool = parseCidr(this.config.TENANT_SUBNET_POOL);
    if (pool === null) throw new Error('TENANT_SUBNET_POOL is not a canonical CIDR');
    return formatCidr(nthBlock(pool, this.config.TENANT_SUBNET_PREFIX, networkId - 1));
  }

  private checkSubnet(text: string): string {
    const cidr = parseCidr(text.trim());
    if (cidr === null) throw invalid('subnet must be an IPv4 network in CIDR form, such as 10.20.0.0/16.');
    if (cidr.prefix < 16 || cidr.prefix > 28) throw invalid('subnet must be between /16 and /28.');
    if (!isPrivate(cidr)) throw invalid('subnet must be inside private address space (10/8, 172.16/12, 192.168/16).');
    return formatCidr(cidr);
  }

  private checkQuota(input: QuotaInput): Partial<Record<keyof typeof QUOTA_BOUNDS, number>> {
    const out: Partial<Record<keyof typeof QUOTA_BOUNDS, number>> = {};
    for (const key of Object.keys(QUOTA_BOUNDS) as (keyof typeof QUOTA_BOUNDS)[]) {
      const value = input[key];
      if (value === undefined || value === null) continue;
      if (value < 0 || value > QUOTA_BOUNDS[key]) throw invalid(`${key} must be between 0 and ${QUOTA_BOUNDS[key]}.`);
      out[key] = value;
    }
    return out;
  }
}
