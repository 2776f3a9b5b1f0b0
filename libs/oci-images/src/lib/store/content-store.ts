/**
 * The node's content-addressed cache of image blobs and of what is built from them, in one directory:
 *
 *     <dir>/                    0700
 *       blobs/sha256/<hex>      a blob whose bytes are that digest (0600)
 *       artifacts/sha256/<hex>/ a directory built from the image whose manifest is that digest (0700)
 *       tmp/                    writes in progress; emptied by `open`
 *
 * Every write goes to `tmp/` (the same file system), is verified (blobs: sha256 and size while streaming) and
 * fsynced, then renamed into place: a name under `blobs/` or `artifacts/` is complete by construction, and a
 * crash leaves only temp files. Removals go the other way (an artifact is renamed into `tmp/` before it is
 * deleted), so a half-deleted artifact is never visible either.
 *
 * Size: an entry counts its bytes on disk (st_blocks × 512 of its files and directories, so a sparse
 * filesystem image counts what it really occupies). A blob being written counts its announced size (rounded
 * up to 4 KiB) from the moment it is admitted; an artifact being built counts what its caller reserved, and is
 * measured and admitted (or refused with CACHE_FULL) before it is renamed into place.
 *
 * Recency: each entry has a last-use time in microseconds, strictly increasing within the store, updated by
 * `ensure*` and `*Path` hits, by `lease` and by `Lease.release`. It is persisted as the entry's mtime (blobs
 * and artifacts are immutable, so the mtime is free for it): set when the entry is committed, then updated in
 * the background (`close` waits for it), so the LRU order survives a restart — less the touches of the last
 * moments before a crash.
 *
 * Concurrency: every operation on one entry is coalesced in the store (one fetch or build, every caller gets
 * its result or its error; a failure is not remembered). One process may open a directory once at a time: a
 * second `open` of a directory already open in this process is refused. Two processes on one directory are
 * NOT supported (each would empty the other's `tmp/` and evict what the other has leased); the agent, one
 * process per node, is the only user of the directory.
 */
import { randomBytes } from 'node:crypto';
import { chmod, lstat, mkdir, mkdtemp, open, readdir, realpath, rename, rm, utimes } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { DigestVerifier, digestHex, parseDigest } from '../digest';
import type { Digest } from '../digest';
import { ImageError } from '../errors';
import { footprintOf, fsyncPath, microsToSeconds, mtimeMicros, treeFootprint } from './fs-util';
import type { Footprint } from './fs-util';

export type EntryKind = 'blob' | 'artifact';

export interface ContentStoreOptions {
  /** What the store may occupy on disk, in bytes (entries plus writes in progress). */
  limitBytes: number;
}

export interface EnsureArtifactOptions {
  /** Bytes to reserve for the build while it runs (default 0); the result is measured and admitted after it. */
  reserveBytes?: number;
}

export interface StoreUsage {
  /** Bytes on disk of the entries, plus the reservations of writes in progress. */
  usedBytes: number;
  limitBytes: number;
  /** Bytes on disk of the entries that cannot be evicted now (leased, or being returned by `ensure*`). */
  pinnedBytes: number;
  /** The part of `usedBytes` reserved by writes in progress. */
  inFlightBytes: number;
  entries: number;
  blobs: number;
  artifacts: number;
}

export interface GcResult {
  removed: number;
  freedBytes: number;
}

/** Pins entries (both the blob and the artifact of each digest, present or still to come) against eviction. */
export interface Lease {
  readonly keys: readonly Digest[];
  readonly released: boolean;
  /** Unpins; idempotent. The entries count as used now. */
  release(): void;
}

export type FetchBlob = () => Promise<Readable>;
export type BuildArtifact = (tempDir: string) => Promise<void>;

interface Entry {
  readonly id: string;
  readonly kind: EntryKind;
  readonly hex: string;
  readonly path: string;
  /** On disk: st_blocks × 512. */
  readonly bytes: number;
  /** Logical: the blob's length, or the sum of the artifact's regular files' lengths. */
  readonly size: number;
  /** Microseconds since the epoch; persisted as the mtime. */
  lastUsed: number;
}

interface Operation {
  promise: Promise<Entry>;
  readonly listeners: Set<(bytes: number) => void>;
}

/** The part of `usedBytes` a write in progress holds; swapped for its entry's measured bytes at commit. */
interface Reservation {
  bytes: number;
}

const BLOCK = 4096;
const HEX = /^[a-f0-9]{64}$/;

