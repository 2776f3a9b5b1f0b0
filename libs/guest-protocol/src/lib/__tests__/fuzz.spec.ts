/**
 * Fuzzing the host's side of the protocol with what a hostile guest could send: random bytes, and mutations of
 * valid streams, through FrameDecoder and message parsing, split into random pieces. Invariants: nothing but a
 * ProtocolError is ever thrown, every case ends, the decoder never buffers more than one frame, what it yields
 * is valid, and how the bytes were split never changes the outcome.
 *
 * Seeded: a failure prints the run's seed and the case; GUEST_PROTOCOL_FUZZ_SEED=<seed> replays the run.
 */
import { isDeepStrictEqual } from 'node:util';
import { ProtocolError } from '../errors';
import type { DecodedFrame, Port } from '../frame';
import {
  decodeFrames,
  encodeFrame,
  encodeJsonFrame,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  FrameKind,
  MAX_FRAME_BYTES,
  MAX_JSON_PAYLOAD_BYTES,
  MAX_OUTPUT_DATA_BYTES,
  MAX_OUTPUT_FRAME_BYTES,
  MAX_SEQ,
  MAX_SOURCE_BYTES,
} from '../frame';
import { OPS, parseGuestMessage, parseRequest, parseResult } from '../messages';
import { caseSeed, events, prng, requests, results } from './fixtures';

const BASE_SEED = process.env['GUEST_PROTOCOL_FUZZ_SEED']
  ? Number(process.env['GUEST_PROTOCOL_FUZZ_SEED']) >>> 0
  : 0xca5a_2026;
const RANDOM_CASES = 20_000;
const MUTATION_CASES = 20_000;
const MESSAGE_CASES = 5_000;

