/**
 * A streaming tar reader of our own: pure (no file system), bounded, strict. It reads what image builders write
 * (Go's archive/tar, GNU tar, BSD tar): ustar, GNU long names and links (`L`/`K`), PAX extended (`x`) and
 * global (`g`) headers, base-256 numbers. Every header's checksum is verified.
 *
 * Entry types follow Go's archive/tar, which wrote (and whose readers read) almost every layer in existence:
 * links, directories, devices and FIFOs have no content whatever their size field says; `\0` with a name
 * ending in `/` is a directory (old tars); `7` (contiguous) is a regular file. Anything else (GNU sparse `S`,
 * multi-volume `M`, old GNU long names `N`, vendor types) is refused with BAD_LAYER, as is a PAX GNU.sparse file.
 *
 * The reader returns names as they are in the archive: normalizing and judging them (`..`, absolute, NUL)
 * is `entryPathParts`' job. It refuses names that are not UTF-8 (BAD_LAYER).
 */
import { isUtf8 } from 'node:buffer';
import { ImageError } from '../errors';
import { DEFAULT_UNPACK_LIMITS } from './limits';

export type TarEntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'char-device' | 'block-device' | 'fifo';

export interface TarHeader {
  readonly type: TarEntryType;
  /** As in the archive (PAX `path` > GNU `L` > ustar prefix + name): not normalized, hostile. */
  readonly path: string;
  /** Target of a symlink or hard link (PAX `linkpath` > GNU `K` > ustar linkname); '' for other types. */
  readonly linkpath: string;
  /** Content bytes: 0 for every type but 'file'. */
  readonly size: number;
  /** Permission bits, setuid/setgid/sticky included (`mode & 0o7777`). */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  /** Seconds since the epoch (PAX may give a fraction). */
  readonly mtime: number;
  readonly devMajor: number;
  readonly devMinor: number;
  /** Names of the extended attributes in PAX records (SCHILY.xattr.*, LIBARCHIVE.xattr.*). Not applied. */
  readonly xattrs: readonly string[];
}

export interface TarEntry extends TarHeader {
  /**
   * The content, as slices of the input chunks. Read it (once) before asking for the next entry, or not at all:
   * what is left unread is skipped.
   */
  readonly body: AsyncIterable<Buffer>;
}

export interface TarReaderLimits {
  /** Entries (not counting `x`, `L`, `K` headers, but counting `g`): TOO_LARGE over it. */
  readonly maxEntries: number;
  /** Bytes of a path or link target: BAD_LAYER over it. */
  readonly maxPathLength: number;
  /** Bytes of one PAX header: BAD_LAYER over it. */
  readonly maxPaxHeaderSize: number;
  /** Declared size of one file: TOO_LARGE over it. */
  readonly maxFileSize: number;
}

const BLOCK = 512;
/** `x`, `L`, `K` headers before one entry. */
const MAX_META_HEADERS = 8;
/** What a body read hands out at most at once. */
const MAX_SLICE = 1024 * 1024;
/** uid/gid: 0xffffffff is chown's "unchanged". */
const MAX_ID = 0xfffffffe;
/** Times are clamped to what ext4 can store, give or take. */
const MIN_TIME = -(2 ** 31);
const MAX_TIME = 2 ** 34 - 1;

const bad = (message: string): ImageError => new ImageError('BAD_LAYER', `bad tar: ${message}`);

