/**
 * An image's `User` → numeric ids, the way runc (libcontainer's GetExecUser) does it, from the `/etc/passwd`
 * and `/etc/group` of the unpacked root:
 * - `""` (or undefined): uid 0, and the gid and supplementary groups of uid 0's passwd entry if there is one;
 * - `name` / `uid`: the passwd entry's uid and gid; a numeric uid without an entry is used as is with gid 0;
 *   supplementary groups: every group that lists the user's name as a member;
 * - `…:group` / `…:gid`: that group as primary gid (a numeric gid needs no entry), no supplementary groups.
 * An unknown name is an error (UNSUPPORTED_MANIFEST, as the image config is then unusable).
 *
 * The files are read inside the root as the guest would see them: symlinks are resolved as if the root were `/`
 * (an absolute target or a `..` never leaves the root), never followed out of it.
 */
import { constants } from 'node:fs';
import { lstat, open, readlink } from 'node:fs/promises';
import { resolve } from 'node:path';
import { ImageError } from '../errors';

export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Supplementary groups, without duplicates. */
  additionalGids: number[];
}

/** Bytes of /etc/passwd or /etc/group we are willing to read. */
const MAX_ACCOUNT_FILE = 8 * 1024 * 1024;
/** runc's bound on ids. */
const MAX_ID = 2 ** 31 - 1;
/** Symlinks followed while resolving one path (the kernel's MAXSYMLINKS). */
const MAX_SYMLINKS = 40;

const unknown = (message: string): ImageError => new ImageError('UNSUPPORTED_MANIFEST', `user: ${message}`);

export async function resolveUser(user: string | undefined, rootDir: string): Promise<ResolvedUser> {
  const spec = user ?? '';
  if (spec.includes('\0') || spec.length > 256) throw unknown(`invalid user ${JSON.stringify(spec.slice(0, 100))}`);
  const colon = spec.indexOf(':');
  const userArg = colon < 0 ? spec : spec.slice(0, colon);
  const groupArg = colon < 0 ? '' : spec.slice(colon + 1);
  if (groupArg.includes(':')) throw unknown(`invalid user ${JSON.stringify(spec)}`);
  const uidArg = numericId(userArg);
  const gidArg = numericId(groupArg);

  const root = resolve(rootDir);
  const passwd = parsePasswd(await readFileInRoot(root, '/etc/passwd', MAX_ACCOUNT_FILE));
  const match =
    userArg === ''
      ? passwd.find((u) => u.uid === 0)
      : passwd.find((u) => (uidArg !== undefined ? u.uid === uidArg : u.name === userArg));
  let uid = 0;
  let gid = 0;
  if (match) {
    uid = match.uid;
    gid = match.gid;
  } else if (userArg !== '') {
    if (uidArg === undefined) throw unknown(`unable to find user ${JSON.stringify(userArg)} in /etc/passwd`);
    uid = uidArg;
  }

  let additionalGids: number[] = [];
  if (groupArg !== '' || match) {
    const groups = parseGroup(await readFileInRoot(root, '/etc/group', MAX_ACCOUNT_FILE));
    if (groupArg !== '') {
      const group = groups.find((g) => (gidArg !== undefined ? g.gid === gidArg : g.name === groupArg));
      if (group) gid = group.gid;
      else if (gidArg !== undefined) gid = gidArg;
      else throw unknown(`unable to find group ${JSON.stringify(groupArg)} in /etc/group`);
    } else if (match) {
      additionalGids = [...new Set(groups.filter((g) => g.members.includes(match.name)).map((g) => g.gid))];
    }
  }
  return { uid, gid, additionalGids };
}

function numericId(text: string): number | undefined {
  if (!/^[0-9]{1,10}$/.test(text)) return undefined;
  const id = Number(text);
  if (id > MAX_ID) throw unknown(`id ${text} out of range`);
  return id;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}

interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/** `name:password:uid:gid:gecos:home:shell`; malformed lines are skipped. */
export function parsePasswd(text: string): PasswdEntry[] {
  const entries: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(':');
    if (fields.length < 4 || fields[0] === '') continue;
    const uid = idField(fields[2]);
    const gid = idField(fields[3]);
    if (uid !== undefined && gid !== undefined) entries.push({ name: fields[0], uid, gid });
  }
  return entries;
}

/** `name:password:gid:member,member`; malformed lines are skipped. */
export function parseGroup(text: string): GroupEntry[] {
  const entries: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    const fields = line.trim().split(':');
    if (fields.length < 3 || fields[0] === '') continue;
    const gid = idField(fields[2]);
    const members = (fields[3] ?? '').split(',').filter((m) => m !== '');
    if (gid !== undefined) entries.push({ name: fields[0], gid, members });
  }
  return entries;
}

function idField(text: string): number | undefined {
  if (!/^[0-9]{1,10}$/.test(text)) return undefined;
  const id = Number(text);
  return id <= MAX_ID ? id : undefined;
}

/**
 * Reads `path` inside `root` as a process chrooted there would, without ever leaving the root: each component
 * is lstat()ed, symlinks are resolved by hand (absolute targets from the root, `..` stops at the root), the
 * file is opened with O_NOFOLLOW. '' when it does not exist.
 */
export async function readFileInRoot(root: string, path: string, maxBytes: number): Promise<string> {
  const host = await resolveInRoot(root, path);
  if (host === null) return '';
  const handle = await open(host, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw unknown(`${path} in the image is not a regular file`);
    if (stat.size > maxBytes) throw new ImageError('TOO_LARGE', `${path} in the image: more than ${maxBytes} bytes`);
    const buffer = Buffer.alloc(stat.size);
    let read = 0;
    while (read < buffer.length) {
      const { bytesRead } = await handle.read(buffer, read, buffer.length - read, read);
      if (bytesRead === 0) break;
      read += bytesRead;
    }
    return buffer.toString('utf8', 0, read);
  } finally {
    await handle.close();
  }
}

/** The host path of `path` resolved inside `root` (the last component not a symlink), or null if missing. */
async function resolveInRoot(root: string, path: string): Promise<string | null> {
  const pending = path.split('/');
  let resolved: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift() as string;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const candidate = [...resolved, part];
    const host = `${root}/${candidate.join('/')}`;
    let stat;
    try {
      stat = await lstat(host);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return null;
      throw error;
    }
    if (stat.isSymbolicLink()) {
      if (++links > MAX_SYMLINKS) throw unknown(`${path} in the image: too many levels of symlinks`);
      const target = await readlink(host);
      if (target.startsWith('/')) resolved = [];
      pending.unshift(...target.split('/'));
      continue;
    }
    if (pending.some((p) => p !== '' && p !== '.') && !stat.isDirectory()) return null;
    resolved = candidate;
  }
  return `${root}/${resolved.join('/')}`;
}
