/**
 * `npm run bench:images`: pull + unpack + ext4 image of a ≈50 MB, 5-layer image from a local registry, by
 * `ImageService.pull` (cold: a fresh cache each run) against Debian's Go tools in the same run —
 * `skopeo copy` to an OCI layout, `umoci unpack`, then the same mkfs (`buildExt4Image` on umoci's rootfs).
 * Alternating order, medians of RUNS runs after one warm-up of each; the trees are checked to be equal once;
 * our warm pull (image cached: the manifest fetch only) is timed too. Progress goes to stderr; a table and one
 * final JSON line to stdout. See bench/README.md.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ImageService, buildExt4Image, type PullPhase } from '@caas/oci-images';
import { diffTrees, readExt4Tree, readTree, summarize, type TreeSummary } from './compare-trees';
import { LocalRegistry } from './local-registry';
import { buildTestImage, type BuiltImage } from './test-image';

const RUNS = intEnv('RUNS', 7, 1);
const WARM_RUNS = intEnv('WARM_RUNS', 10, 1);
const SEED = intEnv('SEED', 20_261_201, 0);
const GOAL_RATIO = 1.0;
const REPOSITORY = 'bench/image';
const TAG = 'v1';
const CACHE_LIMIT = 16 * 1024 ** 3;

function intEnv(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min) throw new Error(`${name} must be an integer ≥ ${min}, got ${raw}`);
  return value;
}

const log = (message: string) => process.stderr.write(`[bench:images] ${message}\n`);
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

function median(values: readonly number[]): number {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function round(value: number | undefined, digits = 1): number | null {
  if (value === undefined || !Number.isFinite(value)) return null;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Clock ticks per second of /proc/<pid>/stat's times (USER_HZ). */
const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * CPU time (user + system) of this process (all its threads: the libuv pool included) plus its waited-for
 * children (mkfs, skopeo, umoci), in ms, from /proc/self/stat: less sensitive than wall time to other load.
 */
function cpuMs(): number {
  const text = readFileSync('/proc/self/stat', 'utf8');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14–17.
  return ([11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0) / CLK_TCK) * 1000;
}

/** One pull by ImageService: the phases are the first `onProgress` of each, on this process's clock. */
interface OursRun {
  totalMs: number;
  /** CPU time of the pull (this process and mkfs). */
  cpuMs: number;
  /** ImageService.open of the fresh cache (not in the total). */
  openMs: number;
  /** pull() called → manifest resolved. */
  resolveMs: number;
  /** Resolved → first layer unpacked (config and every layer downloaded, verified, fsynced). */
  downloadMs: number;
  /** First layer unpacked → filesystem phase (all layers applied, the image's user resolved). */
  unpackMs: number;
  /** Filesystem phase → pull() resolved: measure the tree, mkfs, fsyncs, scratch tree removed, artifact committed. */
  fsMs: number;
  /** CPU time of resolve + download, unpack and fs (mkfs's included). */
  phaseCpuMs: { download: number; unpack: number; fs: number };
  fsImage: string;
  fsImageBytes: number;
}

interface BaselineRun {
  totalMs: number;
  /** CPU time of skopeo, umoci, mkfs and buildExt4Image's walk of the tree. */
  cpuMs: number;
  skopeoMs: number;
  umociMs: number;
  mkfsMs: number;
  phaseCpuMs: { skopeo: number; umoci: number; mkfs: number };
  rootfs: string;
}

class Bench {
  readonly work = mkdtempSync(join(tmpdir(), 'caas-bench-images-'));
  registry: LocalRegistry | undefined;
  private readonly children = new Set<ChildProcess>();
  private readonly services = new Set<ImageService>();
  private cleaned = false;

  get reference(): string {
    if (!this.registry) throw new Error('no registry');
    return `${this.registry.host}/${REPOSITORY}:${TAG}`;
  }