/** Reads tar entries from a stream of bytes (an uncompressed tar). Throws ImageError BAD_LAYER / TOO_LARGE. */
export async function* readTar(
  source: AsyncIterable<Uint8Array>,
  limits: Partial<TarReaderLimits> = {},
): AsyncGenerator<TarEntry, void, undefined> {
  const lim: TarReaderLimits = {
    maxEntries: limits.maxEntries ?? DEFAULT_UNPACK_LIMITS.maxLayerEntries,
    maxPathLength: limits.maxPathLength ?? DEFAULT_UNPACK_LIMITS.maxPathLength,
    maxPaxHeaderSize: limits.maxPaxHeaderSize ?? DEFAULT_UNPACK_LIMITS.maxPaxHeaderSize,
    maxFileSize: limits.maxFileSize ?? DEFAULT_UNPACK_LIMITS.maxFileSize,
  };
  const iterator = source[Symbol.asyncIterator]();
  const input = new ByteReader(iterator);
  const globals = new Map<string, string>();
  let entries = 0;
  try {
    for (;;) {
      let pax: Map<string, string> | undefined;
      let longName: string | undefined;
      let longLink: string | undefined;
      let metas = 0;
      let header: UstarHeader;
      for (;;) {
        const block = await input.readExact(BLOCK, 'a header');
        if (block === null) {
          if (metas > 0) throw bad('the archive ends after an extended header');
          return; // EOF without the end-of-archive marker: tolerated
        }
        if (isZeroBlock(block)) {
          if (metas > 0) throw bad('an extended header is followed by the end of the archive');
          const second = await input.readExact(BLOCK, 'the end-of-archive marker');
          if (second !== null && !isZeroBlock(second)) throw bad(`a lone zero block at ${input.offset - 2 * BLOCK}`);
          // What follows the marker (record padding) is read and discarded, so that a compressed stream is
          // checked to its end and every byte of it counts against the caller's bounds.
          await input.drain();
          return;
        }
        header = parseUstarHeader(block, input.offset - BLOCK);
        const flag = header.typeflag;
        if (flag !== 'x' && flag !== 'g' && flag !== 'L' && flag !== 'K') break;
        if (++metas > MAX_META_HEADERS) throw bad(`more than ${MAX_META_HEADERS} extended headers before an entry`);
        switch (flag) {
          case 'x':
          case 'g': {
            const records = parsePax(await readMeta(input, header.size, lim.maxPaxHeaderSize, `PAX header`));
            if (flag === 'x') {
              pax = records;
            } else {
              if (++entries > lim.maxEntries) throw tooManyEntries(lim.maxEntries);
              metas--; // a global header stands alone
              for (const [key, value] of records) {
                if (value === '') globals.delete(key);
                else globals.set(key, value);
              }
            }
            break;
          }
          case 'L':
          case 'K': {
            const data = await readMeta(
              input,
              header.size,
              lim.maxPathLength + 1,
              `GNU long ${flag === 'L' ? 'name' : 'link'}`,
            );
            let end = data.length;
            while (end > 0 && data[end - 1] === 0) end--;
            const value = utf8(data.subarray(0, end), `GNU long ${flag === 'L' ? 'name' : 'link'}`);
            if (flag === 'L') longName = value;
            else longLink = value;
            break;
          }
        }
      }

      if (++entries > lim.maxEntries) throw tooManyEntries(lim.maxEntries);
      const attrs = (key: string): string | undefined => {
        const local = pax?.get(key);
        if (local !== undefined) return local === '' ? undefined : local;
        // Globals apply to ids and times only: a global path, link or size makes no sense for every entry.
        return key === 'uid' || key === 'gid' || key === 'mtime' ? globals.get(key) : undefined;
      };
      for (const key of [...(pax?.keys() ?? []), ...globals.keys()]) {
        if (key.startsWith('GNU.sparse.')) throw bad('GNU sparse files are not supported');
      }

      // The ustar fields are decoded only when used: a writer may cut a long name in the middle of a character.
      const path = attrs('path') ?? longName ?? header.name();
      if (Buffer.byteLength(path) > lim.maxPathLength) throw bad(`a path longer than ${lim.maxPathLength} bytes`);
      const type = entryType(header.typeflag, path);
      const isLink = type === 'symlink' || type === 'hardlink';
      const linkpath = isLink ? (attrs('linkpath') ?? longLink ?? header.linkname()) : '';
      if (Buffer.byteLength(linkpath) > lim.maxPathLength) {
        throw bad(`a link target longer than ${lim.maxPathLength} bytes (${path})`);
      }
      const paxSize = attrs('size');
      const declared = paxSize === undefined ? header.size : paxInteger(paxSize, 'size');
      // Header-only types have no content whatever their size field says (Go's archive/tar does the same).
      const size = type === 'file' ? declared : 0;
      if (size > lim.maxFileSize) {
        throw new ImageError('TOO_LARGE', `${path}: a file of ${size} bytes (the bound is ${lim.maxFileSize})`);
      }
      const uidText = attrs('uid');
      const gidText = attrs('gid');
      const mtimeText = attrs('mtime');
      const uid = uidText === undefined ? header.uid : paxInteger(uidText, 'uid');
      const gid = gidText === undefined ? header.gid : paxInteger(gidText, 'gid');
      if (uid > MAX_ID || gid > MAX_ID) throw bad(`${path}: uid ${uid} / gid ${gid} out of range`);
      const mtime = clampTime(mtimeText === undefined ? header.mtime : paxTime(mtimeText));
      const xattrs: string[] = [];
      for (const key of pax?.keys() ?? []) {
        if (key.startsWith('SCHILY.xattr.')) xattrs.push(key.slice('SCHILY.xattr.'.length));
        else if (key.startsWith('LIBARCHIVE.xattr.')) xattrs.push(key.slice('LIBARCHIVE.xattr.'.length));
      }

      let remaining = size;
      let current = true;
      let started = false;
      async function* body(): AsyncGenerator<Buffer, void, undefined> {
        if (started) throw new Error('tar entry body read twice');
        started = true;
        while (remaining > 0) {
          if (!current) throw new Error('tar entry body read after the next entry was asked for');
          const chunk = await input.readSome(Math.min(remaining, MAX_SLICE), `the content of ${path}`);
          remaining -= chunk.length;
          yield chunk;
        }
      }
      const entry: TarEntry = {
        type,
        path,
        linkpath,
        size,
        mode: header.mode & 0o7777,
        uid,
        gid,
        mtime,
        devMajor: header.devMajor,
        devMinor: header.devMinor,
        xattrs,
        body: { [Symbol.asyncIterator]: body },
      };
      yield entry;
      current = false;
      await input.skip(remaining + padding(size), `the content of ${path}`);
    }
  } finally {
    await iterator.return?.();
  }
}

