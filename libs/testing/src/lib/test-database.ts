import {
  databaseUrl,
  dropDatabaseWith,
  quoteIdent,
  retryWhileInUse,
  testDatabaseAdminUrl,
  uniqueDatabaseName,
  withAdminClient,
} from './postgres-admin';
import { ensureMigratedTemplate } from './template-database';

export interface TestDatabase {
  /** The database's name (`caas_test_…`). */
  name: string;
  /** Connection string for the database: same server and credentials as the admin URL. */
  url: string;
  /** Terminates every connection left to the database and drops it. Safe to call twice. */
  drop(): Promise<void>;
}

export interface TestDatabaseOptions {
  /** Becomes part of the database name, to tell whose database a leftover one was. */
  label?: string;
}

/**
 * A database of its own for one test file, with every migration applied: a copy of the template
 * database (`caas_tpl_<hash of the migrations>`, built once with `prisma migrate deploy`), which takes
 * a fraction of a second instead of a run of the migrations.
 *
 * ```ts
 * let db: TestDatabase;
 * beforeAll(async () => (db = await createTestDatabase()));
 * afterAll(() => db.drop());
 * ```
 */
export async function createTestDatabase(options: TestDatabaseOptions = {}): Promise<TestDatabase> {
  const adminUrl = testDatabaseAdminUrl();
  const template = await ensureMigratedTemplate(adminUrl);
  const name = uniqueDatabaseName('caas_test', options.label);
  await withAdminClient(adminUrl, (client) =>
    retryWhileInUse(client, `CREATE DATABASE ${quoteIdent(name)} TEMPLATE ${quoteIdent(template)}`),
  );
  return handle(adminUrl, name);
}

/** An empty database (no migrations applied), for tests of the migrations themselves. */
export async function createEmptyDatabase(options: TestDatabaseOptions = {}): Promise<TestDatabase> {
  const adminUrl = testDatabaseAdminUrl();
  const name = uniqueDatabaseName('caas_test', options.label);
  await withAdminClient(adminUrl, (client) => client.query(`CREATE DATABASE ${quoteIdent(name)}`));
  return handle(adminUrl, name);
}

function handle(adminUrl: string, name: string): TestDatabase {
  return {
    name,
    url: databaseUrl(adminUrl, name),
    drop: () => withAdminClient(adminUrl, (client) => dropDatabaseWith(client, name)),
  };
}
