import { randomBytes } from 'node:crypto';
import { Client } from 'pg';

export const DEFAULT_ADMIN_URL = 'postgresql://postgres@127.0.0.1:5432/postgres';

/** Where test databases are created from: `TEST_DATABASE_ADMIN_URL`, or the local `postgres` database. */
export function testDatabaseAdminUrl(): string {
  return process.env['TEST_DATABASE_ADMIN_URL'] || DEFAULT_ADMIN_URL;
}

/** The admin URL with its database replaced by `database` (same server, user and options). */
export function databaseUrl(adminUrl: string, database: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${encodeURIComponent(database)}`;
  return url.toString();
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** A PostgreSQL identifier of at most 63 bytes: `<prefix>_<label>_<12 hex>`. */
export function uniqueDatabaseName(prefix: string, label?: string): string {
  const random = randomBytes(6).toString('hex');
  const clean = (label ?? '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .slice(0, 63 - prefix.length - random.length - 2);
  return clean ? `${prefix}_${clean}_${random}` : `${prefix}_${random}`;
}

export async function withAdminClient<T>(adminUrl: string, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

function isObjectInUse(err: unknown): boolean {
  return (err as { code?: string } | null)?.code === '55006';
}

/**
 * Runs `statement`, retrying while PostgreSQL reports `55006 object_in_use` (a backend that was just
 * terminated, or a client that disconnected a moment ago, can still be counted for a few milliseconds).
 */
export async function retryWhileInUse(client: Client, statement: string, attempts = 40): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await client.query(statement);
      return;
    } catch (err) {
      if (!isObjectInUse(err) || attempt >= attempts) throw err;
      await new Promise((resolve) => setTimeout(resolve, Math.min(50 * attempt, 500)));
    }
  }
}

export async function terminateConnections(client: Client, database: string): Promise<void> {
  await client.query(
    'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()',
    [database],
  );
}

/** Terminates every connection to `database` and drops it; a database that is already gone is fine. */
export async function dropDatabaseWith(client: Client, database: string): Promise<void> {
  await terminateConnections(client, database);
  await retryWhileInUse(client, `DROP DATABASE IF EXISTS ${quoteIdent(database)} WITH (FORCE)`);
}

export async function databaseExists(client: Client, database: string): Promise<boolean> {
  const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
  return (rowCount ?? 0) > 0;
}
