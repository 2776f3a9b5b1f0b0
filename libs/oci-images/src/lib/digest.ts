/**
 * Content digests (`sha256:<64 hex>`), the identity of every blob, manifest and image in this library. Only
 * sha256 is accepted: it is what registries use, and a digest we cannot verify is refused, never trusted.
 */
import { createHash, type Hash } from 'node:crypto';
import { ImageError } from './errors';

export type Digest = `sha256:${string}`;

const DIGEST = /^sha256:[a-f0-9]{64}$/;

export function isDigest(value: string): value is Digest {
  return DIGEST.test(value);
}

/** Throws ImageError BAD_DIGEST for anything but `sha256:<64 lowercase hex>`. */
export function parseDigest(value: string): Digest {
  if (!isDigest(value))
    throw new ImageError('BAD_DIGEST', `not a sha256 digest: ${JSON.stringify(value.slice(0, 100))}`);
  return value;
}

export function digestOf(data: Uint8Array): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** The hex part: safe as a file name (checked by parseDigest). */
export function digestHex(digest: Digest): string {
  return digest.slice('sha256:'.length);
}

/** Verifies a stream of bytes against an expected digest and size as it flows. */
export class DigestVerifier {
  private readonly hash: Hash = createHash('sha256');
  private bytes = 0;

  constructor(
    readonly expected: Digest,
    /** The size the descriptor announced; more bytes than this fail at once, fewer fail at the end. */
    readonly size: number,
  ) {}

  get received(): number {
    return this.bytes;
  }

  update(chunk: Uint8Array): void {
    this.bytes += chunk.length;
    if (this.bytes > this.size) {
      throw new ImageError('SIZE_MISMATCH', `${this.expected}: more than the announced ${this.size} bytes`);
    }
    this.hash.update(chunk);
  }

  /** Throws SIZE_MISMATCH or DIGEST_MISMATCH. */
  finish(): void {
    if (this.bytes !== this.size) {
      throw new ImageError('SIZE_MISMATCH', `${this.expected}: ${this.bytes} bytes, ${this.size} announced`);
    }
    const actual = `sha256:${this.hash.digest('hex')}`;
    if (actual !== this.expected) {
      throw new ImageError('DIGEST_MISMATCH', `content is ${actual}, expected ${this.expected}`);
    }
  }
}
