/**
 * Applies one layer (a gzip-compressed or plain tar stream) onto a root directory, as the OCI image spec's
 * "applying changesets" says: entries add or replace paths, whiteouts remove what lower layers put there.
 *
 * Every layer is hostile. Nothing is ever written, changed or removed outside the root:
 * - entry names are judged lexically first (`entryPathParts`: `..` above the root refused, a leading `/` or `./`
 *   taken as relative to the root);
 * - then every parent of an entry is checked on disk, component by component with lstat (what this layer
 *   checked or made is remembered, in a tree of path components, until it is removed): a parent that is a
 *   symlink — put there by a lower layer or earlier in this one — is refused (UNSAFE_LAYER), never followed,
 *   even when it points inside the root; a parent that is another non-directory is BAD_LAYER; a missing parent
 *   is made (0755, root-owned) and spends an entry of the image's budget;
 * - the last component is never followed either: files are created with O_CREAT|O_EXCL|O_NOFOLLOW after
 *   whatever was there is removed (unlinked, or removed as a tree without following symlinks), directories'
 *   metadata is set through O_DIRECTORY|O_NOFOLLOW handles, symlinks' with lchown/lutimes;
 * - symlinks are created with any target (a value the guest interprets inside its own root), never followed;
 * - a hard link must name an existing regular file inside the root, reached without symlinks;
 * - char/block devices and FIFOs are refused (UNSAFE_LAYER).
 *
 * Kept: numeric ownership (we run as root), modes with setuid/setgid/sticky, mtimes (atime = mtime). Not kept:
 * extended attributes (counted in `ignoredXattrs`), user/group names, hard link entries' own metadata (they
 * share their target's inode). Directories get their mode and times after the layer's content is in place, so
 * a read-only directory does not block its own children; a lower directory this layer only writes into keeps
 * its times (as umoci does).
 *
 * Whiteouts follow the OCI spec: `.wh.NAME` removes NAME as lower layers left it, `DIR/.wh..wh..opq` empties
 * DIR of what lower layers put there; neither touches what this layer itself writes, whatever the order of the
 * entries in the tar. Other `.wh..wh.*` names (AUFS metadata) are ignored.
 *
 * Cost under hostile input: memory for the bookkeeping is bounded (maxTrackedPathBytes), every inode made
 * (entries and implied directories) spends the image's entry budget, each path is cleaned by whiteouts at most
 * once per layer, and walking a path costs its length. Very deep paths still cost the kernel's path walks
 * (≈1.5 ms an entry at depth 1500): put a deadline on the whole pull.
 *
 * On any error the root is left half-written: the caller throws it away.
 */
import { constants, type Stats } from 'node:fs';
import {
  chmod,
  lchown,
  link,
  lstat,
  lutimes,
  mkdir,
  open,
  readdir,
  rm,
  symlink,
  unlink,
  type FileHandle,
} from 'node:fs/promises';
import { resolve } from 'node:path';
import { Readable } from 'node:stream';
import { ImageError } from '../errors';
import { decompressLayer } from './decompress';
import type { UnpackBudget } from './limits';
import { entryPathParts } from './paths';
import { readTar, type TarEntry } from './tar-reader';

export interface LayerStats {
  /** Tar entries, whiteouts included. */
  entries: number;
  files: number;
  directories: number;
  symlinks: number;
  hardlinks: number;
  whiteouts: number;
  /** Bytes of file contents written. */
  fileBytes: number;
  /** Uncompressed tar bytes read. */
  uncompressedBytes: number;
  /** Blob bytes read. */
  compressedBytes: number;
  /** Extended attributes present in the layer and not applied. */
  ignoredXattrs: number;
}

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_RDONLY, O_DIRECTORY } = constants;
const CREATE_FILE = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW;
const OPEN_DIR = O_RDONLY | O_DIRECTORY | O_NOFOLLOW;
/** File contents are written in batches of about this many bytes (one writev each). */
const WRITE_BATCH = 1024 * 1024;
const WHITEOUT = '.wh.';
const OPAQUE = '.wh..wh..opq';

/**
 * Applies a layer onto `root` (an existing directory, not a symlink). Layers are applied in order, each with the
 * image's running `budget`. `onProgress` gets the running count of blob (compressed) bytes read. Throws
 * ImageError UNSAFE_LAYER, BAD_LAYER or TOO_LARGE; file system errors (ENOSPC, EIO, …) pass through. The stream
 * (when a Readable) is destroyed when this returns or throws.
 */