class Rng {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = prng(seed);
  }
  float(): number {
    return this.next();
  }
  /** 0..n-1 */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }
  /** Mostly small, sometimes up to `max`. */
  size(max: number): number {
    return this.chance(0.9) ? this.int(Math.min(max, 64) + 1) : this.int(max + 1);
  }
  /** n random bytes: xorshift32 seeded from this generator, four bytes per step (fast enough for 16 KiB). */
  bytes(n: number): Buffer {
    const words = new Uint32Array(Math.ceil(n / 4));
    let x = (this.int(0xffffffff) + 1) >>> 0;
    for (let i = 0; i < words.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      words[i] = x >>> 0;
    }
    return Buffer.from(words.buffer, 0, n);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Running one input.

interface Outcome {
  frames: DecodedFrame[];
  code: string | null;
}

const MEMORY_BOUND = MAX_FRAME_BYTES + FRAME_HEADER_BYTES;

function fail(message: string): never {
  throw new Error(message);
}

/** Checks what the decoder yielded is valid, and runs the message parsers over JSON frames. */
function checkFrame(frame: DecodedFrame, allOps: boolean): void {
  const validSeq = (seq: number) => Number.isSafeInteger(seq) && seq >= 1 && seq <= MAX_SEQ;
  switch (frame.kind) {
    case FrameKind.Json:
      if (typeof frame.message !== 'object' || frame.message === null || Array.isArray(frame.message)) {
        fail('JSON frame is not an object');
      }
      parseMessages(frame.message, allOps);
      return;
    case FrameKind.OutputChunk: {
      if (!validSeq(frame.seq)) fail(`bad seq ${frame.seq}`);
      if (frame.stream !== 'stdout' && frame.stream !== 'stderr') fail('bad stream');
      const sourceBytes = Buffer.byteLength(frame.source, 'utf8');
      if (sourceBytes < 1 || sourceBytes > MAX_SOURCE_BYTES) fail(`source of ${sourceBytes} bytes`);
      if (frame.data.length < 1 || frame.data.length > MAX_OUTPUT_DATA_BYTES) fail(`data of ${frame.data.length}`);
      // Whatever is decoded re-encodes to a frame that decodes to the same thing.
      if (!isDeepStrictEqual(decodeFrames('out', encodeFrame(frame)), [frame])) fail('chunk does not round-trip');
      return;
    }
    case FrameKind.OutputGap:
      if (!validSeq(frame.fromSeq) || !validSeq(frame.toSeq) || frame.fromSeq > frame.toSeq) fail('bad gap');
      return;
    case FrameKind.ReplayStart:
      if (!validSeq(frame.fromSeq)) fail('bad replay start');
      return;
  }
}

/**
 * The parsers over one JSON value: only ProtocolError may escape, and what is accepted parses again. A result
 * goes through the schema of every op with `allOps`, else of the op its id picks (errors are costly to build).
 */
function parseMessages(value: Record<string, unknown>, allOps: boolean): void {
  if (allOps || 'op' in value) guard(() => parseRequest(value));
  const message = guard(() => parseGuestMessage(value));
  if (message?.type === 'response' && message.ok) {
    for (const op of allOps ? OPS : [OPS[message.id % OPS.length] ?? 'ping']) {
      const result = guard(() => parseResult(op, message.result));
      if (result !== undefined && !isDeepStrictEqual(parseResult(op, JSON.parse(JSON.stringify(result))), result)) {
        fail(`${op} result is not stable`);
      }
    }
  }
}

function guard<T>(action: () => T): T | undefined {
  try {
    return action();
  } catch (error) {
    if (error instanceof ProtocolError) return undefined;
    throw error;
  }
}

/**
 * Feeds `bytes` in pieces ending at `cuts`, checking the invariants after every push, and (with `parse`) the
 * frames and every parser over them.
 */
function feed(port: Port, bytes: Buffer, cuts: number[], parse: 'none' | 'one op' | 'all ops'): Outcome {
  const decoder = new FrameDecoder(port);
  const frames: DecodedFrame[] = [];
  let start = 0;
  try {
    for (const end of [...cuts, bytes.length]) {
      const got = decoder.push(bytes.subarray(start, end));
      start = end;
      // The brief's bound is one maximal frame plus a header; the decoder keeps less than one frame.
      if (decoder.bufferedBytes > MEMORY_BOUND || decoder.bufferedBytes >= MAX_FRAME_BYTES) {
        fail(`buffered ${decoder.bufferedBytes} bytes`);
      }
      if (parse !== 'none') for (const frame of got) checkFrame(frame, parse === 'all ops');
      frames.push(...got);
    }
    decoder.end();
    return { frames, code: null };
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    if (!decoder.failed || decoder.bufferedBytes !== 0) fail('decoder not failed after a ProtocolError');
    try {
      decoder.push(Buffer.from([0xca]));
      fail('push after failure did not throw');
    } catch (again) {
      if (again !== error) throw again;
    }
    return { frames, code: error.code };
  }
}

function randomCuts(rng: Rng, length: number): number[] {
  const mode = rng.int(4);
  if (mode === 0 || length < 2) return [];
  if (mode === 1 && length <= 512) return Array.from({ length: length - 1 }, (_, i) => i + 1);
  if (mode === 2) {
    const step = 1 + rng.int(64);
    const cuts: number[] = [];
    for (let at = step; at < length; at += step) cuts.push(at);
    return cuts;
  }
  const count = 1 + rng.int(20);
  return Array.from({ length: count }, () => rng.int(length + 1)).sort((a, b) => a - b);
}

// ---------------------------------------------------------------------------------------------------------------
// Generating inputs.

const NAMES = ['web', 'worker-1', 'e-7f3a', 'a', 's'.repeat(128), 'é'.repeat(64), '日本', '🚀'];

function validOutputFrame(rng: Rng): DecodedFrame {
  const seq = () => (rng.chance(0.1) ? MAX_SEQ - rng.int(3) : 1 + rng.int(1_000_000));
  switch (rng.int(4)) {
    case 0:
      return { kind: FrameKind.ReplayStart, fromSeq: seq() };
    case 1: {
      const a = seq();
      const b = seq();
      return { kind: FrameKind.OutputGap, fromSeq: Math.min(a, b), toSeq: Math.max(a, b) };
    }
    default:
      return {
        kind: FrameKind.OutputChunk,
        seq: seq(),
        stream: rng.pick(['stdout', 'stderr'] as const),
        source: rng.pick(NAMES),
        data: rng.bytes(rng.chance(0.02) ? MAX_OUTPUT_DATA_BYTES : 1 + rng.size(400)),
      };
  }
}

function validMessage(rng: Rng): Record<string, unknown> {
  switch (rng.int(5)) {
    case 0:
      return { ...rng.pick(requests) };
    case 1: {
      const op = rng.pick(OPS);
      return { id: 1 + rng.int(1000), ok: true, result: results[op] };
    }
    case 2:
      return { id: 1 + rng.int(1000), ok: false, error: { code: 'NOT_FOUND', message: 'no container web' } };
    case 3:
      return { ...rng.pick(events), seq: 1 + rng.int(1000) };
    default:
      return rng.chance(0.05)
        ? { event: 'guest.warning', seq: 1, message: 'x'.repeat(rng.int(MAX_JSON_PAYLOAD_BYTES - 100)) }
        : { event: 'guest.warning', seq: 1, message: 'ünïcødé' };
  }
}

function validStream(rng: Rng, port: Port): { bytes: Buffer; frames: DecodedFrame[]; starts: number[] } {
  const frames: DecodedFrame[] = [];
  const count = 1 + rng.int(6);
  for (let i = 0; i < count; i++) {
    frames.push(port === 'ctl' ? { kind: FrameKind.Json, message: validMessage(rng) } : validOutputFrame(rng));
  }
  const encoded = frames.map(encodeFrame);
  const starts: number[] = [];
  let at = 0;
  for (const frame of encoded) {
    starts.push(at);
    at += frame.length;
  }
  return { bytes: Buffer.concat(encoded), frames, starts };
}

function header(rng: Rng): Buffer {
  const kind = rng.chance(0.8) ? 1 + rng.int(4) : rng.int(256);
  const head = Buffer.from([0xca, 0x5a, rng.chance(0.9) ? 1 : rng.int(256), kind, 0, 0, 0, 0]);
  head.writeUInt32BE(interestingLength(rng, kind, rng.size(300)), 4);
  return head;
}

function interestingLength(rng: Rng, kind: number, actual: number): number {
  const limit = kind === 1 ? MAX_JSON_PAYLOAD_BYTES : MAX_OUTPUT_FRAME_BYTES - FRAME_HEADER_BYTES;
  if (rng.chance(0.3)) return actual;
  const values = [actual - 1, actual + 1, 0, 1, 7, 8, 11, 12, 15, 16, 17, limit - 1, limit, limit + 1];
  return rng.pick([...values, 0x7fffffff, 0xffffffff, rng.int(2 ** 32)]) >>> 0;
}

/** A structurally plausible frame with random contents, to reach past the header checks. */
function plausibleFrame(rng: Rng): Buffer {
  const kind = rng.chance(0.9) ? 1 + rng.int(4) : rng.int(256);
  let payload: Buffer;
  if (kind === 1) {
    payload = rng.chance(0.5)
      ? Buffer.from(JSON.stringify(randomJson(rng, 3)) ?? 'null')
      : Buffer.from(rng.pick(['{', '}', '[', '"', '{"id":1,"ok":true,"result":', 'null', '\ufeff{}']));
  } else if (kind === 2) {
    const source = rng.chance(0.8) ? Buffer.from(rng.pick(NAMES)) : rng.bytes(rng.int(140));
    const data = rng.bytes(rng.chance(0.05) ? MAX_OUTPUT_DATA_BYTES + rng.int(3) : rng.size(100));
    const seq = rng.bytes(8);
    if (rng.chance(0.7)) seq.fill(0, 0, 6);
    payload = Buffer.concat([
      seq,
      Buffer.from([rng.chance(0.8) ? 1 + rng.int(2) : rng.int(256), rng.chance(0.8) ? source.length : rng.int(256)]),
      source,
      data,
    ]);
  } else {
    payload = rng.bytes(kind === 3 ? 16 : kind === 4 ? 8 : rng.size(40));
    if (rng.chance(0.7) && payload.length >= 8) {
      payload.fill(0, 0, 6);
      if (payload.length >= 16) payload.fill(0, 8, 14);
    }
  }
  const head = Buffer.from([0xca, 0x5a, 1, kind, 0, 0, 0, 0]);
  head.writeUInt32BE(rng.chance(0.9) ? payload.length : interestingLength(rng, kind, payload.length), 4);
  return Buffer.concat([head, payload]);
}

function randomBuffer(rng: Rng): Buffer {
  switch (rng.int(3)) {
    case 0:
      return rng.bytes(rng.size(2000));
    case 1:
      return Buffer.concat([header(rng), rng.bytes(rng.size(400))]);
    default:
      return Buffer.concat(Array.from({ length: 1 + rng.int(4) }, () => plausibleFrame(rng)));
  }
}

const KEYS = ['id', 'ok', 'result', 'error', 'event', 'seq', 'name', 'status', 'pid', 'state', '__proto__', 'x'];

function randomJson(rng: Rng, depth: number): unknown {
  switch (rng.int(depth > 0 ? 8 : 6)) {
    case 0:
      return null;
    case 1:
      return rng.chance(0.5);
    case 2:
      return rng.pick([0, -0, 1, -1, 1.5, 2 ** 53, 2 ** 53 - 1, 2 ** 64, 1e308, -1e308, 4_194_305, 65, rng.int(1e6)]);
    case 3:
      return rng.pick(['', 'web', 'Web', 'running', 'exited', 'OOMKilled', 'INTERNAL', '__proto__', 'x'.repeat(5000)]);
    case 4:
      return rng.pick(NAMES);
    case 5:
      return '\ud800' + rng.pick(NAMES);
    case 6:
      return Array.from({ length: rng.chance(0.05) ? 300 : rng.int(4) }, () => randomJson(rng, depth - 1));
    default: {
      const object: Record<string, unknown> = {};
      const n = rng.int(5);
      for (let i = 0; i < n; i++) {
        Object.defineProperty(object, rng.pick(KEYS), {
          value: randomJson(rng, depth - 1),
          enumerable: true,
          configurable: true,
          writable: true,
        });
      }
      return object;
    }
  }
}

function mutate(rng: Rng, bytes: Buffer, starts: number[]): Buffer {
  let out = bytes;
  // Lengths first, while the frame offsets are still known.
  if (rng.chance(0.3)) {
    const start = rng.pick(starts);
    if (start + FRAME_HEADER_BYTES <= out.length) {
      out = Buffer.from(out);
      const kind = out[start + 3] ?? 1;
      out.writeUInt32BE(interestingLength(rng, kind, out.readUInt32BE(start + 4)), start + 4);
    }
  }
  const count = rng.int(4);
  for (let m = 0; m < count; m++) {
    const at = rng.int(out.length + 1);
    switch (rng.int(8)) {
      case 0: {
        if (out.length === 0) break;
        out = Buffer.from(out);
        const i = Math.min(at, out.length - 1);
        out[i] = (out[i] ?? 0) ^ (1 << rng.int(8));
        break;
      }
      case 1: {
        if (out.length === 0) break;
        out = Buffer.from(out);
        out[Math.min(at, out.length - 1)] = rng.int(256);
        break;
      }
      case 2:
        out = out.subarray(0, at);
        break;
      case 3:
        out = Buffer.concat([out.subarray(0, at), rng.bytes(1 + rng.int(16)), out.subarray(at)]);
        break;
      case 4: {
        const end = Math.min(out.length, at + 1 + rng.int(64));
        out = Buffer.concat([out.subarray(0, end), out.subarray(at, end), out.subarray(end)]);
        break;
      }
      case 5:
        out = Buffer.concat([out.subarray(0, at), out.subarray(Math.min(out.length, at + 1 + rng.int(32)))]);
        break;
      case 6: {
        // A huge or zero sequence number (or length) somewhere.
        const value = Buffer.alloc(8, rng.chance(0.5) ? 0xff : 0);
        out = Buffer.concat([out.subarray(0, at), value, out.subarray(Math.min(out.length, at + 8))]);
        break;
      }
      default:
        // A frame of the other port, or another valid frame, spliced in.
        out = Buffer.concat([
          out.subarray(0, at),
          rng.chance(0.5) ? encodeJsonFrame(validMessage(rng)) : encodeFrame(validOutputFrame(rng)),
          out.subarray(at),
        ]);
    }
  }
  return out;
}

function run(family: string, cases: number, body: (rng: Rng) => void): void {
  for (let i = 0; i < cases; i++) {
    const seed = caseSeed(BASE_SEED ^ family.length, i);
    try {
      body(new Rng(seed));
    } catch (error) {
      const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
      throw new Error(
        `fuzz ${family} case ${i} failed (GUEST_PROTOCOL_FUZZ_SEED=${BASE_SEED}, case seed ${seed}): ${detail}`,
      );
    }
  }
}

describe(`fuzz (GUEST_PROTOCOL_FUZZ_SEED=${BASE_SEED})`, () => {
  it(`${RANDOM_CASES} random buffers`, () => {
    const codes = new Map<string, number>();
    run('random', RANDOM_CASES, (rng) => {
      const bytes = randomBuffer(rng);
      const outcome = feed(rng.chance(0.5) ? 'ctl' : 'out', bytes, randomCuts(rng, bytes.length), 'all ops');
      codes.set(outcome.code ?? 'ok', (codes.get(outcome.code ?? 'ok') ?? 0) + 1);
    });
    // The generator reaches past the header checks, into every payload check.
    const expected = ['ok', 'BAD_MAGIC', 'FRAME_TOO_LARGE', 'INVALID_JSON', 'BAD_STREAM', 'BAD_SOURCE', 'BAD_SEQ'];
    expect(expected.filter((code) => !codes.has(code))).toEqual([]);
  }, 60_000);

  it(`${MUTATION_CASES} mutated valid streams, however split`, () => {
    const codes = new Map<string, number>();
    run('mutation', MUTATION_CASES, (rng) => {
      const port: Port = rng.chance(0.5) ? 'ctl' : 'out';
      const stream = validStream(rng, port);
      const pristine = rng.chance(0.05);
      const bytes = pristine ? stream.bytes : mutate(rng, stream.bytes, stream.starts);
      const whole = feed(port, bytes, [], 'none');
      const split = feed(port, bytes, randomCuts(rng, bytes.length), 'one op');
      codes.set(whole.code ?? 'ok', (codes.get(whole.code ?? 'ok') ?? 0) + 1);
      if (whole.code !== split.code) fail(`whole: ${whole.code}, split: ${split.code}`);
      if (whole.code === null && !isDeepStrictEqual(whole.frames, split.frames)) fail('split changed the frames');
      if (pristine && !isDeepStrictEqual(whole.frames, stream.frames)) fail('a valid stream did not round-trip');
    });
    expect(codes.get('ok') ?? 0).toBeGreaterThan(0);
    expect(codes.size).toBeGreaterThan(8);
  }, 60_000);

  it(`${MESSAGE_CASES} mutated JSON messages`, () => {
    run('message', MESSAGE_CASES, (rng) => {
      const message = structuredClone(validMessage(rng)) as Record<string, unknown>;
      // Replace, remove or add a field somewhere in the tree.
      let target: Record<string, unknown> = message;
      for (let depth = 0; depth < 4; depth++) {
        const keys = Object.keys(target);
        const next = keys.length > 0 ? target[rng.pick(keys)] : undefined;
        if (typeof next !== 'object' || next === null || rng.chance(0.3)) break;
        target = next as Record<string, unknown>;
      }
      const keys = Object.keys(target);
      const key = keys.length > 0 && rng.chance(0.7) ? rng.pick(keys) : rng.pick(KEYS);
      if (rng.chance(0.2)) delete target[key];
      else Object.defineProperty(target, key, { value: randomJson(rng, 3), enumerable: true, writable: true });
      let frame: Buffer;
      try {
        frame = encodeJsonFrame(message);
      } catch (error) {
        if (error instanceof ProtocolError) return;
        throw error;
      }
      feed('ctl', frame, randomCuts(rng, frame.length), 'all ops');
      if (rng.chance(0.01)) {
        // Deep nesting inside a valid envelope.
        const depth = 1 + rng.int(30_000);
        feed('ctl', encodeDeep(depth), [], 'all ops');
      }
    });
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  }, 60_000);
});

function encodeDeep(depth: number): Buffer {
  const text = `{"id":1,"ok":true,"result":{"status":${'['.repeat(depth)}${']'.repeat(depth)}}}`;
  const head = Buffer.from([0xca, 0x5a, 1, 1, 0, 0, 0, 0]);
  head.writeUInt32BE(Buffer.byteLength(text), 4);
  return Buffer.concat([head, Buffer.from(text)]);
}
