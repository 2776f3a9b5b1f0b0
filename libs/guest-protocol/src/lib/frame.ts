/**
 * Frames of the host ↔ guest protocol, version 1: constants, encoders, and the streaming decoder the host runs
 * on both ports. Pure definitions; no I/O. The contract is libs/guest-protocol/PROTOCOL.md.
 */
import { isUtf8 } from 'node:buffer';
import { ProtocolError } from './errors';

/** The two bytes every frame starts with. */
export const FRAME_MAGIC = Object.freeze([0xca, 0x5a] as const);
export const FRAME_VERSION = 1;
export const FRAME_HEADER_BYTES = 8;

/** The kind byte of a frame header. */
export const FrameKind = Object.freeze({ Json: 1, OutputChunk: 2, OutputGap: 3, ReplayStart: 4 } as const);
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];

/** Longest JSON payload (kind 1). */
export const MAX_JSON_PAYLOAD_BYTES = 65_536;
/** Longest whole frame, header included, of kinds 2–4 (the guest writes each with one 32 KiB-bounded write). */
export const MAX_OUTPUT_FRAME_BYTES = 32_768;
/** Data bytes of one output chunk: 1..16,384. */
export const MAX_OUTPUT_DATA_BYTES = 16_384;
/** Bytes of UTF-8 of an output chunk's source: 1..128. */
export const MAX_SOURCE_BYTES = 128;
/** The longest frame of any kind: a maximal JSON frame. The decoder never buffers more than this. */
export const MAX_FRAME_BYTES = FRAME_HEADER_BYTES + MAX_JSON_PAYLOAD_BYTES;
/** seq (8) + stream (1) + source length (1), before the source and data of an output chunk. */
export const OUTPUT_CHUNK_FIXED_BYTES = 10;
export const OUTPUT_GAP_PAYLOAD_BYTES = 16;
export const REPLAY_START_PAYLOAD_BYTES = 8;
/**
 * Sequence numbers are 8 bytes on the wire; the host keeps them as JavaScript numbers, so one above 2^53 − 1
 * (which no guest reaches: a chunk per microsecond would take 285 years) is refused as BAD_SEQ.
 */
export const MAX_SEQ = Number.MAX_SAFE_INTEGER;

/** The two virtio-serial ports, by their names in the guest. */
export const PORT_NAMES = Object.freeze({ ctl: 'caas.ctl', out: 'caas.out' } as const);
/** `ctl` carries JSON frames (kind 1) only; `out` carries output frames (kinds 2–4) only. */
export type Port = keyof typeof PORT_NAMES;

export type OutputStream = 'stdout' | 'stderr';
const STREAM_BYTE: Record<OutputStream, number> = { stdout: 1, stderr: 2 };

/** A parsed JSON object; validate it with the schemas of messages.ts before use. */
export type JsonObject = Record<string, unknown>;

export interface JsonFrame {
  kind: typeof FrameKind.Json;
  message: JsonObject;
}

export interface OutputChunkFrame {
  kind: typeof FrameKind.OutputChunk;
  /** 1..MAX_SEQ, +1 per chunk, per boot of the guest. */
  seq: number;
  stream: OutputStream;
  /** A container name or an exec id, 1..128 bytes of UTF-8. */
  source: string;
  /**
   * 1..16,384 bytes. Decoded data may share memory with the chunk given to `FrameDecoder.push`: never reuse or
   * modify a pushed chunk while its frames are in use (socket `data` buffers are fresh, so this holds for them).
   */
  data: Buffer;
}

/** Chunks `fromSeq..toSeq` (inclusive) were evicted from the guest's ring before the host accepted them. */
export interface OutputGapFrame {
  kind: typeof FrameKind.OutputGap;
  fromSeq: number;
  toSeq: number;
}

/** The first seq that follows on this connection; the host discards output frames until it reads one. */
export interface ReplayStartFrame {
  kind: typeof FrameKind.ReplayStart;
  fromSeq: number;
}

export type OutputFrame = OutputChunkFrame | OutputGapFrame | ReplayStartFrame;
export type DecodedFrame = JsonFrame | OutputFrame;

