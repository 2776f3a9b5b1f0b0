// A corpus of hostile layers. Each is refused with the code it deserves, and each proves that nothing was
// written, changed or removed outside the root: every case has a sentinel directory beside its root (files,
// a subdirectory, known contents, modes and times), compared before and after. Needs root, as CI has.
import { createHash } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { Readable, pipeline } from 'node:stream';
import { constants as zlibConstants, createGzip, gzipSync } from 'node:zlib';
import type { ImageErrorCode } from '../../errors';
import { applyLayer } from '../apply-layer';
import { UnpackBudget, type UnpackLimits } from '../limits';
import { entry, gzip, header, metaEntry, scratch, streamOf, tar, type TarSpec } from './support/tar-writer';

interface Ctx {
  /** The case's directory: holds `root` and `sentinel`. */
  dir: string;
  root: string;
  /** Absolute path of the sentinel directory (beside the root). */
  sentinel: string;
}

interface Case {
  name: string;
  /** Layers, applied in order; all but the last must apply cleanly. TarSpec[] is gzip-compressed. */
  layers: (ctx: Ctx) => (TarSpec[] | Buffer | Readable)[];
  /** The refusal; undefined for a layer that is safe to accept (every layer then applies). */
  code: ImageErrorCode | undefined;
  /** The message must match. */
  message?: RegExp;
  limits?: Partial<UnpackLimits>;
  /** Further checks on the root afterwards. */
  after?: (ctx: Ctx) => void;
}

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

/** Everything under dir (but `skip`): type, mode, owner, size, mtime, content hash, link target. */
function snapshot(dir: string, skip?: string, prefix = ''): string[] {
  return readdirSync(dir)
    .filter((name) => name !== skip)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name);
      const st = lstatSync(path);
      const line = `${prefix}${name} ${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.size} ${st.mtimeMs} ${st.nlink}`;
      if (st.isDirectory()) return [line, ...snapshot(path, undefined, `${prefix}${name}/`)];
      if (st.isSymbolicLink()) return [`${line} -> ${readlinkSync(path)}`];
      return [`${line} ${createHash('sha256').update(readFileSync(path)).digest('hex')}`];
    });
}

/** An endless-looking gzip stream of `total` zero bytes (after `prefix`), made as it is read. */
function gzipOfZeros(total: number, prefix: Buffer = Buffer.alloc(0)): { stream: Readable; source: Readable } {
  const zeros = Buffer.alloc(MiB);
  let left = total;
  let sentPrefix = false;
  const source = new Readable({
    read() {
      if (!sentPrefix) {
        sentPrefix = true;
        if (prefix.length > 0) this.push(prefix);
      }
      if (left <= 0) {
        this.push(null);
        return;
      }
      const n = Math.min(left, zeros.length);
      left -= n;
      this.push(n === zeros.length ? zeros : zeros.subarray(0, n));
    },
  });
  const stream = createGzip({ level: 1 });
  pipeline(source, stream, () => undefined);
  return { stream, source };
}

const etcPasswdLinks = (): number => statSync('/etc/passwd').nlink;

