/**
 * An unpacked root → the ext4 image a pod's microVM mounts read-only, with mke2fs's `-d` (it copies the tree
 * into the new file system itself, no mount, no loop device; owners, modes with setuid/setgid/sticky, mtimes,
 * hard links and symlinks are kept as they are on disk):
 *
 *   mkfs.ext4 -q -F -d ROOT -b 4096 -I 256 -N INODES -O ^has_journal,^resize_inode -m 0 \
 *     -E root_owner=0:0,nodiscard -L caas FILE BLOCKS
 *
 * No journal and no room to grow (the image is never written to), no reserved blocks. The size is computed
 * from the tree (data and directory blocks, inode tables, group metadata, a margin); should mke2fs still run
 * out of blocks or inodes, it is run again with more. The image is built in a temporary file beside the
 * output, synced, and renamed over it: a half-written image is never visible under the output name.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstat, open, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { ImageError } from '../errors';

export interface Ext4Options {
  /** Volume label (at most 16 bytes). Default 'caas'. */
  label?: string;
  /** The mke2fs binary. Default 'mkfs.ext4' (found on PATH, /usr/sbin and /sbin included). */
  mkfs?: string;
  /** mke2fs is killed after this long (FS_IMAGE_FAILED). Default 10 minutes. */
  timeoutMs?: number;
  /**
   * Entries in one directory (TOO_LARGE over it, before mke2fs runs). mke2fs -d's time is quadratic in the size
   * of a directory (here: 6,000 entries 2.5 s, 20,000 22 s): this keeps one hostile directory from holding it
   * for its whole timeout. Default 50,000.
   */
  maxDirEntries?: number;
}

export interface Ext4Image {
  path: string;
  /** Size of the image file (apparent; the file is sparse where the file system is free). */
  sizeBytes: number;
  inodes: number;
  /** What the tree was measured as. */
  tree: TreeUsage;
  /** mke2fs runs (more than 1 when the first estimate was short). */
  attempts: number;
  durationMs: number;
}

export interface TreeUsage {
  /** Inodes (hard links counted once), the root included. */
  inodes: number;
  /** Bytes of regular files' contents (hard links counted once). */
  fileBytes: number;
  /** 4 KiB blocks the tree needs (data, directories, long symlinks, extent blocks). */
  blocks: number;
  /** The directory with the most entries (relative to the root; '' is the root) and their number. */
  largestDir: { path: string; entries: number };
}

const BLOCK = 4096;
const INODE_SIZE = 256;
const BLOCKS_PER_GROUP = 32768;
const MAX_ATTEMPTS = 3;
const STDERR_TAIL = 2000;