/** What encodeOutputChunkFrame takes: any byte array as data. */
export type OutputChunk = Omit<OutputChunkFrame, 'kind' | 'data'> & { data: Uint8Array };

// ---------------------------------------------------------------------------------------------------------------
// Encoding. The encoders refuse (ProtocolError, same codes as the decoder) whatever the decoder would refuse.

function header(kind: FrameKind, payloadLength: number): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payloadLength);
  frame[0] = FRAME_MAGIC[0];
  frame[1] = FRAME_MAGIC[1];
  frame[2] = FRAME_VERSION;
  frame[3] = kind;
  frame.writeUInt32BE(payloadLength, 4);
  return frame;
}

function checkSeq(seq: number, what: string): void {
  if (!Number.isSafeInteger(seq) || seq < 1) throw new ProtocolError('BAD_SEQ', `${what} ${seq} is not 1..2^53-1`);
}

function writeSeq(target: Buffer, offset: number, seq: number): void {
  target.writeUInt32BE(Math.floor(seq / 0x1_0000_0000), offset);
  target.writeUInt32BE(seq >>> 0, offset + 4);
}

/** One JSON object as a kind 1 frame. */
export function encodeJsonFrame(message: object): Buffer {
  let text: string | undefined;
  try {
    text = JSON.stringify(message);
  } catch (error) {
    throw new ProtocolError('INVALID_MESSAGE', `not serialisable: ${(error as Error).message}`);
  }
  if (typeof text !== 'string' || !text.startsWith('{')) {
    throw new ProtocolError('JSON_NOT_OBJECT', 'a JSON frame carries one object');
  }
  const length = Buffer.byteLength(text, 'utf8');
  if (length > MAX_JSON_PAYLOAD_BYTES) {
    throw new ProtocolError('FRAME_TOO_LARGE', `JSON payload of ${length} bytes is over ${MAX_JSON_PAYLOAD_BYTES}`);
  }
  const frame = header(FrameKind.Json, length);
  frame.write(text, FRAME_HEADER_BYTES, 'utf8');
  return frame;
}

/** One output chunk as a kind 2 frame (the guest writes these; tests and fake guests need them too). */
export function encodeOutputChunkFrame(chunk: OutputChunk): Buffer {
  checkSeq(chunk.seq, 'seq');
  const stream = STREAM_BYTE[chunk.stream];
  if (stream === undefined) throw new ProtocolError('BAD_STREAM', `stream ${String(chunk.stream)}`);
  const source = Buffer.from(chunk.source, 'utf8');
  // A lone surrogate would be encoded as U+FFFD: what was asked for is not what would be sent.
  if (source.length < 1 || source.length > MAX_SOURCE_BYTES || source.toString('utf8') !== chunk.source) {
    throw new ProtocolError('BAD_SOURCE', `source must be 1..${MAX_SOURCE_BYTES} bytes of UTF-8`);
  }
  if (chunk.data.length < 1) throw new ProtocolError('EMPTY_DATA', 'an output chunk carries at least one byte');
  if (chunk.data.length > MAX_OUTPUT_DATA_BYTES) {
    throw new ProtocolError('DATA_TOO_LARGE', `${chunk.data.length} bytes of data, over ${MAX_OUTPUT_DATA_BYTES}`);
  }
  const frame = header(FrameKind.OutputChunk, OUTPUT_CHUNK_FIXED_BYTES + source.length + chunk.data.length);
  writeSeq(frame, FRAME_HEADER_BYTES, chunk.seq);
  frame[FRAME_HEADER_BYTES + 8] = stream;
  frame[FRAME_HEADER_BYTES + 9] = source.length;
  source.copy(frame, FRAME_HEADER_BYTES + OUTPUT_CHUNK_FIXED_BYTES);
  frame.set(chunk.data, FRAME_HEADER_BYTES + OUTPUT_CHUNK_FIXED_BYTES + source.length);
  return frame;
}

