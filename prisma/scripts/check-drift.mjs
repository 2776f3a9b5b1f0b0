#!/usr/bin/env node
// Fails when prisma/schema.prisma and prisma/migrations disagree (the `db:check` target, run in CI).
//
//   node prisma/scripts/check-drift.mjs [--schema <schema.prisma>] [--migrations <dir>]
//
// Prisma 6's JavaScript schema engine has no separate shadow database: `migrate diff --from-migrations`
// replays the migrations into the database the configured adapter points at (DATABASE_URL), and leaves
// them there. So the diff must run against an EMPTY database: this script creates one with a random
// name on the server of DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres), runs the
// diff against it, and always drops it again. See docs/adr-000-offline-prisma.md.
//
// Exit codes: 0 schema and migrations agree, 1 drift, 2 any other error.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const EXIT_DRIFT = 1;
const EXIT_ERROR = 2;
const DEFAULT_URL = 'postgresql://postgres@127.0.0.1:5432/postgres';
const CLI_TIMEOUT_MS = 180_000;

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

class UsageError extends Error {}

function parseArgs(argv) {
  const options = {
    schema: path.join(repoRoot, 'prisma', 'schema.prisma'),
    migrations: path.join(repoRoot, 'prisma', 'migrations'),
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? arg.split(/=(.*)/s, 2) : [arg, undefined];
    if (flag === '--help' || flag === '-h') {
      console.log('usage: node prisma/scripts/check-drift.mjs [--schema <schema.prisma>] [--migrations <dir>]');
      process.exit(0);
    }
    if (flag !== '--schema' && flag !== '--migrations') throw new UsageError(`unknown argument: ${arg}`);
    const value = inline ?? argv[++i];
    if (!value) throw new UsageError(`${flag} needs a value`);
    options[flag.slice(2)] = path.resolve(value);
  }
  if (!existsSync(options.schema) || !statSync(options.schema).isFile()) {
    throw new UsageError(`schema not found: ${options.schema}`);
  }
  if (!existsSync(options.migrations) || !statSync(options.migrations).isDirectory()) {
    throw new UsageError(`migrations directory not found: ${options.migrations}`);
  }
  return options;
}

/** The server of DATABASE_URL, the database to run CREATE/DROP DATABASE from, and the temporary database. */
function targets(databaseUrl) {
  const base = new URL(databaseUrl);
  if (!/^postgres(ql)?:$/.test(base.protocol)) throw new UsageError('DATABASE_URL is not a postgresql:// URL');
  const baseName = decodeURIComponent(base.pathname.replace(/^\//, '')) || 'postgres';
  const stem = baseName
    .toLowerCase()
    .replace(/[^a-z0-9_]/g, '_')
    .slice(0, 40);
  const tempName = `${stem}_drift_${randomBytes(5).toString('hex')}`;
  const admin = new URL(base);
  admin.pathname = '/postgres';
  const temp = new URL(base);
  temp.pathname = `/${tempName}`;
  return { adminUrl: admin.toString(), tempName, tempUrl: temp.toString() };
}

function quoteIdent(name) {
  return `"${name.replace(/"/g, '""')}"`;
}

async function withAdmin(adminUrl, fn) {
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function dropDatabase(adminUrl, name) {
  await withAdmin(adminUrl, async (client) => {
    await client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1', [name]);
    await client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
  });
}

function runPrisma(args, databaseUrl) {
  return new Promise((resolve, reject) => {
    const child = spawn('npx', ['prisma', ...args], {
      cwd: repoRoot,
      env: { ...process.env, DATABASE_URL: databaseUrl, CHECKPOINT_DISABLE: '1', NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), CLI_TIMEOUT_MS);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), signal, stdout, stderr });
    });
  });
}

/** Prisma's own noise ("Loaded Prisma config from …") is not worth repeating. */
function cliOutput({ stdout, stderr }) {
  return [stdout, stderr]
    .join('\n')
    .split('\n')
    .filter((line) => !/^Loaded Prisma config from /.test(line))
    .join('\n')
    .trim();
}

async function main() {
  const options = parseArgs(process.argv.slice(2));
  const { adminUrl, tempName, tempUrl } = targets(process.env.DATABASE_URL || DEFAULT_URL);
  const relative = (p) => path.relative(process.cwd(), p) || '.';

  let created = false;
  const cleanup = async () => {
    if (!created) return;
    created = false;
    await dropDatabase(adminUrl, tempName);
  };
  const onSignal = (signal) => {
    cleanup()
      .catch(() => undefined)
      .finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    await withAdmin(adminUrl, (client) => client.query(`CREATE DATABASE ${quoteIdent(tempName)}`));
    created = true;
    console.log(
      `Comparing ${relative(options.migrations)} with ${relative(options.schema)} (temporary database ${tempName})`,
    );
    const result = await runPrisma(
      [
        'migrate',
        'diff',
        '--from-migrations',
        options.migrations,
        '--to-schema-datamodel',
        options.schema,
        '--exit-code',
      ],
      tempUrl,
    );
    const output = cliOutput(result);
    if (result.code === 0) {
      console.log('Prisma schema and migrations agree');
      return 0;
    }
    if (result.code === 2) {
      console.error(
        'DRIFT: schema.prisma and prisma/migrations disagree; run `npx prisma migrate dev --name <change>`',
      );
      console.error('');
      console.error(output);
      return EXIT_DRIFT;
    }
    console.error(
      `ERROR: prisma migrate diff failed (exit ${result.code}${result.signal ? `, ${result.signal}` : ''})`,
    );
    console.error(output);
    return EXIT_ERROR;
  } finally {
    try {
      await cleanup();
    } catch (err) {
      console.error(`WARNING: could not drop temporary database ${tempName}: ${err.message}`);
    }
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    if (err instanceof UsageError) {
      console.error(`check-drift: ${err.message}`);
    } else if (err && (err.code === 'ECONNREFUSED' || err.code === 'ENOTFOUND')) {
      console.error(`ERROR: cannot reach PostgreSQL (${err.message}). Is it running?`);
    } else {
      console.error(`ERROR: ${err?.stack ?? err}`);
    }
    process.exitCode = EXIT_ERROR;
  },
);
