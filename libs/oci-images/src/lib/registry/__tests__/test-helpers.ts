// Small helpers the registry client's unit and integration tests share.
import type { Readable } from 'node:stream';
import { ImageError } from '../../errors';

/** The i-th element, which the test knows is there. */
export function nth<T>(items: readonly T[], i: number): T {
  const item = items[i];
  if (item === undefined) throw new Error(`no element ${i}`);
  return item;
}

/** The ImageError `promise` rejects with (any other rejection, or a fulfilment, fails the test). */
export async function failure(promise: Promise<unknown>): Promise<ImageError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof ImageError) return error;
    throw error;
  }
  throw new Error('expected a failure');
}

/** Everything the stream yields, as one buffer. */
export async function drain(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
