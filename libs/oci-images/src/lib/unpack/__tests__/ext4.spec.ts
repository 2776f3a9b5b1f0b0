// Building the ext4 image from an unpacked root, read back with debugfs (no mount needed) and e2fsck.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { applyLayer } from '../apply-layer';
import { buildExt4Image, ext4Geometry, measureTree } from '../ext4';
import { UnpackBudget } from '../limits';
import { scratch, streamOf, tar, type TarSpec } from './support/tar-writer';

jest.setTimeout(60_000);

const debugfs = (image: string, request: string): string =>
  execFileSync('debugfs', ['-R', request, image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });

interface Listed {
  inode: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
}

/** `debugfs -R 'ls -l DIR'` → name → inode, mode (with type bits), owner, size. */
function list(image: string, dir: string): Map<string, Listed> {
  const out = new Map<string, Listed>();
  for (const line of debugfs(image, `ls -l ${dir}`).split('\n')) {
    const m = /^\s*(\d+)\s+(\d+)\s+\(\d+\)\s+(\d+)\s+(\d+)\s+(\d+)\s+\S+\s+\S+\s+(.+)$/.exec(line);
    if (m) {
      out.set(m[6], { inode: +m[1], mode: parseInt(m[2], 8), uid: +m[3], gid: +m[4], size: +m[5] });
    }
  }
  return out;
}

