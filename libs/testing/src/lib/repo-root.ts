import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

let cached: string | undefined;

/** The monorepo's root (the directory holding `nx.json`), found upwards from this file. */
export function repoRoot(): string {
  if (cached) return cached;
  let dir = __dirname;
  for (;;) {
    if (existsSync(join(dir, 'nx.json')) && existsSync(join(dir, 'prisma'))) return (cached = dir);
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`@caas/testing: no nx.json above ${__dirname}`);
    dir = parent;
  }
}

/**
 * The `-r` hook that lets a child `node` process run TypeScript sources directly (SWC, tsconfig path aliases):
 * `spawn(process.execPath, ['-r', tsRegisterPath(), 'file.ts'])`. Tests use it to start real, separate processes
 * (a host process, scheduler replicas, simulated agents) that they can kill.
 */
export const tsRegisterPath = (): string => join(repoRoot(), 'libs/testing/src/lib/ts-register.js');
