import { isDeepStrictEqual } from 'node:util';
import type { ProtocolErrorCode } from '../errors';
import { ProtocolError } from '../errors';
import type { DecodedFrame, Port } from '../frame';
import {
  decodeFrames,
  encodeFrame,
  encodeJsonFrame,
  encodeOutputChunkFrame,
  encodeOutputGapFrame,
  encodeReplayStartFrame,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  FrameKind,
  MAX_FRAME_BYTES,
  MAX_JSON_PAYLOAD_BYTES,
  MAX_OUTPUT_DATA_BYTES,
  MAX_OUTPUT_FRAME_BYTES,
  MAX_SEQ,
} from '../frame';
import { hello, requests, stats } from './fixtures';

/** A frame with any header fields, for frames the encoders refuse to build. */
function raw(kind: number, payload: Uint8Array, header: { magic?: number[]; version?: number; length?: number } = {}) {
  const frame = Buffer.alloc(FRAME_HEADER_BYTES + payload.length);
  const [m0, m1] = header.magic ?? [0xca, 0x5a];
  frame[0] = m0 ?? 0;
  frame[1] = m1 ?? 0;
  frame[2] = header.version ?? 1;
  frame[3] = kind;
  frame.writeUInt32BE(header.length ?? payload.length, 4);
  frame.set(payload, FRAME_HEADER_BYTES);
  return frame;
}

function seq64(value: bigint): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64BE(value);
  return bytes;
}

/** An output chunk payload with any fields. */
function chunkPayload(seq: bigint, stream: number, source: Uint8Array, data: Uint8Array, sourceLength?: number) {
  return Buffer.concat([
    seq64(seq),
    Buffer.from([stream, sourceLength ?? source.length]),
    Buffer.from(source),
    Buffer.from(data),
  ]);
}

function decodeAll(port: Port, bytes: Buffer, pieces: number[]): DecodedFrame[] {
  const decoder = new FrameDecoder(port);
  const frames: DecodedFrame[] = [];
  let start = 0;
  for (const end of [...pieces, bytes.length]) {
    frames.push(...decoder.push(bytes.subarray(start, end)));
    if (decoder.bufferedBytes >= MAX_FRAME_BYTES) throw new Error(`buffered ${decoder.bufferedBytes} bytes`);
    start = end;
  }
  decoder.end();
  return frames;
}

function errorOf(action: () => unknown): ProtocolError {
  try {
    action();
  } catch (error) {
    if (error instanceof ProtocolError) return error;
    throw error;
  }
  throw new Error('no error');
}

const ctlFrames: DecodedFrame[] = [
  ...requests.map((request) => ({ kind: FrameKind.Json, message: { ...request } })),
  { kind: FrameKind.Json, message: { id: 1, ok: true, result: { ...hello } } },
  { kind: FrameKind.Json, message: { id: 7, ok: true, result: { ...stats } } },
  { kind: FrameKind.Json, message: { event: 'guest.warning', seq: 1, message: 'ünïcødé ✓ 🚀' } },
  { kind: FrameKind.Json, message: {} },
];

const outFrames: DecodedFrame[] = [
  { kind: FrameKind.ReplayStart, fromSeq: 1 },
  { kind: FrameKind.OutputGap, fromSeq: 1, toSeq: 3 },
  { kind: FrameKind.OutputChunk, seq: 4, stream: 'stdout', source: 'web', data: Buffer.from('hello\n') },
  { kind: FrameKind.OutputChunk, seq: 5, stream: 'stderr', source: 'e-7f3a', data: Buffer.from([0, 255, 10]) },
  { kind: FrameKind.OutputChunk, seq: 6, stream: 'stdout', source: 'é'.repeat(64), data: Buffer.alloc(700, 7) },
  { kind: FrameKind.OutputGap, fromSeq: 7, toSeq: 7 },
  { kind: FrameKind.ReplayStart, fromSeq: MAX_SEQ },
  { kind: FrameKind.OutputGap, fromSeq: 2 ** 32, toSeq: MAX_SEQ },
];