/** An output gap as a kind 3 frame. */
export function encodeOutputGapFrame(gap: { fromSeq: number; toSeq: number }): Buffer {
  checkSeq(gap.fromSeq, 'fromSeq');
  checkSeq(gap.toSeq, 'toSeq');
  if (gap.fromSeq > gap.toSeq) throw new ProtocolError('BAD_GAP', `gap ${gap.fromSeq} > ${gap.toSeq}`);
  const frame = header(FrameKind.OutputGap, OUTPUT_GAP_PAYLOAD_BYTES);
  writeSeq(frame, FRAME_HEADER_BYTES, gap.fromSeq);
  writeSeq(frame, FRAME_HEADER_BYTES + 8, gap.toSeq);
  return frame;
}

/** A replay start as a kind 4 frame. */
export function encodeReplayStartFrame(start: { fromSeq: number }): Buffer {
  checkSeq(start.fromSeq, 'fromSeq');
  const frame = header(FrameKind.ReplayStart, REPLAY_START_PAYLOAD_BYTES);
  writeSeq(frame, FRAME_HEADER_BYTES, start.fromSeq);
  return frame;
}

/** Any decoded frame back to its bytes. */
export function encodeFrame(frame: DecodedFrame): Buffer {
  switch (frame.kind) {
    case FrameKind.Json:
      return encodeJsonFrame(frame.message);
    case FrameKind.OutputChunk:
      return encodeOutputChunkFrame(frame);
    case FrameKind.OutputGap:
      return encodeOutputGapFrame(frame);
    case FrameKind.ReplayStart:
      return encodeReplayStartFrame(frame);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Decoding.

function readSeq(payload: Buffer, offset: number, what: string): number {
  const high = payload.readUInt32BE(offset);
  const low = payload.readUInt32BE(offset + 4);
  // MAX_SEQ = 2^53 − 1: the high word holds at most 21 bits.
  if (high > 0x1f_ffff) throw new ProtocolError('BAD_SEQ', `${what} over 2^53-1`);
  const seq = high * 0x1_0000_0000 + low;
  if (seq === 0) throw new ProtocolError('BAD_SEQ', `${what} 0`);
  return seq;
}

/** Checks a whole header; returns the payload length. */
function checkHeader(port: Port, bytes: Buffer, offset: number): { kind: FrameKind; length: number } {
  if (bytes[offset] !== FRAME_MAGIC[0] || bytes[offset + 1] !== FRAME_MAGIC[1]) {
    throw new ProtocolError('BAD_MAGIC', 'bad magic');
  }
  const version = bytes[offset + 2];
  if (version !== FRAME_VERSION) throw new ProtocolError('BAD_VERSION', `frame version ${version}`);
  const kind = bytes[offset + 3];
  const length = bytes.readUInt32BE(offset + 4);
  switch (kind) {
    case FrameKind.Json:
      if (port !== 'ctl') throw new ProtocolError('UNEXPECTED_KIND', `kind ${kind} on ${PORT_NAMES[port]}`);
      if (length > MAX_JSON_PAYLOAD_BYTES) {
        throw new ProtocolError('FRAME_TOO_LARGE', `JSON payload of ${length} bytes`);
      }
      return { kind, length };
    case FrameKind.OutputChunk:
    case FrameKind.OutputGap:
    case FrameKind.ReplayStart: {
      if (port !== 'out') throw new ProtocolError('UNEXPECTED_KIND', `kind ${kind} on ${PORT_NAMES[port]}`);
      if (length > MAX_OUTPUT_FRAME_BYTES - FRAME_HEADER_BYTES) {
        throw new ProtocolError('FRAME_TOO_LARGE', `kind ${kind} payload of ${length} bytes`);
      }
      const good =
        kind === FrameKind.OutputChunk
          ? length >= OUTPUT_CHUNK_FIXED_BYTES + 2 // at least one byte of source and one of data
          : length === (kind === FrameKind.OutputGap ? OUTPUT_GAP_PAYLOAD_BYTES : REPLAY_START_PAYLOAD_BYTES);
      if (!good) throw new ProtocolError('BAD_LENGTH', `kind ${kind} payload of ${length} bytes`);
      return { kind, length };
    }
    default:
      throw new ProtocolError('UNKNOWN_KIND', `frame kind ${kind}`);
  }
}

function decodeJson(payload: Buffer): JsonFrame {
  if (!isUtf8(payload)) throw new ProtocolError('INVALID_UTF8', 'JSON payload is not UTF-8');
  let value: unknown;
  try {
    // No reviver: V8 parses deep nesting iteratively, a reviver would recurse. A "__proto__" key becomes an own
    // property here and is dropped by the schemas (they copy known keys only).
    value = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new ProtocolError('INVALID_JSON', 'JSON payload does not parse');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ProtocolError('JSON_NOT_OBJECT', `JSON payload is ${Array.isArray(value) ? 'an array' : typeof value}`);
  }
  return { kind: FrameKind.Json, message: value as JsonObject };
}

function decodeOutputChunk(payload: Buffer): OutputChunkFrame {
  const seq = readSeq(payload, 0, 'seq');
  const streamByte = payload[8];
  const stream: OutputStream | null = streamByte === 1 ? 'stdout' : streamByte === 2 ? 'stderr' : null;
  if (stream === null) throw new ProtocolError('BAD_STREAM', `stream ${streamByte}`);
  const sourceLength = payload[9] ?? 0;
  if (sourceLength < 1 || sourceLength > MAX_SOURCE_BYTES) {
    throw new ProtocolError('BAD_SOURCE', `source length ${sourceLength}`);
  }
  const dataStart = OUTPUT_CHUNK_FIXED_BYTES + sourceLength;
  if (dataStart > payload.length) throw new ProtocolError('BAD_SOURCE', 'source runs past the payload');
  const sourceBytes = payload.subarray(OUTPUT_CHUNK_FIXED_BYTES, dataStart);
  if (!isUtf8(sourceBytes)) throw new ProtocolError('INVALID_UTF8', 'source is not UTF-8');
  const data = payload.subarray(dataStart);
  if (data.length === 0) throw new ProtocolError('EMPTY_DATA', 'output chunk without data');
  if (data.length > MAX_OUTPUT_DATA_BYTES) throw new ProtocolError('DATA_TOO_LARGE', `${data.length} bytes of data`);
  return { kind: FrameKind.OutputChunk, seq, stream, source: sourceBytes.toString('utf8'), data };
}

function decodePayload(kind: FrameKind, payload: Buffer): DecodedFrame {
  switch (kind) {
    case FrameKind.Json:
      return decodeJson(payload);
    case FrameKind.OutputChunk:
      return decodeOutputChunk(payload);
    case FrameKind.OutputGap: {
      const fromSeq = readSeq(payload, 0, 'fromSeq');
      const toSeq = readSeq(payload, 8, 'toSeq');
      if (fromSeq > toSeq) throw new ProtocolError('BAD_GAP', `gap ${fromSeq} > ${toSeq}`);
      return { kind, fromSeq, toSeq };
    }
    case FrameKind.ReplayStart:
      return { kind, fromSeq: readSeq(payload, 0, 'fromSeq') };
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * Streaming decoder of one connection's bytes, for one port. Feed it socket chunks of any size with `push`; it
 * returns the frames those bytes completed, in order.
 *
 * On any violation `push` throws a ProtocolError, and the decoder is failed for good: every later `push`
 * throws the same error. The caller then drops the connection. Frames completed earlier in the same chunk are
 * discarded with it, which is safe: on reconnecting, the guest resends from the last point the host accepted.
 *
 * Memory: only the unfinished frame at the end of a chunk is copied, into a buffer of exactly its size, so the
 * decoder holds at most one maximal frame (`bufferedBytes <= MAX_FRAME_BYTES`) and copies each byte at most
 * once. Frames wholly inside a chunk are decoded in place (their data is a view of the chunk).
 */
export class FrameDecoder {
  private readonly header = Buffer.alloc(FRAME_HEADER_BYTES);
  private headerFill = 0;
  /** The payload being assembled, allocated once its header was accepted; null while reading a header. */
  private body: Buffer | null = null;
  private bodyFill = 0;
  private bodyKind: FrameKind = FrameKind.Json;
  private failure: { error: unknown } | null = null;

  constructor(readonly port: Port) {
    if (port !== 'ctl' && port !== 'out') throw new TypeError(`unknown port ${String(port)}`);
  }

  /** Bytes received of the unfinished frame (header and payload so far): at most MAX_FRAME_BYTES − 1. */
  get bufferedBytes(): number {
    return this.body === null ? this.headerFill : FRAME_HEADER_BYTES + this.bodyFill;
  }

  /** The error that failed this decoder, if one did. */
  get error(): unknown {
    return this.failure?.error;
  }

  get failed(): boolean {
    return this.failure !== null;
  }

  /** Decodes the frames `chunk` completes. Throws ProtocolError on a violation (and for ever after). */
  push(chunk: Uint8Array): DecodedFrame[] {
    if (this.failure !== null) throw this.failure.error;
    try {
      return this.decode(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
    } catch (error) {
      this.failure = { error };
      this.header.fill(0);
      this.headerFill = 0;
      this.body = null;
      this.bodyFill = 0;
      throw error;
    }
  }

  /** The connection ended: throws TRUNCATED if it ended inside a frame (or the error that failed the decoder). */
  end(): void {
    if (this.failure !== null) throw this.failure.error;
    if (this.bufferedBytes > 0) {
      this.failure = { error: new ProtocolError('TRUNCATED', `stream ended ${this.bufferedBytes} bytes into a frame`) };
      this.headerFill = 0;
      this.body = null;
      this.bodyFill = 0;
      throw this.failure.error;
    }
  }

  private decode(chunk: Buffer): DecodedFrame[] {
    const frames: DecodedFrame[] = [];
    const end = chunk.length;
    let offset = 0;
    while (offset < end) {
      if (this.body === null) {
        if (this.headerFill === 0 && end - offset >= FRAME_HEADER_BYTES) {
          // Fast path: the header is wholly in this chunk.
          const { kind, length } = checkHeader(this.port, chunk, offset);
          offset += FRAME_HEADER_BYTES;
          if (end - offset >= length) {
            frames.push(decodePayload(kind, chunk.subarray(offset, offset + length)));
            offset += length;
          } else {
            this.startBody(kind, length);
            offset = this.fillBody(chunk, offset);
          }
          continue;
        }
        const take = Math.min(FRAME_HEADER_BYTES - this.headerFill, end - offset);
        chunk.copy(this.header, this.headerFill, offset, offset + take);
        this.headerFill += take;
        offset += take;
        if (this.headerFill < FRAME_HEADER_BYTES) break;
        const { kind, length } = checkHeader(this.port, this.header, 0);
        this.headerFill = 0;
        if (length === 0) frames.push(decodePayload(kind, EMPTY));
        else this.startBody(kind, length);
        continue;
      }
      offset = this.fillBody(chunk, offset);
      if (this.body !== null && this.bodyFill === this.body.length) {
        const payload = this.body;
        this.body = null;
        this.bodyFill = 0;
        frames.push(decodePayload(this.bodyKind, payload));
      }
    }
    return frames;
  }

  private startBody(kind: FrameKind, length: number): void {
    // A fresh buffer per frame: decoded frames may keep views of it.
    this.body = Buffer.allocUnsafe(length);
    this.bodyFill = 0;
    this.bodyKind = kind;
  }

  private fillBody(chunk: Buffer, offset: number): number {
    const body = this.body as Buffer;
    const take = Math.min(body.length - this.bodyFill, chunk.length - offset);
    chunk.copy(body, this.bodyFill, offset, offset + take);
    this.bodyFill += take;
    return offset + take;
  }
}

/** Decodes a complete byte stream of one port at once (tests, fake guests). Throws ProtocolError. */
export function decodeFrames(port: Port, bytes: Uint8Array): DecodedFrame[] {
  const decoder = new FrameDecoder(port);
  const frames = decoder.push(bytes);
  decoder.end();
  return frames;
}