const tooManyEntries = (max: number): ImageError => new ImageError('TOO_LARGE', `more than ${max} entries in a layer`);

function entryType(flag: string, path: string): TarEntryType {
  switch (flag) {
    case '0':
    case '7':
      return 'file';
    case '\0':
      return path.endsWith('/') ? 'directory' : 'file';
    case '1':
      return 'hardlink';
    case '2':
      return 'symlink';
    case '3':
      return 'char-device';
    case '4':
      return 'block-device';
    case '5':
      return 'directory';
    case '6':
      return 'fifo';
    default:
      throw bad(`unsupported entry type ${JSON.stringify(flag)} (${JSON.stringify(path.slice(0, 200))})`);
  }
}

async function readMeta(input: ByteReader, size: number, max: number, what: string): Promise<Buffer> {
  if (size > max) throw bad(`a ${what} of ${size} bytes (the bound is ${max})`);
  const data = size === 0 ? Buffer.alloc(0) : await input.readExact(size, `a ${what}`);
  if (data === null) throw bad(`the archive ends before a ${what}`);
  await input.skip(padding(size), `a ${what}`);
  return data;
}

const padding = (size: number): number => (BLOCK - (size % BLOCK)) % BLOCK;

function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < BLOCK; i++) if (block[i] !== 0) return false;
  return true;
}

interface UstarHeader {
  /** prefix + '/' + name (ustar), decoded on demand. */
  readonly name: () => string;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly mtime: number;
  readonly typeflag: string;
  readonly linkname: () => string;
  readonly devMajor: number;
  readonly devMinor: number;
}

/** Parses and checks one 512-byte header (magic, checksum, numeric fields). */
export function parseUstarHeader(block: Buffer, offset = 0): UstarHeader {
  const posix = block.toString('latin1', 257, 263) === 'ustar\0';
  const gnu = block.toString('latin1', 257, 265) === 'ustar  \0';
  if (!posix && !gnu) throw bad(`no ustar magic in the header at ${offset}`);
  const stored = parseNumber(block, 148, 8, 'checksum');
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : block[i];
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  if (stored !== unsigned && stored !== signed) throw bad(`bad header checksum at ${offset}`);
  const size = parseNumber(block, 124, 12, 'size');
  return {
    name: () => {
      const name = cString(block, 0, 100, 'name');
      const prefix = posix ? cString(block, 345, 155, 'prefix') : '';
      return prefix === '' ? name : `${prefix}/${name}`;
    },
    mode: parseNumber(block, 100, 8, 'mode'),
    uid: parseNumber(block, 108, 8, 'uid'),
    gid: parseNumber(block, 116, 8, 'gid'),
    size,
    mtime: parseNumber(block, 136, 12, 'mtime'),
    typeflag: String.fromCharCode(block[156]),
    linkname: () => cString(block, 157, 100, 'linkname'),
    devMajor: parseNumber(block, 329, 8, 'devmajor'),
    devMinor: parseNumber(block, 337, 8, 'devminor'),
  };
}

/** A NUL-terminated (or full-width) text field, which must be UTF-8. */
function cString(block: Buffer, offset: number, length: number, what: string): string {
  let end = block.indexOf(0, offset);
  if (end < 0 || end > offset + length) end = offset + length;
  return utf8(block.subarray(offset, end), what);
}

function utf8(bytes: Buffer, what: string): string {
  if (!isUtf8(bytes)) throw bad(`a ${what} that is not UTF-8`);
  return bytes.toString('utf8');
}

/** An octal (NUL/space-terminated, leading spaces allowed) or base-256 (high bit set) numeric field. */
function parseNumber(block: Buffer, offset: number, length: number, what: string): number {
  const first = block[offset];
  if (first & 0x80) {
    if (first === 0xff) throw bad(`a negative ${what}`);
    let value = first & 0x7f;
    for (let i = 1; i < length; i++) {
      value = value * 256 + block[offset + i];
      if (value > Number.MAX_SAFE_INTEGER) throw new ImageError('TOO_LARGE', `tar: an absurd ${what}`);
    }
    return value;
  }
  let i = offset;
  const end = offset + length;
  while (i < end && block[i] === 0x20) i++;
  let value = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = block[i];
    if (c === 0 || c === 0x20) break;
    if (c < 0x30 || c > 0x37) throw bad(`a ${what} field that is not octal`);
    value = value * 8 + (c - 0x30);
    digits++;
  }
  for (; i < end; i++) {
    if (block[i] !== 0 && block[i] !== 0x20) throw bad(`a ${what} field that is not octal`);
  }
  return digits === 0 ? 0 : value;
}