const cases: Case[] = [
  // --- names that climb out of the root
  { name: '../evil', layers: () => [[{ path: '../evil', body: 'x' }]], code: 'UNSAFE_LAYER', message: /climbs out/ },
  { name: 'a/../../evil', layers: () => [[{ path: 'a/../../evil', body: 'x' }]], code: 'UNSAFE_LAYER' },
  { name: './../sentinel/evil', layers: () => [[{ path: './../sentinel/evil', body: 'x' }]], code: 'UNSAFE_LAYER' },
  { name: 'a directory ../', layers: () => [[{ path: '../', type: 'dir' }]], code: 'UNSAFE_LAYER' },
  {
    name: 'a PAX path override with ..',
    layers: () => [[{ path: 'innocent', body: 'x', pax: { path: 'a/../../sentinel/evil' } }]],
    code: 'UNSAFE_LAYER',
  },
  {
    name: 'a GNU long name with ..',
    layers: () => [[{ path: `${'a/'.repeat(60)}${'../'.repeat(62)}sentinel/evil`, body: 'x', long: 'gnu' }]],
    code: 'UNSAFE_LAYER',
  },
  {
    name: 'a symlink whose own name climbs out',
    layers: () => [[{ path: '../sentinel/link', linkpath: '/etc' }]],
    code: 'UNSAFE_LAYER',
  },

  // --- writing through symlinks
  {
    name: 'symlink to an absolute dir outside, then a write through it (same layer)',
    layers: ({ sentinel }) => [
      [
        { path: 'a', linkpath: sentinel },
        { path: 'a/evil', body: 'x' },
      ],
    ],
    code: 'UNSAFE_LAYER',
    message: /symlink/,
  },
  {
    name: 'symlink to an absolute dir outside, then a write through it (next layer)',
    layers: ({ sentinel }) => [[{ path: 'a', linkpath: sentinel }], [{ path: 'a/evil', body: 'x' }]],
    code: 'UNSAFE_LAYER',
  },
  {
    name: 'symlink ../.. out of the root, then a write through it',
    layers: () => [[{ path: 'a', linkpath: '../sentinel' }], [{ path: 'a/keep', body: 'overwritten?' }]],
    code: 'UNSAFE_LAYER',
  },
  {
    name: 'symlink several levels up, then a deep write through it',
    layers: ({ sentinel }) => [
      [
        { path: 'x/', type: 'dir' },
        { path: 'x/y', linkpath: sentinel },
      ],
      [{ path: 'x/y/sub/deeper/evil', body: 'x' }],
    ],
    code: 'UNSAFE_LAYER',
  },
  {
    name: 'symlink to /, then a write to the sentinel through it',
    layers: ({ sentinel }) => [[{ path: 'r', linkpath: '/' }], [{ path: `r${sentinel}/evil`, body: 'x' }]],
    code: 'UNSAFE_LAYER',
  },
  {
    name: 'a directory replaced by a symlink in the same layer, then a write through it (no stale cache)',
    layers: ({ sentinel }) => [
      [
        { path: 'd/', type: 'dir' },
        { path: 'd/ok', body: 'fine' },
        { path: 'd', linkpath: sentinel },
        { path: 'd/evil', body: 'x' },
      ],
    ],
    code: 'UNSAFE_LAYER',
  },
  {
    name: 'a symlink, then a directory entry through it',
    layers: ({ sentinel }) => [[{ path: 's', linkpath: sentinel }], [{ path: 's/newdir/', type: 'dir', mode: 0o777 }]],
    code: 'UNSAFE_LAYER',
  },
  {
    name: 'a symlink, then a symlink through it',
    layers: ({ sentinel }) => [[{ path: 's', linkpath: sentinel }], [{ path: 's/keep', linkpath: '/etc/shadow' }]],
    code: 'UNSAFE_LAYER',
  },
  {
    name: 'a symlink to a file outside, then a file over it (replaces the link, never writes the target)',
    layers: ({ sentinel }) => [[{ path: 'f', linkpath: join(sentinel, 'keep') }], [{ path: 'f', body: 'x' }]],
    code: undefined,
    after: ({ root }) => expect(readFileSync(join(root, 'f'), 'utf8')).toBe('x'),
  },

  // --- hard links
  {
    name: 'a hard link to /etc/passwd',
    layers: () => [[{ path: 'pw', type: 'hardlink', linkpath: '/etc/passwd' }]],
    code: 'UNSAFE_LAYER',
    message: /hard link to nothing/,
  },
  {
    name: 'a hard link to ../outside',
    layers: () => [[{ path: 'h', type: 'hardlink', linkpath: '../sentinel/keep' }]],
    code: 'UNSAFE_LAYER',
  },
  {
    name: 'a hard link through a symlinked directory',
    layers: ({ sentinel }) => [
      [{ path: 's', linkpath: sentinel }],
      [{ path: 'h', type: 'hardlink', linkpath: 's/keep' }],
    ],
    code: 'UNSAFE_LAYER',
  },
  {
    name: 'a hard link to a symlink',
    layers: ({ sentinel }) => [
      [
        { path: 'l', linkpath: join(sentinel, 'keep') },
        { path: 'h', type: 'hardlink', linkpath: 'l' },
      ],
    ],
    code: 'UNSAFE_LAYER',
    message: /a symlink/,
  },
  {
    name: 'a hard link to a directory',
    layers: () => [
      [
        { path: 'd/', type: 'dir' },
        { path: 'h', type: 'hardlink', linkpath: 'd' },
      ],
    ],
    code: 'UNSAFE_LAYER',
  },
  {
    name: 'a hard link to the root',
    layers: () => [[{ path: 'h', type: 'hardlink', linkpath: './' }]],
    code: 'UNSAFE_LAYER',
  },
  {
    name: 'a hard link over its own parent',
    layers: () => [
      [
        { path: 'a/b', body: 'x' },
        { path: 'a', type: 'hardlink', linkpath: 'a/b' },
      ],
    ],
    code: 'UNSAFE_LAYER',
  },

  // --- whiteouts
  { name: 'whiteout .wh... (of ..)', layers: () => [[{ path: '.wh...', body: '' }]], code: 'UNSAFE_LAYER' },
  { name: 'whiteout a/.wh...', layers: () => [[{ path: 'a/.wh...', body: '' }]], code: 'UNSAFE_LAYER' },
  { name: 'whiteout ../.wh.x', layers: () => [[{ path: '../.wh.sentinel', body: '' }]], code: 'UNSAFE_LAYER' },
  { name: 'whiteout .wh. (of nothing)', layers: () => [[{ path: 'a/.wh.', body: '' }]], code: 'UNSAFE_LAYER' },
  {
    name: 'a whiteout through a symlink to the outside',
    layers: ({ sentinel }) => [[{ path: 's', linkpath: sentinel }], [{ path: 's/.wh.keep', body: '' }]],
    code: 'UNSAFE_LAYER',
  },
  {
    name: 'an opaque marker in a symlink to the outside',
    layers: ({ sentinel }) => [[{ path: 's', linkpath: sentinel }], [{ path: 's/.wh..wh..opq', body: '' }]],
    code: 'UNSAFE_LAYER',
  },
  {
    name: 'a whiteout of a symlink to the outside removes the link only',
    layers: ({ sentinel }) => [[{ path: 's', linkpath: sentinel }], [{ path: '.wh.s', body: '' }]],
    code: undefined,
    after: ({ root }) => expect(existsSync(join(root, 's'))).toBe(false),
  },

  // --- entry types
  { name: 'a char device', layers: () => [[{ path: 'dev/mem', type: 'char' }]], code: 'UNSAFE_LAYER' },
  { name: 'a block device', layers: () => [[{ path: 'dev/sda', type: 'block' }]], code: 'UNSAFE_LAYER' },
  { name: 'a FIFO', layers: () => [[{ path: 'run/fifo', type: 'fifo' }]], code: 'UNSAFE_LAYER' },
  { name: 'a symlink in place of the root', layers: () => [[{ path: './', linkpath: '/' }]], code: 'UNSAFE_LAYER' },
  {
    name: 'a file in place of the root',
    layers: () => [[{ path: '.', body: 'x', type: 'file' }]],
    code: 'UNSAFE_LAYER',
  },

  // --- NUL bytes
  {
    name: 'a NUL in a PAX path',
    layers: () => [[{ path: 'ok', body: 'x', pax: { path: 'a\0/../../sentinel/evil' } }]],
    code: 'UNSAFE_LAYER',
    message: /NUL/,
  },
  {
    name: 'a NUL in a GNU long name',
    layers: () => [
      tar([
        metaEntry('L', Buffer.from(`${'n'.repeat(120)}\0../../sentinel/evil\0`), '././@LongLink'),
        entry({ path: 'x' }),
      ]),
    ],
    code: 'UNSAFE_LAYER',
  },
  {
    name: 'a NUL in a symlink target',
    layers: () => [[{ path: 'l', linkpath: 'x', pax: { linkpath: '/etc\0/passwd' } }]],
    code: 'UNSAFE_LAYER',
  },

  // --- malformed archives
  { name: 'a bad header checksum', layers: () => [[{ path: 'f', body: 'x', badChecksum: true }]], code: 'BAD_LAYER' },
  {
    name: 'a truncated archive',
    layers: () => [gzip(tar([{ path: 'f', body: 'x'.repeat(10_000) }]).subarray(0, 3000))],
    code: 'BAD_LAYER',
  },
  {
    name: 'a declared size longer than the body',
    layers: () => [gzip(tar([{ path: 'f', body: 'short', declaredSize: 50 * MiB }], { end: false }))],
    code: 'BAD_LAYER',
    message: /truncated/,
  },
  {
    name: 'an absurd declared size',
    layers: () => [gzip(tar([{ path: 'f', body: 'short', declaredSize: 2 ** 45 }], { end: false }))],
    code: 'TOO_LARGE',
  },
  {
    name: 'a zstd layer',
    layers: () => [Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), Buffer.alloc(1000, 7)])],
    code: 'BAD_LAYER',
    message: /zstd/,
  },
  {
    name: 'a header in the middle of garbage',
    layers: () => [gzip(Buffer.concat([header({ name: 'f', typeflag: '0' }), Buffer.alloc(512, 0x41)]))],
    code: 'BAD_LAYER',
  },

  // --- bounds
  {
    name: 'more entries than the layer bound',
    layers: () => [Array.from({ length: 101 }, (_, i) => ({ path: `f${i}`, body: '' }))],
    limits: { maxLayerEntries: 100 },
    code: 'TOO_LARGE',
  },
  {
    name: 'more entries than the image bound, across layers',
    layers: () => [
      Array.from({ length: 60 }, (_, i) => ({ path: `a${i}`, body: '' })),
      Array.from({ length: 60 }, (_, i) => ({ path: `b${i}`, body: '' })),
    ],
    limits: { maxImageEntries: 100 },
    code: 'TOO_LARGE',
  },
  {
    name: 'implied parent directories beyond the entry bound',
    layers: () => [Array.from({ length: 20 }, (_, i) => ({ path: `d${i}/e/f/g/file`, body: '' }))],
    limits: { maxImageEntries: 50 },
    code: 'TOO_LARGE',
  },
  {
    name: 'deep unique paths that would take memory to keep track of',
    layers: () => [Array.from({ length: 20 }, (_, i) => ({ path: `u${i}/${'a/'.repeat(1000)}f`, body: '' }))],
    limits: { maxTrackedPathBytes: 2 * MiB },
    code: 'TOO_LARGE',
    message: /keep track/,
  },
  {
    name: 'a file over the single-file bound',
    layers: () => [[{ path: 'f', body: 'x'.repeat(2000) }]],
    limits: { maxFileSize: 1000 },
    code: 'TOO_LARGE',
  },
];