  /** A fresh directory for one run of one side. */
  runDir(name: string): string {
    const dir = join(this.work, 'runs', name);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  async openService(cacheDir: string): Promise<ImageService> {
    const service = await ImageService.open({ cacheDir, cacheLimitBytes: CACHE_LIMIT });
    this.services.add(service);
    return service;
  }

  async closeService(service: ImageService): Promise<void> {
    this.services.delete(service);
    await service.close();
  }

  async ours(dir: string): Promise<OursRun> {
    const openedAt = performance.now();
    const service = await this.openService(join(dir, 'cache'));
    const cpuStart = cpuMs();
    const start = performance.now();
    const marks = new Map<PullPhase, { wall: number; cpu: number }>();
    const pulled = await service.pull(this.reference, {
      onProgress: (progress) => {
        if (!marks.has(progress.phase)) marks.set(progress.phase, { wall: performance.now(), cpu: cpuMs() });
      },
    });
    const end = performance.now();
    const cpuEnd = cpuMs();
    pulled.lease.release();
    await this.closeService(service);
    const at = (phase: PullPhase, clock: 'wall' | 'cpu' = 'wall') => {
      const mark = marks.get(phase);
      if (mark === undefined) throw new Error(`no ${phase} progress report`);
      return mark[clock];
    };
    return {
      totalMs: end - start,
      cpuMs: cpuEnd - cpuStart,
      openMs: start - openedAt,
      resolveMs: at('resolved') - start,
      downloadMs: at('unpack') - at('resolved'),
      unpackMs: at('filesystem') - at('unpack'),
      fsMs: end - at('filesystem'),
      phaseCpuMs: {
        download: at('unpack', 'cpu') - cpuStart,
        unpack: at('filesystem', 'cpu') - at('unpack', 'cpu'),
        fs: cpuEnd - at('filesystem', 'cpu'),
      },
      fsImage: pulled.fsImage.path,
      fsImageBytes: pulled.fsImage.sizeBytes,
    };
  }

  async baseline(dir: string): Promise<BaselineRun> {
    const layout = join(dir, 'oci');
    const bundle = join(dir, 'bundle');
    const cpuStart = cpuMs();
    const start = performance.now();
    await this.tool('skopeo', [
      ...['copy', '--src-tls-verify=false'],
      ...[`docker://${this.reference}`, `oci:${layout}:${TAG}`],
    ]);
    const copied = performance.now();
    const cpuCopied = cpuMs();
    await this.tool('umoci', ['unpack', '--image', `${layout}:${TAG}`, bundle]);
    const unpacked = performance.now();
    const cpuUnpacked = cpuMs();
    await buildExt4Image(join(bundle, 'rootfs'), join(dir, 'fs.ext4'));
    const end = performance.now();
    const cpuEnd = cpuMs();
    return {
      totalMs: end - start,
      cpuMs: cpuEnd - cpuStart,
      phaseCpuMs: { skopeo: cpuCopied - cpuStart, umoci: cpuUnpacked - cpuCopied, mkfs: cpuEnd - cpuUnpacked },
      skopeoMs: copied - start,
      umociMs: unpacked - copied,
      mkfsMs: end - unpacked,
      rootfs: join(bundle, 'rootfs'),
    };
  }

  /**
   * Before each measured side: syncfs of the work dir's file system, so that no side pays for the writeback
   * (and the discards) of what the previous one wrote and removed. Nothing is dropped from the page cache.
   */
  settle(): void {
    execFileSync('sync', ['-f', this.work]);
  }

  /** Runs a tool to completion (stdout discarded, stderr kept for the error). */
  private tool(command: string, args: string[]): Promise<void> {
    return new Promise((resolve, reject) => {
      const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
      this.children.add(child);
      let stderr = '';
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (text: string) => (stderr = (stderr + text).slice(-4000)));
      child.on('error', (error) => {
        this.children.delete(child);
        reject(error);
      });
      child.on('close', (code, signal) => {
        this.children.delete(child);
        if (code === 0) resolve();
        else reject(new Error(`${command} ${args.join(' ')}: ${signal ?? `exit ${code}`}\n${stderr.trim()}`));
      });
    });
  }

  /** Kills the tools and the registry, closes the caches, removes every directory of the run. Idempotent. */
  async cleanup(): Promise<void> {
    if (this.cleaned) return;
    this.cleaned = true;
    for (const child of this.children) child.kill('SIGKILL');
    await this.registry?.stop().catch(() => undefined);
    for (const service of this.services) await service.close().catch(() => undefined);
    rmSync(this.work, { recursive: true, force: true });
  }
}

