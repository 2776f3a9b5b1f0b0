import { ProtocolError } from '../errors';
import { decodeFrames, encodeJsonFrame, FrameKind } from '../frame';
import type { ContainerStatus, Hello, Op, Stats } from '../messages';
import {
  encodeEventFrame,
  encodeRequestFrame,
  encodeResponseFrame,
  MESSAGE_LIMITS,
  OPS,
  parseContainerSpec,
  parseGuestMessage,
  parseRequest,
  parseResult,
} from '../messages';
import { events, exited, hello, requests, results, running, spec, stats } from './fixtures';

/** The one JSON object of a frame, as the host's decoder yields it. */
function wire(frame: Buffer): unknown {
  const [decoded] = decodeFrames('ctl', frame);
  if (decoded?.kind !== FrameKind.Json) throw new Error('not a JSON frame');
  return decoded.message;
}

function codeOf(action: () => unknown): string {
  try {
    action();
  } catch (error) {
    if (error instanceof ProtocolError) return error.code;
    throw error;
  }
  return 'accepted';
}

const ok = (result: unknown) => ({ id: 1, ok: true, result });
const resultCode = (op: Op, result: unknown) => codeOf(() => parseResult(op, result));
const messageCode = (value: unknown) => codeOf(() => parseGuestMessage(value));
const specCode = (patch: Record<string, unknown>) => codeOf(() => parseContainerSpec({ ...spec, ...patch }));