/** Directories open in this process (by real path): a second instance on one directory would corrupt it. */
const openRoots = new Set<string>();

export class ContentStore {
  private readonly entries = new Map<string, Entry>();
  private readonly operations = new Map<string, Operation>();
  private readonly removals = new Map<string, Promise<boolean>>();
  /** Pin counts by digest hex: leases, and `ensure*` calls while they run. */
  private readonly pins = new Map<string, number>();
  private readonly dirty = new Set<string>();
  private flushing: Promise<void> | undefined;
  private committedBytes = 0;
  private reservedBytes = 0;
  /** The last time handed out, in microseconds (strictly increasing, starts after every persisted time). */
  private clock = 0;
  private closed = false;

  private constructor(
    /** The store's directory (its real path). */
    readonly root: string,
    readonly limitBytes: number,
  ) {}

  /**
   * Opens (creating it if needed) the store in `dir`: removes the leftovers of interrupted writes and
   * rebuilds the index (sizes, last-use times) from disk. Refused while `dir` is open in this process.
   */
  static async open(dir: string, options: ContentStoreOptions): Promise<ContentStore> {
    const { limitBytes } = options;
    if (!Number.isSafeInteger(limitBytes) || limitBytes < 0) {
      throw new RangeError(`limitBytes must be a non-negative integer, not ${limitBytes}`);
    }
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const root = await realpath(dir);
    if (openRoots.has(root)) throw new Error(`content store ${root} is already open in this process`);
    openRoots.add(root);
    try {
      const store = new ContentStore(root, limitBytes);
      await store.prepare();
      return store;
    } catch (error) {
      openRoots.delete(root);
      throw error;
    }
  }

  private get tmpDir(): string {
    return join(this.root, 'tmp');
  }

  private kindDir(kind: EntryKind): string {
    switch (kind) {
      case 'blob':
        return join(this.root, 'blobs', 'sha256');
      case 'artifact':
        return join(this.root, 'artifacts', 'sha256');
    }
  }

  private async prepare(): Promise<void> {
    await chmod(this.root, 0o700);
    await rm(this.tmpDir, { recursive: true, force: true });
    for (const dir of ['tmp', 'blobs', 'blobs/sha256', 'artifacts', 'artifacts/sha256']) {
      await mkdir(join(this.root, dir), { recursive: true, mode: 0o700 });
      await chmod(join(this.root, dir), 0o700);
    }
    await this.scan('blob');
    await this.scan('artifact');
    await fsyncPath(this.root);
  }

