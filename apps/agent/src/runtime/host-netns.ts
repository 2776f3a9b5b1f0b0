import { execFile } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Where `ip netns` keeps a named namespace (a bind mount of its nsfs file). */
export const netnsPath = (name: string): string => `/run/netns/${name}`;

/**
 * The host network namespace of a simulated host: created when missing (with its loopback up), kept when it
 * exists — it outlives the agent, like the VMs in it. Returns its path for the sandbox.
 */
export async function ensureHostNetns(name: string): Promise<string> {
  const path = netnsPath(name);
  const exists = await stat(path).then(
    () => true,
    () => false,
  );
  if (!exists) {
    await run('ip', ['netns', 'add', name]).catch(async (error: unknown) => {
      // Another agent (or operator) may have created it meanwhile: only a namespace that is still missing fails.
      if (!(await stat(path).catch(() => undefined)))
        throw new Error(`cannot create network namespace ${name}: ${String(error)}`);
    });
  }
  await run('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return path;
}
