import { VmmError } from './errors';

/**
 * Splits a byte stream into newline-terminated lines (pure, incremental). QEMU runs guest-influenced code, so
 * its output is bounded: a line longer than `maxLineBytes` (without its newline) is a protocol error, and no
 * more than that is ever buffered. Lines are decoded as UTF-8 only once complete, so a character split across
 * chunks survives. A trailing `\r` is dropped.
 */
export class LineSplitter {
  private parts: Buffer[] = [];
  private size = 0;

  constructor(readonly maxLineBytes: number) {}

  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(0x0a, start); nl >= 0; nl = chunk.indexOf(0x0a, start)) {
      this.append(chunk.subarray(start, nl));
      let line = Buffer.concat(this.parts, this.size).toString('utf8');
      if (line.endsWith('\r')) line = line.slice(0, -1);
      lines.push(line);
      this.parts = [];
      this.size = 0;
      start = nl + 1;
    }
    this.append(chunk.subarray(start));
    return lines;
  }

  /** Bytes of an incomplete line held. */
  get pending(): number {
    return this.size;
  }

  private append(bytes: Buffer): void {
    if (bytes.length === 0) return;
    if (this.size + bytes.length > this.maxLineBytes) {
      throw new VmmError('QMP_PROTOCOL', `QMP line longer than ${this.maxLineBytes} bytes`);
    }
    this.parts.push(Buffer.from(bytes));
    this.size += bytes.length;
  }
}

export interface QmpTimestamp {
  seconds: number;
  microseconds: number;
}

/** An asynchronous QMP event, e.g. `SHUTDOWN` (`data.guest`, `data.reason`), `GUEST_PANICKED`, `STOP`. */
export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
  timestamp?: QmpTimestamp;
}

export type QmpMessage =
  | { kind: 'greeting'; version: unknown; capabilities: string[] }
  | { kind: 'return'; id: string | undefined; value: unknown }
  | { kind: 'error'; id: string | undefined; errorClass: string; desc: string }
  | { kind: 'event'; event: QmpEvent };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function bad(message: string): never {
  throw new VmmError('QMP_PROTOCOL', message);
}

function idOf(message: Record<string, unknown>): string | undefined {
  const id = message['id'];
  return typeof id === 'string' ? id : undefined;
}

/** Parses and shape-checks one QMP line (pure). Throws QMP_PROTOCOL for anything that is not a QMP message. */
export function parseQmpMessage(line: string): QmpMessage {
  let message: unknown;
  try {
    message = JSON.parse(line);
  } catch {
    bad(`QMP sent invalid JSON (${line.length} characters)`);
  }
  if (!isObject(message)) bad('QMP message is not a JSON object');
  if ('QMP' in message) {
    const qmp = message['QMP'];
    if (!isObject(qmp)) bad('QMP greeting without an object');
    const capabilities = qmp['capabilities'];
    return {
      kind: 'greeting',
      version: qmp['version'],
      capabilities: Array.isArray(capabilities) ? capabilities.filter((c): c is string => typeof c === 'string') : [],
    };
  }
  if ('return' in message) return { kind: 'return', id: idOf(message), value: message['return'] };
  if ('error' in message) {
    const error = message['error'];
    if (!isObject(error)) bad('QMP error without an object');
    return {
      kind: 'error',
      id: idOf(message),
      errorClass: typeof error['class'] === 'string' ? error['class'] : 'GenericError',
      desc: typeof error['desc'] === 'string' ? error['desc'] : '',
    };
  }
  if (typeof message['event'] === 'string') {
    const data = message['data'];
    const ts = message['timestamp'];
    const timestamp =
      isObject(ts) && typeof ts['seconds'] === 'number' && typeof ts['microseconds'] === 'number'
        ? { seconds: ts['seconds'], microseconds: ts['microseconds'] }
        : undefined;
    return {
      kind: 'event',
      event: { event: message['event'], data: isObject(data) ? data : {}, ...(timestamp ? { timestamp } : {}) },
    };
  }
  bad('QMP message is neither a greeting, a reply nor an event');
}

/** One command as a QMP line (pure). */
export function encodeQmpCommand(command: string, id: string, args?: Record<string, unknown>): string {
  return `${JSON.stringify({ execute: command, ...(args !== undefined ? { arguments: args } : {}), id })}\n`;
}