  private async scan(kind: EntryKind): Promise<void> {
    const dir = this.kindDir(kind);
    for (const dirent of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, dirent.name);
      const expected = kind === 'blob' ? dirent.isFile() : dirent.isDirectory();
      if (!HEX.test(dirent.name) || !expected) {
        // Not something this store writes: it would hold disk space nobody accounts for.
        await rm(path, { recursive: true, force: true });
        continue;
      }
      const stats = await lstat(path, { bigint: true });
      const footprint = kind === 'blob' ? footprintOf(stats) : await treeFootprint(path);
      const lastUsed = mtimeMicros(stats);
      this.addEntry({ id: `${kind}:${dirent.name}`, kind, hex: dirent.name, path, ...footprint, lastUsed });
      this.clock = Math.max(this.clock, lastUsed);
    }
  }

  /** Waits for the writes, removals and last-use updates in progress; the store cannot be used afterwards. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.operations.values()].map((operation) => operation.promise));
    await Promise.allSettled([...this.removals.values()]);
    await this.flushing;
    openRoots.delete(this.root);
  }

  // ---- Lookups ----

  /** The blob's file if it is present (and so complete); counts as a use. Throws BAD_DIGEST. */
  blobPath(digest: string): string | undefined {
    return this.lookup('blob', digest);
  }

  /** The artifact's directory if it is present (and so complete); counts as a use. Throws BAD_DIGEST. */
  artifactPath(key: string): string | undefined {
    return this.lookup('artifact', key);
  }

  private lookup(kind: EntryKind, key: string): string | undefined {
    this.assertOpen();
    const entry = this.entries.get(`${kind}:${digestHex(parseDigest(key))}`);
    if (entry === undefined) return undefined;
    this.touch(entry);
    return entry.path;
  }

  // ---- Writes ----

  /**
   * The path of the blob, fetching it first if absent: `fetch` is called (once for any number of concurrent
   * callers) only after room for `size` bytes is made, and its stream is verified against the digest and the
   * size as it is written. Rejects with BAD_DIGEST, CACHE_FULL, SIZE_MISMATCH (also when the blob is present
   * with another length than `size`), DIGEST_MISMATCH, or the error of `fetch` or of its stream; nothing is
   * kept of a failed attempt. `onProgress` gets the bytes received so far.
   */
  async ensureBlob(
    digest: string,
    size: number,
    fetch: FetchBlob,
    onProgress?: (bytes: number) => void,
  ): Promise<string> {
    this.assertOpen();
    const key = parseDigest(digest);
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new ImageError('SIZE_MISMATCH', `${key}: invalid announced size ${size}`);
    }
    const hex = digestHex(key);
    const entry = await this.withPin(hex, () =>
      this.ensure('blob', hex, onProgress, (operation) => this.writeBlob(key, size, fetch, operation)),
    );
    if (entry.size !== size) {
      throw new ImageError('SIZE_MISMATCH', `${key}: ${entry.size} bytes, ${size} announced`);
    }
    return entry.path;
  }

  /**
   * The directory of the artifact keyed by `key`, building it first if absent: `build` (called once for any
   * number of concurrent callers) fills an empty temp directory, which is then fsynced, measured, admitted
   * (evicting what it must, else CACHE_FULL) and renamed into place. A failed build leaves nothing.
   */
  async ensureArtifact(key: string, build: BuildArtifact, options: EnsureArtifactOptions = {}): Promise<string> {
    this.assertOpen();
    const digest = parseDigest(key);
    const reserveBytes = options.reserveBytes ?? 0;
    if (!Number.isSafeInteger(reserveBytes) || reserveBytes < 0) {
      throw new RangeError(`reserveBytes must be a non-negative integer, not ${reserveBytes}`);
    }
    const hex = digestHex(digest);
    const entry = await this.withPin(hex, () =>
      this.ensure('artifact', hex, undefined, () => this.buildArtifact(digest, build, reserveBytes)),
    );
    return entry.path;
  }

  private async ensure(
    kind: EntryKind,
    hex: string,
    onProgress: ((bytes: number) => void) | undefined,
    start: (operation: Operation) => Promise<Entry>,
  ): Promise<Entry> {
    const id = `${kind}:${hex}`;
    const present = this.entries.get(id);
    if (present !== undefined) {
      this.touch(present);
      return present;
    }
    let operation = this.operations.get(id);
    if (operation === undefined) {
      const created: Operation = { promise: Promise.resolve(undefined as never), listeners: new Set() };
      created.promise = (async () => {
        // An eviction of this entry may still be deleting it: let it finish before writing the name again.
        if ((await this.removals.get(id)) === false) {
          const kept = this.entries.get(id);
          if (kept !== undefined) return kept;
        }
        return start(created);
      })().finally(() => this.operations.delete(id));
      this.operations.set(id, created);
      operation = created;
    }
    if (onProgress === undefined) return operation.promise;
    operation.listeners.add(onProgress);
    try {
      return await operation.promise;
    } finally {
      operation.listeners.delete(onProgress);
    }
  }

  private async writeBlob(key: Digest, size: number, fetch: FetchBlob, operation: Operation): Promise<Entry> {
    const hex = digestHex(key);
    const finalPath = join(this.kindDir('blob'), hex);
    const reservation = await this.reserve(Math.ceil(size / BLOCK) * BLOCK, `blob ${key}`);
    try {
      const tempPath = join(this.tmpDir, `blob-${hex}-${randomBytes(6).toString('hex')}`);
      const handle = await open(tempPath, 'wx', 0o600);
      let handleOpen = true;
      let footprint: Footprint;
      try {
        const verifier = new DigestVerifier(key, size);
        const stream = await fetch();
        for await (const chunk of stream as AsyncIterable<Uint8Array | string>) {
          const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
          verifier.update(bytes);
          await writeFully(handle, bytes);
          for (const listener of operation.listeners) notify(listener, verifier.received);
        }
        verifier.finish();
        await handle.sync();
        handleOpen = false;
        await handle.close();
        footprint = footprintOf(await lstat(tempPath));
        await rename(tempPath, finalPath);
      } catch (error) {
        if (handleOpen) await handle.close().catch(() => undefined);
        await rm(tempPath, { force: true });
        throw error;
      }
      return await this.commit('blob', hex, finalPath, footprint, reservation);
    } finally {
      this.release(reservation);
    }
  }

  private async buildArtifact(key: Digest, build: BuildArtifact, reserveBytes: number): Promise<Entry> {
    const hex = digestHex(key);
    const finalPath = join(this.kindDir('artifact'), hex);
    const reservation = await this.reserve(reserveBytes, `artifact ${key}`);
    try {
      const tempDir = await mkdtemp(join(this.tmpDir, `artifact-${hex}-`));
      let footprint: Footprint;
      try {
        await build(tempDir);
        await chmod(tempDir, 0o700);
        footprint = await treeFootprint(tempDir, { sync: true });
        if (footprint.bytes > reservation.bytes) {
          const more = await this.reserve(footprint.bytes - reservation.bytes, `artifact ${key}`);
          reservation.bytes += more.bytes;
          more.bytes = 0;
        }
        await rename(tempDir, finalPath);
      } catch (error) {
        await rm(tempDir, { recursive: true, force: true });
        throw error;
      }
      return await this.commit('artifact', hex, finalPath, footprint, reservation);
    } finally {
      this.release(reservation);
    }
  }

  /** Makes the renamed entry durable, stamps it as used now, and swaps its reservation for its measured size. */
  private async commit(
    kind: EntryKind,
    hex: string,
    path: string,
    footprint: Footprint,
    reservation: Reservation,
  ): Promise<Entry> {
    const lastUsed = this.tick();
    await utimes(path, microsToSeconds(lastUsed), microsToSeconds(lastUsed));
    await fsyncPath(this.kindDir(kind));
    this.release(reservation);
    const entry: Entry = { id: `${kind}:${hex}`, kind, hex, path, ...footprint, lastUsed };
    this.addEntry(entry);
    // The measured size may exceed the estimate (block rounding): give back what is over, if anything can go.
    if (this.usedBytes() > this.limitBytes) await this.collect();
    return entry;
  }

  // ---- Leases ----

  /** Pins the entries of `keys` (present or to come) until released. Throws BAD_DIGEST. */
  lease(keys: readonly string[]): Lease {
    this.assertOpen();
    const digests = [...new Set(keys.map((key) => parseDigest(key)))];
    const hexes = digests.map(digestHex);
    for (const hex of hexes) {
      this.pin(hex);
      this.touchDigest(hex);
    }
    let released = false;
    return {
      keys: digests,
      get released() {
        return released;
      },
      release: () => {
        if (released) return;
        released = true;
        for (const hex of hexes) {
          this.unpin(hex);
          this.touchDigest(hex);
        }
      },
    };
  }

  private async withPin<T>(hex: string, run: () => Promise<T>): Promise<T> {
    this.pin(hex);
    try {
      return await run();
    } finally {
      this.unpin(hex);
    }
  }

  private pin(hex: string): void {
    this.pins.set(hex, (this.pins.get(hex) ?? 0) + 1);
  }

  private unpin(hex: string): void {
    const count = (this.pins.get(hex) ?? 0) - 1;
    if (count > 0) this.pins.set(hex, count);
    else this.pins.delete(hex);
  }

  private isPinned(entry: Entry): boolean {
    return this.pins.has(entry.hex);
  }

  // ---- Space ----

  /** Evicts least recently used entries that are not pinned until usage ≤ limit (or nothing more can go). */
  async gc(): Promise<GcResult> {
    this.assertOpen();
    return this.collect();
  }

  private async collect(): Promise<GcResult> {
    const excess = this.usedBytes() - this.limitBytes;
    if (excess <= 0) return { removed: 0, freedBytes: 0 };
    const victims: Entry[] = [];
    let freed = 0;
    for (const entry of this.evictable()) {
      if (freed >= excess) break;
      victims.push(entry);
      freed += entry.bytes;
    }
    return this.evict(victims);
  }

  /** Reserves `bytes`, evicting first if they do not fit; CACHE_FULL (evicting nothing) if they cannot. */
  private async reserve(bytes: number, what: string): Promise<Reservation> {
    const needed = this.usedBytes() + bytes - this.limitBytes;
    const victims: Entry[] = [];
    if (needed > 0) {
      let freed = 0;
      for (const entry of this.evictable()) {
        if (freed >= needed) break;
        victims.push(entry);
        freed += entry.bytes;
      }
      if (freed < needed) {
        const usage = this.usage();
        throw new ImageError(
          'CACHE_FULL',
          `no room for ${what} (${bytes} bytes): ${usage.usedBytes} of ${usage.limitBytes} bytes used, ` +
            `${usage.pinnedBytes} pinned, ${usage.inFlightBytes} being written, ${freed} evictable`,
        );
      }
    }
    // Reserved before the evictions run, so that concurrent writers cannot take the same room.
    const reservation = { bytes };
    this.reservedBytes += bytes;
    const { removed } = await this.evict(victims);
    if (removed < victims.length) {
      this.release(reservation);
      throw new ImageError('CACHE_FULL', `no room for ${what}: could not remove evicted entries`);
    }
    return reservation;
  }

  private release(reservation: Reservation): void {
    this.reservedBytes -= reservation.bytes;
    reservation.bytes = 0;
  }

  /** Unpinned entries, least recently used first. */
  private evictable(): Entry[] {
    return [...this.entries.values()].filter((entry) => !this.isPinned(entry)).sort((a, b) => a.lastUsed - b.lastUsed);
  }

  /** Takes the victims out of the index at once (they are gone for every caller), then deletes them. */
  private async evict(victims: readonly Entry[]): Promise<GcResult> {
    const removals = victims.map((entry) => {
      this.removeEntry(entry);
      const removal = this.deleteFromDisk(entry).finally(() => this.removals.delete(entry.id));
      this.removals.set(entry.id, removal);
      return removal.then((removed) => ({ entry, removed }));
    });
    let removed = 0;
    let freedBytes = 0;
    for (const result of await Promise.all(removals)) {
      if (!result.removed) continue;
      removed++;
      freedBytes += result.entry.bytes;
    }
    return { removed, freedBytes };
  }

  /** True once the entry's name is gone; false (and the entry back in the index) if it could not be removed. */
  private async deleteFromDisk(entry: Entry): Promise<boolean> {
    try {
      if (entry.kind === 'blob') {
        await rm(entry.path, { force: true });
      } else {
        // Renamed out of sight first: a crash in the middle of a recursive delete must not leave half of it.
        const doomed = join(this.tmpDir, `evicted-${entry.hex}-${randomBytes(6).toString('hex')}`);
        await rename(entry.path, doomed);
        await rm(doomed, { recursive: true, force: true });
      }
      return true;
    } catch {
      if (!this.entries.has(entry.id)) this.addEntry(entry);
      return false;
    }
  }

  /** Disk usage for disk-pressure reports. */
  usage(): StoreUsage {
    let pinnedBytes = 0;
    let blobs = 0;
    for (const entry of this.entries.values()) {
      if (this.isPinned(entry)) pinnedBytes += entry.bytes;
      if (entry.kind === 'blob') blobs++;
    }
    return {
      usedBytes: this.usedBytes(),
      limitBytes: this.limitBytes,
      pinnedBytes,
      inFlightBytes: this.reservedBytes,
      entries: this.entries.size,
      blobs,
      artifacts: this.entries.size - blobs,
    };
  }

  private usedBytes(): number {
    return this.committedBytes + this.reservedBytes;
  }

  private addEntry(entry: Entry): void {
    this.entries.set(entry.id, entry);
    this.committedBytes += entry.bytes;
  }

  private removeEntry(entry: Entry): void {
    this.entries.delete(entry.id);
    this.committedBytes -= entry.bytes;
  }

  // ---- Recency ----

  private tick(): number {
    this.clock = Math.max(Date.now() * 1000, this.clock + 1);
    return this.clock;
  }

  private touchDigest(hex: string): void {
    for (const kind of ['blob', 'artifact'] as const) {
      const entry = this.entries.get(`${kind}:${hex}`);
      if (entry !== undefined) this.touch(entry);
    }
  }

  /** Marks the entry used now; the mtime follows in the background (coalesced: the latest time wins). */
  private touch(entry: Entry): void {
    if (this.closed) return;
    entry.lastUsed = this.tick();
    this.dirty.add(entry.id);
    this.flushing ??= this.flush();
  }

  private async flush(): Promise<void> {
    try {
      // Yield first, so that touches made in the same turn are written together.
      await Promise.resolve();
      while (this.dirty.size > 0) {
        const ids = [...this.dirty];
        this.dirty.clear();
        await Promise.all(
          ids.map(async (id) => {
            const entry = this.entries.get(id);
            if (entry === undefined) return;
            const seconds = microsToSeconds(entry.lastUsed);
            // Best effort: the entry may be evicted meanwhile; a lost update only makes it look older.
            await utimes(entry.path, seconds, seconds).catch(() => undefined);
          }),
        );
      }
    } finally {
      this.flushing = undefined;
    }
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`content store ${this.root} is closed`);
  }
}

async function writeFully(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.length - offset);
    offset += bytesWritten;
  }
}

function notify(listener: (bytes: number) => void, bytes: number): void {
  try {
    listener(bytes);
  } catch {
    // A caller's progress callback must not break a download others wait for.
  }
}
