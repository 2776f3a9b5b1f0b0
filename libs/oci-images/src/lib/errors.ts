/** The one error this library throws, with a stable code a caller can turn into a pod event. */
export type ImageErrorCode =
  /** A malformed image reference. */
  | 'BAD_REFERENCE'
  /** A digest that is not `sha256:<64 hex>`. */
  | 'BAD_DIGEST'
  /** The registry wants credentials, or refused the ones given (401). */
  | 'UNAUTHORIZED'
  /** The credentials are valid but may not pull this repository (403). */
  | 'FORBIDDEN'
  /** No such repository, tag or blob (404). */
  | 'NOT_FOUND'
  /** The registry is down, unreachable, or kept failing (connection errors, 5xx) after retries. */
  | 'REGISTRY_UNAVAILABLE'
  /** The registry answered something the distribution API does not allow (bad headers, bad JSON, …). */
  | 'BAD_RESPONSE'
  /** A manifest or config that is not a valid image, or a media type we do not support. */
  | 'UNSUPPORTED_MANIFEST'
  /** An index or manifest list without a linux/amd64 image. */
  | 'NO_MATCHING_PLATFORM'
  /** Content whose sha256 is not the digest it was fetched by. */
  | 'DIGEST_MISMATCH'
  /** Content whose length is not the size its descriptor announced. */
  | 'SIZE_MISMATCH'
  /** Over a bound: manifest size, layer count, uncompressed size, entries (a decompression bomb stops here). */
  | 'TOO_LARGE'
  /** A layer entry that would escape the root or is not allowed (device node, absolute link out, …). */
  | 'UNSAFE_LAYER'
  /** A layer that is not a valid (gzip-compressed or plain) tar stream. */
  | 'BAD_LAYER'
  /** The node's image cache cannot make room (everything in it is in use). */
  | 'CACHE_FULL'
  /** Building the filesystem image failed (mkfs). */
  | 'FS_IMAGE_FAILED';

export class ImageError extends Error {
  override readonly name = 'ImageError';
  constructor(
    readonly code: ImageErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export const isImageError = (error: unknown): error is ImageError => error instanceof ImageError;
