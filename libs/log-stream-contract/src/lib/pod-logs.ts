/**
 * Pod output in Redis: one stream per pod, written by the agent of the node running the pod, read by the
 * API (`podLogs` query and subscription). Pure definitions; no I/O. See docs/adr-005-logs-and-events.md.
 */

/** Every pod log stream starts with this. */
export const POD_LOG_KEY_PREFIX = 'caas:logs:pod:';

/** The Redis stream holding one pod's output, all containers interleaved in arrival order. */
export const podLogStreamKey = (podId: string): string => `${POD_LOG_KEY_PREFIX}${podId.toLowerCase()}`;

/**
 * Approximate number of entries the agent keeps per pod: `XADD key MAXLEN ~ POD_LOG_STREAM_MAXLEN * …`.
 * Older lines are trimmed; the stream is a bounded tail, not an archive.
 */
export const POD_LOG_STREAM_MAXLEN = 10_000;

/** Longest line one entry carries, in bytes of UTF-8. The agent splits longer output into several entries. */
export const POD_LOG_LINE_MAX_BYTES = 16 * 1024;

/** The agent sets (and refreshes) this TTL, so the streams of pods that are gone disappear on their own. */
export const POD_LOG_STREAM_TTL_SECONDS = 7 * 24 * 3600;

/** Field names of a stream entry: short, since they are repeated in every entry. */
export const LogEntryField = {
  /** Container name (the pod spec's name, a DNS label). */
  container: 'c',
  /** `o` for stdout, `e` for stderr. */
  stream: 's',
  /** The line, without its trailing newline, at most POD_LOG_LINE_MAX_BYTES of UTF-8. */
  line: 'l',
  /** When the line was captured, in milliseconds since the epoch (decimal). */
  time: 't',
} as const;

export type LogStreamName = 'stdout' | 'stderr';

const STREAM_CODE: Record<LogStreamName, string> = { stdout: 'o', stderr: 'e' };

export interface PodLogEntry {
  container: string;
  stream: LogStreamName;
  line: string;
  /** Capture time, milliseconds since the epoch. */
  timeMs: number;
}

/** One entry as read back, with its stream id (`<ms>-<seq>`, assigned by Redis, strictly increasing). */
export interface PodLogRecord extends PodLogEntry {
  id: string;
}

const CONTAINER_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const STREAM_ID = /^(\d{1,20})-(\d{1,20})$/;

export const isContainerName = (name: string): boolean => CONTAINER_NAME.test(name);
export const isStreamId = (id: string): boolean => STREAM_ID.test(id);

/** The millisecond part of a stream id (when Redis appended the entry). */
export function streamIdTimeMs(id: string): number {
  const match = STREAM_ID.exec(id);
  return match === null ? Number.NaN : Number(match[1]);
}

/** The XADD field/value list of an entry (what the agent appends). */
export function encodeLogEntry(entry: PodLogEntry): string[] {
  return [
    LogEntryField.container,
    entry.container,
    LogEntryField.stream,
    STREAM_CODE[entry.stream],
    LogEntryField.line,
    entry.line,
    LogEntryField.time,
    String(Math.trunc(entry.timeMs)),
  ];
}

/** The whole XADD argument list after the command name: bounded by MAXLEN ~, id assigned by Redis. */
export function xaddArguments(podId: string, entry: PodLogEntry, maxLen = POD_LOG_STREAM_MAXLEN): string[] {
  return [podLogStreamKey(podId), 'MAXLEN', '~', String(maxLen), '*', ...encodeLogEntry(entry)];
}

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** Cuts a string to at most `maxBytes` of UTF-8 without splitting a character. */
export function truncateUtf8(text: string, maxBytes = POD_LOG_LINE_MAX_BYTES): string {
  // Cheap exit: no string of n UTF-16 units is longer than 3n bytes of UTF-8.
  if (text.length * 3 <= maxBytes) return text;
  const bytes = utf8.encode(text);
  if (bytes.length <= maxBytes) return text;
  let end = maxBytes;
  // Back up to the start of a character: continuation bytes are 10xxxxxx.
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
  return fromUtf8.decode(bytes.subarray(0, end));
}

/**
 * Reads one stream entry back. Entries are written by a node, which the control plane does not trust: an
 * entry with a missing or malformed field is refused (`null`), an over-long line is cut, a missing or
 * absurd capture time falls back to the time Redis appended the entry.
 */
export function decodeLogEntry(id: string, fields: readonly string[]): PodLogRecord | null {
  if (!isStreamId(id) || fields.length % 2 !== 0) return null;
  let container: string | undefined;
  let streamCode: string | undefined;
  let line: string | undefined;
  let time: string | undefined;
  for (let i = 0; i < fields.length; i += 2) {
    const value = fields[i + 1];
    switch (fields[i]) {
      case LogEntryField.container:
        container = value;
        break;
      case LogEntryField.stream:
        streamCode = value;
        break;
      case LogEntryField.line:
        line = value;
        break;
      case LogEntryField.time:
        time = value;
        break;
      default:
        // Unknown fields are ignored: a newer agent may add some.
        break;
    }
  }
  if (container === undefined || !isContainerName(container) || line === undefined) return null;
  const stream: LogStreamName | null = streamCode === 'o' ? 'stdout' : streamCode === 'e' ? 'stderr' : null;
  if (stream === null) return null;
  const appendedMs = streamIdTimeMs(id);
  const captured = time !== undefined && /^\d{1,15}$/.test(time) ? Number(time) : Number.NaN;
  // A capture time far in the future of when the entry was appended is a lie or a broken clock.
  const timeMs = Number.isFinite(captured) && captured <= appendedMs + 24 * 3600 * 1000 ? captured : appendedMs;
  return { id, container, stream, line: truncateUtf8(line), timeMs };
}