describe('messages', () => {
  it('round-trips a request of every op', () => {
    expect(requests.map((request) => request.op).sort()).toEqual([...OPS].sort());
    for (const request of requests) {
      expect(parseRequest(wire(encodeRequestFrame(request)))).toEqual(request);
    }
  });

  it('round-trips a response of every op, results validated per op', () => {
    for (const op of OPS) {
      const message = parseGuestMessage(wire(encodeResponseFrame({ id: 9, ok: true, result: results[op] })));
      expect(message).toEqual({ type: 'response', id: 9, ok: true, result: results[op] });
      if (message.type !== 'response' || !message.ok) throw new Error('not a successful response');
      expect(parseResult(op, message.result)).toEqual(results[op]);
    }
    // Typed by op.
    const typedStats: Stats = parseResult('stats', stats);
    const typedHello: Hello = parseResult('hello', hello);
    const status: ContainerStatus = parseResult('run', { status: exited }).status;
    expect([typedStats, typedHello, status]).toEqual([stats, hello, exited]);
  });

  it('round-trips error responses', () => {
    for (const code of ['BAD_REQUEST', 'NOT_FOUND', 'CONFLICT', 'UNSUPPORTED_VERSION', 'INTERNAL'] as const) {
      const error = { code, message: 'no container web' };
      expect(parseGuestMessage(wire(encodeResponseFrame({ id: 3, ok: false, error })))).toEqual({
        type: 'response',
        id: 3,
        ok: false,
        error,
      });
    }
    expect(parseGuestMessage({ id: 3, ok: false, error: { code: 'INTERNAL' } })).toEqual({
      type: 'response',
      id: 3,
      ok: false,
      error: { code: 'INTERNAL', message: '' },
    });
  });

  it('round-trips every event', () => {
    events.forEach((event, index) => {
      expect(parseGuestMessage(wire(encodeEventFrame(index + 1, event)))).toEqual({
        type: 'event',
        seq: index + 1,
        event,
      });
    });
  });

  it('ignores unknown fields and drops them, __proto__ included', () => {
    const hostile = JSON.parse(
      '{"id":4,"ok":true,"extra":1,"__proto__":{"polluted":true},' +
        '"result":{"pid":7,"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}}',
    ) as unknown;
    const message = parseGuestMessage(hostile);
    expect(message).toMatchObject({ type: 'response', id: 4, ok: true });
    if (message.type !== 'response' || !message.ok) throw new Error('not a successful response');
    const result = parseResult('exec', message.result);
    expect(result).toEqual({ pid: 7 });
    expect(Object.keys(result)).toEqual(['pid']);
    expect(Object.getPrototypeOf(result)).toBe(Object.prototype);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();

    const event = parseGuestMessage(
      JSON.parse('{"event":"guest.warning","seq":2,"message":"m","__proto__":{"x":1},"extra":[1]}'),
    );
    expect(event).toEqual({ type: 'event', seq: 2, event: { event: 'guest.warning', message: 'm' } });
    const status = parseResult('run', { status: { ...running, future: 'field' } }).status;
    expect(status).toEqual(running);
  });

  it('refuses malformed guest messages', () => {
    expect(messageCode(ok({}))).toBe('accepted');
    expect(messageCode([])).toBe('INVALID_MESSAGE');
    expect(messageCode(null)).toBe('INVALID_MESSAGE');
    expect(messageCode({})).toBe('INVALID_MESSAGE');
    expect(messageCode({ id: 0, ok: true, result: {} })).toBe('INVALID_MESSAGE');
    expect(messageCode({ id: 1.5, ok: true, result: {} })).toBe('INVALID_MESSAGE');
    expect(messageCode({ id: '1', ok: true, result: {} })).toBe('INVALID_MESSAGE');
    expect(messageCode({ id: 2 ** 53, ok: true, result: {} })).toBe('INVALID_MESSAGE');
    expect(messageCode({ id: 1, ok: 'yes', result: {} })).toBe('INVALID_MESSAGE');
    expect(messageCode({ id: 1, ok: true })).toBe('INVALID_MESSAGE');
    expect(messageCode({ id: 1, ok: true, result: [] })).toBe('INVALID_MESSAGE');
    expect(messageCode({ id: 1, ok: true, result: null })).toBe('INVALID_MESSAGE');
    expect(messageCode({ id: 1, ok: false })).toBe('INVALID_MESSAGE');
    expect(messageCode({ id: 1, ok: false, error: { code: 'TEAPOT', message: '' } })).toBe('INVALID_MESSAGE');
    expect(messageCode({ id: 1, ok: false, error: { code: 'INTERNAL', message: 'x'.repeat(4097) } })).toBe(
      'INVALID_MESSAGE',
    );
    expect(parseGuestMessage({ event: 'guest.warning', seq: 3 })).toEqual({
      type: 'event',
      seq: 3,
      event: { event: 'guest.warning', message: '' },
    });
    expect(messageCode({ event: 'guest.warning', message: 'no seq' })).toBe('INVALID_MESSAGE');
    expect(messageCode({ event: 'guest.warning', seq: 0, message: 'x' })).toBe('INVALID_MESSAGE');
    expect(messageCode({ event: 'guest.warning', seq: 1, message: 'x'.repeat(4097) })).toBe('INVALID_MESSAGE');
    expect(messageCode({ event: 'guest.rebooted', seq: 1 })).toBe('INVALID_MESSAGE');
    expect(messageCode({ event: 'container.started', seq: 1, name: 'Web', pid: 1, atNs: 0 })).toBe('INVALID_MESSAGE');
    expect(messageCode({ event: 'container.started', seq: 1, name: 'web', pid: 0, atNs: 0 })).toBe('INVALID_MESSAGE');
    expect(messageCode({ event: 'container.started', seq: 1, name: 'web', pid: 1, atNs: -1 })).toBe('INVALID_MESSAGE');
    expect(messageCode({ event: 'exec.exited', seq: 1, status: { ...exited } })).toBe('INVALID_MESSAGE');
    // An object with an own `event` field is an event, even when it also looks like a response.
    expect(messageCode({ event: 'x', id: 1, ok: true, result: {} })).toBe('INVALID_MESSAGE');
  });

  it('bounds and types every result field', () => {
    expect(resultCode('ping', {})).toBe('accepted');
    expect(resultCode('ping', [])).toBe('INVALID_RESULT');
    expect(resultCode('exec', { pid: 0 })).toBe('INVALID_RESULT');
    expect(resultCode('exec', { pid: 4_194_305 })).toBe('INVALID_RESULT');
    expect(resultCode('exec', { pid: 1.5 })).toBe('INVALID_RESULT');
    expect(resultCode('exec', {})).toBe('INVALID_RESULT');
    expect(resultCode('run', { status: { ...running, name: 'a'.repeat(64) } })).toBe('INVALID_RESULT');
    expect(resultCode('run', { status: { ...running, name: '-web' } })).toBe('INVALID_RESULT');
    expect(resultCode('run', { status: { ...running, state: 'paused' } })).toBe('INVALID_RESULT');
    expect(resultCode('run', { status: { ...exited, reason: 'Crashed' } })).toBe('INVALID_RESULT');
    expect(resultCode('run', { status: { ...exited, exitCode: 256 } })).toBe('INVALID_RESULT');
    expect(resultCode('run', { status: { ...exited, signal: 65 } })).toBe('INVALID_RESULT');
    expect(resultCode('run', { status: { ...exited, message: 'm'.repeat(4097) } })).toBe('INVALID_RESULT');
    expect(resultCode('run', { status: { ...exited, oomKilled: 'no' } })).toBe('INVALID_RESULT');
    expect(resultCode('run', { status: { ...exited, lastOutputSeq: -1 } })).toBe('INVALID_RESULT');
    const { oomKilled: _omitted, ...withoutOom } = running;
    expect(resultCode('run', { status: withoutOom })).toBe('INVALID_RESULT');
    expect(resultCode('hello', { ...hello, protocol: 2 })).toBe('INVALID_RESULT');
    expect(resultCode('hello', { ...hello, bootId: '' })).toBe('INVALID_RESULT');
    expect(resultCode('hello', { ...hello, agentVersion: 'v'.repeat(129) })).toBe('INVALID_RESULT');
    expect(resultCode('hello', { ...hello, containers: Array(257).fill(running) })).toBe('INVALID_RESULT');
    expect(resultCode('hello', { ...hello, containers: Array(256).fill(running) })).toBe('accepted');
    expect(resultCode('hello', { ...hello, execs: [{ ...hello.execs[0], execId: 'é'.repeat(65) }] })).toBe(
      'INVALID_RESULT',
    );
    expect(resultCode('hello', { ...hello, timings: { ...hello.timings, nowNs: 0.5 } })).toBe('INVALID_RESULT');
    // CLOCK_BOOTTIME passes 2^53 ns after 104 days: still accepted.
    expect(resultCode('hello', { ...hello, timings: { ...hello.timings, nowNs: 2 ** 60 } })).toBe('accepted');
    expect(resultCode('stats', { ...stats, output: {} })).toBe('INVALID_RESULT');
    expect(resultCode('stats', { ...stats, guest: { ...stats.guest, memTotalBytes: '1' } })).toBe('INVALID_RESULT');
    expect(resultCode('stats', { ...stats, containers: [{ ...stats.containers[0], pids: Infinity }] })).toBe(
      'INVALID_RESULT',
    );
    expect(resultCode('nope' as Op, {})).toBe('INVALID_RESULT');
    expect(resultCode('toString' as Op, {})).toBe('INVALID_RESULT');
  });

  it('validates container specs, which the host checks before sending', () => {
    expect(parseContainerSpec(spec)).toEqual(spec);
    expect(specCode({ limits: {} })).toBe('accepted');
    expect(
      specCode({ fsType: 'erofs', hostname: 'web.tenant-a', env: [], user: { uid: 1, gid: 2, additionalGids: [3] } }),
    ).toBe('accepted');
    expect(specCode({ name: 'Web' })).toBe('INVALID_MESSAGE');
    expect(specCode({ name: 'web-' })).toBe('INVALID_MESSAGE');
    expect(specCode({ name: 'w'.repeat(64) })).toBe('INVALID_MESSAGE');
    expect(specCode({ name: 'w'.repeat(63) })).toBe('accepted');
    expect(specCode({ disk: 'd'.repeat(21) })).toBe('INVALID_MESSAGE');
    expect(specCode({ disk: 'c0,cache=none' })).toBe('INVALID_MESSAGE');
    expect(specCode({ fsType: 'xfs' })).toBe('INVALID_MESSAGE');
    expect(specCode({ argv: [] })).toBe('INVALID_MESSAGE');
    expect(specCode({ argv: [''] })).toBe('INVALID_MESSAGE');
    expect(specCode({ argv: ['/bin/sh', 'a\0b'] })).toBe('INVALID_MESSAGE');
    expect(specCode({ argv: Array(MESSAGE_LIMITS.maxArgs + 1).fill('x') })).toBe('INVALID_MESSAGE');
    expect(specCode({ env: ['NOVALUE'] })).toBe('INVALID_MESSAGE');
    expect(specCode({ env: ['=x'] })).toBe('INVALID_MESSAGE');
    expect(specCode({ workingDir: 'relative' })).toBe('INVALID_MESSAGE');
    expect(specCode({ user: { uid: -1, gid: 0, additionalGids: [] } })).toBe('INVALID_MESSAGE');
    expect(specCode({ user: { uid: 0, gid: 0 } })).toBe('INVALID_MESSAGE');
    expect(specCode({ hostname: 'bad_host' })).toBe('INVALID_MESSAGE');
    expect(specCode({ limits: { memoryBytes: 0 } })).toBe('INVALID_MESSAGE');
    expect(specCode({ limits: { cpuMillis: 0.5 } })).toBe('INVALID_MESSAGE');
    expect(specCode({ limits: undefined })).toBe('INVALID_MESSAGE');
    expect(specCode({ writableLayerBytes: 0 })).toBe('INVALID_MESSAGE');
    expect(specCode({ writableLayerBytes: 2 ** 53 })).toBe('INVALID_MESSAGE');
  });

  it('refuses to send an invalid request', () => {
    expect(codeOf(() => encodeRequestFrame({ id: 1, op: 'signal', name: 'web', signal: 65 }))).toBe('INVALID_MESSAGE');
    expect(codeOf(() => encodeRequestFrame({ id: 0, op: 'ping' }))).toBe('INVALID_MESSAGE');
    const exec = requests.find((request) => request.op === 'exec');
    expect(codeOf(() => encodeRequestFrame({ ...exec, argv: [''] } as never))).toBe('INVALID_MESSAGE');
    expect(codeOf(() => encodeRequestFrame({ ...exec, execId: '' } as never))).toBe('INVALID_MESSAGE');
    expect(codeOf(() => encodeRequestFrame({ id: 1, op: 'run', container: { ...spec, name: '' } }))).toBe(
      'INVALID_MESSAGE',
    );
    expect(codeOf(() => encodeRequestFrame({ id: 1, op: 'reboot' } as never))).toBe('INVALID_MESSAGE');
    // Unknown fields are not sent.
    const sent = wire(encodeRequestFrame({ id: 1, op: 'ping', secret: 'x' } as never));
    expect(sent).toEqual({ id: 1, op: 'ping' });
  });

  it('encodes messages as kind 1 frames of the contract', () => {
    expect(wire(encodeJsonFrame({ id: 7, op: 'stats' }))).toEqual({ id: 7, op: 'stats' });
  });
});