// Generous per-case bound: a shared 2-core CI box under VM load runs the deep-path and bomb cases several times slower.
jest.setTimeout(60_000);

describe('malicious layers', () => {
  const tmp = scratch('caas-evil-');
  let n = 0;

  function setup(): Ctx {
    const dir = join(tmp.dir, `case-${++n}`);
    const root = join(dir, 'root');
    const sentinel = join(dir, 'sentinel');
    mkdirSync(root, { recursive: true });
    mkdirSync(join(sentinel, 'sub', 'deeper'), { recursive: true });
    writeFileSync(join(sentinel, 'keep'), 'precious');
    writeFileSync(join(sentinel, 'sub', 'keep2'), 'precious too');
    return { dir, root, sentinel };
  }

  for (const c of cases) {
    it(`${c.code ? 'refuses' : 'accepts'} ${c.name} (${c.code ?? 'safely'}), nothing outside the root touched`, async () => {
      const ctx = setup();
      const before = snapshot(ctx.dir, 'root');
      const passwdLinks = etcPasswdLinks();
      const budget = new UnpackBudget(c.limits);
      const layers = c.layers(ctx);
      let failure: unknown;
      for (const [i, layer] of layers.entries()) {
        const stream = layer instanceof Readable ? layer : streamOf(Buffer.isBuffer(layer) ? layer : gzip(tar(layer)));
        try {
          await applyLayer(ctx.root, stream, budget);
        } catch (error) {
          failure = error;
          expect(i).toBe(layers.length - 1);
          expect(stream.destroyed).toBe(true);
          break;
        }
      }
      // First what matters most: nothing outside the root changed.
      expect(snapshot(ctx.dir, 'root')).toEqual(before);
      expect(etcPasswdLinks()).toBe(passwdLinks);
      if (c.code === undefined) expect(failure).toBeUndefined();
      else expect(failure).toMatchObject({ name: 'ImageError', code: c.code });
      if (c.message) expect((failure as Error).message).toMatch(c.message);
      c.after?.(ctx);
    });
  }

  it('treats a leading / as relative to the root (documented), never as the host root', async () => {
    const ctx = setup();
    const before = snapshot(ctx.dir, 'root');
    await applyLayer(ctx.root, streamOf(gzip(tar([{ path: `${ctx.sentinel}/evil`, body: 'x' }]))), new UnpackBudget());
    expect(readFileSync(join(ctx.root, ctx.sentinel, 'evil'), 'utf8')).toBe('x');
    expect(snapshot(ctx.dir, 'root')).toEqual(before);
  });

  it('cleans a directory by whiteouts once per layer, however many markers name it', async () => {
    const ctx = setup();
    await applyLayer(ctx.root, streamOf(gzip(tar([{ path: 'd/lower', body: 'l' }]))), new UnpackBudget());
    const files = Array.from({ length: 2000 }, (_, i): TarSpec => ({ path: `d/sub/f${i}`, body: '' }));
    const markers = Array.from({ length: 2000 }, (_, i): TarSpec => ({
      path: i % 2 ? 'd/.wh..wh..opq' : 'd/sub/.wh..wh..opq',
      body: '',
    }));
    const started = Date.now();
    await applyLayer(
      ctx.root,
      streamOf(gzip(tar([...files, ...markers, { path: '.wh.d', body: '' }]))),
      new UnpackBudget(),
    );
    expect(Date.now() - started).toBeLessThan(5000); // not 2000 walks of 2000 files
    expect(readdirSync(join(ctx.root, 'd'))).toEqual(['sub']);
    expect(readdirSync(join(ctx.root, 'd/sub')).length).toBe(2000);
  });

  it('refuses promptly, and destroys the stream, when the source stalls after a hostile entry', async () => {
    for (const compress of [true, false]) {
      const ctx = setup();
      const data = tar(
        [
          { path: '../evil', body: 'x' },
          { path: 'more', body: 'y' },
        ],
        { end: false },
      );
      const source = new Readable({ read: () => undefined }); // never ends
      // A gzip stream flushed so far, but not finished: what a slow registry sends.
      source.push(compress ? gzipSync(data, { finishFlush: zlibConstants.Z_SYNC_FLUSH }) : data);
      await expect(applyLayer(ctx.root, source, new UnpackBudget())).rejects.toMatchObject({ code: 'UNSAFE_LAYER' });
      expect(source.destroyed).toBe(true);
    }
  });

  describe('decompression bombs', () => {
    const watchMemory = (): { peak: () => number; sample: () => void } => {
      const base = process.memoryUsage().rss;
      let peak = 0;
      return {
        sample: () => {
          peak = Math.max(peak, process.memoryUsage().rss - base);
        },
        peak: () => peak,
      };
    };

    it('stops 10 GiB of gzipped zeros at the layer bound, quickly, in bounded memory, the stream destroyed', async () => {
      const ctx = setup();
      const before = snapshot(ctx.dir, 'root');
      const { stream, source } = gzipOfZeros(10 * GiB);
      const memory = watchMemory();
      const started = Date.now();
      const budget = new UnpackBudget({ maxLayerBytes: 64 * MiB });
      await expect(applyLayer(ctx.root, stream, budget, memory.sample)).rejects.toMatchObject({ code: 'TOO_LARGE' });
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(memory.peak()).toBeLessThan(128 * MiB);
      expect(budget.bytes).toBeLessThan(65 * MiB);
      expect(stream.destroyed).toBe(true);
      await new Promise((resolve) => setImmediate(resolve));
      expect(source.destroyed).toBe(true);
      expect(readdirSync(ctx.root)).toEqual([]);
      expect(snapshot(ctx.dir, 'root')).toEqual(before);
    });

    it('stops a 10 GiB file of zeros at the layer bound with no more than the bound written', async () => {
      const ctx = setup();
      const head = header({ name: 'bomb', typeflag: '0', size: 10 * GiB });
      const { stream } = gzipOfZeros(10 * GiB, head);
      const memory = watchMemory();
      const budget = new UnpackBudget({ maxLayerBytes: 48 * MiB, maxFileSize: 16 * GiB });
      await expect(applyLayer(ctx.root, stream, budget, memory.sample)).rejects.toMatchObject({ code: 'TOO_LARGE' });
      expect(memory.peak()).toBeLessThan(128 * MiB);
      expect(lstatSync(join(ctx.root, 'bomb')).size).toBeLessThanOrEqual(48 * MiB);
      expect(stream.destroyed).toBe(true);
    });

    it('refuses a 10 GiB file before writing a byte of it when over the file bound', async () => {
      const ctx = setup();
      const head = header({ name: 'bomb', typeflag: '0', size: 10 * GiB });
      const { stream } = gzipOfZeros(10 * GiB, head);
      await expect(applyLayer(ctx.root, stream, new UnpackBudget())).rejects.toMatchObject({ code: 'TOO_LARGE' });
      expect(existsSync(join(ctx.root, 'bomb'))).toBe(false);
    });

    it('stops at the image bound across layers', async () => {
      const ctx = setup();
      const budget = new UnpackBudget({ maxImageBytes: 40 * MiB });
      const layer = (name: string): Buffer => gzip(tar([{ path: name, body: Buffer.alloc(15 * MiB) }]));
      await applyLayer(ctx.root, streamOf(layer('one')), budget);
      await applyLayer(ctx.root, streamOf(layer('two')), budget);
      await expect(applyLayer(ctx.root, streamOf(layer('three')), budget)).rejects.toMatchObject({
        code: 'TOO_LARGE',
      });
      expect(lstatSync(join(ctx.root, 'three')).size).toBeLessThan(15 * MiB);
    });
  });
});
