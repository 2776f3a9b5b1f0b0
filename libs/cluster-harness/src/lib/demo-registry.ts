// The local registry of scripts/demo-registry.sh for tests and benchmarks: one per port, storage in
// .caas/registry-<port>/ (purge removes it), optionally with Basic auth.
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '@caas/testing';

export interface DemoRegistryOptions {
  port: number;
  /** `user:password`: the registry wants Basic auth, and the push uses it. */
  auth?: string;
}

/**
 * Runs `scripts/demo-registry.sh <command>` for the registry on `port`; returns what it printed on stdout (the image
 * reference after `push`). Its progress goes to this process's stderr.
 */
export function demoRegistry(command: 'push' | 'stop' | 'purge', options: DemoRegistryOptions): string {
  return execFileSync('bash', [join(repoRoot(), 'scripts/demo-registry.sh'), command], {
    env: { ...process.env, REGISTRY_PORT: String(options.port), REGISTRY_AUTH: options.auth ?? '' },
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  }).trim();
}