function checkTools(): void {
  if (process.getuid?.() !== 0) throw new Error('run as root: umoci unpack and our unpack keep file owners');
  const path = (process.env['PATH'] ?? '').split(':').concat('/usr/sbin', '/sbin');
  for (const tool of ['docker-registry', 'skopeo', 'umoci', 'mkfs.ext4', 'debugfs', 'tar', 'gzip']) {
    if (!path.some((dir) => existsSync(join(dir, tool)))) {
      throw new Error(`${tool} is missing: apt-get install docker-registry skopeo umoci e2fsprogs (scripts/lib.sh)`);
    }
  }
}

/**
 * Every run's output stays on disk until the end (removed together in cleanup()): on a journal-less ext4, as on
 * our hosts, inode allocation skips inodes freed in the last minute (`recently_deleted`, one inode-table lookup
 * each), so removing a run's 5,000-file trees would slow the file creations of the next runs — whichever side
 * comes next. About 0.4 GB per run (two ext4 images, blobs, umoci's layout and rootfs).
 */
function checkSpace(dir: string, runs: number): void {
  const { bavail, bsize } = statfsSync(dir);
  const needed = (runs + 2) * 0.45e9 + 1e9;
  if (bavail * bsize < needed) {
    throw new Error(
      `${dir}: ${(needed / 1e9).toFixed(1)} GB free needed for ${runs} runs, ${((bavail * bsize) / 1e9).toFixed(1)} GB free`,
    );
  }
}

/** Our ext4 image and umoci's rootfs must hold the same tree: names, types, modes, owners, sizes, contents. */
function checkEquivalence(bench: Bench, fsImage: string, rootfs: string): TreeSummary {
  const started = performance.now();
  const ours = readExt4Tree(fsImage, join(bench.work, 'rdump'));
  const theirs = readTree(rootfs);
  const diffs = diffTrees(ours, theirs);
  if (diffs.length > 0) {
    throw new Error(`our ext4 image and umoci's rootfs differ:\n  ${diffs.join('\n  ')}`);
  }
  const summary = summarize(theirs);
  log(
    `trees equal: ${summary.entries} entries (${summary.files} files, ${summary.directories} dirs, ` +
      `${summary.symlinks} symlinks), modes, owners, sizes, contents, file mtimes ` +
      `(${(performance.now() - started).toFixed(0)} ms)`,
  );
  return summary;
}

function table(runs: { order: string; ours: OursRun; baseline: BaselineRun }[]): string {
  const header = ['run', 'order', 'ours', 'cpu', 'resolve', 'download', 'unpack', 'fs']
    .concat(['baseline', 'cpu', 'skopeo', 'umoci', 'mkfs', 'ratio'])
    .map((name, i) => (i < 2 ? name.padEnd(i === 0 ? 4 : 9) : name.padStart(i === 5 || i === 8 ? 10 : 8)));
  const figures = (o: OursRun, b: BaselineRun) => [
    ...[o.totalMs, o.cpuMs, o.resolveMs, o.downloadMs, o.unpackMs, o.fsMs].map((v) => v.toFixed(0)),
    ...[b.totalMs, b.cpuMs, b.skopeoMs, b.umociMs, b.mkfsMs].map((v) => v.toFixed(0)),
    (o.totalMs / b.totalMs).toFixed(3),
  ];
  const row = (label: string, order: string, cells: string[]) =>
    label.padEnd(4) + order.padEnd(9) + cells.map((cell, i) => cell.padStart(header[i + 2]?.length ?? 8)).join('');
  const lines = [header.join(''), '(ms; cpu = user + system time of our process and its children during the side)'];
  runs.forEach((run, i) => lines.push(row(String(i + 1), run.order, figures(run.ours, run.baseline))));
  const med = <T extends object>(list: T[]): T => {
    const first = list[0] as T;
    const keys = Object.keys(first).filter((key) => typeof first[key as keyof T] === 'number') as (keyof T)[];
    return { ...first, ...Object.fromEntries(keys.map((key) => [key, median(list.map((item) => Number(item[key])))])) };
  };
  lines.push(row('med', '', figures(med(runs.map((run) => run.ours)), med(runs.map((run) => run.baseline)))));
  return lines.join('\n');
}