export async function applyLayer(
  root: string,
  layer: Readable | AsyncIterable<Uint8Array>,
  budget: UnpackBudget,
  onProgress?: (compressedBytesRead: number) => void,
): Promise<LayerStats> {
  const stats: LayerStats = {
    entries: 0,
    files: 0,
    directories: 0,
    symlinks: 0,
    hardlinks: 0,
    whiteouts: 0,
    fileBytes: 0,
    uncompressedBytes: 0,
    compressedBytes: 0,
    ignoredXattrs: 0,
  };
  try {
    const rootDir = resolve(root);
    if (rootDir === '/') throw new Error('applyLayer: refusing to unpack into /');
    const rootStat = await lstat(rootDir);
    if (!rootStat.isDirectory()) throw new Error(`applyLayer: ${rootDir} is not a directory`);
    const { limits } = budget;
    const compressed = decompressLayer(layer, (bytes) => {
      stats.compressedBytes = bytes;
      onProgress?.(bytes);
    });
    const entries = readTar(metered(compressed, budget, stats), {
      maxEntries: limits.maxLayerEntries,
      maxFileSize: limits.maxFileSize,
      maxPathLength: limits.maxPathLength,
      maxPaxHeaderSize: limits.maxPaxHeaderSize,
    });
    const writer = new LayerWriter(rootDir, rootStat, stats, budget);
    for await (const entry of entries) {
      stats.entries++;
      spendEntry(budget);
      try {
        await writer.apply(entry);
      } catch (error) {
        throw asLayerError(error, entry.path);
      }
    }
    await writer.finish();
    return stats;
  } finally {
    if (layer instanceof Readable) layer.destroy();
  }
}

/** Counts the uncompressed bytes against the layer's and the image's bounds before letting them through. */
async function* metered(
  source: AsyncIterable<Buffer>,
  budget: UnpackBudget,
  stats: LayerStats,
): AsyncGenerator<Buffer, void, undefined> {
  const { maxLayerBytes, maxImageBytes } = budget.limits;
  for await (const chunk of source) {
    stats.uncompressedBytes += chunk.length;
    budget.bytes += chunk.length;
    if (stats.uncompressedBytes > maxLayerBytes) {
      throw new ImageError('TOO_LARGE', `a layer of more than ${maxLayerBytes} bytes uncompressed`);
    }
    if (budget.bytes > maxImageBytes) {
      throw new ImageError('TOO_LARGE', `an image of more than ${maxImageBytes} bytes uncompressed`);
    }
    yield chunk;
  }
}

function spendEntry(budget: UnpackBudget): void {
  if (++budget.entries > budget.limits.maxImageEntries) {
    throw new ImageError('TOO_LARGE', `more than ${budget.limits.maxImageEntries} entries in the image`);
  }
}

function asLayerError(error: unknown, path: string): unknown {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (code === 'ENAMETOOLONG' || code === 'EMLINK') {
    return new ImageError('BAD_LAYER', `${JSON.stringify(path.slice(0, 300))}: ${code}`, { cause: error });
  }
  return error;
}

interface DirMeta {
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
}

/**
 * What applying a layer knows about a path, kept in a tree of path components: walking a path costs its length
 * (no prefix strings are built or hashed), and removing a directory drops what was known at and below it.
 */
interface PathNode {
  children: Map<string, PathNode> | undefined;
  /** Checked (lstat) or made while applying this layer: a real directory, not a symlink. */
  realDir: boolean;
  /** This layer wrote it, or something below it: its own whiteouts must keep it. */
  inLayer: boolean;
  /** What lower layers put here is already gone: at and below it ('self'), or below it ('children'). */
  cleaned: 'self' | 'children' | undefined;
  /** The layer's entry for this directory: set at the end. */
  meta: DirMeta | undefined;
  /** A lower directory's times when this layer first saw it: put back at the end (unless `meta`). */
  lowerTimes: { atime: number; mtime: number } | undefined;
}

const newNode = (): PathNode => ({
  children: undefined,
  realDir: false,
  inLayer: false,
  cleaned: undefined,
  meta: undefined,
  lowerTimes: undefined,
});

/** What a node costs in memory, roughly, besides its name. */
const NODE_BYTES = 160;

const timesOf = (stat: Stats): { atime: number; mtime: number } => ({
  atime: stat.atimeMs / 1000,
  mtime: stat.mtimeMs / 1000,
});

class LayerWriter {
  private readonly rootNode = newNode();
  /** Bytes the nodes take, roughly (bounded by maxTrackedPathBytes). */
  private tracked = 0;

  constructor(
    private readonly root: string,
    rootStat: Stats,
    private readonly stats: LayerStats,
    private readonly budget: UnpackBudget,
  ) {
    this.rootNode.realDir = true;
    this.rootNode.lowerTimes = timesOf(rootStat);
  }

