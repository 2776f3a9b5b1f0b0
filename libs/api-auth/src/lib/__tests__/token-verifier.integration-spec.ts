import type { Db } from '@caas/db';
import { createDb } from '@caas/db';
import { hashToken, issueToken } from '@caas/security';
import type { TestDatabase } from '@caas/testing';
import { createTestDatabase } from '@caas/testing';
import { AuthenticationError } from '../principal';
import { TokenVerifier } from '../token-verifier';

describe('TokenVerifier (real PostgreSQL)', () => {
  let database: TestDatabase;
  let db: Db;
  const operator = issueToken();
  let clock = new Date('2026-11-29T10:00:00Z');
  let verifier: TokenVerifier;

  const failure = async (header: string | undefined) => {
    try {
      await verifier.verify(header);
    } catch (error) {
      return error instanceof AuthenticationError ? error.failure : error;
    }
    return 'accepted';
  };

  const newToken = async (data: { expiresAt?: Date; revokedAt?: Date; suspended?: boolean } = {}) => {
    const tenant = await db.prisma.tenant.create({
      data: {
        slug: `t-${Math.random().toString(36).slice(2, 10)}`,
        displayName: 'T',
        subnet: '10.0.0.0/16',
        status: data.suspended ? 'SUSPENDED' : 'ACTIVE',
      },
    });
    const issued = issueToken();
    const row = await db.prisma.apiToken.create({
      data: {
        tenantId: tenant.id,
        name: 't',
        role: 'MEMBER',
        tokenHash: issued.hash,
        prefix: issued.prefix,
        expiresAt: data.expiresAt,
        revokedAt: data.revokedAt,
      },
    });
    return { token: issued.token, id: row.id, tenantId: tenant.id };
  };

  beforeAll(async () => {
    database = await createTestDatabase({ label: 'verifier' });
    db = createDb({ url: database.url, poolSize: 2 });
    verifier = new TokenVerifier(db.pool, { operatorTokenHash: operator.hash, now: () => clock });
  });
  afterAll(async () => {
    await db?.close();
    await database?.drop();
  });

  it('gives no principal without credentials and the operator for the operator token', async () => {
    await expect(verifier.verify(undefined)).resolves.toBeNull();
    await expect(verifier.verify(`Bearer ${operator.token}`)).resolves.toEqual({ kind: 'operator' });
  });

  it('resolves a tenant token to its tenant, role and token id', async () => {
    const { token, id, tenantId } = await newToken();
    await expect(verifier.verify(`Bearer ${token}`)).resolves.toEqual({
      kind: 'tenant',
      tenantId,
      tokenId: id,
      role: 'MEMBER',
      memberId: null,
    });
  });

  it('tells malformed, unknown, revoked, expired and suspended tokens apart', async () => {
    expect(await failure('Basic abc')).toBe('MALFORMED');
    expect(await failure(`Bearer ${issueToken().token}x`)).toBe('MALFORMED');
    expect(await failure(`Bearer ${issueToken().token}`)).toBe('UNKNOWN');
    expect(await failure(`Bearer ${(await newToken({ revokedAt: clock })).token}`)).toBe('REVOKED');
    expect(await failure(`Bearer ${(await newToken({ expiresAt: clock })).token}`)).toBe('EXPIRED');
    expect(await failure(`Bearer ${(await newToken({ suspended: true })).token}`)).toBe('TENANT_SUSPENDED');
    const later = await newToken({ expiresAt: new Date(clock.getTime() + 1000) });
    expect(await failure(`Bearer ${later.token}`)).toBe('accepted');
  });

  it('writes lastUsedAt at most once per interval, never on every request', async () => {
    const { token, id } = await newToken();
    const lastUsed = async () => {
      // The write happens in the background: wait until it has landed (or clearly not).
      await new Promise((r) => setTimeout(r, 100));
      return (await db.prisma.apiToken.findUniqueOrThrow({ where: { id } })).lastUsedAt?.toISOString() ?? null;
    };
    await verifier.verify(`Bearer ${token}`);
    const first = await lastUsed();
    expect(first).toBe(clock.toISOString());
    clock = new Date(clock.getTime() + 30_000);
    for (let i = 0; i < 5; i++) await verifier.verify(`Bearer ${token}`);
    expect(await lastUsed()).toBe(first);
    clock = new Date(clock.getTime() + 30_000);
    await verifier.verify(`Bearer ${token}`);
    expect(await lastUsed()).toBe(clock.toISOString());
  });

  it('never stores the token itself', async () => {
    const { token, id } = await newToken();
    const [row] = await db.pool
      .query<Record<string, unknown>>({ text: 'SELECT * FROM api_tokens WHERE id = $1', values: [id] })
      .then((r) => r.rows);
    expect(JSON.stringify(row)).not.toContain(token.slice(5));
    expect(Buffer.from(row.tokenHash as Buffer).equals(Buffer.from(hashToken(token)))).toBe(true);
  });
});
