// Applying honest layers: every entry type with its metadata, whiteouts and opaque directories in both orders,
// replacements of one type by another, the bounds across layers, progress. Needs root (chown), as CI has.
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { applyLayer, type LayerStats } from '../apply-layer';
import { UnpackBudget } from '../limits';
import { gzip, scratch, streamOf, tar, type TarSpec } from './support/tar-writer';

describe('applyLayer', () => {
  const tmp = scratch('caas-apply-');
  let n = 0;
  const freshRoot = (): string => {
    const root = join(tmp.dir, `root-${++n}`);
    mkdirSync(root);
    return root;
  };
  const apply = async (root: string, layers: TarSpec[][], budget = new UnpackBudget()): Promise<LayerStats[]> => {
    const stats: LayerStats[] = [];
    for (const layer of layers) stats.push(await applyLayer(root, streamOf(gzip(tar(layer))), budget));
    return stats;
  };
  const tree = (dir: string, prefix = ''): string[] =>
    readdirSync(dir)
      .sort()
      .flatMap((name) => {
        const rel = prefix + name;
        const st = lstatSync(join(dir, name));
        return st.isDirectory() ? [`${rel}/`, ...tree(join(dir, name), `${rel}/`)] : [rel];
      });
  const read = (root: string, rel: string): string => readFileSync(join(root, rel), 'utf8');

  it('writes files, directories, symlinks and hard links with their owners, modes and times', async () => {
    const root = freshRoot();
    const [stats] = await apply(root, [
      [
        { path: './', type: 'dir', mode: 0o755, mtime: 1_500_000_000 },
        { path: 'usr/', type: 'dir', mode: 0o755, mtime: 1_500_000_001 },
        { path: 'usr/bin/', type: 'dir', mode: 0o711, uid: 5, gid: 6, mtime: 1_500_000_002 },
        { path: 'usr/bin/su', body: 'su', mode: 0o4755, uid: 0, gid: 0, mtime: 1_500_000_003 },
        { path: 'usr/bin/wall', body: 'wall', mode: 0o2755, uid: 0, gid: 5, mtime: 1_500_000_004 },
        { path: 'usr/bin/app', body: 'app', mode: 0o6750, uid: 1000, gid: 1000, mtime: 1_500_000_005 },
        { path: 'tmp/', type: 'dir', mode: 0o1777, mtime: 1_500_000_006 },
        { path: 'ro/', type: 'dir', mode: 0o555, mtime: 1_500_000_007 },
        { path: 'ro/child', body: 'under a read-only directory', mode: 0o444 },
        { path: 'bin', linkpath: 'usr/bin', uid: 7, gid: 8, mtime: 1_500_000_008 },
        { path: 'etc/abs', linkpath: '/etc/passwd' },
        { path: 'usr/bin/su2', type: 'hardlink', linkpath: 'usr/bin/su' },
        { path: 'implicit/parent/file', body: 'made parents' },
        { path: '/absolute/name', body: 'leading slash is relative to the root' },
      ],
    ]);
    expect(stats).toMatchObject({ files: 6, directories: 5, symlinks: 2, hardlinks: 1, whiteouts: 0, fileBytes: 85 });
    const st = (rel: string): Stats => lstatSync(join(root, rel));
    expect(st('usr/bin').mode & 0o7777).toBe(0o711);
    expect([st('usr/bin').uid, st('usr/bin').gid]).toEqual([5, 6]);
    expect(st('usr/bin/su').mode & 0o7777).toBe(0o4755);
    expect(st('usr/bin/wall').mode & 0o7777).toBe(0o2755);
    expect(st('usr/bin/app').mode & 0o7777).toBe(0o6750);
    expect([st('usr/bin/app').uid, st('usr/bin/app').gid]).toEqual([1000, 1000]);
    expect(st('tmp').mode & 0o7777).toBe(0o1777);
    expect(st('ro').mode & 0o7777).toBe(0o555);
    expect(read(root, 'ro/child')).toBe('under a read-only directory');
    expect(readlinkSync(join(root, 'bin'))).toBe('usr/bin');
    expect([st('bin').uid, st('bin').gid, st('bin').mtimeMs]).toEqual([7, 8, 1_500_000_008_000]);
    expect(readlinkSync(join(root, 'etc/abs'))).toBe('/etc/passwd');
    expect(st('usr/bin/su2').ino).toBe(st('usr/bin/su').ino);
    expect(st('implicit').mode & 0o7777).toBe(0o755);
    expect(read(root, 'absolute/name')).toBe('leading slash is relative to the root');
    // Times last: directories after their content.
    expect(st('usr/bin/su').mtimeMs).toBe(1_500_000_003_000);
    expect(st('usr/bin').mtimeMs).toBe(1_500_000_002_000);
    expect(st('usr').mtimeMs).toBe(1_500_000_001_000);
    expect(st('ro').mtimeMs).toBe(1_500_000_007_000);
    expect(st('.').mtimeMs).toBe(1_500_000_000_000);
  });

  it('applies whiteouts to lower layers only, and never creates the whiteout files', async () => {
    const root = freshRoot();
    await apply(root, [
      [
        { path: 'a/x', body: 'x' },
        { path: 'a/y', body: 'y' },
        { path: 'b/deep/tree', body: 't' },
        { path: 'c', linkpath: 'a' },
        { path: 'same', body: 'lower' },
      ],
      [
        { path: 'a/.wh.x', body: '' },
        { path: '.wh.b', body: '' },
        { path: '.wh.c', body: '' },
        { path: '.wh.missing', body: '' },
        { path: 'gone/.wh.whatever', body: '' },
        { path: 'same', body: 'upper' },
        { path: '.wh.same', body: '' }, // after this layer's own `same`: keeps it
        { path: 'new', body: 'n' },
        { path: '.wh..wh.plnk', body: '' }, // AUFS metadata: ignored
      ],
    ]);
    expect(tree(root)).toEqual(['a/', 'a/y', 'new', 'same']);
    expect(read(root, 'same')).toBe('upper');
  });

  for (const order of ['marker first', 'marker last', 'marker in the middle']) {
    it(`makes a directory opaque (${order}): lower content goes, this layer's stays`, async () => {
      const root = freshRoot();
      const own: TarSpec[] = [
        { path: 'd/new', body: 'new' },
        { path: 'd/sub/new2', body: 'new2' },
        { path: 'd/kept', body: 'rewritten' },
      ];
      const marker: TarSpec = { path: 'd/.wh..wh..opq', body: '' };
      const entries: TarSpec[] =
        order === 'marker first'
          ? [marker, ...own]
          : order === 'marker last'
            ? [...own, marker]
            : [own[0], marker, own[1], own[2]];
      await apply(root, [
        [
          { path: 'd/old', body: 'old' },
          { path: 'd/kept', body: 'lower' },
          { path: 'd/sub/old2', body: 'old2' },
          { path: 'd/olddir/deep', body: 'x' },
          { path: 'other', body: 'o' },
        ],
        [{ path: 'd/', type: 'dir', mode: 0o750 }, ...entries],
      ]);
      expect(tree(root)).toEqual(['d/', 'd/kept', 'd/new', 'd/sub/', 'd/sub/new2', 'other']);
      expect(read(root, 'd/kept')).toBe('rewritten');
      expect(lstatSync(join(root, 'd')).mode & 0o777).toBe(0o750);
    });
  }

  it('replaces an entry of another type: file over directory tree, directory over file and symlink, …', async () => {
    const root = freshRoot();
    await apply(root, [
      [
        { path: 'dir-then-file/a/b/c', body: 'c' },
        { path: 'file-then-dir', body: 'f' },
        { path: 'link-then-dir', linkpath: '/etc' },
        { path: 'dir-then-link/x', body: 'x' },
        { path: 'merged/', type: 'dir', mode: 0o700 },
        { path: 'merged/lower', body: 'l' },
        { path: 'shared', body: 'v1' },
        { path: 'alias', type: 'hardlink', linkpath: 'shared' },
      ],
      [
        { path: 'dir-then-file', body: 'now a file' },
        { path: 'file-then-dir/', type: 'dir' },
        { path: 'file-then-dir/inside', body: 'i' },
        { path: 'link-then-dir/', type: 'dir' },
        { path: 'link-then-dir/passwd', body: 'inside the root' },
        { path: 'dir-then-link', linkpath: 'elsewhere' },
        { path: 'merged/', type: 'dir', mode: 0o755 },
        { path: 'merged/upper', body: 'u' },
        { path: 'shared', body: 'v2' }, // a new file: the hard link of the lower layer keeps v1
      ],
    ]);
    expect(read(root, 'dir-then-file')).toBe('now a file');
    expect(read(root, 'file-then-dir/inside')).toBe('i');
    expect(lstatSync(join(root, 'link-then-dir')).isDirectory()).toBe(true);
    expect(read(root, 'link-then-dir/passwd')).toBe('inside the root');
    expect(readlinkSync(join(root, 'dir-then-link'))).toBe('elsewhere');
    expect(tree(join(root, 'merged'))).toEqual(['lower', 'upper']);
    expect(lstatSync(join(root, 'merged')).mode & 0o777).toBe(0o755);
    expect([read(root, 'shared'), read(root, 'alias')]).toEqual(['v2', 'v1']);
  });

  it('takes the last of duplicate entries, in any combination of types', async () => {
    const root = freshRoot();
    await apply(root, [
      [
        { path: 'p/', type: 'dir' },
        { path: 'p/child', body: 'c' },
        { path: 'p', body: 'file now' },
        { path: 'q', body: 'one' },
        { path: 'q', body: 'two' },
        { path: 'r', linkpath: 'a' },
        { path: 'r', linkpath: 'b' },
        { path: 's/', type: 'dir', mode: 0o700 },
        { path: 's', linkpath: 'nowhere' },
      ],
    ]);
    expect(read(root, 'p')).toBe('file now');
    expect(read(root, 'q')).toBe('two');
    expect(readlinkSync(join(root, 'r'))).toBe('b');
    expect(readlinkSync(join(root, 's'))).toBe('nowhere');
  });

  it('accepts a plain tar, reports compressed progress, and counts against the image budget across layers', async () => {
    const root = freshRoot();
    const plain = tar([{ path: 'f', body: 'x'.repeat(100_000) }]);
    const progress: number[] = [];
    const budget = new UnpackBudget({ maxImageBytes: 250_000 });
    const stats = await applyLayer(root, streamOf(plain, 8192), budget, (b) => progress.push(b));
    expect(progress.at(-1)).toBe(plain.length);
    expect(stats).toMatchObject({ compressedBytes: plain.length, uncompressedBytes: plain.length });
    expect(budget.bytes).toBe(plain.length);
    const gz = gzip(tar([{ path: 'g', body: 'y'.repeat(100_000) }]));
    const second = await applyLayer(root, streamOf(gz), budget);
    expect(second.compressedBytes).toBe(gz.length);
    await expect(
      applyLayer(root, streamOf(gzip(tar([{ path: 'h', body: 'z'.repeat(100_000) }]))), budget),
    ).rejects.toMatchObject({ code: 'TOO_LARGE', message: expect.stringContaining('image') });
    expect(existsSync(join(root, 'g'))).toBe(true);
  });
});