async function main(): Promise<void> {
  const bench = new Bench();
  let exiting = false;
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.on(signal, () => {
      if (exiting) return;
      exiting = true;
      log(`${signal}: stopping the registry and the tools, removing ${bench.work}`);
      void bench.cleanup().finally(() => process.exit(code));
    });
  }
  const cores = cpus().length;
  const loadStart = load();
  log(`${cores} cores, load average ${loadStart}; work dir ${bench.work}`);
  try {
    checkTools();
    checkSpace(bench.work, RUNS);
    let started = performance.now();
    const image: BuiltImage = await buildTestImage(join(bench.work, 'image'), SEED);
    log(
      `image built (seed ${SEED}): ${image.layers.length} layers, ${(image.compressedBytes / 1e6).toFixed(1)} MB ` +
        `compressed, ${(image.uncompressedBytes / 1e6).toFixed(1)} MB of tar (${(performance.now() - started).toFixed(0)} ms)`,
    );
    const registryDir = join(bench.work, 'registry');
    mkdirSync(registryDir);
    bench.registry = await LocalRegistry.start(registryDir);
    started = performance.now();
    const manifestDigest = await bench.registry.push(REPOSITORY, TAG, image);
    log(`pushed ${bench.reference} (${manifestDigest}) in ${(performance.now() - started).toFixed(0)} ms`);

    log('warm-up: ours, then baseline (not counted); then the trees are compared');
    bench.settle();
    const warmOurs = await bench.ours(bench.runDir('warmup-ours'));
    bench.settle();
    const warmBase = await bench.baseline(bench.runDir('warmup-baseline'));
    log(`warm-up: ours ${warmOurs.totalMs.toFixed(0)} ms, baseline ${warmBase.totalMs.toFixed(0)} ms`);
    const tree = checkEquivalence(bench, warmOurs.fsImage, warmBase.rootfs);

    const runs: { order: string; ours: OursRun; baseline: BaselineRun }[] = [];
    for (let i = 0; i < RUNS; i++) {
      const oursFirst = i % 2 === 0;
      let ours: OursRun | undefined;
      let baseline: BaselineRun | undefined;
      for (const side of oursFirst ? ['ours', 'baseline'] : ['baseline', 'ours']) {
        bench.settle();
        if (side === 'ours') ours = await bench.ours(bench.runDir(`run${i}-ours`));
        else baseline = await bench.baseline(bench.runDir(`run${i}-baseline`));
      }
      if (!ours || !baseline) throw new Error('a side did not run');
      runs.push({ order: oursFirst ? 'ours 1st' : 'base 1st', ours, baseline });
      log(
        `run ${i + 1}/${RUNS} (${oursFirst ? 'ours first' : 'baseline first'}): ours ${ours.totalMs.toFixed(0)} ms, ` +
          `baseline ${baseline.totalMs.toFixed(0)} ms; load ${load()}`,
      );
    }
    const loadAfterRuns = load();

    log(`warm pulls: ${WARM_RUNS} pulls of the cached image (manifest fetch only)`);
    const service = await bench.openService(bench.runDir('warm'));
    (await service.pull(bench.reference)).lease.release();
    const warm: number[] = [];
    for (let i = 0; i < WARM_RUNS; i++) {
      const start = performance.now();
      const pulled = await service.pull(bench.reference);
      warm.push(performance.now() - start);
      pulled.lease.release();
    }
    await bench.closeService(service);
    const loadEnd = load();
    await bench.cleanup();

    const med = (key: (run: (typeof runs)[number]) => number) => median(runs.map(key));
    const oursMs = med((run) => run.ours.totalMs);
    const baselineMs = med((run) => run.baseline.totalMs);
    const ratio = oursMs / baselineMs;
    const fsImageBytes = runs[0]?.ours.fsImageBytes ?? NaN;
    const cpuOf = (key: (run: (typeof runs)[number]) => number) => med(key).toFixed(0);
    const out = [
      table(runs),
      `ours = ImageService.pull (cold cache); baseline = skopeo copy + umoci unpack + buildExt4Image on its rootfs`,
      `cpu by phase (median ms): ours download ${cpuOf((run) => run.ours.phaseCpuMs.download)}, unpack ` +
        `${cpuOf((run) => run.ours.phaseCpuMs.unpack)}, fs ${cpuOf((run) => run.ours.phaseCpuMs.fs)}; baseline skopeo ` +
        `${cpuOf((run) => run.baseline.phaseCpuMs.skopeo)}, umoci ${cpuOf((run) => run.baseline.phaseCpuMs.umoci)}, ` +
        `mkfs ${cpuOf((run) => run.baseline.phaseCpuMs.mkfs)}`,
      `ratio ours / baseline = ${ratio.toFixed(3)} (goal ≤ ${GOAL_RATIO.toFixed(1)}: ${ratio <= GOAL_RATIO ? 'PASS' : 'FAIL'})`,
      `warm pull (cached image, manifest fetch only): median ${median(warm).toFixed(1)} ms of ${warm.length}`,
      `image: ${image.layers.length} layers, ${(image.compressedBytes / 1e6).toFixed(1)} MB compressed, ` +
        `${(image.uncompressedBytes / 1e6).toFixed(1)} MB of tar, ${tree.files} files, ${tree.directories} dirs, ` +
        `${tree.symlinks} symlinks (${(tree.fileBytes / 1e6).toFixed(1)} MB of file data); ext4 image ` +
        `${(fsImageBytes / 1e6).toFixed(1)} MB`,
      `load average: start ${loadStart}, after the runs ${loadAfterRuns}, end ${loadEnd} (${cores} cores)`,
    ];
    process.stdout.write(`${out.join('\n')}\n`);
    const result = {
      benchmark: 'images',
      pull_unpack_ms: round(oursMs),
      baseline_ms: round(baselineMs),
      ratio: round(ratio, 3),
      goal_ratio: GOAL_RATIO,
      goal_met: ratio <= GOAL_RATIO,
      ours_resolve_ms: round(med((run) => run.ours.resolveMs)),
      ours_download_ms: round(med((run) => run.ours.downloadMs)),
      ours_resolve_download_ms: round(med((run) => run.ours.resolveMs + run.ours.downloadMs)),
      ours_unpack_ms: round(med((run) => run.ours.unpackMs)),
      ours_fs_ms: round(med((run) => run.ours.fsMs)),
      ours_open_ms: round(med((run) => run.ours.openMs)),
      ours_cpu_ms: round(med((run) => run.ours.cpuMs)),
      baseline_cpu_ms: round(med((run) => run.baseline.cpuMs)),
      ours_download_cpu_ms: round(med((run) => run.ours.phaseCpuMs.download)),
      ours_unpack_cpu_ms: round(med((run) => run.ours.phaseCpuMs.unpack)),
      ours_fs_cpu_ms: round(med((run) => run.ours.phaseCpuMs.fs)),
      baseline_skopeo_cpu_ms: round(med((run) => run.baseline.phaseCpuMs.skopeo)),
      baseline_umoci_cpu_ms: round(med((run) => run.baseline.phaseCpuMs.umoci)),
      baseline_mkfs_cpu_ms: round(med((run) => run.baseline.phaseCpuMs.mkfs)),
      baseline_skopeo_ms: round(med((run) => run.baseline.skopeoMs)),
      baseline_umoci_ms: round(med((run) => run.baseline.umociMs)),
      baseline_mkfs_ms: round(med((run) => run.baseline.mkfsMs)),
      warm_pull_ms: round(median(warm)),
      warm_pulls: warm.length,
      image_layers: image.layers.length,
      image_compressed_bytes: image.compressedBytes,
      image_uncompressed_bytes: image.uncompressedBytes,
      image_files: tree.files,
      image_directories: tree.directories,
      image_symlinks: tree.symlinks,
      image_file_bytes: tree.fileBytes,
      fs_image_bytes: fsImageBytes,
      trees_equal: true,
      runs: runs.length,
      ours_runs_ms: runs.map((run) => round(run.ours.totalMs, 0)),
      baseline_runs_ms: runs.map((run) => round(run.baseline.totalMs, 0)),
      seed: SEED,
      cores,
      loadavg_start: loadStart,
      loadavg_after_runs: loadAfterRuns,
      loadavg_end: loadEnd,
      node: process.version,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } catch (error) {
    log(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    await bench.cleanup();
    process.exitCode = 1;
  }
}

void main();
