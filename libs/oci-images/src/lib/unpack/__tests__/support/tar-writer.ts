// A test-only tar writer: ustar headers, PAX (`x`/`g`) or GNU (`L`/`K`) long names, base-256 numbers, gzip;
// with knobs to write what no honest tool writes (a bad checksum, a declared size that lies, raw type flags).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';

export type SpecType = 'file' | 'dir' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo';

export interface TarSpec {
  path: string;
  type?: SpecType;
  body?: Buffer | string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkpath?: string;
  /** PAX records for an `x` header before the entry (written as given, after the automatic ones). */
  pax?: Record<string, string>;
  /** How names and links that do not fit the ustar fields are written. Default 'pax'. */
  long?: 'pax' | 'gnu';
  /** The size field, whatever the body is (a lie). */
  declaredSize?: number;
  /** A raw type flag instead of `type`'s. */
  typeflag?: string;
  /** Breaks the header checksum. */
  badChecksum?: boolean;
  /** Writes the path in the ustar name field as is, truncated to 100 bytes (for NUL tests etc.). */
  rawName?: boolean;
}

const BLOCK = 512;
const FLAGS: Record<SpecType, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  char: '3',
  block: '4',
  dir: '5',
  fifo: '6',
};

function writeNumber(block: Buffer, offset: number, length: number, value: number): void {
  if (value < 8 ** (length - 1)) {
    block.write(value.toString(8).padStart(length - 1, '0') + '\0', offset, length, 'latin1');
    return;
  }
  // base-256
  let v = BigInt(value);
  for (let i = length - 1; i >= 1; i--) {
    block[offset + i] = Number(v & 0xffn);
    v >>= 8n;
  }
  block[offset] = 0x80;
}

export function header(opts: {
  name: Buffer | string;
  typeflag: string;
  size?: number;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
  badChecksum?: boolean;
}): Buffer {
  const block = Buffer.alloc(BLOCK);
  const name = typeof opts.name === 'string' ? Buffer.from(opts.name) : opts.name;
  name.copy(block, 0, 0, Math.min(100, name.length));
  writeNumber(block, 100, 8, opts.mode ?? 0o644);
  writeNumber(block, 108, 8, opts.uid ?? 0);
  writeNumber(block, 116, 8, opts.gid ?? 0);
  writeNumber(block, 124, 12, opts.size ?? 0);
  writeNumber(block, 136, 12, opts.mtime ?? 1_700_000_000);
  block.write(opts.typeflag, 156, 1, 'latin1');
  if (opts.linkname !== undefined) Buffer.from(opts.linkname).copy(block, 157, 0, 100);
  block.write('ustar\0' + '00', 257, 8, 'latin1');
  block.write('root', 265, 32, 'latin1');
  block.write('root', 297, 32, 'latin1');
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  if (opts.badChecksum) sum += 1;
  block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return block;
}

const pad = (size: number): Buffer => Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);

export function paxRecords(records: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  for (const [key, value] of Object.entries(records)) {
    const body = ` ${key}=${value}\n`;
    let length = Buffer.byteLength(body) + 1;
    while (String(length).length + Buffer.byteLength(body) !== length) length++;
    parts.push(Buffer.from(`${length}${body}`));
  }
  return Buffer.concat(parts);
}

/** A metadata entry (`x`, `g`, `L`, `K`) with its data. */
export function metaEntry(typeflag: string, data: Buffer, name = '././@PaxHeader'): Buffer {
  return Buffer.concat([header({ name, typeflag, size: data.length }), data, pad(data.length)]);
}

export function entry(spec: TarSpec): Buffer {
  const type = spec.type ?? (spec.linkpath !== undefined ? 'symlink' : spec.body !== undefined ? 'file' : 'dir');
  const body = spec.body === undefined ? Buffer.alloc(0) : Buffer.from(spec.body);
  const out: Buffer[] = [];
  const pax: Record<string, string> = {};
  const pathBytes = Buffer.byteLength(spec.path);
  const linkBytes = Buffer.byteLength(spec.linkpath ?? '');
  let name = spec.path;
  let linkname = spec.linkpath;
  if (!spec.rawName && pathBytes > 100) {
    if (spec.long === 'gnu') out.push(metaEntry('L', Buffer.from(spec.path + '\0'), '././@LongLink'));
    else pax['path'] = spec.path;
    name = Buffer.from(spec.path).subarray(0, 100).toString('latin1');
  }
  if (linkBytes > 100) {
    if (spec.long === 'gnu') out.push(metaEntry('K', Buffer.from(spec.linkpath + '\0'), '././@LongLink'));
    else pax['linkpath'] = spec.linkpath ?? '';
    linkname = '';
  }
  Object.assign(pax, spec.pax ?? {});
  if (Object.keys(pax).length > 0) out.push(metaEntry('x', paxRecords(pax)));
  out.push(
    header({
      name: spec.rawName
        ? Buffer.from(spec.path)
        : Buffer.from(name, spec.rawName || pathBytes <= 100 ? 'utf8' : 'latin1'),
      typeflag: spec.typeflag ?? FLAGS[type],
      size: spec.declaredSize ?? body.length,
      mode: spec.mode ?? (type === 'dir' ? 0o755 : 0o644),
      uid: spec.uid,
      gid: spec.gid,
      mtime: spec.mtime,
      linkname,
      badChecksum: spec.badChecksum,
    }),
  );
  out.push(body, pad(body.length));
  return Buffer.concat(out);
}

export const END = Buffer.alloc(2 * BLOCK);

/** A whole archive: the entries and (unless `end: false`) the end-of-archive marker. */
export function tar(specs: (TarSpec | Buffer)[], opts: { end?: boolean } = {}): Buffer {
  const parts = specs.map((s) => (Buffer.isBuffer(s) ? s : entry(s)));
  if (opts.end !== false) parts.push(END);
  return Buffer.concat(parts);
}

export const gzip = (data: Buffer): Buffer => gzipSync(data);

/** A Readable of the bytes in chunks of `chunk` bytes (odd sizes test the reader's boundaries). */
export function streamOf(data: Buffer, chunk = 64 * 1024): Readable {
  const chunks: Buffer[] = [];
  for (let i = 0; i < data.length; i += chunk) chunks.push(data.subarray(i, i + chunk));
  return Readable.from(chunks, { objectMode: false });
}

/** A fresh temp dir per test file, removed afterwards. */
export function scratch(prefix: string): { readonly dir: string } {
  const state = { dir: '' };
  beforeAll(() => {
    state.dir = mkdtempSync(join(tmpdir(), prefix));
  });
  afterAll(() => {
    rmSync(state.dir, { recursive: true, force: true });
  });
  return state;
}
