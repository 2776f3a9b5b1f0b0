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
