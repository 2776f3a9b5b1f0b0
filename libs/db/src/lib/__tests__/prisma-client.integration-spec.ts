import type { TestDatabase } from '@caas/testing';
import { createTestDatabase } from '@caas/testing';
import { createDb } from '../prisma-client';

describe('createDb (real PostgreSQL)', () => {
  let database: TestDatabase;
  beforeAll(async () => (database = await createTestDatabase({ label: 'db' })));
  afterAll(() => database?.drop());

  it('gives Prisma and plain SQL one pool, and close() ends both, twice without harm', async () => {
    const db = createDb({ url: database.url, poolSize: 2 });
    await db.prisma.tenant.create({ data: { slug: 'one', displayName: 'One', subnet: '10.1.0.0/16' } });
    const { rows } = await db.pool.query<{ slug: string }>('SELECT slug FROM tenants');
    expect(rows).toEqual([{ slug: 'one' }]);
    await db.close();
    await db.close();
    expect(db.pool.ended).toBe(true);
  });

  it('closes the pool even when Prisma never connected', async () => {
    const db = createDb({ url: database.url, poolSize: 1 });
    await db.pool.query('SELECT 1');
    await db.close();
    expect(db.pool.ended).toBe(true);
  });

  it('survives an idle connection the server kills, reporting it', async () => {
    const seen: Error[] = [];
    const db = createDb({ url: database.url, poolSize: 1, onIdleError: (e) => seen.push(e) });
    try {
      const { rows } = await db.pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      const admin = createDb({ url: database.url, poolSize: 1 });
      await admin.pool.query('SELECT pg_terminate_backend($1)', [rows[0].pid]);
      await admin.close();
      await new Promise((r) => setTimeout(r, 200));
      expect(seen.length).toBe(1);
      await expect(db.pool.query('SELECT 1 AS ok')).resolves.toMatchObject({ rows: [{ ok: 1 }] });
    } finally {
      await db.close();
    }
  });

  it('enforces the invariants the migrations add', async () => {
    const db = createDb({ url: database.url, poolSize: 1 });
    try {
      await expect(
        db.prisma.tenant.create({ data: { slug: 'neg', displayName: 'N', subnet: '10.2.0.0/16', usedPods: -1 } }),
      ).rejects.toThrow();
      await expect(
        db.prisma.tenant.create({ data: { slug: 'vni', displayName: 'V', subnet: '10.3.0.0/16', networkId: 1 << 24 } }),
      ).rejects.toThrow();
      expect(await db.prisma.tenant.count({ where: { slug: { in: ['neg', 'vni'] } } })).toBe(0);
    } finally {
      await db.close();
    }
  });
});
