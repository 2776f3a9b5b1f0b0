// Are our ext4 image and umoci's rootfs the same tree? The image is read with debugfs (no mount): `rdump` for
// the names, types, sizes, symlink targets, file contents and file mtimes, and `ls -p` of every directory for the
// exact modes (setuid/setgid/sticky included; rdump loses them: it chmods before it chowns) and owners.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

export interface TreeEntry {
  /** `d`, `f`, `l` (anything else: `?`). */
  type: string;
  mode: number;
  uid: number;
  gid: number;
  /** Regular files: bytes; symlinks: the target's length; directories: 0 (block sizes differ between file systems). */
  size: number;
  /** Regular files: sha256 of the content; symlinks: the target. */
  content: string;
  /** Regular files: whole seconds (rdump does not keep the mtimes of directories and symlinks). */
  mtime: number;
}

export interface TreeSummary {
  entries: number;
  files: number;
  directories: number;
  symlinks: number;
  fileBytes: number;
}

/** Every entry of the tree at `root` (the root itself as ''), with lstat's metadata. */
export function readTree(root: string): Map<string, TreeEntry> {
  const tree = new Map<string, TreeEntry>();
  const visit = (rel: string) => {
    const path = rel === '' ? root : join(root, rel);
    const stat = lstatSync(path);
    const type = stat.isDirectory() ? 'd' : stat.isFile() ? 'f' : stat.isSymbolicLink() ? 'l' : '?';
    const content =
      type === 'f'
        ? createHash('sha256').update(readFileSync(path)).digest('hex')
        : type === 'l'
          ? readlinkSync(path)
          : '';
    tree.set(rel, {
      type,
      mode: stat.mode,
      uid: stat.uid,
      gid: stat.gid,
      size: type === 'd' ? 0 : stat.size,
      content,
      mtime: type === 'f' ? Math.floor(stat.mtimeMs / 1000) : 0,
    });
    if (type === 'd') for (const name of readdirSync(path).sort()) visit(rel === '' ? name : `${rel}/${name}`);
  };
  visit('');
  return tree;
}

/** The tree of an ext4 image: rdump into `scratch`, then modes and owners from debugfs `ls -p`. */
export function readExt4Tree(image: string, scratch: string): Map<string, TreeEntry> {
  mkdirSync(scratch, { recursive: true });
  const debugfs = (args: string[], input?: string) =>
    execFileSync('debugfs', args, { encoding: 'utf8', input, maxBuffer: 256 * 1024 * 1024, stdio: 'pipe' });
  debugfs(['-R', `rdump / ${scratch}`, image]);
  const tree = readTree(scratch);
  const dirs = [...tree].filter(([, entry]) => entry.type === 'd').map(([rel]) => `/${rel}`);
  const listing = debugfs(['-f', '-', image], dirs.map((dir) => `ls -p "${dir}"\n`).join(''));
  // Each dir's listing follows its `debugfs: ls -p "<dir>"` echo; lines are /inode/mode/uid/gid/name/size/.
  let dir: string | undefined;
  for (const line of listing.split('\n')) {
    const command = /^debugfs: ls -p "(.*)"$/.exec(line);
    if (command) {
      dir = (command[1] ?? '').replace(/^\//, '');
      continue;
    }
    const fields = /^\/(\d+)\/([0-7]+)\/(\d+)\/(\d+)\/(.*)\/(\d*)\/$/.exec(line);
    if (!fields || dir === undefined) continue;
    const name = fields[5] ?? '';
    if (name === '..') continue;
    const rel = name === '.' ? dir : dir === '' ? name : `${dir}/${name}`;
    const entry = tree.get(rel);
    if (!entry) continue;
    entry.mode = parseInt(fields[2] ?? '', 8);
    entry.uid = Number(fields[3]);
    entry.gid = Number(fields[4]);
  }
  return tree;
}

/** Differences between `ours` and `theirs` (at most `max`), `lost+found` of ours ignored. */
export function diffTrees(ours: Map<string, TreeEntry>, theirs: Map<string, TreeEntry>, max = 20): string[] {
  const diffs: string[] = [];
  const show = (entry: TreeEntry) =>
    `${entry.type} ${entry.mode.toString(8)} ${entry.uid}:${entry.gid} ${entry.size} B mtime ${entry.mtime} ` +
    `${entry.type === 'f' ? entry.content.slice(0, 12) : entry.content}`;
  for (const [rel, entry] of ours) {
    if (rel === 'lost+found' || rel.startsWith('lost+found/')) continue;
    const other = theirs.get(rel);
    if (!other) diffs.push(`only in ours: /${rel}`);
    else if (show(entry) !== show(other)) diffs.push(`/${rel}: ours ${show(entry)} ≠ umoci ${show(other)}`);
  }
  for (const rel of theirs.keys()) if (!ours.has(rel)) diffs.push(`only in umoci's: /${rel}`);
  return diffs.slice(0, max);
}

export function summarize(tree: Map<string, TreeEntry>): TreeSummary {
  const entries = [...tree.values()];
  const count = (type: string) => entries.filter((entry) => entry.type === type).length;
  return {
    entries: entries.length,
    files: count('f'),
    directories: count('d'),
    symlinks: count('l'),
    fileBytes: entries.filter((entry) => entry.type === 'f').reduce((sum, entry) => sum + entry.size, 0),
  };
}
