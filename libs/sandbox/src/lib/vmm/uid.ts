import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { VmmError } from './errors';

/** The uids reserved for VMs: `base .. base + count - 1`, one per QEMU; the VM's gid is the same number. */
export interface UidRange {
  base: number;
  count: number;
}

/**
 * 420000–429999: above the ranges distributions give to users and system accounts, and clear of the first
 * subordinate-id blocks (`/etc/subuid` starts at 100000, 65536 per user). Check a production host's
 * `/etc/subuid` and directory-service ranges before deploying.
 */
export const DEFAULT_UID_RANGE: UidRange = { base: 420_000, count: 10_000 };

export function validateUidRange(range: UidRange): void {
  if (
    !Number.isSafeInteger(range.base) ||
    !Number.isSafeInteger(range.count) ||
    range.base < 1000 ||
    range.count < 1 ||
    range.base + range.count > 0xffff_fffe // (uid_t)-1 and -2 are special
  ) {
    throw new VmmError('INVALID_SPEC', `invalid uid range ${JSON.stringify(range)}`);
  }
}

export function inRange(uid: number, range: UidRange): boolean {
  return uid >= range.base && uid < range.base + range.count;
}

/** The lowest uid of `range` not in `used` (pure). Throws UID_RANGE_EXHAUSTED when there is none. */
export function allocateUid(used: Iterable<number>, range: UidRange = DEFAULT_UID_RANGE): number {
  validateUidRange(range);
  const taken = new Set<number>();
  for (const uid of used) if (inRange(uid, range)) taken.add(uid);
  for (let uid = range.base; uid < range.base + range.count; uid++) {
    if (!taken.has(uid)) return uid;
  }
  throw new VmmError('UID_RANGE_EXHAUSTED', `all ${range.count} uids from ${range.base} are in use`);
}

/**
 * The uids of `range` in use on this host: owners of the entries under `vmRoot` (each VM dir is owned by its
 * VM's uid, also after its QEMU died and until cleanup) and owners of running processes (a QEMU whose
 * directory is already gone must not share its uid with a new VM).
 */
export async function listUsedUids(vmRoot: string, range: UidRange = DEFAULT_UID_RANGE): Promise<Set<number>> {
  const used = new Set<number>();
  const owners = async (dir: string, filter: (name: string) => boolean): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    await Promise.all(
      names.filter(filter).map(async (name) => {
        try {
          const { uid } = await stat(join(dir, name));
          if (inRange(uid, range)) used.add(uid);
        } catch {
          // gone meanwhile
        }
      }),
    );
  };
  await owners(vmRoot, () => true);
  await owners('/proc', (name) => /^\d+$/.test(name));
  return used;
}

/**
 * Allocates a uid for a new VM under `vmRoot`. Not atomic across processes: one node agent allocates, and it
 * must create the VM dir owned by the uid (`launchQemu` does) before it allocates the next one.
 */
export async function allocateVmUid(vmRoot: string, range: UidRange = DEFAULT_UID_RANGE): Promise<number> {
  return allocateUid(await listUsedUids(vmRoot, range), range);
}
