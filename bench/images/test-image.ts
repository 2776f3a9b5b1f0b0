// The benchmark's image: five layers built from a seed (the same seed gives the same trees, tars and digests),
// shaped like an application image — a base system, a language runtime, dependencies, the app, a patch layer.
// Thousands of small text-ish files (1–20 KB, they compress well), a few incompressible 1–5 MB binaries,
// directories, symlinks, a hard link, a setuid file, files owned by uid 1000, and in the last layer a file
// whiteout, a directory whiteout, an opaque directory and replaced files. Each layer is written to a temp dir,
// tarred with GNU tar (sorted, numeric owners, mtimes clamped) and compressed with `gzip -n` (what `tar czf` runs).
import { execFileSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { chmodSync, chownSync, createReadStream, linkSync, mkdirSync, readdirSync, symlinkSync } from 'node:fs';
import { lchownSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface BuiltLayer {
  /** The gzip-compressed tar, as pushed. */
  path: string;
  digest: string;
  size: number;
  /** The uncompressed tar's digest (the config's diff_id) and size. */
  diffId: string;
  tarBytes: number;
}

export interface BuiltImage {
  layers: BuiltLayer[];
  /** The OCI image config JSON. */
  config: Buffer;
  /** Layer bytes as pushed (gzip). */
  compressedBytes: number;
  /** Tar bytes of all layers. */
  uncompressedBytes: number;
}

/** mulberry32: a small, fast, seedable PRNG (uniform in [0, 1)). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const APP_UID = 1000;
const EPOCH = 1_700_000_000;

class LayerTree {
  private readonly int: (min: number, max: number) => number;
  private readonly vocabulary: string[];

  constructor(
    readonly dir: string,
    private readonly seed: number,
    private readonly random: () => number,
  ) {
    this.int = (min, max) => min + Math.floor(random() * (max - min + 1));
    const letters = 'abcdefghijklmnopqrstuvwxyz_';
    this.vocabulary = Array.from({ length: 800 }, () =>
      Array.from({ length: this.int(2, 10) }, () => letters[this.int(0, letters.length - 1)]).join(''),
    );
    mkdirSync(dir, { recursive: true });
  }

  private path(rel: string, owner: number): string {
    const path = join(this.dir, rel);
    const parent = dirname(rel);
    if (parent !== '.') this.mkdir(parent, owner);
    return path;
  }

  private finish(path: string, mode: number, owner: number): void {
    chownSync(path, owner, owner);
    chmodSync(path, mode);
    const mtime = EPOCH - this.int(0, 200_000_000);
    utimesSync(path, mtime, mtime);
  }

  mkdir(rel: string, owner = 0, mode = 0o755): void {
    const path = join(this.dir, rel);
    if (statSync(path, { throwIfNoEntry: false })?.isDirectory()) return;
    const parent = dirname(rel);
    if (parent !== '.') this.mkdir(parent, owner);
    mkdirSync(path);
    chownSync(path, owner, owner);
    chmodSync(path, mode);
  }

  /** Source-code-like lines of words from a fixed vocabulary: compresses about 3:1 like real text. */
  text(rel: string, minKiB = 1, maxKiB = 20, owner = 0, mode = 0o644): number {
    const target = this.int(minKiB * 1024, maxKiB * 1024);
    const lines: string[] = [];
    let length = 0;
    while (length < target) {
      const words = Array.from({ length: this.int(3, 12) }, () => this.vocabulary[this.int(0, 799)]);
      const line = `${'  '.repeat(this.int(0, 4))}${words.join(this.random() < 0.3 ? ', ' : ' ')};`;
      lines.push(line);
      length += line.length + 1;
    }
    const content = `${lines.join('\n')}\n`.slice(0, target);
    this.file(rel, content, owner, mode);
    return content.length;
  }

  file(rel: string, content: string, owner = 0, mode = 0o644): void {
    const path = this.path(rel, owner);
    writeFileSync(path, content);
    this.finish(path, mode, owner);
  }

  /** Incompressible bytes (AES-CTR keystream of the seed and the path). */
  binary(rel: string, bytes: number, owner = 0, mode = 0o755): void {
    const key = createHash('sha256').update(`${this.seed}:${rel}`).digest().subarray(0, 16);
    const data = createCipheriv('aes-128-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(bytes));
    const path = this.path(rel, owner);
    writeFileSync(path, data);
    this.finish(path, mode, owner);
  }

  mib(min: number, max: number): number {
    return this.int(min * 1024 * 1024, max * 1024 * 1024);
  }

  symlink(rel: string, target: string, owner = 0): void {
    const path = this.path(rel, owner);
    symlinkSync(target, path);
    lchownSync(path, owner, owner);
  }

  hardlink(rel: string, existing: string): void {
    linkSync(join(this.dir, existing), this.path(rel, 0));
  }

  /** `.wh.<name>`: removes `<name>` of the lower layers. */
  whiteout(rel: string): void {
    const path = this.path(join(dirname(rel), `.wh.${rel.split('/').pop() ?? ''}`), 0);
    writeFileSync(path, '');
  }

  /** `.wh..wh..opq`: hides everything the lower layers put in the directory. */
  opaque(relDir: string, owner = 0): void {
    writeFileSync(this.path(`${relDir}/.wh..wh..opq`, owner), '');
  }

  pick(n: number): number {
    return this.int(0, n - 1);
  }
}

type LayerContent = (tree: LayerTree) => void;

const PASSWD = 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n';
const GROUP = 'root:x:0:\napp:x:1000:\n';

const LAYERS: readonly LayerContent[] = [
  // 1. A base system: /etc, /usr with docs, libraries and tools; usrmerge symlinks; a setuid tool, a hard link.
  (t) => {
    for (const dir of ['var/log', 'var/cache', 'usr/sbin', 'usr/local/bin']) t.mkdir(dir);
    t.mkdir('tmp', 0, 0o1777);
    t.mkdir('root', 0, 0o700);
    t.mkdir('home/app', APP_UID);
    for (const [link, target] of [
      ['bin', 'usr/bin'],
      ['sbin', 'usr/sbin'],
      ['lib', 'usr/lib'],
      ['lib64', 'usr/lib64'],
    ] as const) {
      t.symlink(link, target);
    }
    t.file('etc/passwd', PASSWD);
    t.file('etc/group', GROUP);
    t.text('etc/shadow', 1, 1, 0, 0o640);
    t.text('etc/old.conf', 2, 4);
    for (let i = 0; i < 40; i++) t.text(`etc/conf.d/service${i}.conf`, 1, 4);
    for (let i = 0; i < 260; i++) {
      t.text(`usr/share/doc/package${i}/copyright`, 1, 6);
      t.text(`usr/share/doc/package${i}/changelog`, 2, 20);
      if (i % 3 === 0) t.text(`usr/share/doc/package${i}/README`, 1, 10);
    }
    t.binary('usr/lib/x86_64-linux-gnu/libc.so.6', t.mib(1.5, 2.5));
    t.symlink('usr/lib64/ld-linux-x86-64.so.2', '../lib/x86_64-linux-gnu/libc.so.6');
    t.binary('usr/lib/x86_64-linux-gnu/libcrypto.so.3', t.mib(3, 5));
    t.symlink('usr/lib/x86_64-linux-gnu/libcrypto.so', 'libcrypto.so.3');
    t.binary('usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30', t.mib(1.5, 2.5));
    t.symlink('usr/lib/x86_64-linux-gnu/libstdc++.so.6', 'libstdc++.so.6.0.30');
    t.binary('usr/bin/busybox', t.mib(1, 2));
    for (const tool of ['sh', 'ls', 'cat', 'cp', 'mv', 'rm', 'ln', 'mkdir', 'grep', 'sed', 'awk', 'tar', 'ps', 'vi']) {
      t.symlink(`usr/bin/${tool}`, 'busybox');
    }
    t.binary('usr/bin/gzip', 96 * 1024);
    t.hardlink('usr/bin/gunzip', 'usr/bin/gzip');
    t.binary('usr/bin/su', 64 * 1024, 0, 0o4755);
  },
  // 2. A language runtime: a standard library of modules and the interpreter.
  (t) => {
    for (let p = 0; p < 50; p++) {
      for (let m = 0; m < 30; m++) t.text(`usr/lib/python3.11/pkg${p}/module${m}.py`, 1, 20);
    }
    t.binary('usr/bin/python3.11', t.mib(4, 5));
    t.symlink('usr/bin/python3', 'python3.11');
    t.binary('usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0', t.mib(3, 4));
  },
  // 3. Dependencies, owned by the app's user: node_modules with a few native addons and one deep path.
  (t) => {
    t.mkdir('app', APP_UID);
    for (let p = 0; p < 200; p++) {
      const pkg = `app/node_modules/dep-${p}`;
      t.text(`${pkg}/package.json`, 1, 2, APP_UID);
      t.text(`${pkg}/README.md`, 2, 12, APP_UID);
      for (let f = 0; f < 6; f++) t.text(`${pkg}/lib/file${f}.js`, 1, 20, APP_UID);
    }
    t.binary('app/node_modules/dep-3/build/Release/addon.node', t.mib(1.5, 3), APP_UID);
    t.binary('app/node_modules/dep-42/build/Release/addon.node', t.mib(1.5, 3), APP_UID);
    t.binary('app/node_modules/dep-77/prebuilds/linux-x64/node.napi.node', t.mib(1, 2), APP_UID);
    const deep = 'app/node_modules/dep-9/node_modules/@scope/a-rather-long-package-name/dist/esm/internal/helpers';
    t.text(`${deep}/a-file-with-a-long-name-too.js`, 1, 8, APP_UID);
    t.symlink('app/node_modules/.bin/dep-7', '../dep-7/lib/file0.js', APP_UID);
  },
  // 4. The application: sources, static assets, a cache directory, its binary and a model file.
  (t) => {
    for (let i = 0; i < 320; i++) t.text(`app/src/module${Math.floor(i / 20)}/file${i}.ts`, 1, 20, APP_UID);
    for (let i = 0; i < 100; i++) t.text(`app/public/assets/asset${i}.css`, 1, 16, APP_UID);
    for (let i = 0; i < 60; i++) t.text(`app/cache/entry${i}.json`, 1, 8, APP_UID);
    t.binary('app/bin/server', t.mib(4, 5), APP_UID);
    t.binary('app/data/model.bin', t.mib(3, 5), APP_UID, 0o644);
    t.binary('app/data/index.bin', t.mib(2, 3), APP_UID, 0o644);
    t.symlink('usr/local/bin/server', '/app/bin/server');
  },
  // 5. A patch: whiteouts (a file, a directory), an opaque directory refilled, files replaced, modes changed.
  (t) => {
    t.whiteout('etc/old.conf');
    t.whiteout('app/node_modules/dep-7');
    t.whiteout('app/node_modules/.bin/dep-7');
    t.opaque('app/cache', APP_UID);
    for (let i = 0; i < 20; i++) t.text(`app/cache/fresh${i}.json`, 1, 8, APP_UID);
    for (let i = 0; i < 12; i++) t.text(`app/src/module${i}/file${i * 20}.ts`, 1, 20, APP_UID);
    t.text('etc/conf.d/service3.conf', 1, 2, 0, 0o600);
    t.binary('app/bin/server', t.mib(1, 1.5), APP_UID);
  },
];

function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(`sha256:${hash.digest('hex')}`));
  });
}

