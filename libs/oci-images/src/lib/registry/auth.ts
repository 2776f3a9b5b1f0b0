/**
 * Registry authentication: `WWW-Authenticate` challenges (RFC 7235, as registries send them), a tenant's
 * credentials, and the cache of bearer tokens, keyed so that a token fetched with one tenant's credentials is
 * never presented for another.
 */
import { createHash } from 'node:crypto';

/** A tenant's registry credential. */
export interface Credentials {
  readonly username: string;
  readonly password: string;
}

export type AuthChallenge =
  | {
      readonly scheme: 'bearer';
      readonly realm: string;
      readonly service?: string;
      readonly scope?: string;
      /** `insufficient_scope`, `invalid_token`, … when a token was refused. */
      readonly error?: string;
    }
  | { readonly scheme: 'basic'; readonly realm?: string };

const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

/**
 * Parses a `WWW-Authenticate` header value into its Bearer and Basic challenges (several may share one header,
 * comma-separated). Parameter names are case-insensitive; values may be tokens or quoted strings with `\` escapes
 * and commas. Other schemes, and Bearer challenges without a realm, are left out.
 */
export function parseWwwAuthenticate(header: string): AuthChallenge[] {
  let pos = 0;
  const skipSpace = (): void => {
    while (pos < header.length && (header[pos] === ' ' || header[pos] === '\t')) pos++;
  };
  const readToken = (): string => {
    const start = pos;
    while (pos < header.length && TOKEN_CHAR.test(header[pos] ?? '')) pos++;
    return header.slice(start, pos);
  };
  const readQuoted = (): string => {
    let value = '';
    pos++; // opening quote
    while (pos < header.length && header[pos] !== '"') {
      if (header[pos] === '\\' && pos + 1 < header.length) pos++;
      value += header[pos];
      pos++;
    }
    pos++; // closing quote (or past the end of an unterminated string)
    return value;
  };
  /** An unquoted value: a token per the RFC, but some servers send URLs unquoted; up to a comma or space. */
  const readBare = (): string => {
    const start = pos;
    while (pos < header.length && !/[\s,]/.test(header[pos] ?? '')) pos++;
    return header.slice(start, pos);
  };
  /** At `name =` (a parameter), not at the next challenge's scheme or a token68. */
  const atParameter = (): boolean => {
    const save = pos;
    const name = readToken();
    skipSpace();
    const is = name.length > 0 && header[pos] === '=' && header[pos + 1] !== '=';
    pos = save;
    return is;
  };
  const skipPastComma = (): void => {
    while (pos < header.length && header[pos] !== ',') pos++;
    pos++;
  };

  const challenges: AuthChallenge[] = [];
  while (pos < header.length) {
    while (pos < header.length && /[\s,]/.test(header[pos] ?? '')) pos++;
    const scheme = readToken().toLowerCase();
    if (scheme.length === 0) {
      skipPastComma();
      continue;
    }
    const params = new Map<string, string>();
    for (;;) {
      skipSpace();
      if (!atParameter()) {
        // A token68 (`Negotiate abc==`) or garbage: skip to the next comma, which may start a new challenge.
        if (pos < header.length && header[pos] !== ',') skipPastComma();
        break;
      }
      const name = readToken().toLowerCase();
      skipSpace();
      pos++; // '='
      skipSpace();
      const value = header[pos] === '"' ? readQuoted() : readBare();
      if (!params.has(name)) params.set(name, value);
      skipSpace();
      if (header[pos] !== ',') {
        if (pos < header.length) skipPastComma();
        break;
      }
      pos++; // ','
      skipSpace();
      while (header[pos] === ',') {
        pos++;
        skipSpace();
      }
      if (!atParameter()) break; // the next challenge's scheme
    }
    if (scheme === 'bearer') {
      const realm = params.get('realm');
      if (realm !== undefined && realm.length > 0) {
        challenges.push({
          scheme,
          realm,
          ...optional('service', params.get('service')),
          ...optional('scope', params.get('scope')),
          ...optional('error', params.get('error')),
        });
      }
    } else if (scheme === 'basic') {
      challenges.push({ scheme, ...optional('realm', params.get('realm')) });
    }
  }
  return challenges;
}

function optional<K extends string>(key: K, value: string | undefined): { [P in K]?: string } {
  return (value === undefined ? {} : { [key]: value }) as { [P in K]?: string };
}

export function basicAuthorization(credentials: Credentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`, 'utf8').toString('base64')}`;
}

/** Who a token was issued to: a hash of the credentials (never the credentials themselves), or anonymous. */
export function credentialIdentity(credentials: Credentials | undefined): string {
  if (credentials === undefined) return 'anonymous';
  return createHash('sha256')
    .update(JSON.stringify([credentials.username, credentials.password]))
    .digest('hex');
}

/** The token cache's key: registry, repository (the `repository:<name>:pull` scope) and credential identity. */
export function tokenCacheKey(registry: string, repository: string, credentials: Credentials | undefined): string {
  return createHash('sha256')
    .update(JSON.stringify([registry, repository, credentialIdentity(credentials)]))
    .digest('hex');
}

/**
 * Bearer tokens until they expire, a little early (a tenth of their life, at most 30 s, so that a token does not
 * expire between our check and the registry's). Bounded: past `maxEntries`, expired and then oldest entries go.
 */
export class TokenCache {
  private readonly entries = new Map<string, { token: string; expiresAt: number }>();

  constructor(
    private readonly maxEntries = 1000,
    private readonly now: () => number = Date.now,
  ) {}

  get(key: string): string | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.token;
  }

  /** `expiresInSeconds` as the token service said (`expires_in`); nothing is cached for a token of no life. */
  set(key: string, token: string, expiresInSeconds: number): void {
    const lifeMs = expiresInSeconds * 1000;
    const expiresAt = this.now() + lifeMs - Math.min(30_000, lifeMs / 10);
    this.entries.delete(key);
    if (!(expiresAt > this.now())) return;
    this.entries.set(key, { token, expiresAt });
    if (this.entries.size > this.maxEntries) {
      const now = this.now();
      for (const [k, e] of this.entries) if (e.expiresAt <= now) this.entries.delete(k);
      for (const k of this.entries.keys()) {
        if (this.entries.size <= this.maxEntries) break;
        this.entries.delete(k);
      }
    }
  }

  /** Forgets a token the registry refused; only that one (a concurrent request may have cached a newer one). */
  delete(key: string, token?: string): void {
    if (token === undefined || this.entries.get(key)?.token === token) this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }
}
