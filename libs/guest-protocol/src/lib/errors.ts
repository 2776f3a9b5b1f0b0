/**
 * The one error this library throws. Everything the guest sends is hostile input: a violation of the contract
 * is reported as a ProtocolError with a stable `code`, and the caller drops that connection.
 */

export const PROTOCOL_ERROR_CODES = [
  /** The first two bytes of a frame are not `0xCA 0x5A`. */
  'BAD_MAGIC',
  /** The frame version is not 1. */
  'BAD_VERSION',
  /** A frame kind other than 1–4. */
  'UNKNOWN_KIND',
  /** A known kind on the wrong port (kind 1 only on `caas.ctl`, kinds 2–4 only on `caas.out`). */
  'UNEXPECTED_KIND',
  /** The length field is over the kind's limit (JSON payload 65,536; whole kind 2–4 frame 32,768). */
  'FRAME_TOO_LARGE',
  /** A payload length the kind cannot have (gap ≠ 16, replay start ≠ 8, output chunk < 12). */
  'BAD_LENGTH',
  /** A JSON payload or an output source that is not valid UTF-8. */
  'INVALID_UTF8',
  /** A JSON payload that does not parse. */
  'INVALID_JSON',
  /** A JSON payload that parses to something other than an object (array, string, null, …). */
  'JSON_NOT_OBJECT',
  /** An output chunk whose stream is not 1 (stdout) or 2 (stderr). */
  'BAD_STREAM',
  /** An output chunk whose source length is 0, over 128, or runs past the payload. */
  'BAD_SOURCE',
  /** An output chunk without data. */
  'EMPTY_DATA',
  /** An output chunk with more than 16,384 bytes of data. */
  'DATA_TOO_LARGE',
  /** A sequence number of 0, or over Number.MAX_SAFE_INTEGER. */
  'BAD_SEQ',
  /** An output gap with `fromSeq > toSeq`. */
  'BAD_GAP',
  /** The stream ended inside a frame (FrameDecoder.end). */
  'TRUNCATED',
  /** A JSON message (request, response or event) that does not match the contract. */
  'INVALID_MESSAGE',
  /** The result of a successful response that does not match its op. */
  'INVALID_RESULT',
] as const;

export type ProtocolErrorCode = (typeof PROTOCOL_ERROR_CODES)[number];

/** Longest message a ProtocolError carries: details may quote guest input, which is bounded here. */
const MAX_ERROR_MESSAGE = 300;

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';

  constructor(
    readonly code: ProtocolErrorCode,
    message: string,
  ) {
    super(message.length > MAX_ERROR_MESSAGE ? `${message.slice(0, MAX_ERROR_MESSAGE)}…` : message);
  }
}

export const isProtocolError = (error: unknown): error is ProtocolError => error instanceof ProtocolError;