describe('buildExt4Image', () => {
  const tmp = scratch('caas-ext4-');
  const big = randomBytes(16 * 1024 * 1024);
  let root: string;

  beforeAll(async () => {
    root = join(tmp.dir, 'root');
    mkdirSync(root);
    const layer: TarSpec[] = [
      { path: 'usr/bin/', type: 'dir', mode: 0o755 },
      { path: 'usr/bin/su', body: 'su', mode: 0o4755, uid: 0, gid: 0 },
      { path: 'usr/bin/app', body: 'app', mode: 0o2750, uid: 1000, gid: 1001, mtime: 1_234_567_890 },
      { path: 'usr/bin/app2', type: 'hardlink', linkpath: 'usr/bin/app' },
      { path: 'tmp/', type: 'dir', mode: 0o1777 },
      { path: 'bin', linkpath: 'usr/bin' },
      { path: 'long-link', linkpath: `/${'t'.repeat(200)}` },
      { path: 'data/big.bin', body: big },
      // Many inodes and long names in one directory (an htree), and a deep path.
      ...Array.from({ length: 1000 }, (_, i) => ({ path: `many/${'n'.repeat(200)}-${i}`, body: '' })),
      { path: `${Array.from({ length: 100 }, (_, i) => `d${i}`).join('/')}/leaf`, body: 'deep' },
    ];
    await applyLayer(root, streamOf(tar(layer)), new UnpackBudget()); // plain tar: gzip of random data is slow
  });

  it('puts the tree in the image with owners, modes (setuid/setgid/sticky), links, times and contents', async () => {
    const out = join(tmp.dir, 'images', 'rootfs.ext4');
    mkdirSync(join(tmp.dir, 'images'));
    const image = await buildExt4Image(root, out);
    expect(image).toMatchObject({ path: out, attempts: 1 });
    expect(image.tree.fileBytes).toBe(big.length + 2 + 3 + 4);

    const top = list(out, '/');
    expect(top.get('tmp')?.mode).toBe(0o41777);
    expect(top.get('bin')?.mode).toBe(0o120777);
    const bin = list(out, '/usr/bin');
    expect(bin.get('su')).toMatchObject({ mode: 0o104755, uid: 0, gid: 0, size: 2 });
    expect(bin.get('app')).toMatchObject({ mode: 0o102750, uid: 1000, gid: 1001, size: 3 });
    expect(bin.get('app2')?.inode).toBe(bin.get('app')?.inode);
    expect(debugfs(out, 'stat /usr/bin/app')).toMatch(/mtime: 0x499602d2/); // 1234567890
    expect(debugfs(out, 'stat /bin')).toMatch(/Fast link dest: "usr\/bin"/);
    expect(debugfs(out, 'stat /long-link')).toMatch(/Size: 201/);
    expect(list(out, '/many').size).toBe(1000 + 2);
    const dumped = join(tmp.dir, 'big.out');
    debugfs(out, `dump /data/big.bin ${dumped}`);
    expect(readFileSync(dumped).equals(big)).toBe(true);
    expect(debugfs(out, `cat /${Array.from({ length: 100 }, (_, i) => `d${i}`).join('/')}/leaf`)).toBe('deep');

    // A clean file system, no journal, labelled, and no larger than needed (sparse-free estimate within 25%).
    execFileSync('e2fsck', ['-fn', out], { stdio: 'pipe' });
    const header = execFileSync('dumpe2fs', ['-h', out], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    expect(header).toMatch(/Filesystem volume name:\s+caas/);
    expect(header).not.toMatch(/has_journal/);
    expect(image.sizeBytes).toBeLessThan(image.tree.fileBytes * 1.25 + 64 * 1024 * 1024);
    // Only the image in its directory: the temporary file was renamed.
    expect(readdirSync(join(tmp.dir, 'images'))).toEqual(['rootfs.ext4']);
  });

  it('replaces an existing image only when the new one is complete; on failure leaves it and no temp file', async () => {
    const dir = join(tmp.dir, 'replace');
    mkdirSync(dir);
    const out = join(dir, 'img.ext4');
    writeFileSync(out, 'previous');
    await expect(buildExt4Image(root, out, { mkfs: '/nonexistent/mkfs.ext4' })).rejects.toMatchObject({
      code: 'FS_IMAGE_FAILED',
    });
    await expect(buildExt4Image(join(tmp.dir, 'no-such-root'), out)).rejects.toMatchObject({ code: 'ENOENT' });
    const notADir = join(dir, 'file');
    writeFileSync(notADir, 'x');
    await expect(buildExt4Image(dir, out, { mkfs: 'false' })).rejects.toMatchObject({
      code: 'FS_IMAGE_FAILED',
      message: expect.stringContaining('exit 1'),
    });
    expect(readFileSync(out, 'utf8')).toBe('previous');
    expect(readdirSync(dir).sort()).toEqual(['file', 'img.ext4']);
    const small = join(tmp.dir, 'small');
    mkdirSync(join(small, 'etc'), { recursive: true });
    writeFileSync(join(small, 'etc/hostname'), 'pod\n');
    await buildExt4Image(small, out);
    expect(debugfs(out, 'cat /etc/hostname')).toBe('pod\n');
    expect(existsSync(out)).toBe(true);
  });

  it('reports mke2fs errors with the tail of its stderr', async () => {
    const fake = join(tmp.dir, 'fake-mkfs');
    writeFileSync(fake, '#!/bin/sh\necho "something broke: the details" >&2\nexit 3\n', { mode: 0o755 });
    await expect(buildExt4Image(root, join(tmp.dir, 'x.ext4'), { mkfs: fake })).rejects.toMatchObject({
      code: 'FS_IMAGE_FAILED',
      message: expect.stringContaining('something broke: the details'),
    });
  });

  it('refuses a tree with a directory over the bound before running mke2fs (TOO_LARGE)', async () => {
    await expect(
      buildExt4Image(root, join(tmp.dir, 'y.ext4'), { maxDirEntries: 999, mkfs: '/nonexistent' }),
    ).rejects.toMatchObject({ code: 'TOO_LARGE', message: expect.stringContaining('/many has 1000 entries') });
    expect(existsSync(join(tmp.dir, 'y.ext4'))).toBe(false);
  });

  it('measures trees without following symlinks, counting hard-linked inodes once', async () => {
    const usage = await measureTree(root);
    // root, usr, usr/bin, su, app (+app2 shared), tmp, bin, long-link, data, big.bin, many + 1000, d0..d99, leaf
    expect(usage.inodes).toBe(1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1000 + 100 + 1);
    expect(usage.largestDir).toEqual({ path: 'many', entries: 1000 });
    const geometry = ext4Geometry(usage);
    expect(geometry.inodes).toBeGreaterThan(usage.inodes);
    expect(geometry.blocks * 4096).toBeGreaterThan(usage.fileBytes);
  });
});
