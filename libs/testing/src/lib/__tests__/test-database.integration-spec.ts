import { Client } from 'pg';
import { createEmptyDatabase, createTestDatabase } from '../test-database';
import type { TestDatabase } from '../test-database';
import { testDatabaseAdminUrl } from '../postgres-admin';
import { templateDatabaseName } from '../template-database';

// The first call may build the template (`prisma migrate deploy`, ~12 s here).
jest.setTimeout(180_000);

async function query<T extends Record<string, unknown>>(url: string, sql: string, params: unknown[] = []) {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

async function databaseRow(name: string) {
  const rows = await query<{ datname: string; datallowconn: boolean }>(
    testDatabaseAdminUrl(),
    'SELECT datname, datallowconn FROM pg_database WHERE datname = $1',
    [name],
  );
  return rows[0];
}

describe('createTestDatabase', () => {
  const created: TestDatabase[] = [];

  afterAll(async () => {
    await Promise.all(created.map((db) => db.drop()));
  });

  it('gives parallel callers independent, migrated databases cloned from one template', async () => {
    const [a, b] = await Promise.all([createTestDatabase(), createTestDatabase({ label: 'Second One' })]);
    created.push(a, b);

    expect(a.name).not.toBe(b.name);
    expect(a.name).toMatch(/^caas_test_[0-9a-f]{12}$/);
    expect(b.name).toMatch(/^caas_test_second_one_[0-9a-f]{12}$/);
    expect(new URL(a.url).pathname).toBe(`/${a.name}`);

    for (const db of [a, b]) {
      const tables = await query<{ table_name: string }>(
        db.url,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
      );
      expect(tables.map((t) => t.table_name)).toEqual(
        expect.arrayContaining(['tenants', 'pods', '_prisma_migrations']),
      );
    }

    await query(
      a.url,
      `INSERT INTO tenants (slug, "displayName", subnet, "updatedAt") VALUES ('only-in-a', 'A', '10.0.0.0/16', now())`,
    );
    expect(await query(a.url, 'SELECT slug FROM tenants')).toEqual([{ slug: 'only-in-a' }]);
    expect(await query(b.url, 'SELECT slug FROM tenants')).toEqual([]);

    // The template is this role's, complete (final name), closed to connections, and its clones are not.
    const [{ role }] = await query<{ role: string }>(testDatabaseAdminUrl(), 'SELECT current_user AS role');
    const templateName = templateDatabaseName(role);
    expect(await databaseRow(templateName)).toEqual({ datname: templateName, datallowconn: false });
    expect(await databaseRow(`${templateName}_build`)).toBeUndefined();
    expect((await databaseRow(a.name))?.datallowconn).toBe(true);

    // Everything in the clone belongs to the role that asked for it (a clone keeps the template's owners).
    const owners = await query<{ tableowner: string }>(
      a.url,
      "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'",
    );
    expect(owners).toEqual([{ tableowner: role }]);
  });

  it('drop() ends open connections and removes the database; a second drop() is harmless', async () => {
    const db = await createTestDatabase();
    created.push(db);
    const lingering = new Client({ connectionString: db.url });
    lingering.on('error', () => undefined); // terminated by drop()
    await lingering.connect();

    await db.drop();
    expect(await databaseRow(db.name)).toBeUndefined();
    await expect(db.drop()).resolves.toBeUndefined();
    await lingering.end().catch(() => undefined);
  });

  it('createEmptyDatabase gives a database without any table', async () => {
    const db = await createEmptyDatabase({ label: 'empty' });
    created.push(db);
    expect(
      await query(db.url, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"),
    ).toEqual([]);
  });
});