describe('frames', () => {
  it('round-trips every kind', () => {
    for (const [port, frames] of [
      ['ctl', ctlFrames],
      ['out', outFrames],
    ] as const) {
      for (const frame of frames) {
        expect(decodeFrames(port, encodeFrame(frame))).toEqual([frame]);
      }
    }
  });

  it('writes the header of the contract: magic, version, kind, big-endian length', () => {
    expect([...encodeJsonFrame({ a: 1 })]).toEqual([0xca, 0x5a, 1, 1, 0, 0, 0, 7, ...Buffer.from('{"a":1}')]);
    expect([...encodeReplayStartFrame({ fromSeq: 0x0102030405 })]).toEqual([
      0xca, 0x5a, 1, 4, 0, 0, 0, 8, 0, 0, 0, 1, 2, 3, 4, 5,
    ]);
    expect([...encodeOutputGapFrame({ fromSeq: 1, toSeq: 2 })].slice(3)).toEqual([
      3, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2,
    ]);
    const chunk = encodeOutputChunkFrame({ seq: 9, stream: 'stderr', source: 'web', data: Buffer.from('x') });
    expect([...chunk]).toEqual([0xca, 0x5a, 1, 2, 0, 0, 0, 14, 0, 0, 0, 0, 0, 0, 0, 9, 2, 3, 119, 101, 98, 120]);
  });

  it('round-trips the largest frames of each kind', () => {
    const json = { pad: 'x'.repeat(MAX_JSON_PAYLOAD_BYTES - 10) }; // {"pad":""} is 10 bytes
    const jsonFrame = encodeJsonFrame(json);
    expect(jsonFrame.length).toBe(MAX_FRAME_BYTES);
    expect(decodeFrames('ctl', jsonFrame)).toEqual([{ kind: FrameKind.Json, message: json }]);
    const chunk: DecodedFrame = {
      kind: FrameKind.OutputChunk,
      seq: 1,
      stream: 'stdout',
      source: 's'.repeat(128),
      data: Buffer.alloc(MAX_OUTPUT_DATA_BYTES, 1),
    };
    expect(decodeFrames('out', encodeFrame(chunk))).toEqual([chunk]);
    expect(() => encodeJsonFrame({ pad: 'x'.repeat(MAX_JSON_PAYLOAD_BYTES - 9) })).toThrow(
      expect.objectContaining({ code: 'FRAME_TOO_LARGE' }),
    );
  });

  it('decodes the same frames however the stream is split', () => {
    for (const [port, frames] of [
      ['ctl', ctlFrames],
      ['out', outFrames],
    ] as const) {
      const bytes = Buffer.concat(frames.map(encodeFrame));
      // Jest's toEqual is slow; a plain deep comparison first, toEqual for the report of a mismatch.
      const same = (pieces: number[]) => {
        const decoded = decodeAll(port, bytes, pieces);
        if (!isDeepStrictEqual(decoded, frames)) expect({ pieces, decoded }).toEqual({ pieces, decoded: frames });
      };
      for (let split = 0; split <= bytes.length; split++) same([split]);
      // Byte by byte.
      expect(decodeAll(port, bytes, [...Array(bytes.length).keys()].slice(1))).toEqual(frames);
      // Every pair of split points around the frame boundaries.
      const boundaries = frames.map(encodeFrame).reduce<number[]>((acc, frame) => {
        acc.push((acc.at(-1) ?? 0) + frame.length);
        return acc;
      }, []);
      for (const boundary of boundaries.slice(0, 3)) {
        for (let a = Math.max(0, boundary - 10); a <= boundary + 10 && a <= bytes.length; a++) {
          for (let b = a; b <= a + 20 && b <= bytes.length; b++) {
            same([a, b]);
          }
        }
      }
    }
  });

  it('decodes in linear time and bounded memory when fed one byte at a time', () => {
    const big = encodeJsonFrame({ pad: 'y'.repeat(MAX_JSON_PAYLOAD_BYTES - 10) });
    const bytes = Buffer.concat([big, big, big, big]);
    const decoder = new FrameDecoder('ctl');
    let frames = 0;
    let peak = 0;
    const started = performance.now();
    for (let i = 0; i < bytes.length; i++) {
      frames += decoder.push(bytes.subarray(i, i + 1)).length;
      peak = Math.max(peak, decoder.bufferedBytes);
    }
    expect(frames).toBe(4);
    expect(peak).toBe(MAX_FRAME_BYTES - 1);
    expect(decoder.bufferedBytes).toBe(0);
    // 262,176 one-byte pushes; copying what is buffered on each push would be ~34 GB of copies.
    expect(performance.now() - started).toBeLessThan(3000);
  });

  it('decodes frames inside one chunk without copying their data', () => {
    const chunk = Buffer.concat([
      encodeReplayStartFrame({ fromSeq: 1 }),
      encodeOutputChunkFrame({ seq: 1, stream: 'stdout', source: 'web', data: Buffer.from('zero copy') }),
    ]);
    const [, frame] = new FrameDecoder('out').push(chunk);
    expect(frame?.kind).toBe(FrameKind.OutputChunk);
    if (frame?.kind !== FrameKind.OutputChunk) return;
    expect(frame.data.buffer).toBe(chunk.buffer);
    expect(frame.data.toString()).toBe('zero copy');
  });

  it('accepts a plain Uint8Array', () => {
    const bytes = new Uint8Array(encodeJsonFrame({ op: 'ping', id: 1 }));
    expect(new FrameDecoder('ctl').push(bytes)).toEqual([{ kind: FrameKind.Json, message: { op: 'ping', id: 1 } }]);
  });

  const cases: Array<[string, Port, Buffer, ProtocolErrorCode]> = [
    ['bad first magic byte', 'ctl', raw(1, Buffer.from('{}'), { magic: [0xcb, 0x5a] }), 'BAD_MAGIC'],
    ['bad second magic byte', 'out', raw(4, seq64(1n), { magic: [0xca, 0x5b] }), 'BAD_MAGIC'],
    ['version 0', 'ctl', raw(1, Buffer.from('{}'), { version: 0 }), 'BAD_VERSION'],
    ['version 2', 'out', raw(4, seq64(1n), { version: 2 }), 'BAD_VERSION'],
    ['kind 0', 'ctl', raw(0, Buffer.from('{}')), 'UNKNOWN_KIND'],
    ['kind 5', 'out', raw(5, seq64(1n)), 'UNKNOWN_KIND'],
    ['kind 255', 'out', raw(255, seq64(1n)), 'UNKNOWN_KIND'],
    ['JSON on caas.out', 'out', raw(1, Buffer.from('{}')), 'UNEXPECTED_KIND'],
    ['replay start on caas.ctl', 'ctl', raw(4, seq64(1n)), 'UNEXPECTED_KIND'],
    ['gap on caas.ctl', 'ctl', raw(3, Buffer.concat([seq64(1n), seq64(1n)])), 'UNEXPECTED_KIND'],
    ['chunk on caas.ctl', 'ctl', raw(2, chunkPayload(1n, 1, Buffer.from('w'), Buffer.from('x'))), 'UNEXPECTED_KIND'],
    ['JSON length 65,537', 'ctl', raw(1, Buffer.alloc(0), { length: MAX_JSON_PAYLOAD_BYTES + 1 }), 'FRAME_TOO_LARGE'],
    ['JSON length 2^32-1', 'ctl', raw(1, Buffer.alloc(0), { length: 0xffffffff }), 'FRAME_TOO_LARGE'],
    [
      'chunk frame of 32,769 bytes',
      'out',
      raw(2, Buffer.alloc(0), { length: MAX_OUTPUT_FRAME_BYTES - 7 }),
      'FRAME_TOO_LARGE',
    ],
    ['gap length 2^32-1', 'out', raw(3, Buffer.alloc(0), { length: 0xffffffff }), 'FRAME_TOO_LARGE'],
    ['gap length 15', 'out', raw(3, Buffer.alloc(15, 1)), 'BAD_LENGTH'],
    ['gap length 17', 'out', raw(3, Buffer.alloc(17, 1)), 'BAD_LENGTH'],
    ['replay start length 7', 'out', raw(4, Buffer.alloc(7, 1)), 'BAD_LENGTH'],
    ['replay start length 0', 'out', raw(4, Buffer.alloc(0)), 'BAD_LENGTH'],
    ['chunk length 11', 'out', raw(2, Buffer.alloc(11, 1)), 'BAD_LENGTH'],
    ['JSON with byte 0xff', 'ctl', raw(1, Buffer.from([0x7b, 0xff, 0x7d])), 'INVALID_UTF8'],
    ['JSON with an overlong NUL', 'ctl', raw(1, Buffer.from([0x7b, 0xc0, 0x80, 0x7d])), 'INVALID_UTF8'],
    ['JSON with a UTF-8 surrogate', 'ctl', raw(1, Buffer.from([0x22, 0xed, 0xa0, 0x80, 0x22])), 'INVALID_UTF8'],
    [
      'source cut mid-character',
      'out',
      raw(2, chunkPayload(1n, 1, Buffer.from([0xc3]), Buffer.from('x'))),
      'INVALID_UTF8',
    ],
    [
      'source 0xc3 0x28',
      'out',
      raw(2, chunkPayload(1n, 1, Buffer.from([0xc3, 0x28]), Buffer.from('x'))),
      'INVALID_UTF8',
    ],
    ['empty JSON', 'ctl', raw(1, Buffer.alloc(0)), 'INVALID_JSON'],
    ['unterminated JSON', 'ctl', raw(1, Buffer.from('{"id":')), 'INVALID_JSON'],
    ['JSON with trailing bytes', 'ctl', raw(1, Buffer.from('{}x')), 'INVALID_JSON'],
    ['JSON after a BOM', 'ctl', raw(1, Buffer.from('\ufeff{}')), 'INVALID_JSON'],
    ['JSON array', 'ctl', raw(1, Buffer.from('[{}]')), 'JSON_NOT_OBJECT'],
    ['JSON null', 'ctl', raw(1, Buffer.from('null')), 'JSON_NOT_OBJECT'],
    ['JSON number', 'ctl', raw(1, Buffer.from('7')), 'JSON_NOT_OBJECT'],
    ['JSON string', 'ctl', raw(1, Buffer.from('"{}"')), 'JSON_NOT_OBJECT'],
    ['stream 0', 'out', raw(2, chunkPayload(1n, 0, Buffer.from('w'), Buffer.from('x'))), 'BAD_STREAM'],
    ['stream 3', 'out', raw(2, chunkPayload(1n, 3, Buffer.from('w'), Buffer.from('x'))), 'BAD_STREAM'],
    ['source length 0', 'out', raw(2, chunkPayload(1n, 1, Buffer.alloc(0), Buffer.from('xx'))), 'BAD_SOURCE'],
    ['source length 129', 'out', raw(2, chunkPayload(1n, 1, Buffer.alloc(129, 97), Buffer.from('x'))), 'BAD_SOURCE'],
    ['source past payload', 'out', raw(2, chunkPayload(1n, 1, Buffer.from('web'), Buffer.alloc(0), 9)), 'BAD_SOURCE'],
    ['no data', 'out', raw(2, chunkPayload(1n, 1, Buffer.from('web'), Buffer.alloc(0))), 'EMPTY_DATA'],
    [
      '16,385 bytes of data',
      'out',
      raw(2, chunkPayload(1n, 1, Buffer.from('w'), Buffer.alloc(16_385))),
      'DATA_TOO_LARGE',
    ],
    ['chunk seq 0', 'out', raw(2, chunkPayload(0n, 1, Buffer.from('w'), Buffer.from('x'))), 'BAD_SEQ'],
    ['chunk seq 2^53', 'out', raw(2, chunkPayload(2n ** 53n, 1, Buffer.from('w'), Buffer.from('x'))), 'BAD_SEQ'],
    ['chunk seq 2^64-1', 'out', raw(2, chunkPayload(2n ** 64n - 1n, 1, Buffer.from('w'), Buffer.from('x'))), 'BAD_SEQ'],
    ['gap from 0', 'out', raw(3, Buffer.concat([seq64(0n), seq64(1n)])), 'BAD_SEQ'],
    ['gap to 0', 'out', raw(3, Buffer.concat([seq64(1n), seq64(0n)])), 'BAD_SEQ'],
    ['replay start 0', 'out', raw(4, seq64(0n)), 'BAD_SEQ'],
    ['gap from > to', 'out', raw(3, Buffer.concat([seq64(5n), seq64(4n)])), 'BAD_GAP'],
  ];

  it.each(cases)('refuses %s (%s) with its code, whole or byte by byte', (_name, port, bytes, code) => {
    expect(errorOf(() => decodeFrames(port, bytes)).code).toBe(code);
    const decoder = new FrameDecoder(port);
    const error = errorOf(() => {
      for (let i = 0; i < bytes.length; i++) decoder.push(bytes.subarray(i, i + 1));
    });
    expect(error.code).toBe(code);
    expect(decoder.failed).toBe(true);
    expect(decoder.bufferedBytes).toBe(0);
  });

  it('refuses a bad header as soon as the header is complete, without waiting for the payload', () => {
    const decoder = new FrameDecoder('ctl');
    expect(decoder.push(raw(1, Buffer.alloc(0), { length: 100 }).subarray(0, 8))).toEqual([]);
    expect(decoder.bufferedBytes).toBe(FRAME_HEADER_BYTES); // header accepted, no payload yet
    const huge = new FrameDecoder('out');
    expect(errorOf(() => huge.push(raw(2, Buffer.alloc(0), { length: 0xffffffff }))).code).toBe('FRAME_TOO_LARGE');
  });

  it('fails for good: every later push and end throw the first error', () => {
    const decoder = new FrameDecoder('out');
    const first = errorOf(() => decoder.push(raw(9, Buffer.alloc(0))));
    expect(first.code).toBe('UNKNOWN_KIND');
    expect(decoder.error).toBe(first);
    expect(errorOf(() => decoder.push(encodeReplayStartFrame({ fromSeq: 1 })))).toBe(first);
    expect(errorOf(() => decoder.end())).toBe(first);
  });

  it('drops frames completed in the chunk that also held a violation', () => {
    const decoder = new FrameDecoder('out');
    const chunk = Buffer.concat([encodeReplayStartFrame({ fromSeq: 1 }), raw(4, seq64(0n))]);
    expect(errorOf(() => decoder.push(chunk)).code).toBe('BAD_SEQ');
  });

  it('reports a stream that ended inside a frame', () => {
    const frame = encodeJsonFrame({ id: 1 });
    for (const cut of [1, 7, 8, frame.length - 1]) {
      const decoder = new FrameDecoder('ctl');
      decoder.push(frame.subarray(0, cut));
      expect(decoder.bufferedBytes).toBe(cut);
      expect(errorOf(() => decoder.end()).code).toBe('TRUNCATED');
    }
    const whole = new FrameDecoder('ctl');
    whole.push(frame);
    expect(() => whole.end()).not.toThrow();
  });

  it('refuses to encode what it would refuse to decode', () => {
    const chunk = { seq: 1, stream: 'stdout' as const, source: 'web', data: Buffer.from('x') };
    expect(errorOf(() => encodeOutputChunkFrame({ ...chunk, seq: 0 })).code).toBe('BAD_SEQ');
    expect(errorOf(() => encodeOutputChunkFrame({ ...chunk, seq: 1.5 })).code).toBe('BAD_SEQ');
    expect(errorOf(() => encodeOutputChunkFrame({ ...chunk, seq: 2 ** 53 })).code).toBe('BAD_SEQ');
    expect(errorOf(() => encodeOutputChunkFrame({ ...chunk, source: '' })).code).toBe('BAD_SOURCE');
    expect(errorOf(() => encodeOutputChunkFrame({ ...chunk, source: 'é'.repeat(65) })).code).toBe('BAD_SOURCE');
    expect(errorOf(() => encodeOutputChunkFrame({ ...chunk, source: '\ud800' })).code).toBe('BAD_SOURCE');
    expect(errorOf(() => encodeOutputChunkFrame({ ...chunk, data: Buffer.alloc(0) })).code).toBe('EMPTY_DATA');
    expect(errorOf(() => encodeOutputChunkFrame({ ...chunk, data: Buffer.alloc(16_385) })).code).toBe('DATA_TOO_LARGE');
    expect(errorOf(() => encodeOutputChunkFrame({ ...chunk, stream: 'stdin' as 'stdout' })).code).toBe('BAD_STREAM');
    expect(errorOf(() => encodeOutputGapFrame({ fromSeq: 3, toSeq: 2 })).code).toBe('BAD_GAP');
    expect(errorOf(() => encodeReplayStartFrame({ fromSeq: 0 })).code).toBe('BAD_SEQ');
    expect(errorOf(() => encodeJsonFrame([1, 2])).code).toBe('JSON_NOT_OBJECT');
    expect(errorOf(() => encodeJsonFrame({ n: 1n })).code).toBe('INVALID_MESSAGE');
  });

  it('refuses an unknown port', () => {
    expect(() => new FrameDecoder('err' as Port)).toThrow(TypeError);
  });
});
