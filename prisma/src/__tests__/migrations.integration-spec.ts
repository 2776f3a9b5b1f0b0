import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { createEmptyDatabase, repoRoot, runPrismaCli, testDatabaseAdminUrl } from '@caas/testing';
import type { TestDatabase } from '@caas/testing';

// Every Prisma CLI call takes ~3–15 s here (the JS schema engine keeps a 10 s timer alive after `migrate deploy`).
jest.setTimeout(240_000);

const EXPECTED_TABLES = [
  '_prisma_migrations',
  'api_tokens',
  'containers',
  'events',
  'ip_allocations',
  'members',
  'network_policies',
  'node_join_tokens',
  'nodes',
  'outbox',
  'pods',
  'policy_counters',
  'registry_credentials',
  'tenants',
].sort();

async function rows<T extends Record<string, unknown>>(url: string, sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}

interface Run {
  code: number | null;
  output: string;
}

function checkDrift(args: string[] = []): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot(), 'prisma', 'scripts', 'check-drift.mjs'), ...args], {
      cwd: repoRoot(),
      // The script's temporary database goes to the same server as the other test databases.
      env: { ...process.env, DATABASE_URL: testDatabaseAdminUrl(), CHECKPOINT_DISABLE: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** The temporary database the script announced must be gone once it has finished. */
async function expectTemporaryDatabaseDropped(run: Run): Promise<void> {
  const name = /temporary database (\S+)\)/.exec(run.output)?.[1];
  expect(name).toBeDefined();
  const left = await rows(testDatabaseAdminUrl(), 'SELECT 1 FROM pg_database WHERE datname = $1', [name]);
  expect(left).toEqual([]);
}

describe('prisma migrate deploy on an empty database', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createEmptyDatabase({ label: 'migrate' });
  });
  afterAll(() => db?.drop());

  it('applies every migration and creates every table of the schema', async () => {
    const deploy = await runPrismaCli(['migrate', 'deploy'], { databaseUrl: db.url });
    expect(deploy.stdout).toContain('All migrations have been successfully applied.');
    expect(deploy.code).toBe(0);

    const tables = await rows<{ table_name: string }>(
      db.url,
      `SELECT table_name FROM information_schema.tables
        WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name`,
    );
    expect(tables.map((t) => t.table_name).sort()).toEqual(EXPECTED_TABLES);

    const migrations = await rows<{ migration_name: string; finished: boolean; rolled_back: boolean }>(
      db.url,
      `SELECT migration_name, finished_at IS NOT NULL AS finished, rolled_back_at IS NOT NULL AS rolled_back
         FROM _prisma_migrations ORDER BY migration_name`,
    );
    expect(migrations.length).toBeGreaterThan(0);
    expect(migrations.every((m) => m.finished && !m.rolled_back)).toBe(true);
    expect(migrations[0].migration_name).toMatch(/_init$/);
  });

  it('creates the key constraints', async () => {
    const indexes = await rows<{ indexname: string; indexdef: string }>(
      db.url,
      `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'`,
    );
    const def = (name: string) => indexes.find((i) => i.indexname === name)?.indexdef;

    expect(def('tenants_networkId_key')).toMatch(
      /^CREATE UNIQUE INDEX .* ON public\.tenants USING btree \("networkId"\)$/,
    );
    expect(def('tenants_slug_key')).toMatch(/^CREATE UNIQUE INDEX .* \(slug\)$/);
    expect(def('api_tokens_tokenHash_key')).toMatch(/^CREATE UNIQUE INDEX .* ON public\.api_tokens .*\("tokenHash"\)$/);
    expect(def('node_join_tokens_tokenHash_key')).toMatch(/^CREATE UNIQUE INDEX .*\("tokenHash"\)$/);
    expect(def('ip_allocations_podId_key')).toMatch(/^CREATE UNIQUE INDEX .*\("podId"\)$/);
    expect(def('pods_tenantId_name_key')).toMatch(/^CREATE UNIQUE INDEX .*\("tenantId", name\)$/);

    const ipKey = await rows<{ column_name: string }>(
      db.url,
      `SELECT k.column_name FROM information_schema.table_constraints c
         JOIN information_schema.key_column_usage k
           ON k.constraint_name = c.constraint_name AND k.table_schema = c.table_schema
        WHERE c.table_schema = 'public' AND c.table_name = 'ip_allocations' AND c.constraint_type = 'PRIMARY KEY'
        ORDER BY k.ordinal_position`,
    );
    expect(ipKey.map((k) => k.column_name)).toEqual(['tenantId', 'address']);

    // networkId comes from a sequence, ids from gen_random_uuid() in PostgreSQL.
    const defaults = await rows<{ table_name: string; column_name: string; column_default: string }>(
      db.url,
      `SELECT table_name, column_name, column_default FROM information_schema.columns
        WHERE table_schema = 'public' AND ((table_name = 'tenants' AND column_name IN ('id', 'networkId'))
           OR (table_name = 'pods' AND column_name = 'id'))`,
    );
    const defaultOf = (table: string, column: string) =>
      defaults.find((d) => d.table_name === table && d.column_name === column)?.column_default;
    expect(defaultOf('tenants', 'networkId')).toMatch(/^nextval\('"tenants_networkId_seq"'::regclass\)$/);
    expect(defaultOf('tenants', 'id')).toBe('gen_random_uuid()');
    expect(defaultOf('pods', 'id')).toBe('gen_random_uuid()');

    // Two tenants get different network ids without asking for one; a duplicate is refused.
    const [t1, t2] = await rows<{ networkId: number }>(
      db.url,
      `INSERT INTO tenants (slug, "displayName", subnet, "updatedAt")
       VALUES ('t-one', 'One', '10.0.0.0/16', now()), ('t-two', 'Two', '10.0.0.0/16', now()) RETURNING "networkId"`,
    );
    expect(t1.networkId).not.toBe(t2.networkId);
    await expect(
      rows(db.url, `UPDATE tenants SET "networkId" = $1 WHERE slug = 't-two'`, [t1.networkId]),
    ).rejects.toThrow(/tenants_networkId_key/);
  });

  it('is a no-op the second time', async () => {
    const again = await runPrismaCli(['migrate', 'deploy'], { databaseUrl: db.url });
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('No pending migrations to apply.');
  });
});

