// Tiny ustar writer for test layers: regular files, directories and symlinks, names up to 100 bytes (or 255 with
// the ustar prefix field). Deterministic (fixed mtime and owner), so the same entries give the same digest.
import { gzipSync } from 'node:zlib';

export interface TarEntrySpec {
  readonly path: string;
  readonly type?: 'file' | 'directory' | 'symlink';
  readonly content?: string | Buffer;
  readonly mode?: number;
  readonly linkname?: string;
}

const BLOCK = 512;

export function tar(entries: readonly TarEntrySpec[]): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const type = entry.type ?? 'file';
    const content = type === 'file' ? Buffer.from(entry.content ?? '') : Buffer.alloc(0);
    parts.push(header(entry, type, content.length), content, Buffer.alloc((BLOCK - (content.length % BLOCK)) % BLOCK));
  }
  parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}

export function tarGz(entries: readonly TarEntrySpec[]): Buffer {
  return gzipSync(tar(entries));
}

function header(entry: TarEntrySpec, type: 'file' | 'directory' | 'symlink', size: number): Buffer {
  const block = Buffer.alloc(BLOCK);
  let name = type === 'directory' && !entry.path.endsWith('/') ? `${entry.path}/` : entry.path;
  let prefix = '';
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf('/', name.length - 2);
    prefix = name.slice(0, cut);
    name = name.slice(cut + 1);
    if (cut < 0 || Buffer.byteLength(name) > 100 || Buffer.byteLength(prefix) > 155) {
      throw new Error(`tar: path too long: ${entry.path}`);
    }
  }
  const field = (offset: number, length: number, value: string): void => {
    block.write(value, offset, length, 'utf8');
  };
  const octal = (offset: number, length: number, value: number): void => {
    field(offset, length, `${value.toString(8).padStart(length - 1, '0')}\0`);
  };
  field(0, 100, name);
  octal(100, 8, entry.mode ?? (type === 'directory' ? 0o755 : type === 'symlink' ? 0o777 : 0o644));
  octal(108, 8, 0); // uid
  octal(116, 8, 0); // gid
  octal(124, 12, size);
  octal(136, 12, 1_700_000_000); // mtime
  field(148, 8, '        '); // checksum placeholder: spaces while summing
  field(156, 1, type === 'file' ? '0' : type === 'directory' ? '5' : '2');
  if (entry.linkname !== undefined) field(157, 100, entry.linkname);
  field(257, 6, 'ustar\0');
  field(263, 2, '00');
  field(265, 32, 'root');
  field(297, 32, 'root');
  field(345, 155, prefix);
  let sum = 0;
  for (const byte of block) sum += byte;
  field(148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return block;
}
