import { VmmError } from '../errors';
import { encodeQmpCommand, LineSplitter, parseQmpMessage } from '../qmp-codec';

describe('LineSplitter', () => {
  it('splits lines across chunks, keeps partial ones, drops \\r', () => {
    const s = new LineSplitter(100);
    expect(s.push(Buffer.from('{"a":1}\r\n{"b"'))).toEqual(['{"a":1}']);
    expect(s.pending).toBe(4);
    expect(s.push(Buffer.from(':2}'))).toEqual([]);
    expect(s.push(Buffer.from('\n\n{"c":3}\n{"d"'))).toEqual(['{"b":2}', '', '{"c":3}']);
    expect(s.push(Buffer.from(':4}\n'))).toEqual(['{"d":4}']);
    expect(s.pending).toBe(0);
  });

  it('decodes a UTF-8 character split between chunks', () => {
    const s = new LineSplitter(100);
    const bytes = Buffer.from('{"desc":"é"}\n');
    const cut = bytes.indexOf(0xc3) + 1;
    expect(s.push(bytes.subarray(0, cut))).toEqual([]);
    expect(s.push(bytes.subarray(cut))).toEqual(['{"desc":"é"}']);
  });

  it('throws QMP_PROTOCOL on a line longer than the bound, without buffering it', () => {
    const s = new LineSplitter(10);
    expect(s.push(Buffer.from('0123456789\n'))).toEqual(['0123456789']);
    expect(s.push(Buffer.from('01234'))).toEqual([]);
    expect(() => s.push(Buffer.from('567890'))).toThrow(VmmError);
    expect(s.pending).toBeLessThanOrEqual(10);
    const big = new LineSplitter(1024);
    expect(() => big.push(Buffer.alloc(10 * 1024 * 1024, 0x41))).toThrow(/longer than 1024 bytes/);
  });
});

describe('parseQmpMessage', () => {
  it('parses a greeting, replies, errors and events', () => {
    expect(
      parseQmpMessage('{"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}}, "capabilities": ["oob"]}}'),
    ).toEqual({ kind: 'greeting', version: { qemu: { micro: 22, minor: 2, major: 7 } }, capabilities: ['oob'] });
    expect(parseQmpMessage('{"return": {"status": "running", "running": true}, "id": "caas-2"}')).toEqual({
      kind: 'return',
      id: 'caas-2',
      value: { status: 'running', running: true },
    });
    expect(parseQmpMessage('{"return": {}}')).toEqual({ kind: 'return', id: undefined, value: {} });
    expect(parseQmpMessage('{"id": "caas-3", "error": {"class": "CommandNotFound", "desc": "nope"}}')).toEqual({
      kind: 'error',
      id: 'caas-3',
      errorClass: 'CommandNotFound',
      desc: 'nope',
    });
    expect(
      parseQmpMessage(
        '{"timestamp": {"seconds": 1764416000, "microseconds": 12}, "event": "SHUTDOWN", "data": {"guest": false, "reason": "host-qmp-quit"}}',
      ),
    ).toEqual({
      kind: 'event',
      event: {
        event: 'SHUTDOWN',
        data: { guest: false, reason: 'host-qmp-quit' },
        timestamp: { seconds: 1764416000, microseconds: 12 },
      },
    });
    expect(parseQmpMessage('{"event": "STOP"}')).toEqual({ kind: 'event', event: { event: 'STOP', data: {} } });
  });

  it('ignores a non-string id (it cannot be ours)', () => {
    expect(parseQmpMessage('{"return": {}, "id": 7}')).toMatchObject({ id: undefined });
  });

  it.each([
    ['not JSON', '{"return": '],
    ['an array', '[1,2]'],
    ['a string', '"hello"'],
    ['null', 'null'],
    ['unknown object', '{"hello": 1}'],
    ['greeting without object', '{"QMP": 1}'],
    ['error without object', '{"error": "x"}'],
    ['event without a name', '{"event": 5}'],
  ])('rejects %s with QMP_PROTOCOL', (_name, line) => {
    expect(() => parseQmpMessage(line)).toThrow(expect.objectContaining({ code: 'QMP_PROTOCOL' }));
  });

  it('does not let "__proto__" pollute anything', () => {
    const message = parseQmpMessage('{"event": "X", "data": {"__proto__": {"polluted": true}}}');
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(message.kind).toBe('event');
  });
});

describe('encodeQmpCommand', () => {
  it('encodes one line with id and optional arguments', () => {
    expect(encodeQmpCommand('query-status', 'caas-1')).toBe('{"execute":"query-status","id":"caas-1"}\n');
    expect(encodeQmpCommand('human-monitor-command', 'caas-2', { 'command-line': 'info\nx' })).toBe(
      '{"execute":"human-monitor-command","arguments":{"command-line":"info\\nx"},"id":"caas-2"}\n',
    );
  });
});
