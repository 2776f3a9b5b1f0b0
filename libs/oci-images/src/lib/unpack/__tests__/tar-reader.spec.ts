// The tar reader on its own: what our test writer and GNU tar write, every header form, and malformed input.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  linkSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  symlinkSync,
  writeFileSync,
  chmodSync,
} from 'node:fs';
import { join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { ImageError } from '../../errors';
import { decompressLayer, sniffCompression } from '../decompress';
import { readTar, type TarEntry } from '../tar-reader';
import { END, entry, header, metaEntry, paxRecords, scratch, streamOf, tar } from './support/tar-writer';

type Read = Omit<TarEntry, 'body'> & { data: Buffer };

async function readAll(source: AsyncIterable<Uint8Array>, limits = {}): Promise<Read[]> {
  const out: Read[] = [];
  for await (const e of readTar(source, limits)) {
    const chunks: Buffer[] = [];
    for await (const chunk of e.body) chunks.push(Buffer.from(chunk));
    const { body: _body, ...rest } = e;
    out.push({ ...rest, data: Buffer.concat(chunks) });
  }
  return out;
}

const read = (data: Buffer, chunk?: number, limits = {}): Promise<Read[]> => readAll(streamOf(data, chunk), limits);

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ImageError) return `${error.code}: ${error.message}`;
    throw error;
  }
  return 'no error';
}