/** Builds the layers in `workDir` (trees, then `layerN.tar.gz`) and the image config. */
export async function buildTestImage(workDir: string, seed: number): Promise<BuiltImage> {
  const random = prng(seed);
  const layers: BuiltLayer[] = [];
  for (const [index, content] of LAYERS.entries()) {
    const tree = new LayerTree(join(workDir, `tree${index + 1}`), seed + index, random);
    content(tree);
    const tarPath = join(workDir, `layer${index + 1}.tar`);
    const names = readdirSync(tree.dir).sort();
    execFileSync('tar', [
      ...['--create', '--file', tarPath, '--sort=name', '--format=gnu', '--numeric-owner'],
      ...['--clamp-mtime', `--mtime=@${EPOCH}`, '-C', tree.dir, '--', ...names],
    ]);
    const diffId = await sha256File(tarPath);
    const tarBytes = statSync(tarPath).size;
    execFileSync('gzip', ['-n', '-6', tarPath]);
    const path = `${tarPath}.gz`;
    layers.push({ path, digest: await sha256File(path), size: statSync(path).size, diffId, tarBytes });
  }
  const config = {
    created: new Date(EPOCH * 1000).toISOString(),
    architecture: 'amd64',
    os: 'linux',
    config: {
      User: 'app',
      Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'NODE_ENV=production'],
      Entrypoint: ['/app/bin/server'],
      Cmd: ['--port', '8080'],
      WorkingDir: '/app',
    },
    rootfs: { type: 'layers', diff_ids: layers.map((layer) => layer.diffId) },
  };
  return {
    layers,
    config: Buffer.from(JSON.stringify(config)),
    compressedBytes: layers.reduce((sum, layer) => sum + layer.size, 0),
    uncompressedBytes: layers.reduce((sum, layer) => sum + layer.tarBytes, 0),
  };
}
