import { realpath, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { VmmError } from './errors';

/** The owner, group and permission bits of a file, as `stat` reports them. */
export interface ModeFacts {
  mode: number;
  uid: number;
  gid: number;
}

/** An unprivileged process with one uid, one gid and no supplementary groups (what QEMU runs as). */
export interface Principal {
  uid: number;
  gid: number;
}

export type AccessKind = 'read' | 'search';

/**
 * Whether the classic permission bits let `who` read a file or search (traverse) a directory: the owner bits
 * when `who` owns it, else the group bits when its gid matches, else the other bits — exactly one class applies,
 * as in the kernel. POSIX ACLs are not considered.
 */
export function modeAllows(facts: ModeFacts, who: Principal, kind: AccessKind): boolean {
  const bit = kind === 'read' ? 4 : 1;
  const shift = facts.uid === who.uid ? 6 : facts.gid === who.gid ? 3 : 0;
  return ((facts.mode >> shift) & bit) !== 0;
}

export interface PathStep {
  path: string;
  facts: ModeFacts;
  isDirectory: boolean;
}

/**
 * Why `who` cannot reach and read the last step of `chain` (its ancestors first, from `/`), or undefined when
 * it can. Pure: the caller stats.
 */
export function pathAccessProblem(chain: readonly PathStep[], who: Principal): string | undefined {
  const target = chain[chain.length - 1];
  if (target === undefined) return 'empty path';
  for (const step of chain.slice(0, -1)) {
    if (!modeAllows(step.facts, who, 'search')) {
      return `directory ${step.path} (mode ${octal(step.facts.mode)}, owner ${step.facts.uid}:${step.facts.gid}) is not searchable by ${who.uid}:${who.gid}`;
    }
  }
  if (target.isDirectory) {
    return modeAllows(target.facts, who, 'search')
      ? undefined
      : `directory ${target.path} (mode ${octal(target.facts.mode)}) is not searchable by ${who.uid}:${who.gid}`;
  }
  if (!modeAllows(target.facts, who, 'read')) {
    return `${target.path} (mode ${octal(target.facts.mode)}, owner ${target.facts.uid}:${target.facts.gid}) is not readable by ${who.uid}:${who.gid}: make it world-readable, or owned by that uid or group`;
  }
  return undefined;
}

function octal(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/** `/a/b/c` → `['/', '/a', '/a/b', '/a/b/c']`. */
export function pathChain(path: string): string[] {
  const chain = [path];
  for (let p = path; p !== dirname(p); p = dirname(p)) chain.unshift(dirname(p));
  return chain;
}

async function statChain(path: string): Promise<PathStep[]> {
  return Promise.all(
    pathChain(path).map(async (p) => {
      const s = await stat(p);
      return { path: p, facts: { mode: s.mode, uid: s.uid, gid: s.gid }, isDirectory: s.isDirectory() };
    }),
  );
}

/**
 * Fails with IMAGE_NOT_READABLE unless `who` could open `path` for reading (a file) or traverse it (a
 * directory), judged from permission bits along the path as given and along its real path. A check by mode
 * bits, because `access(2)` only answers for the caller's own uid.
 */
export async function assertAccessibleBy(path: string, who: Principal): Promise<void> {
  let real: string;
  try {
    real = await realpath(path);
  } catch (error) {
    throw new VmmError('IMAGE_NOT_READABLE', `${path} does not exist or cannot be resolved`, { cause: error });
  }
  for (const p of real === path ? [path] : [path, real]) {
    const problem = pathAccessProblem(await statChain(p), who);
    if (problem !== undefined) throw new VmmError('IMAGE_NOT_READABLE', problem);
  }
}
