import { Inject, Injectable } from '@nestjs/common';
import type { PrismaClient } from '@caas/db';
import type { TenantPrincipal } from '@caas/api-auth';
import { roleAtLeast } from '@caas/api-auth';
import { issueToken } from '@caas/security';
import type { ApiConfig } from '../config/api-config';
import { API_CONFIG } from '../config/api-config';
import { PRISMA } from '../common/infra/tokens';
import type { ConnectionShape, PageArgs } from '../common/pagination/connection';
import { pageQuery, toConnection } from '../common/pagination/connection';
import { ApiTokenException, ApiTokenExceptionCode } from './api-token.exception';
import type { ApiToken, CreateApiTokenInput, CreateApiTokenPayload } from './dtos/api-token.dto';
import { toApiToken } from './dtos/api-token.dto';

const invalid = (message: string) => new ApiTokenException(ApiTokenExceptionCode.INVALID_API_TOKEN_INPUT, message);

@Injectable()
export class ApiTokenService {
  constructor(
    @Inject(PRISMA) private readonly prisma: PrismaClient,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {}

  async list(tenantId: string, args: PageArgs): Promise<ConnectionShape<ApiToken>> {
    const query = pageQuery(args, this.config.GRAPHQL_MAX_PAGE_SIZE);
    const [rows, total] = await Promise.all([
      this.prisma.apiToken.findMany({
        where: { tenantId, ...query.after },
        orderBy: query.orderBy,
        take: query.take,
      }),
      this.prisma.apiToken.count({ where: { tenantId } }),
    ]);
    return toConnection(rows, query, total, toApiToken);
  }

  /** A caller can hand out at most its own role; the new token acts for the same member. */
  async create(caller: TenantPrincipal, input: CreateApiTokenInput): Promise<CreateApiTokenPayload> {
    const name = input.name.trim();
    if (name.length < 1 || name.length > 100) throw invalid('name must be 1 to 100 characters.');
    const expiresAt = input.expiresAt ?? null;
    if (expiresAt !== null && !(expiresAt.getUTCFullYear() <= 9999)) {
      throw invalid('expiresAt is not a date and time before the year 10000.');
    }
    if (expiresAt !== null && expiresAt.getTime() <= Date.now()) throw invalid('expiresAt must be in the future.');
    if (!roleAtLeast(caller.role, input.role)) {
      throw new ApiTokenException(
        ApiTokenExceptionCode.ROLE_ABOVE_CALLER,
        `A ${caller.role} cannot create a token with the ${input.role} role.`,
      );
    }
    const issued = issueToken();
    const row = await this.prisma.apiToken.create({
      data: {
        tenantId: caller.tenantId,
        memberId: caller.memberId,
        name,
        role: input.role,
        expiresAt,
        tokenHash: issued.hash,
        prefix: issued.prefix,
      },
    });
    return { apiToken: toApiToken(row), token: issued.token };
  }

  /** Takes effect on the next request. Revoking an already revoked token changes nothing. */
  async revoke(caller: TenantPrincipal, id: string): Promise<ApiToken> {
    const row = await this.prisma.apiToken.findFirst({ where: { id, tenantId: caller.tenantId } });
    if (row === null) throw new ApiTokenException(ApiTokenExceptionCode.API_TOKEN_NOT_FOUND, 'API token not found.');
    if (!roleAtLeast(caller.role, row.role)) {
      throw new ApiTokenException(
        ApiTokenExceptionCode.ROLE_ABOVE_CALLER,
        `A ${caller.role} cannot revoke a token with the ${row.role} role.`,
      );
    }
    if (row.revokedAt !== null) return toApiToken(row);
    const updated = await this.prisma.apiToken.update({ where: { id }, data: { revokedAt: new Date() } });
    return toApiToken(updated);
  }
}
