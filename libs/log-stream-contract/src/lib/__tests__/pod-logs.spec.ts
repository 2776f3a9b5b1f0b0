import {
  decodeLogEntry,
  encodeLogEntry,
  POD_LOG_LINE_MAX_BYTES,
  podLogStreamKey,
  truncateUtf8,
  xaddArguments,
} from '../pod-logs';

const POD = '3f1e2d4c-5b6a-4789-8abc-def012345678';
const ID = '1700000000000-0';

describe('pod log stream contract', () => {
  it('names one stream per pod, lower-case', () => {
    expect(podLogStreamKey(POD.toUpperCase())).toBe(`caas:logs:pod:${POD}`);
  });

  it('encodes an entry as XADD arguments bounded by MAXLEN ~, and decodes it back', () => {
    const entry = { container: 'web', stream: 'stderr' as const, line: 'boom', timeMs: 1_699_999_999_999 };
    expect(xaddArguments(POD, entry)).toEqual([
      `caas:logs:pod:${POD}`,
      'MAXLEN',
      '~',
      '10000',
      '*',
      'c',
      'web',
      's',
      'e',
      'l',
      'boom',
      't',
      '1699999999999',
    ]);
    expect(decodeLogEntry(ID, encodeLogEntry(entry))).toEqual({ id: ID, ...entry });
    expect(decodeLogEntry(ID, encodeLogEntry({ ...entry, stream: 'stdout' }))?.stream).toBe('stdout');
  });

  it('refuses entries a node got wrong or forged', () => {
    const good = ['c', 'web', 's', 'o', 'l', 'x', 't', '1'];
    expect(decodeLogEntry(ID, good)).not.toBeNull();
    expect(decodeLogEntry('not-an-id', good)).toBeNull();
    expect(decodeLogEntry(ID, good.slice(0, -1))).toBeNull(); // odd field list
    expect(decodeLogEntry(ID, ['s', 'o', 'l', 'x'])).toBeNull(); // no container
    expect(decodeLogEntry(ID, ['c', 'Web!', 's', 'o', 'l', 'x'])).toBeNull(); // not a container name
    expect(decodeLogEntry(ID, ['c', 'web', 's', 'x', 'l', 'x'])).toBeNull(); // unknown stream
    expect(decodeLogEntry(ID, ['c', 'web', 's', 'o'])).toBeNull(); // no line
  });

  it('ignores unknown fields, and falls back to the append time for a missing or absurd capture time', () => {
    expect(decodeLogEntry(ID, ['c', 'web', 's', 'o', 'l', 'x', 'z', 'new'])?.timeMs).toBe(1_700_000_000_000);
    expect(decodeLogEntry(ID, ['c', 'web', 's', 'o', 'l', 'x', 't', 'soon'])?.timeMs).toBe(1_700_000_000_000);
    expect(decodeLogEntry(ID, ['c', 'web', 's', 'o', 'l', 'x', 't', '9999999999999'])?.timeMs).toBe(1_700_000_000_000);
  });

  it('cuts over-long lines at 16 KiB of UTF-8 without splitting a character', () => {
    const long = 'é'.repeat(POD_LOG_LINE_MAX_BYTES); // 2 bytes each
    const decoded = decodeLogEntry(ID, ['c', 'web', 's', 'o', 'l', long]);
    expect(decoded?.line).toBe('é'.repeat(POD_LOG_LINE_MAX_BYTES / 2));
    const odd = `a${'€'.repeat(POD_LOG_LINE_MAX_BYTES)}`; // 1 + 3 bytes each
    const cut = truncateUtf8(odd);
    expect(new TextEncoder().encode(cut).length).toBeLessThanOrEqual(POD_LOG_LINE_MAX_BYTES);
    expect(cut).toBe(`a${'€'.repeat(Math.floor((POD_LOG_LINE_MAX_BYTES - 1) / 3))}`);
    expect(truncateUtf8('short')).toBe('short');
  });
});