  private abs(rel: string): string {
    return rel === '' ? this.root : `${this.root}/${rel}`;
  }

  /** The node of `name` in `parent`, made if need be. */
  private child(parent: PathNode, name: string): PathNode {
    parent.children ??= new Map();
    let node = parent.children.get(name);
    if (node === undefined) {
      this.tracked += 2 * name.length + NODE_BYTES;
      const max = this.budget.limits.maxTrackedPathBytes;
      if (this.tracked > max) {
        throw new ImageError('TOO_LARGE', `a layer whose paths take more than ${max} bytes to keep track of`);
      }
      node = newNode();
      parent.children.set(name, node);
    }
    return node;
  }

  async apply(entry: TarEntry): Promise<void> {
    this.stats.ignoredXattrs += entry.xattrs.length;
    const parts = entryPathParts(entry.path);
    const name = parts.at(-1);
    if (name === undefined) {
      if (entry.type !== 'directory') {
        throw new ImageError(
          'UNSAFE_LAYER',
          `a ${entry.type} entry in place of the root (${JSON.stringify(entry.path)})`,
        );
      }
      this.stats.directories++;
      this.rootNode.meta = meta(entry);
      return;
    }
    if (name.startsWith(WHITEOUT)) {
      this.stats.whiteouts++;
      return this.whiteout(parts, entry.path);
    }
    const rel = parts.join('/');
    switch (entry.type) {
      case 'char-device':
      case 'block-device':
      case 'fifo':
        throw new ImageError('UNSAFE_LAYER', `a ${entry.type} (${JSON.stringify(rel)}): not allowed in a layer`);
      case 'directory':
        this.stats.directories++;
        return this.directory(parts, name, rel, entry);
      case 'file':
        this.stats.files++;
        return this.file(parts, name, rel, entry);
      case 'symlink':
        this.stats.symlinks++;
        return this.symlink(parts, name, rel, entry);
      case 'hardlink':
        this.stats.hardlinks++;
        return this.hardlink(parts, name, rel, entry);
    }
  }

