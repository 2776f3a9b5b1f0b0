import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from 'pg';
import {
  databaseUrl,
  dropDatabaseWith,
  quoteIdent,
  retryWhileInUse,
  terminateConnections,
  withAdminClient,
} from './postgres-admin';
import { prismaMigrateDeploy } from './prisma-cli';
import { repoRoot } from './repo-root';

/** How long a process waits for another one that is building the same template. */
const LOCK_TIMEOUT = '10min';

/**
 * A short hash of every `prisma/migrations/<name>/migration.sql` (names and contents, in migration
 * order): a new or edited migration gives a new template, and an old template is never reused.
 */
export function migrationsHash(migrationsDir = join(repoRoot(), 'prisma', 'migrations')): string {
  const hash = createHash('sha256');
  const names = readdirSync(migrationsDir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && existsSync(join(migrationsDir, entry.name, 'migration.sql')))
    .map((entry) => entry.name)
    .sort();
  if (names.length === 0) throw new Error(`@caas/testing: no migrations in ${migrationsDir}`);
  for (const name of names) {
    hash
      .update(name)
      .update('\0')
      .update(readFileSync(join(migrationsDir, name, 'migration.sql')))
      .update('\0');
  }
  return hash.digest('hex').slice(0, 8);
}

/**
 * `caas_tpl_<8 hex>_<role>`: the template holding the current migrations, for one database role. Templates
 * are per role because a clone keeps the owners of the objects inside it: a database cloned by a
 * CREATEDB-only role from another role's template would hold tables that role cannot read.
 */
export function templateDatabaseName(role: string, hash = migrationsHash()): string {
  let suffix = role.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  if (suffix !== role || suffix.length > 36) {
    suffix = `${suffix.slice(0, 29).replace(/_+$/, '')}_${createHash('sha256').update(role).digest('hex').slice(0, 6)}`;
  }
  return `caas_tpl_${hash}_${suffix}`;
}

export interface EnsureTemplateOptions {
  adminUrl: string;
  /** The template's final name; it exists only once it is complete. */
  name: string;
  /** Fills the (empty, freshly created) database at `url`. */
  build: (url: string) => Promise<void>;
}

/**
 * Makes sure the template database `name` exists, building it at most once even when several Jest
 * workers or processes ask at the same moment.
 *
 * Check-and-create runs under a PostgreSQL advisory lock taken in the admin database. The template is
 * built under `<name>_build` and renamed only when complete, so its final name never denotes a half-built
 * database; a `<name>_build` left behind by a crashed builder is dropped and built again. The template is
 * closed to connections (`ALLOW_CONNECTIONS false`: `CREATE DATABASE … TEMPLATE` fails while anyone is
 * connected to the template, so a stray session must not be able to break every test) and marked
 * `IS_TEMPLATE` (a plain `DROP DATABASE` refuses it).
 */
export async function ensureTemplateDatabase({ adminUrl, name, build }: EnsureTemplateOptions): Promise<void> {
  const buildName = `${name}_build`;
  await withAdminClient(adminUrl, async (client) => {
    await client.query(`SET lock_timeout = '${LOCK_TIMEOUT}'`);
    await client.query('SELECT pg_advisory_lock(hashtext($1))', [`caas-testing:${name}`]);
    try {
      const existing = await client.query<{ datistemplate: boolean }>(
        'SELECT datistemplate FROM pg_database WHERE datname = $1',
        [name],
      );
      if (existing.rows[0]?.datistemplate) return;
      if (existing.rows[0]) {
        // Complete (it has its final name), but not yet marked: a builder stopped just after the rename.
        await client
          .query(`ALTER DATABASE ${quoteIdent(name)} IS_TEMPLATE true ALLOW_CONNECTIONS false`)
          .catch((err: Error) => {
            throw new Error(
              `@caas/testing: ${name} exists but is not marked as a template, and this role cannot mark it ` +
                `(${err.message}). Drop it, or have its owner run ALTER DATABASE ${name} IS_TEMPLATE true.`,
            );
          });
        return;
      }
      await dropDatabaseWith(client, buildName);
      await client.query(`CREATE DATABASE ${quoteIdent(buildName)}`);
      try {
        await build(databaseUrl(adminUrl, buildName));
        await seal(client, buildName, name);
      } catch (err) {
        await dropDatabaseWith(client, buildName).catch(() => undefined);
        throw err;
      }
    } finally {
      await client.query('SELECT pg_advisory_unlock(hashtext($1))', [`caas-testing:${name}`]).catch(() => undefined);
    }
  });
}

async function seal(client: Client, buildName: string, name: string): Promise<void> {
  await client.query(`ALTER DATABASE ${quoteIdent(buildName)} ALLOW_CONNECTIONS false`);
  await terminateConnections(client, buildName);
  await retryWhileInUse(client, `ALTER DATABASE ${quoteIdent(buildName)} RENAME TO ${quoteIdent(name)}`);
  // After the rename, so a build database is never a template (templates cannot be dropped as they are).
  await client.query(`ALTER DATABASE ${quoteIdent(name)} IS_TEMPLATE true`);
}

/**
 * Templates of older migrations, for the same role, are dead weight once the current one exists: every
 * change of the migrations would otherwise leave one more database behind. Best effort: one still being
 * cloned (another checkout's run) stays and is dropped by a later run.
 */
async function dropStaleTemplates(adminUrl: string, current: string, hash: string): Promise<void> {
  const suffix = current.slice(`caas_tpl_${hash}`.length);
  await withAdminClient(adminUrl, async (client) => {
    const { rows } = await client.query<{ datname: string }>(
      `SELECT datname FROM pg_database
        WHERE datistemplate AND datname LIKE 'caas\\_tpl\\_%' AND datname <> $1 AND right(datname, $2) = $3
          AND pg_get_userbyid(datdba) = current_user`,
      [current, suffix.length, suffix],
    );
    for (const { datname } of rows) {
      await client
        .query(`ALTER DATABASE ${quoteIdent(datname)} IS_TEMPLATE false`)
        .then(() => client.query(`DROP DATABASE ${quoteIdent(datname)}`))
        .catch(() => undefined);
    }
  });
}

const ensured = new Map<string, Promise<string>>();

/**
 * The template database with every migration applied (`prisma migrate deploy` on an empty database) for
 * the admin URL's role, created on first need; returns its name. Memoised per process; safe across processes.
 */
export function ensureMigratedTemplate(adminUrl: string): Promise<string> {
  const hash = migrationsHash();
  const key = `${adminUrl}\0${hash}`;
  let pending = ensured.get(key);
  if (!pending) {
    pending = (async () => {
      const role = await withAdminClient(adminUrl, async (client) => {
        const { rows } = await client.query<{ role: string }>('SELECT current_user AS role');
        return rows[0].role;
      });
      const name = templateDatabaseName(role, hash);
      await ensureTemplateDatabase({ adminUrl, name, build: prismaMigrateDeploy });
      await dropStaleTemplates(adminUrl, name, hash);
      return name;
    })();
    pending.catch(() => ensured.delete(key));
    ensured.set(key, pending);
  }
  return pending;
}
