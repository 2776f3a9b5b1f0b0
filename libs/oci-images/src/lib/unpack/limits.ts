/**
 * Bounds on what unpacking an image may cost. Every layer is hostile input: a decompression bomb, a million tiny
 * files or one absurd header stop at one of these bounds with ImageError TOO_LARGE (or BAD_LAYER for a malformed
 * header), the stream destroyed, nothing more written.
 */
export interface UnpackLimits {
  /** Uncompressed tar bytes (headers, contents, padding) of all layers of an image together. */
  readonly maxImageBytes: number;
  /** Uncompressed tar bytes of one layer. */
  readonly maxLayerBytes: number;
  /** Tar entries (whiteouts included) of all layers together, and the parent directories they imply. */
  readonly maxImageEntries: number;
  /** Tar entries of one layer. */
  readonly maxLayerEntries: number;
  /** Size of one file. */
  readonly maxFileSize: number;
  /** Bytes (UTF-8) of an entry's path or link target. */
  readonly maxPathLength: number;
  /** Bytes of one PAX extended header (`x` or `g`). */
  readonly maxPaxHeaderSize: number;
  /**
   * Bytes of paths (every entry's and every parent's) that applying one layer keeps in memory, to apply
   * whiteouts and set directories' metadata at the end: bounds that memory against deep, long, unique paths.
   */
  readonly maxTrackedPathBytes: number;
}

const GiB = 1024 ** 3;

export const DEFAULT_UNPACK_LIMITS: UnpackLimits = Object.freeze({
  maxImageBytes: 8 * GiB,
  maxLayerBytes: 8 * GiB,
  maxImageEntries: 1_000_000,
  maxLayerEntries: 1_000_000,
  maxFileSize: 8 * GiB,
  maxPathLength: 4096,
  maxPaxHeaderSize: 1024 * 1024,
  maxTrackedPathBytes: 256 * 1024 * 1024,
});

/**
 * The running budget of one image: create one per image and pass it to `applyLayer` for each of its layers in
 * order; each layer spends from it, and the image-wide bounds hold across layers.
 */
export class UnpackBudget {
  readonly limits: UnpackLimits;
  /** Uncompressed tar bytes spent so far by the layers of this image. */
  bytes = 0;
  /** Entries (and implied parent directories) spent so far by the layers of this image. */
  entries = 0;

  constructor(limits: Partial<UnpackLimits> = {}) {
    const merged: UnpackLimits = { ...DEFAULT_UNPACK_LIMITS, ...limits };
    for (const [key, value] of Object.entries(merged)) {
      if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`unpack limit ${key}: ${String(value)}`);
    }
    this.limits = Object.freeze(merged);
  }
}
