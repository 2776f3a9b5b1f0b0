/**
 * A layer blob → the bytes of its tar. gzip is recognised by its magic (`1f 8b`) and inflated as it flows; a
 * plain tar (ustar magic at 257, or an empty archive of zero blocks, or no bytes at all) passes through;
 * anything else, zstd included, is refused with BAD_LAYER.
 */
import { Readable, pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { ImageError } from '../errors';

export type LayerCompression = 'gzip' | 'none';

/** How many bytes the sniffing wants to see (a ustar header). */
const SNIFF_BYTES = 512;
/** Inflated chunks: large enough to write files with few syscalls. */
const GUNZIP_CHUNK = 128 * 1024;

/** Recognises a layer by its first bytes (up to 512; fewer only if the blob is that short). */
export function sniffCompression(head: Uint8Array): LayerCompression {
  const starts = (...magic: number[]): boolean => magic.every((byte, i) => head[i] === byte);
  if (head.length === 0) return 'none';
  if (starts(0x1f, 0x8b)) return 'gzip';
  if (starts(0x28, 0xb5, 0x2f, 0xfd)) {
    throw new ImageError(
      'BAD_LAYER',
      'a zstd-compressed layer: only gzip-compressed and plain tar layers are supported',
    );
  }
  if (starts(0x42, 0x5a, 0x68)) throw new ImageError('BAD_LAYER', 'a bzip2-compressed layer: not supported');
  if (starts(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00))
    throw new ImageError('BAD_LAYER', 'an xz-compressed layer: not supported');
  if (head.length >= 263 && Buffer.from(head.subarray(257, 262)).toString('latin1') === 'ustar') return 'none';
  if (head.length >= SNIFF_BYTES && head.subarray(0, SNIFF_BYTES).every((b) => b === 0)) return 'none';
  const hex = Buffer.from(head.subarray(0, 8))
    .toString('hex')
    .replace(/(..)(?!$)/g, '$1 ');
  throw new ImageError('BAD_LAYER', `neither a gzip-compressed nor a plain tar layer (it starts with ${hex})`);
}

/**
 * The uncompressed tar bytes of a layer. `onCompressedBytes` is called with the running count of blob bytes
 * read, as they are read. Leaving the iteration early (or an error) destroys a Readable source and ends the
 * iteration of any other. A corrupt or truncated gzip stream throws BAD_LAYER; errors of the source pass through as they are.
 */
export async function* decompressLayer(
  source: AsyncIterable<Uint8Array>,
  onCompressedBytes?: (bytesRead: number) => void,
): AsyncGenerator<Buffer, void, undefined> {
  const iterator = source[Symbol.asyncIterator]();
  let read = 0;
  let finished = false;
  const next = async (): Promise<Buffer | null> => {
    if (finished) return null;
    const step = await iterator.next();
    if (step.done) {
      finished = true;
      return null;
    }
    const chunk = Buffer.isBuffer(step.value)
      ? step.value
      : Buffer.from(step.value.buffer, step.value.byteOffset, step.value.byteLength);
    read += chunk.length;
    onCompressedBytes?.(read);
    return chunk;
  };
  try {
    // As few bytes as tell: 2 for gzip, up to 512 for a plain tar (or the end of the blob).
    const head: Buffer[] = [];
    let headBytes = 0;
    while (headBytes < SNIFF_BYTES && !(headBytes >= 6 && hasCompressionMagic(head[0]))) {
      const chunk = await next();
      if (chunk === null) break;
      head.push(chunk);
      headBytes += chunk.length;
      if (head.length > 1) head.splice(0, head.length, Buffer.concat(head, headBytes));
    }
    const compression = sniffCompression(Buffer.concat(head, headBytes));
    async function* blob(): AsyncGenerator<Buffer, void, undefined> {
      yield* head;
      for (let chunk = await next(); chunk !== null; chunk = await next()) yield chunk;
    }
    switch (compression) {
      case 'none':
        yield* blob();
        return;
      case 'gzip': {
        const gunzip = createGunzip({ chunkSize: GUNZIP_CHUNK });
        // Errors surface through the iteration of gunzip below (pipeline destroys it with them).
        pipeline(Readable.from(blob(), { objectMode: false, highWaterMark: GUNZIP_CHUNK }), gunzip, () => undefined);
        try {
          for await (const chunk of gunzip) yield chunk as Buffer;
        } catch (error) {
          if (isZlibError(error)) {
            throw new ImageError('BAD_LAYER', `corrupt gzip stream: ${(error as Error).message}`, { cause: error });
          }
          throw error;
        } finally {
          gunzip.destroy();
        }
        return;
      }
    }
  } finally {
    if (!finished) {
      // A Readable is destroyed first: its iterator's return() would otherwise wait for a read in flight (the
      // gunzip side reads ahead), which a stalled source never completes.
      if (source instanceof Readable) source.destroy();
      await iterator.return?.();
    }
  }
}

function hasCompressionMagic(head: Buffer): boolean {
  return (
    (head[0] === 0x1f && head[1] === 0x8b) ||
    (head[0] === 0x28 && head[1] === 0xb5) ||
    (head[0] === 0x42 && head[1] === 0x5a && head[2] === 0x68) ||
    (head[0] === 0xfd && head[1] === 0x37)
  );
}

function isZlibError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('Z_');
}
