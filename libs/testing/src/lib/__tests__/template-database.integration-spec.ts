import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import {
  databaseExists,
  databaseUrl,
  quoteIdent,
  testDatabaseAdminUrl,
  uniqueDatabaseName,
  withAdminClient,
} from '../postgres-admin';
import { ensureTemplateDatabase, migrationsHash, templateDatabaseName } from '../template-database';
import { repoRoot } from '../repo-root';

jest.setTimeout(60_000);

const adminUrl = testDatabaseAdminUrl();

async function exec(url: string, sql: string): Promise<Record<string, unknown>[]> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql)).rows as Record<string, unknown>[];
  } finally {
    await client.end();
  }
}

/** A build step that takes a while, so that concurrent callers really overlap. */
function slowBuild(counter: { builds: number }) {
  return async (url: string) => {
    counter.builds++;
    await new Promise((resolve) => setTimeout(resolve, 400));
    await exec(url, 'CREATE TABLE built (id int)');
  };
}

async function exists(name: string): Promise<boolean> {
  return withAdminClient(adminUrl, (client) => databaseExists(client, name));
}

async function dropTemplate(name: string): Promise<void> {
  await withAdminClient(adminUrl, async (client) => {
    for (const db of [name, `${name}_build`]) {
      if (await databaseExists(client, db)) await client.query(`ALTER DATABASE ${quoteIdent(db)} IS_TEMPLATE false`);
      await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(db)} WITH (FORCE)`);
    }
  });
}

/** The tables of a template (which refuses connections), read through a throw-away clone. */
async function tablesOf(template: string): Promise<string[]> {
  const clone = uniqueDatabaseName('caas_test', 'clone');
  await withAdminClient(adminUrl, (c) =>
    c.query(`CREATE DATABASE ${quoteIdent(clone)} TEMPLATE ${quoteIdent(template)}`),
  );
  try {
    const rows = await exec(
      databaseUrl(adminUrl, clone),
      "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
    );
    return rows.map((r) => String(r['tablename'])).sort();
  } finally {
    await withAdminClient(adminUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${quoteIdent(clone)} WITH (FORCE)`));
  }
}

describe('migrationsHash / templateDatabaseName', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'caas-migrations-'));
    cpSync(join(repoRoot(), 'prisma', 'migrations'), dir, { recursive: true });
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is 8 hex digits of the migrations, and names the template caas_tpl_<hash>_<role>', () => {
    expect(migrationsHash(dir)).toMatch(/^[0-9a-f]{8}$/);
    expect(migrationsHash(dir)).toBe(migrationsHash());
    expect(templateDatabaseName('postgres', '0123abcd')).toBe('caas_tpl_0123abcd_postgres');
    expect(templateDatabaseName('postgres')).toBe(`caas_tpl_${migrationsHash()}_postgres`);
    // Role names that are not plain identifiers (or are long) get a sanitised prefix and a hash.
    const odd = templateDatabaseName('CI-Runner.with.a.rather.long.role.name', '0123abcd');
    expect(odd).toMatch(/^caas_tpl_0123abcd_ci_runner_with_a_rather_long_[0-9a-f]{6}$/);
    expect(`${odd}_build`.length).toBeLessThanOrEqual(63);
  });

  it('changes when a migration is added or edited, not when other files change', () => {
    const before = migrationsHash(dir);
    writeFileSync(join(dir, 'migration_lock.toml'), '# touched\n', { flag: 'a' });
    writeFileSync(join(dir, 'notes.sql'), 'SELECT 1;');
    mkdirSync(join(dir, 'not_a_migration'));
    expect(migrationsHash(dir)).toBe(before);

    const added = join(dir, '29990101000000_extra');
    mkdirSync(added);
    writeFileSync(join(added, 'migration.sql'), 'SELECT 1;');
    const withAdded = migrationsHash(dir);
    expect(withAdded).not.toBe(before);

    writeFileSync(join(added, 'migration.sql'), 'SELECT 2;');
    expect(migrationsHash(dir)).not.toBe(withAdded);
  });
});

describe('ensureTemplateDatabase', () => {
  const names: string[] = [];
  const freshName = () => {
    const name = uniqueDatabaseName('caas_tpl_spec');
    names.push(name);
    return name;
  };

  afterAll(async () => {
    for (const name of names) await dropTemplate(name);
  });

  it('builds once when many sessions ask at the same time, and closes the template to connections', async () => {
    const name = freshName();
    const counter = { builds: 0 };
    await Promise.all(
      Array.from({ length: 6 }, () => ensureTemplateDatabase({ adminUrl, name, build: slowBuild(counter) })),
    );

    expect(counter.builds).toBe(1);
    expect(await exists(name)).toBe(true);
    expect(await exists(`${name}_build`)).toBe(false);
    expect(await tablesOf(name)).toEqual(['built']);
    expect(
      await exec(adminUrl, `SELECT datistemplate, datallowconn FROM pg_database WHERE datname = '${name}'`),
    ).toEqual([{ datistemplate: true, datallowconn: false }]);
    await expect(exec(databaseUrl(adminUrl, name), 'SELECT 1')).rejects.toThrow(/not currently accepting connections/);

    await ensureTemplateDatabase({ adminUrl, name, build: slowBuild(counter) });
    expect(counter.builds).toBe(1);
  });

  it('throws away a half-built template left by a crashed builder and builds it again', async () => {
    const name = freshName();
    await withAdminClient(adminUrl, (c) => c.query(`CREATE DATABASE ${quoteIdent(`${name}_build`)}`));
    await exec(databaseUrl(adminUrl, `${name}_build`), 'CREATE TABLE half_done (id int)');

    const counter = { builds: 0 };
    await ensureTemplateDatabase({ adminUrl, name, build: slowBuild(counter) });

    expect(counter.builds).toBe(1);
    expect(await tablesOf(name)).toEqual(['built']);
    expect(await exists(`${name}_build`)).toBe(false);
  });

  it('marks, without rebuilding, a template whose builder stopped right after the rename', async () => {
    const name = freshName();
    await withAdminClient(adminUrl, (c) => c.query(`CREATE DATABASE ${quoteIdent(name)} ALLOW_CONNECTIONS false`));

    const counter = { builds: 0 };
    await ensureTemplateDatabase({ adminUrl, name, build: slowBuild(counter) });
    expect(counter.builds).toBe(0);
    expect(await exec(adminUrl, `SELECT datistemplate FROM pg_database WHERE datname = '${name}'`)).toEqual([
      { datistemplate: true },
    ]);
  });

  it('leaves nothing behind when the build fails, and the next caller builds it', async () => {
    const name = freshName();
    await expect(
      ensureTemplateDatabase({
        adminUrl,
        name,
        build: async () => {
          throw new Error('migrations failed');
        },
      }),
    ).rejects.toThrow('migrations failed');
    expect(await exists(name)).toBe(false);
    expect(await exists(`${name}_build`)).toBe(false);

    const counter = { builds: 0 };
    await ensureTemplateDatabase({ adminUrl, name, build: slowBuild(counter) });
    expect(counter.builds).toBe(1);
    expect(await exists(name)).toBe(true);
  });
});