describe('check-drift.mjs', () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'caas-drift-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('exits 0 when the committed schema and migrations agree', async () => {
    const run = await checkDrift();
    expect(run.output).toContain('Prisma schema and migrations agree');
    expect(run.code).toBe(0);
    await expectTemporaryDatabaseDropped(run);
  });

  it('exits non-zero with the DRIFT message when the schema has a field no migration creates', async () => {
    const schema = readFileSync(join(repoRoot(), 'prisma', 'schema.prisma'), 'utf8');
    const modified = schema.replace(/(\nmodel Tenant \{\n)/, '$1  driftProbe String? @db.VarChar(10)\n');
    expect(modified).not.toBe(schema);
    // The generator block stays as it is: `migrate diff` does not generate.
    const schemaPath = join(dir, 'schema.prisma');
    writeFileSync(schemaPath, modified);

    const run = await checkDrift(['--schema', schemaPath]);
    expect(run.code).not.toBe(0);
    expect(run.output).toContain(
      'DRIFT: schema.prisma and prisma/migrations disagree; run `npx prisma migrate dev --name <change>`',
    );
    expect(run.output).toMatch(/Changed the `tenants` table[\s\S]*Added column `driftProbe`/);
    await expectTemporaryDatabaseDropped(run);
  });

  it('exits non-zero when a migration creates something the schema does not have', async () => {
    const migrations = join(dir, 'migrations');
    cpSync(join(repoRoot(), 'prisma', 'migrations'), migrations, { recursive: true });
    mkdirSync(join(migrations, '29991231000000_stray'));
    writeFileSync(join(migrations, '29991231000000_stray', 'migration.sql'), 'CREATE TABLE "stray" ("id" INTEGER);\n');

    const run = await checkDrift(['--migrations', migrations]);
    expect(run.code).not.toBe(0);
    expect(run.output).toContain('DRIFT:');
    expect(run.output).toMatch(/Removed tables[\s\S]*stray/);
    await expectTemporaryDatabaseDropped(run);
  });

  it('copes with hand-written CHECK constraints and partial indexes (the JS engine once panicked on them)', async () => {
    const migrations = join(dir, 'migrations-with-checks');
    cpSync(join(repoRoot(), 'prisma', 'migrations'), migrations, { recursive: true });
    mkdirSync(join(migrations, '29991231000000_guards'));
    writeFileSync(
      join(migrations, '29991231000000_guards', 'migration.sql'),
      [
        'ALTER TABLE "tenants" ADD CONSTRAINT "tenants_used_pods_check" CHECK ("usedPods" BETWEEN 0 AND "maxPods");',
        'CREATE INDEX "outbox_unsent_idx" ON "outbox" ("id") WHERE "sentAt" IS NULL;',
        '',
      ].join('\n'),
    );

    // Prisma's schema language has neither, and `migrate diff` does not compare them.
    const run = await checkDrift(['--migrations', migrations]);
    expect(run.output).not.toContain('RuntimeError');
    expect(run.output).toContain('Prisma schema and migrations agree');
    expect(run.code).toBe(0);
  });

  it('exits non-zero with a clear message when it cannot run', async () => {
    const run = await checkDrift(['--schema', join(dir, 'missing.prisma')]);
    expect(run.code).not.toBe(0);
    expect(run.output).toContain('schema not found');
  });
});
