import { spawn } from 'node:child_process';
import { repoRoot } from './repo-root';

export interface PrismaCliResult {
  /** The CLI's exit code (128 + n when it was killed). */
  code: number;
  stdout: string;
  stderr: string;
}

export interface PrismaCliOptions {
  /** DATABASE_URL for the CLI: `prisma.config.ts` builds the migration adapter from it. */
  databaseUrl: string;
  /** Killed after this long; the CLI takes ~3–15 s here. */
  timeoutMs?: number;
}

/**
 * Runs `npx prisma <args>` from the repository root (so `prisma.config.ts` and its offline JS schema
 * engine are used), with telemetry disabled. Never throws for a non-zero exit: callers decide.
 */
export function runPrismaCli(args: readonly string[], { databaseUrl, timeoutMs = 180_000 }: PrismaCliOptions) {
  return new Promise<PrismaCliResult>((resolve, reject) => {
    const child = spawn('npx', ['prisma', ...args], {
      cwd: repoRoot(),
      env: { ...process.env, DATABASE_URL: databaseUrl, CHECKPOINT_DISABLE: '1', NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? 128 + (signal === 'SIGKILL' ? 9 : 15), stdout, stderr });
    });
  });
}

/** `prisma migrate deploy` against `databaseUrl`; throws with the CLI's output when it fails. */
export async function prismaMigrateDeploy(databaseUrl: string): Promise<void> {
  const result = await runPrismaCli(['migrate', 'deploy'], { databaseUrl });
  if (result.code !== 0) {
    throw new Error(`prisma migrate deploy failed (exit ${result.code}):\n${result.stdout}\n${result.stderr}`.trim());
  }
}
