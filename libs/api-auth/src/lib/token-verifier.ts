import { timingSafeEqual } from 'node:crypto';
import type { PrismaClient } from '@caas/db';
import { hashToken, looksLikeToken } from '@caas/security';
import type { Principal } from './principal';
import { AuthenticationError } from './principal';

export interface TokenVerifierOptions {
  /** SHA-256 of the operator's token; the token itself is never kept. */
  operatorTokenHash: Uint8Array;
  /** `lastUsedAt` is written at most this often per token. */
  lastUsedIntervalMs?: number;
  now?: () => Date;
  /** Called when the background `lastUsedAt` update fails (it never fails the request). */
  onBackgroundError?: (error: unknown) => void;
}

const BEARER = /^Bearer ([^\s]+)$/;

/**
 * Resolves an `Authorization` header to a principal with one indexed read (token joined with its
 * tenant's status). Never writes on the request path: `lastUsedAt` is refreshed in the background at
 * most once per interval.
 */
export class TokenVerifier {
  private readonly lastUsedIntervalMs: number;
  private readonly now: () => Date;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly options: TokenVerifierOptions,
  ) {
    this.lastUsedIntervalMs = options.lastUsedIntervalMs ?? 60_000;
    this.now = options.now ?? (() => new Date());
  }

  /** `null` when no credentials were presented; throws `AuthenticationError` when they are bad. */
  async verify(authorization: string | undefined): Promise<Principal | null> {
    if (authorization === undefined || authorization === '') return null;
    const token = BEARER.exec(authorization)?.[1];
    if (token === undefined || !looksLikeToken(token, 'caas')) throw new AuthenticationError('MALFORMED');
    const hash = hashToken(token);
    if (timingSafeEqual(hash, this.options.operatorTokenHash)) return { kind: 'operator' };

    const row = await this.prisma.apiToken.findUnique({
      where: { tokenHash: hash },
      select: {
        id: true,
        tenantId: true,
        role: true,
        memberId: true,
        expiresAt: true,
        revokedAt: true,
        lastUsedAt: true,
        tenant: { select: { status: true } },
      },
    });
    if (row === null) throw new AuthenticationError('UNKNOWN');
    const now = this.now();
    if (row.revokedAt !== null) throw new AuthenticationError('REVOKED');
    if (row.expiresAt !== null && row.expiresAt <= now) throw new AuthenticationError('EXPIRED');
    if (row.tenant.status !== 'ACTIVE') throw new AuthenticationError('TENANT_SUSPENDED');
    if (row.lastUsedAt === null || now.getTime() - row.lastUsedAt.getTime() >= this.lastUsedIntervalMs) {
      this.touch(row.id, now);
    }
    return { kind: 'tenant', tenantId: row.tenantId, tokenId: row.id, role: row.role, memberId: row.memberId };
  }

  /** Conditional, so several replicas racing on one token write once per interval. */
  private touch(id: string, now: Date): void {
    const staleBefore = new Date(now.getTime() - this.lastUsedIntervalMs);
    this.prisma.apiToken
      .updateMany({
        where: { id, OR: [{ lastUsedAt: null }, { lastUsedAt: { lte: staleBefore } }] },
        data: { lastUsedAt: now },
      })
      .catch((error: unknown) => this.options.onBackgroundError?.(error));
  }
}