/** Builds `outFile` (replacing it) from the tree at `root`. Throws ImageError FS_IMAGE_FAILED. */
export async function buildExt4Image(root: string, outFile: string, opts: Ext4Options = {}): Promise<Ext4Image> {
  const started = Date.now();
  const source = resolve(root);
  const target = resolve(outFile);
  const label = opts.label ?? 'caas';
  if (Buffer.byteLength(label) > 16 || /[\0,]/.test(label)) throw new RangeError(`ext4 label ${JSON.stringify(label)}`);
  const tree = await measureTree(source);
  const maxDirEntries = opts.maxDirEntries ?? 50_000;
  if (tree.largestDir.entries > maxDirEntries) {
    const { path, entries } = tree.largestDir;
    throw new ImageError(
      'TOO_LARGE',
      `/${path} has ${entries} entries (the bound for one directory is ${maxDirEntries})`,
    );
  }
  let { blocks, inodes } = ext4Geometry(tree);
  const temp = join(dirname(target), `.${basename(target)}.${randomBytes(6).toString('hex')}.tmp`);
  let attempts = 0;
  try {
    for (;;) {
      attempts++;
      await rm(temp, { force: true });
      const args = [
        '-q',
        '-F',
        '-d',
        source,
        '-b',
        String(BLOCK),
        '-I',
        String(INODE_SIZE),
        '-N',
        String(inodes),
        '-O',
        '^has_journal,^resize_inode',
        '-m',
        '0',
        '-E',
        'root_owner=0:0,nodiscard',
        '-L',
        label,
        temp,
        String(blocks * (BLOCK / 1024)) + 'k',
      ];
      const result = await run(opts.mkfs ?? 'mkfs.ext4', args, opts.timeoutMs ?? 600_000);
      if (result.ok) break;
      const outOfSpace = /Could not allocate (block|inode)|No space left|too many inodes/i.test(result.stderr);
      if (!outOfSpace || attempts === MAX_ATTEMPTS) {
        throw new ImageError('FS_IMAGE_FAILED', `mkfs.ext4 failed (${result.reason}): ${tail(result.stderr)}`);
      }
      blocks = Math.ceil(blocks * 1.5);
      inodes = Math.ceil(inodes * 1.5);
    }
    const handle = await open(temp, 'r+');
    let sizeBytes: number;
    try {
      await handle.sync();
      sizeBytes = (await handle.stat()).size;
    } finally {
      await handle.close();
    }
    await rename(temp, target);
    return {
      path: target,
      sizeBytes,
      inodes,
      tree,
      attempts,
      durationMs: Date.now() - started,
    };
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/** Blocks and inodes for an image of a tree: its content, inode tables, per-group metadata and a margin. */
export function ext4Geometry(tree: TreeUsage): { blocks: number; inodes: number } {
  const inodes = Math.ceil(tree.inodes * 1.05) + 64;
  const inodeTableBlocks = Math.ceil((inodes * INODE_SIZE) / BLOCK);
  let blocks = tree.blocks + inodeTableBlocks;
  // Superblock and descriptor copies, two bitmaps per group, with a margin for mke2fs's own rounding.
  const groups = Math.ceil(blocks / BLOCKS_PER_GROUP) + 1;
  blocks += groups * 4 + 64;
  blocks = Math.ceil(blocks * 1.05) + 256; // + 1 MiB
  return { blocks, inodes };
}

/** Walks the tree without following symlinks. */
export async function measureTree(root: string): Promise<TreeUsage> {
  const usage: TreeUsage = { inodes: 0, fileBytes: 0, blocks: 0, largestDir: { path: '', entries: 0 } };
  const seen = new Set<string>();
  const stack = [root];
  for (let dir = stack.pop(); dir !== undefined; dir = stack.pop()) {
    usage.inodes++;
    const entries = await readdir(dir, { withFileTypes: true });
    if (entries.length > usage.largestDir.entries) {
      usage.largestDir = { path: relative(root, dir), entries: entries.length };
    }
    // Directory entries: 8 bytes + the name, 4-aligned; '.' and '..'; a quarter more for htree and slack.
    let dirBytes = 24;
    for (const entry of entries) {
      dirBytes += 8 + Math.ceil(Buffer.byteLength(entry.name) / 4) * 4;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        stack.push(path);
        continue;
      }
      const stat = await lstat(path);
      if (stat.nlink > 1) {
        const key = `${stat.dev}:${stat.ino}`;
        if (seen.has(key)) continue;
        seen.add(key);
      }
      usage.inodes++;
      if (stat.isFile()) {
        usage.fileBytes += stat.size;
        const data = Math.ceil(stat.size / BLOCK);
        // Extents: 4 fit in the inode (128 MiB each at best); beyond, an extent block per 340.
        usage.blocks += data + (data > 4 * BLOCKS_PER_GROUP ? Math.ceil(data / BLOCKS_PER_GROUP / 340) + 1 : 0);
      } else if (stat.isSymbolicLink() && stat.size >= 60) {
        usage.blocks += 1;
      }
    }
    usage.blocks += Math.ceil((dirBytes * 1.25) / BLOCK);
  }
  return usage;
}

interface RunResult {
  ok: boolean;
  reason: string;
  stderr: string;
}

function run(command: string, args: string[], timeoutMs: number): Promise<RunResult> {
  return new Promise((resolvePromise) => {
    const env = { ...process.env, PATH: `${process.env['PATH'] ?? ''}:/usr/sbin:/sbin`, LC_ALL: 'C' };
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
    let stderr = '';
    let timedOut = false;
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-4 * STDERR_TAIL);
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      resolvePromise({ ok: false, reason: error.message, stderr });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const reason = timedOut ? `timed out after ${timeoutMs} ms` : signal ? `killed by ${signal}` : `exit ${code}`;
      resolvePromise({ ok: code === 0 && !timedOut, reason, stderr });
    });
  });
}

function tail(text: string): string {
  const trimmed = text.trim();
  return trimmed.length > STDERR_TAIL ? `…${trimmed.slice(-STDERR_TAIL)}` : trimmed || '(no output)';
}