  /**
   * Sets directories' metadata (their entries', or for lower directories this layer wrote into, their times as
   * they were), children before parents, each through a handle opened without following anything.
   */
  async finish(): Promise<void> {
    const dirs: [PathNode, string][] = [];
    const stack: [PathNode, string][] = [[this.rootNode, '']];
    for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
      dirs.push(item);
      const [node, rel] = item;
      for (const [name, child] of node.children ?? []) {
        if (child.realDir) stack.push([child, rel === '' ? name : `${rel}/${name}`]);
      }
    }
    for (let i = dirs.length - 1; i >= 0; i--) {
      const [node, rel] = dirs[i];
      const m = node.meta;
      if (m !== undefined) {
        await this.withDir(rel, async (handle) => {
          await handle.chown(m.uid, m.gid);
          await handle.chmod(m.mode);
          await handle.utimes(m.mtime, m.mtime);
        });
      } else if (node.lowerTimes !== undefined) {
        const { atime, mtime } = node.lowerTimes;
        await this.withDir(rel, (handle) => handle.utimes(atime, mtime));
      }
    }
  }

  /** Runs `use` on the directory at `rel` (its parents known to be real directories) if it still is one. */
  private async withDir(rel: string, use: (handle: FileHandle) => Promise<void>): Promise<void> {
    let handle: FileHandle;
    try {
      handle = await open(this.abs(rel), OPEN_DIR);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') return;
      throw error;
    }
    try {
      await use(handle);
    } finally {
      await handle.close();
    }
  }

  private async directory(parts: string[], name: string, rel: string, entry: TarEntry): Promise<void> {
    const parent = await this.parentFor(parts);
    const path = this.abs(rel);
    try {
      await mkdir(path, { mode: 0o700 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      // A directory over a directory merges; over anything else replaces it.
      if (!(await this.clear(parent, name, rel, true))) await mkdir(path, { mode: 0o700 });
    }
    const node = this.child(parent, name);
    node.realDir = true;
    node.inLayer = true;
    node.meta = meta(entry);
  }

  private async file(parts: string[], name: string, rel: string, entry: TarEntry): Promise<void> {
    const parent = await this.parentFor(parts);
    const path = this.abs(rel);
    let handle: FileHandle;
    try {
      handle = await open(path, CREATE_FILE, 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      await this.clear(parent, name, rel, false);
      handle = await open(path, CREATE_FILE, 0o600);
    }
    this.child(parent, name).inLayer = true;
    try {
      let batch: Buffer[] = [];
      let batched = 0;
      for await (const chunk of entry.body) {
        batch.push(chunk);
        batched += chunk.length;
        if (batched >= WRITE_BATCH) {
          await writeAll(handle, batch, batched);
          batch = [];
          batched = 0;
        }
      }
      if (batched > 0) await writeAll(handle, batch, batched);
      this.stats.fileBytes += entry.size;
      // chown before chmod: chown clears setuid/setgid.
      await handle.chown(entry.uid, entry.gid);
      await handle.chmod(entry.mode);
      await handle.utimes(entry.mtime, entry.mtime);
    } finally {
      await handle.close();
    }
  }

  private async symlink(parts: string[], name: string, rel: string, entry: TarEntry): Promise<void> {
    const target = entry.linkpath;
    if (target === '') throw new ImageError('BAD_LAYER', `a symlink without a target (${JSON.stringify(rel)})`);
    if (target.includes('\0')) throw new ImageError('UNSAFE_LAYER', `a symlink target with a NUL byte (${rel})`);
    const parent = await this.parentFor(parts);
    const path = this.abs(rel);
    try {
      await symlink(target, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      await this.clear(parent, name, rel, false);
      await symlink(target, path);
    }
    this.child(parent, name).inLayer = true;
    await lchown(path, entry.uid, entry.gid);
    await lutimes(path, entry.mtime, entry.mtime);
  }

  private async hardlink(parts: string[], name: string, rel: string, entry: TarEntry): Promise<void> {
    const targetParts = entryPathParts(entry.linkpath, 'hard link target');
    const target = targetParts.join('/');
    const shown = `${JSON.stringify(rel)} → ${JSON.stringify(entry.linkpath.slice(0, 300))}`;
    if (target === rel) return; // a link to itself: nothing to do
    if (target === '' || target.startsWith(`${rel}/`)) {
      throw new ImageError('UNSAFE_LAYER', `a hard link to the root or to something below itself: ${shown}`);
    }
    // The target must be reached without symlinks and be a regular file.
    const reachable = (await this.walk(targetParts.slice(0, -1), 'check')) !== null;
    const stat = reachable ? await lstatOrNull(this.abs(target)) : null;
    if (stat === null || !stat.isFile()) {
      const what = stat === null ? 'nothing' : stat.isSymbolicLink() ? 'a symlink' : 'not a regular file';
      throw new ImageError('UNSAFE_LAYER', `a hard link to ${what} inside the root: ${shown}`);
    }
    const parent = await this.parentFor(parts);
    const path = this.abs(rel);
    try {
      await link(this.abs(target), path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      await this.clear(parent, name, rel, false);
      await link(this.abs(target), path);
    }
    this.child(parent, name).inLayer = true;
  }

  private async whiteout(parts: string[], raw: string): Promise<void> {
    const name = parts[parts.length - 1];
    const parentParts = parts.slice(0, -1);
    if (name === OPAQUE) {
      // Everything lower layers put in the directory goes; what this layer put there (entries before the
      // marker) stays, and entries after it land in the emptied directory. Once per directory and layer.
      if (this.covered(parentParts, 'any')) return;
      const dir = await this.walk(parentParts, 'check');
      if (dir === null) return;
      const dirRel = parentParts.join('/');
      for (const child of await readdir(this.abs(dirRel))) {
        await this.removeLower(dir, child, dirRel === '' ? child : `${dirRel}/${child}`);
      }
      dir.cleaned ??= 'children';
      return;
    }
    if (name.startsWith(`${WHITEOUT}${WHITEOUT}`)) return; // other AUFS metadata (.wh..wh.plnk, …): ignored
    const victim = name.slice(WHITEOUT.length);
    if (victim === '' || victim === '.' || victim === '..') {
      throw new ImageError('UNSAFE_LAYER', `a whiteout of ${JSON.stringify(victim)} (${JSON.stringify(raw)})`);
    }
    if (this.covered([...parentParts, victim], 'self')) return;
    const parent = await this.walk(parentParts, 'check');
    if (parent === null) return;
    await this.removeLower(parent, victim, [...parentParts, victim].join('/'));
    this.child(parent, victim).cleaned = 'self';
  }

  /**
   * Whether what lower layers put at `parts` is already gone: an ancestor was whited out or made opaque, or
   * (`self`) the path itself was whited out, or (`any`) it was whited out or made opaque.
   */
  private covered(parts: readonly string[], self: 'self' | 'any'): boolean {
    let node: PathNode | undefined = this.rootNode;
    for (const part of parts) {
      if (node.cleaned !== undefined) return true;
      node = node.children?.get(part);
      if (node === undefined) return false;
    }
    return self === 'any' ? node.cleaned !== undefined : node.cleaned === 'self';
  }

  /** Removes what lower layers put at `rel` (a tree), keeping what this layer wrote there. */
  private async removeLower(parent: PathNode | undefined, name: string, rel: string): Promise<void> {
    const node = parent?.children?.get(name);
    if (node?.cleaned === 'self') return;
    const stat = await lstatOrNull(this.abs(rel));
    if (stat === null) return;
    if (node?.inLayer !== true) {
      await this.remove(parent, name, rel, stat);
      return;
    }
    if (!stat.isDirectory() || node.cleaned === 'children') return;
    for (const child of await readdir(this.abs(rel))) await this.removeLower(node, child, `${rel}/${child}`);
  }

  /**
   * Makes way for an entry at `rel`: removes what is there (a directory as a whole tree, unless `keepDir`).
   * Returns whether a directory was kept.
   */
  private async clear(parent: PathNode, name: string, rel: string, keepDir: boolean): Promise<boolean> {
    const stat = await lstatOrNull(this.abs(rel));
    if (stat === null) return false;
    if (stat.isDirectory() && keepDir) return true;
    await this.remove(parent, name, rel, stat);
    return false;
  }

  private async remove(parent: PathNode | undefined, name: string, rel: string, stat: Stats): Promise<void> {
    if (stat.isDirectory()) {
      // Whatever was known at and below it is void.
      parent?.children?.delete(name);
      // fs.rm lstat()s every path and unlinks symlinks: it never follows one.
      await rm(this.abs(rel), { recursive: true, force: true });
    } else {
      await unlink(this.abs(rel));
    }
  }

  /** The parent directory of an entry, every directory on the way made if missing (see `walk`). */
  private async parentFor(parts: readonly string[]): Promise<PathNode> {
    const parent = await this.walk(parts.slice(0, -1), 'create');
    if (parent === null) throw new Error('unreachable: a created walk always ends in a directory');
    return parent;
  }

  /**
   * Walks the directories `parts` from the root, component by component, and returns the last one's node.
   * `create`: missing directories are made (0755, root-owned, each spending an entry of the image's budget),
   * another non-directory is BAD_LAYER. `check`: missing or another non-directory → null. Both: a symlink is
   * UNSAFE_LAYER. Directories already checked while applying this layer are not checked again.
   */
  private async walk(parts: readonly string[], how: 'create' | 'check'): Promise<PathNode | null> {
    let node = this.rootNode;
    let rel = '';
    for (const part of parts) {
      rel = rel === '' ? part : `${rel}/${part}`;
      node = this.child(node, part);
      if (how === 'create') node.inLayer = true;
      if (node.realDir) continue;
      const path = this.abs(rel);
      const stat = await lstatOrNull(path);
      if (stat === null) {
        if (how === 'check') return null;
        spendEntry(this.budget); // an implied directory is an inode like any entry's
        await mkdir(path, { mode: 0o755 });
        await chmod(path, 0o755); // whatever the umask
      } else if (stat.isSymbolicLink()) {
        throw new ImageError(
          'UNSAFE_LAYER',
          `${JSON.stringify(rel)} is a symlink: a layer may not write, link or remove through a symlink`,
        );
      } else if (!stat.isDirectory()) {
        if (how === 'create') throw new ImageError('BAD_LAYER', `${JSON.stringify(rel)} is not a directory`);
        return null;
      } else {
        node.lowerTimes ??= timesOf(stat);
      }
      node.realDir = true;
    }
    return node;
  }
}

function meta(entry: TarEntry): DirMeta {
  return { mode: entry.mode, uid: entry.uid, gid: entry.gid, mtime: entry.mtime };
}

async function lstatOrNull(path: string): Promise<Stats | null> {
  try {
    return await lstat(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

async function writeAll(handle: FileHandle, buffers: Buffer[], total: number): Promise<void> {
  let pending = buffers;
  let left = total;
  for (;;) {
    const { bytesWritten } = await handle.writev(pending);
    left -= bytesWritten;
    if (left === 0) return;
    if (bytesWritten === 0) throw new Error('writev wrote nothing');
    // A short write: drop what was written and go on.
    let skip = bytesWritten;
    const rest: Buffer[] = [];
    for (const buffer of pending) {
      if (skip >= buffer.length) skip -= buffer.length;
      else {
        rest.push(skip > 0 ? buffer.subarray(skip) : buffer);
        skip = 0;
      }
    }
    pending = rest;
  }
}