describe('readTar', () => {
  const tmp = scratch('caas-tar-');

  it('reads every entry type with its metadata and content, whatever the chunking', async () => {
    const data = tar([
      { path: 'dir/', type: 'dir', mode: 0o1777, uid: 12, gid: 34, mtime: 1_600_000_000 },
      { path: 'dir/file', body: 'hello', mode: 0o4755, uid: 1000, gid: 1001 },
      { path: 'dir/empty', body: '' },
      { path: 'dir/link', linkpath: '../elsewhere' },
      { path: 'dir/hard', type: 'hardlink', linkpath: 'dir/file' },
      { path: 'dev/null', type: 'char' },
      { path: 'dev/sda', type: 'block' },
      { path: 'fifo', type: 'fifo' },
      { path: 'contig', typeflag: '7', body: 'c' },
      { path: 'old-style', typeflag: '\0', body: 'o' },
      { path: 'old-dir/', typeflag: '\0' },
    ]);
    for (const chunk of [1, 7, 512, 513, 100_000]) {
      const entries = await read(data, chunk);
      expect(entries.map((e) => [e.type, e.path, e.linkpath, e.data.toString()])).toEqual([
        ['directory', 'dir/', '', ''],
        ['file', 'dir/file', '', 'hello'],
        ['file', 'dir/empty', '', ''],
        ['symlink', 'dir/link', '../elsewhere', ''],
        ['hardlink', 'dir/hard', 'dir/file', ''],
        ['char-device', 'dev/null', '', ''],
        ['block-device', 'dev/sda', '', ''],
        ['fifo', 'fifo', '', ''],
        ['file', 'contig', '', 'c'],
        ['file', 'old-style', '', 'o'],
        ['directory', 'old-dir/', '', ''],
      ]);
      expect(entries[0]).toMatchObject({ mode: 0o1777, uid: 12, gid: 34, mtime: 1_600_000_000 });
      expect(entries[1]).toMatchObject({ mode: 0o4755, uid: 1000, gid: 1001, size: 5 });
    }
  });

  it('reads PAX (path, linkpath, size, uid, gid, fractional mtime, xattrs) and global headers', async () => {
    const long = `${'d'.repeat(120)}/${'f'.repeat(200)}`;
    const data = tar([
      metaEntry('g', paxRecords({ uid: '77', comment: 'global' })),
      { path: long, body: 'x', pax: { mtime: '1700000000.5', 'SCHILY.xattr.security.capability': '\x01\x02' } },
      { path: 'l', linkpath: `/${'t'.repeat(300)}` },
      { path: 'ids', body: '', pax: { uid: '3000000000', gid: '5' } },
    ]);
    const entries = await read(data, 333);
    expect(entries.map((e) => [e.path, e.uid, e.gid])).toEqual([
      [long, 77, 0],
      ['l', 77, 0],
      ['ids', 3_000_000_000, 5],
    ]);
    expect(entries[0].mtime).toBe(1_700_000_000.5);
    expect(entries[0].xattrs).toEqual(['security.capability']);
    expect(entries[1].linkpath).toBe(`/${'t'.repeat(300)}`);
  });

  it('reads GNU long names and links, base-256 numbers, and skips bodies left unread', async () => {
    const long = `a/${'é'.repeat(150)}`;
    const data = tar([
      { path: long, body: 'first', long: 'gnu', uid: 2 ** 31, mtime: 8 ** 11 + 5 },
      { path: 'h', type: 'hardlink', linkpath: long, long: 'gnu' },
      { path: 'big', body: randomBytes(70_000) },
      { path: 'after', body: 'z' },
    ]);
    const paths: string[] = [];
    for await (const e of readTar(streamOf(data, 1000))) {
      paths.push(e.path);
      if (e.path === long) expect([e.uid, e.mtime]).toEqual([2 ** 31, 8 ** 11 + 5]);
      if (e.path === 'h') expect(e.linkpath).toBe(long);
      if (e.path === 'after') for await (const c of e.body) expect(c.toString()).toBe('z');
    }
    expect(paths).toEqual([long, 'h', 'big', 'after']);
  });

  it('tolerates the end of the stream without end-of-archive blocks, and reads an empty archive', async () => {
    expect((await read(tar([{ path: 'f', body: 'x' }], { end: false }))).map((e) => e.path)).toEqual(['f']);
    expect(await read(Buffer.alloc(0))).toEqual([]);
    expect(await read(END)).toEqual([]);
    expect(await read(Buffer.concat([END, Buffer.alloc(9000)]))).toEqual([]);
  });

  it('refuses malformed archives with BAD_LAYER', async () => {
    const file = entry({ path: 'f', body: 'x'.repeat(600) });
    const cases: [string, Buffer][] = [
      ['bad checksum', tar([{ path: 'f', body: 'x', badChecksum: true }])],
      ['truncated in a header', file.subarray(0, 300)],
      ['truncated in a body', file.subarray(0, 700)],
      ['truncated in padding', file.subarray(0, 1500)],
      ['declared size longer than the archive', tar([{ path: 'f', body: 'short', declaredSize: 1_000_000 }])],
      ['no magic', Buffer.concat([Buffer.from(file.subarray(0, 512)).fill(0, 257, 265), END])],
      ['non-octal number', Buffer.concat([Buffer.from(file).fill(0x39, 124, 130)])],
      ['lone zero block', Buffer.concat([Buffer.alloc(512), file, END])],
      ['GNU sparse type', tar([{ path: 's', typeflag: 'S', body: '' }])],
      ['unknown type', tar([{ path: 'v', typeflag: 'V' }])],
      ['PAX sparse', tar([{ path: 'p', body: 'x', pax: { 'GNU.sparse.major': '1' } }])],
      ['malformed PAX', tar([metaEntry('x', Buffer.from('99 path=x\n')), { path: 'f' }])],
      ['PAX record length lies', tar([metaEntry('x', Buffer.from('5 path=abcdef\n')), { path: 'f' }])],
      ['extended header then the end', tar([metaEntry('x', paxRecords({ path: 'a' }))])],
      ['non-UTF-8 name', tar([{ path: Buffer.from([0x66, 0xff, 0xfe]).toString('latin1'), rawName: true }])],
    ];
    // rawName writes the string's UTF-8: put raw bytes in place instead.
    const raw = header({ name: Buffer.from([0x66, 0xff, 0xfe]), typeflag: '0' });
    cases[cases.length - 1][1] = Buffer.concat([raw, END]);
    for (const [what, data] of cases) {
      expect([what, await codeOf(read(data))]).toEqual([what, expect.stringMatching(/^BAD_LAYER/)]);
    }
  });

  it('enforces its bounds: entries, path length, PAX size, file size', async () => {
    const many = tar(Array.from({ length: 11 }, (_, i) => ({ path: `f${i}`, body: '' })));
    expect(await codeOf(read(many, undefined, { maxEntries: 10 }))).toMatch(/^TOO_LARGE/);
    expect((await read(many, undefined, { maxEntries: 11 })).length).toBe(11);
    const longPath = tar([{ path: 'p'.repeat(5000), body: '' }]);
    expect(await codeOf(read(longPath))).toMatch(/^BAD_LAYER.*longer than 4096/);
    const longGnu = tar([{ path: 'p'.repeat(5000), body: '', long: 'gnu' }]);
    expect(await codeOf(read(longGnu))).toMatch(/^BAD_LAYER/);
    const bigPax = tar([{ path: 'f', body: '', pax: { comment: 'c'.repeat(2 * 1024 * 1024) } }]);
    expect(await codeOf(read(bigPax))).toMatch(/^BAD_LAYER.*PAX header/);
    const huge = tar([{ path: 'f', body: '', declaredSize: 2 ** 40 }], { end: false });
    expect(await codeOf(read(huge))).toMatch(/^TOO_LARGE/);
    const hugePax = tar([{ path: 'f', body: '', pax: { size: String(2 ** 60) } }]);
    expect(await codeOf(read(hugePax))).toMatch(/^TOO_LARGE/);
    const metas = tar([...Array.from({ length: 9 }, () => metaEntry('x', paxRecords({ a: 'b' }))), { path: 'f' }]);
    expect(await codeOf(read(metas))).toMatch(/^BAD_LAYER.*extended headers/);
  });

  describe('against GNU tar', () => {
    let tree: string;
    const big = randomBytes(10 * 1024 * 1024);
    beforeAll(() => {
      tree = join(tmp.dir, 'tree');
      const long = join(tree, 'x'.repeat(60), 'y'.repeat(60), `${'z'.repeat(120)}.txt`);
      mkdirSync(join(long, '..'), { recursive: true });
      writeFileSync(long, 'long');
      writeFileSync(join(tree, 'big.bin'), big);
      writeFileSync(join(tree, 'héllo wörld 日本語 🎉.txt'), 'unicode');
      writeFileSync(join(tree, 'empty'), '');
      writeFileSync(join(tree, 'suid'), '#!/bin/sh\n');
      chmodSync(join(tree, 'suid'), 0o4755);
      mkdirSync(join(tree, 'sticky'));
      chmodSync(join(tree, 'sticky'), 0o1777);
      symlinkSync('/etc/passwd', join(tree, 'abs-link'));
      symlinkSync(`../${'q'.repeat(150)}`, join(tree, 'long-link'));
      linkSync(join(tree, 'big.bin'), join(tree, 'hard.bin'));
    });

    for (const format of ['gnu', 'posix', 'oldgnu']) {
      it(`reads what \`tar --format=${format}\` writes, as the tree is`, async () => {
        const archive = execFileSync(
          'tar',
          [`--format=${format}`, '--owner=:3000000', '--group=:7', '-C', tree, '-cf', '-', '.'],
          { maxBuffer: 64 * 1024 * 1024 },
        );
        const entries = await readAll(decompressLayer(streamOf(gzipSync(archive), 4096)));
        const expected = walk(tree);
        // Which of two hard-linked names tar stores as the file depends on its readdir order: check the link,
        // then compare both as files.
        const links = entries.filter((e) => e.type === 'hardlink');
        expect(links.map((l) => [l.path, l.linkpath].sort())).toEqual([['./big.bin', './hard.bin']]);
        const got = entries.map((e) => ({
          path: e.path.replace(/^\.\//, '').replace(/\/$/, ''),
          mode: e.mode,
          uid: e.uid,
          gid: e.gid,
          mtime: Math.floor(e.mtime),
          type: e.type === 'hardlink' ? 'file' : e.type,
          linkpath: e.type === 'hardlink' ? '' : e.linkpath,
          sha: e.type === 'file' || e.type === 'hardlink' ? sha(e.type === 'file' ? e.data : big) : '',
        }));
        expect(got.filter((e) => e.path !== '').sort(byPath)).toEqual(expected.sort(byPath));
      });
    }

    function walk(root: string): object[] {
      const out: object[] = [];
      const visit = (dir: string): void => {
        for (const name of readdirSync(dir).sort()) {
          const path = join(dir, name);
          const st = lstatSync(path);
          const rel = relative(root, path);
          const base = {
            path: rel,
            mode: st.mode & 0o7777,
            uid: 3_000_000,
            gid: 7,
            mtime: Math.floor(st.mtimeMs / 1000),
          };
          if (st.isDirectory()) {
            out.push({ ...base, type: 'directory', linkpath: '', sha: '' });
            visit(path);
          } else if (st.isSymbolicLink()) {
            out.push({ ...base, type: 'symlink', linkpath: readlinkOf(path), sha: '' });
          } else {
            out.push({ ...base, type: 'file', linkpath: '', sha: sha(readFileSync(path)) });
          }
        }
      };
      visit(root);
      return out;
    }
  });
});

describe('layer compression', () => {
  it('recognises gzip and plain tar, refuses zstd, xz, bzip2 and junk with BAD_LAYER', () => {
    expect(sniffCompression(gzipSync(Buffer.from('x')))).toBe('gzip');
    expect(sniffCompression(tar([{ path: 'f', body: 'x' }]))).toBe('none');
    expect(sniffCompression(END)).toBe('none');
    expect(sniffCompression(Buffer.alloc(0))).toBe('none');
    const refused: [string, number[]][] = [
      ['zstd', [0x28, 0xb5, 0x2f, 0xfd, 0, 0]],
      ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
      ['bzip2', [0x42, 0x5a, 0x68, 0x39]],
      ['neither', [0x50, 0x4b, 0x03, 0x04]],
    ];
    for (const [what, magic] of refused) {
      const head = Buffer.concat([Buffer.from(magic), Buffer.alloc(600, 1)]);
      expect(() => sniffCompression(head)).toThrow(
        expect.objectContaining({ code: 'BAD_LAYER', message: expect.stringContaining(what) }),
      );
    }
  });

  it('inflates gzip as it flows (several members too) and reports compressed bytes read', async () => {
    const data = tar([{ path: 'f', body: randomBytes(300_000) }]);
    const gz = Buffer.concat([gzipSync(data.subarray(0, 1000)), gzipSync(data.subarray(1000))]);
    const progress: number[] = [];
    const chunks: Buffer[] = [];
    for await (const c of decompressLayer(streamOf(gz, 10_000), (n) => progress.push(n))) chunks.push(c);
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
    expect(progress.at(-1)).toBe(gz.length);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
  });

  it('refuses a corrupt or truncated gzip stream with BAD_LAYER, and passes the source errors through', async () => {
    const gz = gzipSync(tar([{ path: 'f', body: randomBytes(100_000) }]));
    const corrupt = Buffer.from(gz);
    corrupt.fill(0x55, 100, 200);
    const drain = async (source: AsyncIterable<Uint8Array>): Promise<void> => {
      for await (const _ of decompressLayer(source)) void _;
    };
    expect(await codeOf(drain(streamOf(corrupt)))).toMatch(/^BAD_LAYER: corrupt gzip/);
    expect(await codeOf(drain(streamOf(gz.subarray(0, gz.length - 100))))).toMatch(/^BAD_LAYER: corrupt gzip/);
    const failing = new Readable({
      read() {
        this.push(gz.subarray(0, 1000));
        this.destroy(new Error('network down'));
      },
    });
    await expect(drain(failing)).rejects.toThrow('network down');
  });
});

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
const byPath = (a: object, b: object): number => ((a as { path: string }).path < (b as { path: string }).path ? -1 : 1);
const readlinkOf = (path: string): string => execFileSync('readlink', [path], { encoding: 'utf8' }).trim();
