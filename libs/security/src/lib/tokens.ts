import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Bearer tokens: `<kind>_<43 chars of base64url>` carrying 256 bits from the CSPRNG. */
export type TokenKind = 'caas' | 'caasjoin';

const TOKEN_BYTES = 32;
const DISPLAY_SECRET_CHARS = 6;
const TOKEN_PATTERN = /^(caas|caasjoin)_[A-Za-z0-9_-]{43}$/;

export interface IssuedToken {
  /** The whole token: shown once, never stored. */
  token: string;
  /** SHA-256 of the token: what the database keeps. */
  hash: Uint8Array<ArrayBuffer>;
  /** Enough of the token to recognise it in a list, not enough to use it. */
  prefix: string;
}

export function issueToken(kind: TokenKind = 'caas'): IssuedToken {
  const token = `${kind}_${randomBytes(TOKEN_BYTES).toString('base64url')}`;
  return { token, hash: hashToken(token), prefix: displayPrefix(token) };
}

/** SHA-256 of a token, as the plain byte array the database driver takes. */
export function hashToken(token: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(createHash('sha256').update(token, 'utf8').digest());
}

export function displayPrefix(token: string): string {
  const underscore = token.indexOf('_');
  return token.slice(0, underscore + 1 + DISPLAY_SECRET_CHARS);
}

/** Cheap syntactic check, so malformed input never reaches the database. */
export function looksLikeToken(token: string, kind?: TokenKind): boolean {
  const match = TOKEN_PATTERN.exec(token);
  return match !== null && (kind === undefined || match[1] === kind);
}

/** Constant-time comparison of a presented secret against a stored SHA-256 hash. */
export function matchesHash(presented: string, expected: Uint8Array): boolean {
  const actual = hashToken(presented);
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}