/** PAX records: `<length> <key>=<value>\n`, the length counting the whole record. */
export function parsePax(data: Buffer): Map<string, string> {
  const records = new Map<string, string>();
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) {
      // NUL padding after the last record (some writers).
      if (data.subarray(pos).every((b) => b === 0)) break;
      throw bad('a NUL inside a PAX header');
    }
    const space = data.indexOf(0x20, pos);
    if (space < 0 || space - pos > 9) throw bad('a malformed PAX record length');
    const lengthText = data.toString('latin1', pos, space);
    if (!/^[1-9][0-9]*$/.test(lengthText)) throw bad('a malformed PAX record length');
    const length = Number(lengthText);
    const end = pos + length;
    if (end > data.length || end <= space + 1 || data[end - 1] !== 0x0a) throw bad('a malformed PAX record');
    const record = data.subarray(space + 1, end - 1);
    const eq = record.indexOf(0x3d);
    if (eq <= 0) throw bad('a PAX record without a key');
    const key = utf8(record.subarray(0, eq), 'PAX key');
    const raw = record.subarray(eq + 1);
    // Extended attribute values are binary; we only keep their names.
    const value = key.includes('xattr.') ? (raw.length === 0 ? '' : '-') : utf8(raw, `PAX ${key}`);
    records.set(key, value);
    pos = end;
  }
  return records;
}

function paxInteger(text: string, what: string): number {
  if (!/^[0-9]{1,20}$/.test(text)) throw bad(`a PAX ${what} that is not a number`);
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new ImageError('TOO_LARGE', `tar: an absurd PAX ${what}`);
  return value;
}

function paxTime(text: string): number {
  if (!/^-?[0-9]{1,20}(\.[0-9]{0,30})?$/.test(text)) throw bad('a PAX mtime that is not a number');
  return Number(text);
}

const clampTime = (t: number): number => Math.min(MAX_TIME, Math.max(MIN_TIME, t));

/** Pull-based reads over an async iterator of chunks. */
class ByteReader {
  private buffer: Buffer = Buffer.alloc(0);
  private position = 0;
  private ended = false;
  /** Bytes consumed so far. */
  offset = 0;

  constructor(private readonly iterator: AsyncIterator<Uint8Array>) {}

  /** Makes at least one byte available; false at the end of the input. */
  private async fill(): Promise<boolean> {
    while (this.position >= this.buffer.length) {
      if (this.ended) return false;
      const next = await this.iterator.next();
      if (next.done) {
        this.ended = true;
        return false;
      }
      const chunk = next.value;
      this.buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      this.position = 0;
    }
    return true;
  }

  /** Exactly n bytes; null at the end of the input before the first of them; BAD_LAYER if it ends in between. */
  async readExact(n: number, what: string): Promise<Buffer | null> {
    if (!(await this.fill())) return null;
    if (this.buffer.length - this.position >= n) {
      const out = this.buffer.subarray(this.position, this.position + n);
      this.position += n;
      this.offset += n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    while (got < n) {
      if (!(await this.fill())) throw bad(`truncated archive (in ${what})`);
      const take = Math.min(n - got, this.buffer.length - this.position);
      this.buffer.copy(out, got, this.position, this.position + take);
      this.position += take;
      got += take;
    }
    this.offset += n;
    return out;
  }

  /** Between 1 and max bytes; BAD_LAYER at the end of the input. */
  async readSome(max: number, what: string): Promise<Buffer> {
    if (!(await this.fill())) throw bad(`truncated archive (in ${what})`);
    const take = Math.min(max, this.buffer.length - this.position);
    const out = this.buffer.subarray(this.position, this.position + take);
    this.position += take;
    this.offset += take;
    return out;
  }

  async skip(n: number, what: string): Promise<void> {
    let left = n;
    while (left > 0) {
      if (!(await this.fill())) throw bad(`truncated archive (in ${what})`);
      const take = Math.min(left, this.buffer.length - this.position);
      this.position += take;
      this.offset += take;
      left -= take;
    }
  }

  /** Reads the rest of the input, discarding it. */
  async drain(): Promise<void> {
    while (await this.fill()) {
      this.offset += this.buffer.length - this.position;
      this.position = this.buffer.length;
    }
  }
}
