/** Small file-system helpers of the content store: durable writes, on-disk size, timestamps in microseconds. */
import type { BigIntStats, Stats } from 'node:fs';
import { lstat, open, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** What a file or tree occupies: `bytes` on disk (st_blocks × 512), `size` the sum of regular files' lengths. */
export interface Footprint {
  bytes: number;
  size: number;
}

export function footprintOf(stats: Stats | BigIntStats): Footprint {
  return { bytes: Number(stats.blocks) * 512, size: stats.isFile() ? Number(stats.size) : 0 };
}

/**
 * The footprint of a tree (a file, or a directory and everything in it; symbolic links are counted, never
 * followed). With `sync`, every regular file and directory is fsynced on the way, children before their parent.
 */
export async function treeFootprint(path: string, options: { sync?: boolean } = {}): Promise<Footprint> {
  const stats = await lstat(path);
  const total = footprintOf(stats);
  if (stats.isDirectory()) {
    for (const name of await readdir(path)) {
      const child = await treeFootprint(join(path, name), options);
      total.bytes += child.bytes;
      total.size += child.size;
    }
  }
  if (options.sync && (stats.isFile() || stats.isDirectory())) await fsyncPath(path);
  return total;
}

/** fsync of a file or a directory (a directory's fsync makes the names created or renamed in it durable). */
export async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** A timestamp in microseconds since the epoch, as `utimes` takes it (seconds). */
export function microsToSeconds(micros: number): number {
  return micros / 1e6;
}

/** The modification time in whole microseconds (exact: `utimes` with seconds is precise to well under 0.5 µs). */
export function mtimeMicros(stats: BigIntStats): number {
  return Number((stats.mtimeNs + 500n) / 1000n);
}
