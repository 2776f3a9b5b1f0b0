/**
 * A pull-only client of the OCI distribution API: resolves references to manifests (an index to its linux/amd64
 * image), streams blobs verified against their digests, and handles registry auth (Bearer tokens, Basic) with
 * tenants' credentials kept apart. Every failure is an ImageError with a stable code.
 *
 * Credentials only ever go to the registry's own origin (or its token realm), over HTTPS unless the host is
 * allowed plain HTTP; redirects (blob storage) are followed without them.
 */
import { Readable } from 'node:stream';
import type { ReadableStreamReadResult } from 'node:stream/web';
import { DigestVerifier, digestOf, parseDigest, type Digest } from '../digest';
import { ImageError, isImageError, type ImageErrorCode } from '../errors';
import {
  basicAuthorization,
  parseWwwAuthenticate,
  TokenCache,
  tokenCacheKey,
  type AuthChallenge,
  type Credentials,
} from './auth';
import {
  MANIFEST_ACCEPT,
  parseManifest,
  selectPlatform,
  type ConfigDescriptor,
  type Descriptor,
  type ImageManifestMediaType,
  type LayerDescriptor,
  type Manifest,
} from './manifest';
import { parseReference, type ImageReference } from './reference';

export interface RetryOptions {
  /** Attempts in all, the first included (default 4). */
  readonly attempts?: number;
  /** The first retry's delay; each next one doubles, with jitter (default 200 ms). */
  readonly baseMs?: number;
  /** The longest delay (default 5 s). */
  readonly maxMs?: number;
}

export interface RegistryClientOptions {
  /** Hosts (names or addresses, without port or brackets) spoken to over plain HTTP. Default: loopback only. */
  readonly plainHttp?: (host: string) => boolean;
  readonly retry?: RetryOptions;
  /** The longest wait for a response's headers, and the longest silence while a body streams (default 30 s). */
  readonly timeoutMs?: number;
  /** Default 4 MiB. */
  readonly maxManifestBytes?: number;
  /** Default 4 MiB. */
  readonly maxConfigBytes?: number;
  /** Default 128. */
  readonly maxLayers?: number;
  readonly userAgent?: string;
}

export interface RequestOptions {
  /** Cancels the request (and a blob's stream): the abort reason is thrown, or emitted on the stream. */
  readonly signal?: AbortSignal;
}

/** What a reference resolved to. */
export interface ResolvedImage {
  readonly reference: ImageReference;
  /** What the reference resolved to (the index's digest for a multi-platform image): the pod is pinned to it. */
  readonly digest: Digest;
  /** The linux/amd64 image manifest's digest (the same as `digest` for a single-platform image). */
  readonly manifestDigest: Digest;
  readonly mediaType: ImageManifestMediaType;
  readonly config: ConfigDescriptor;
  readonly layers: readonly LayerDescriptor[];
}

export interface ConfigBlob {
  readonly descriptor: Descriptor;
  /** The verified bytes. */
  readonly raw: Buffer;
  /** They parsed: a JSON object (what it means is parseImageRunConfig's business). */
  readonly json: Readonly<Record<string, unknown>>;
}

const DEFAULT_PLAIN_HTTP = new Set(['127.0.0.1', '::1', 'localhost']);
const MAX_REDIRECTS = 5;
const MAX_ERROR_BODY = 64 * 1024;
const MAX_TOKEN_BODY = 1024 * 1024;
const DEFAULT_TOKEN_LIFE_S = 60; // the token spec's default when `expires_in` is missing

/** The delay before retry number `retry` (1 for the first): exponential, capped, half of it random. */
export function backoffDelay(
  retry: number,
  options: { baseMs: number; maxMs: number },
  random: () => number = Math.random,
): number {
  const cap = Math.min(options.maxMs, options.baseMs * 2 ** Math.max(0, retry - 1));
  return cap / 2 + (random() * cap) / 2;
}

/** A failure worth another attempt (connection error, timeout, 5xx, 429). */
class Retryable extends Error {
  constructor(
    message: string,
    readonly retryAfterMs?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

interface Sent {
  readonly response: Response;
  readonly url: URL;
  /** Whether the response came from the registry's own origin (not a redirect to blob storage). */
  readonly fromRegistry: boolean;
  /** Aborts the exchange (its body's stream errors with the reason). */
  readonly abort: (reason: unknown) => void;
}

type Authorization =
  | { readonly kind: 'bearer'; readonly header: string; readonly key: string; readonly token: string }
  | { readonly kind: 'basic'; readonly header: string };

interface DistributionError {
  readonly code: string;
  readonly message: string;
}

export class RegistryClient {
  private readonly plainHttp: (host: string) => boolean;
  private readonly retry: { attempts: number; baseMs: number; maxMs: number };
  private readonly timeoutMs: number;
  private readonly maxManifestBytes: number;
  private readonly maxConfigBytes: number;
  private readonly maxLayers: number;
  private readonly userAgent: string;
  private readonly tokens = new TokenCache();
  private readonly tokenFetches = new Map<string, Promise<string>>();
  /** Registries that challenged with Basic: credentials are sent to them at once, sparing a round trip. */
  private readonly basicRegistries = new Set<string>();

  constructor(options: RegistryClientOptions = {}) {
    this.plainHttp = options.plainHttp ?? ((host) => DEFAULT_PLAIN_HTTP.has(host));
    this.retry = {
      attempts: Math.max(1, options.retry?.attempts ?? 4),
      baseMs: options.retry?.baseMs ?? 200,
      maxMs: options.retry?.maxMs ?? 5000,
    };
    this.timeoutMs = options.timeoutMs ?? 30_000;
    this.maxManifestBytes = options.maxManifestBytes ?? 4 * 1024 * 1024;
    this.maxConfigBytes = options.maxConfigBytes ?? 4 * 1024 * 1024;
    this.maxLayers = options.maxLayers ?? 128;
    this.userAgent = options.userAgent ?? 'caas-oci-images';
  }

  /**
   * Resolves a reference to its image manifest: an index or manifest list to its linux/amd64 entry. Manifests are
   * verified against the digest they were asked by (and against `Docker-Content-Digest`).
   */
  async resolve(
    reference: ImageReference | string,
    credentials?: Credentials,
    options: RequestOptions = {},
  ): Promise<ResolvedImage> {
    const ref = typeof reference === 'string' ? parseReference(reference) : reference;
    const top = await this.getManifest(ref, ref.manifestReference, ref.digest, undefined, credentials, options);
    if (top.manifest.kind === 'image') {
      return { reference: ref, digest: top.digest, manifestDigest: top.digest, ...image(top.manifest) };
    }
    const entry = selectPlatform(top.manifest.manifests);
    const child = await this.getManifest(ref, entry.digest, entry.digest, entry.size, credentials, options);
    if (child.manifest.kind !== 'image') {
      throw new ImageError('UNSUPPORTED_MANIFEST', `${entry.digest}: an index inside an index is not supported`);
    }
    return { reference: ref, digest: top.digest, manifestDigest: child.digest, ...image(child.manifest) };
  }

  /**
   * A blob's bytes, verified as they stream: the stream errors (SIZE_MISMATCH at once when more than the
   * descriptor's size comes, DIGEST_MISMATCH or SIZE_MISMATCH at the end) instead of ending on bad content, and
   * errors with REGISTRY_UNAVAILABLE when the connection breaks or stalls. Connection errors and 5xx are retried
   * until the response starts; after that, the caller retries the whole blob.
   */
  async fetchBlob(
    reference: ImageReference | string,
    descriptor: Descriptor,
    credentials?: Credentials,
    options: RequestOptions = {},
  ): Promise<Readable> {
    const ref = typeof reference === 'string' ? parseReference(reference) : reference;
    const digest = parseDigest(descriptor.digest);
    if (!Number.isSafeInteger(descriptor.size) || descriptor.size < 0) {
      throw new ImageError('SIZE_MISMATCH', `${digest}: bad descriptor size ${descriptor.size}`);
    }
    const sent = await this.request(ref, `blobs/${digest}`, '*/*', credentials, options.signal);
    const length = contentLength(sent.response);
    if (length !== undefined && length !== descriptor.size) {
      sent.abort(new Error('wrong length'));
      throw new ImageError(
        'SIZE_MISMATCH',
        `${digest}: the registry sends ${length} bytes, ${descriptor.size} announced`,
      );
    }
    return new VerifiedBlobStream(sent, new DigestVerifier(digest, descriptor.size), this.timeoutMs, options.signal);
  }

  /** Downloads and verifies a small JSON blob (an image's config): at most `maxConfigBytes`, a JSON object. */
  async fetchConfig(
    reference: ImageReference | string,
    descriptor: Descriptor,
    credentials?: Credentials,
    options: RequestOptions = {},
  ): Promise<ConfigBlob> {
    if (descriptor.size > this.maxConfigBytes) {
      throw new ImageError('TOO_LARGE', `the image config is ${descriptor.size} bytes, at most ${this.maxConfigBytes}`);
    }
    const stream = await this.fetchBlob(reference, descriptor, credentials, options);
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    let json: unknown;
    try {
      json = JSON.parse(raw.toString('utf8'));
    } catch {
      throw new ImageError('UNSUPPORTED_MANIFEST', `config ${descriptor.digest} is not JSON`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) {
      throw new ImageError('UNSUPPORTED_MANIFEST', `config ${descriptor.digest} is not a JSON object`);
    }
    return { descriptor, raw, json: json as Record<string, unknown> };
  }

  private async getManifest(
    ref: ImageReference,
    by: string,
    expected: Digest | undefined,
    expectedSize: number | undefined,
    credentials: Credentials | undefined,
    options: RequestOptions,
  ): Promise<{ digest: Digest; manifest: Manifest }> {
    if (expectedSize !== undefined && expectedSize > this.maxManifestBytes) {
      throw new ImageError('TOO_LARGE', `manifest ${by} is ${expectedSize} bytes, at most ${this.maxManifestBytes}`);
    }
    const sent = await this.request(ref, `manifests/${by}`, MANIFEST_ACCEPT.join(', '), credentials, options.signal);
    const length = contentLength(sent.response);
    if (length !== undefined && length > this.maxManifestBytes) {
      sent.abort(new Error('too large'));
      throw new ImageError('TOO_LARGE', `manifest ${by} is ${length} bytes, at most ${this.maxManifestBytes}`);
    }
    const body = await readBody(sent, this.maxManifestBytes, this.timeoutMs, options.signal, `manifest ${by}`);
    const digest = digestOf(body);
    if (expected !== undefined && digest !== expected) {
      throw new ImageError('DIGEST_MISMATCH', `manifest ${by}: content is ${digest}`);
    }
    if (expectedSize !== undefined && body.length !== expectedSize) {
      throw new ImageError('SIZE_MISMATCH', `manifest ${by}: ${body.length} bytes, ${expectedSize} announced`);
    }
    const announced = sent.response.headers.get('docker-content-digest')?.trim();
    // Only a sha256 one can be checked; another algorithm is the registry's business.
    if (announced !== undefined && announced.startsWith('sha256:') && announced !== digest) {
      throw new ImageError(
        'DIGEST_MISMATCH',
        `manifest ${by}: content is ${digest}, Docker-Content-Digest says ${announced}`,
      );
    }
    const manifest = parseManifest(body, sent.response.headers.get('content-type') ?? undefined, {
      maxLayers: this.maxLayers,
    });
    return { digest, manifest };
  }

  /**
   * GET `/v2/<repository>/<path>` with auth: a cached token (or Basic for a registry known to want it) at once;
   * on 401, the challenge's token (or Basic) and one more try. Returns a 2xx response; throws ImageError else.
   */
  private async request(
    ref: ImageReference,
    path: string,
    accept: string,
    credentials: Credentials | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Sent> {
    const origin = this.origin(ref.registry);
    const url = new URL(`/v2/${ref.repository}/${path}`, origin);
    const known = this.knownAuthorization(ref, credentials);
    const sent = await this.withRetries(signal, () => this.send(url, origin, accept, known, signal));
    if (sent.response.ok) return sent;
    if (sent.response.status !== 401 || !sent.fromRegistry) return this.fail(ref, path, sent, credentials);

    const challenges = parseWwwAuthenticate(sent.response.headers.get('www-authenticate') ?? '');
    const errors = await readErrors(sent); // reads the small body: the connection can serve the retry
    if (known?.kind === 'bearer' && known.key !== undefined) this.tokens.delete(known.key, known.token);
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const basic = challenges.find((c) => c.scheme === 'basic');
    let next: Authorization | undefined;
    if (bearer !== undefined) {
      const key = tokenCacheKey(ref.registry, ref.repository, credentials);
      // Not from the cache (a refused token was just dropped from it): the realm's answer, shared only with
      // concurrent requests of the same credentials.
      const token = await this.token(key, bearer, ref, credentials, signal);
      next = { header: `Bearer ${token}`, kind: 'bearer', key, token };
    } else if (basic !== undefined && credentials !== undefined) {
      this.basicRegistries.add(ref.registry);
      next = { header: basicAuthorization(credentials), kind: 'basic' };
    }
    if (next === undefined || next.header === known?.header) {
      return this.fail(ref, path, sent, credentials, { challenges, errors });
    }
    const retried = await this.withRetries(signal, () => this.send(url, origin, accept, next, signal));
    return retried.response.ok ? retried : this.fail(ref, path, retried, credentials);
  }

  /** Throws the ImageError for a response that is not 2xx. */
  private async fail(
    ref: ImageReference,
    path: string,
    sent: Sent,
    credentials: Credentials | undefined,
    read?: { challenges: AuthChallenge[]; errors: DistributionError[] },
  ): Promise<never> {
    const { status } = sent.response;
    const challenges = read?.challenges ?? parseWwwAuthenticate(sent.response.headers.get('www-authenticate') ?? '');
    const errors = read?.errors ?? (await readErrors(sent));
    const detail = errors.length > 0 ? `: ${errors.map((e) => `${e.code} ${e.message}`.trim()).join('; ')}` : '';
    const [kind = '', name = ''] = path.split('/');
    const what = `${ref.registry}/${ref.repository} ${kind.replace(/s$/, '')} ${name}`;
    const where = sent.fromRegistry ? '' : ` (from ${sent.url.origin})`;
    const code = statusCode(status) ?? errors.map((e) => ERROR_CODES[e.code]).find((c) => c !== undefined);
    if (code === 'UNAUTHORIZED') {
      const bearerError = challenges.find((c) => c.scheme === 'bearer')?.error;
      const why =
        credentials === undefined
          ? 'the registry wants credentials'
          : bearerError === 'insufficient_scope'
            ? 'the credentials do not grant pull access (or the repository does not exist)'
            : 'the registry refused the credentials';
      throw new ImageError('UNAUTHORIZED', `${what}: ${why} (HTTP ${status}${detail})${where}`);
    }
    if (code !== undefined) throw new ImageError(code, `${what}: HTTP ${status}${detail}${where}`);
    throw new ImageError('BAD_RESPONSE', `${what}: unexpected HTTP ${status}${detail}${where}`);
  }

  /** What to send before any challenge: a cached token, or Basic for a registry that asked for it before. */
  private knownAuthorization(ref: ImageReference, credentials: Credentials | undefined): Authorization | undefined {
    const key = tokenCacheKey(ref.registry, ref.repository, credentials);
    const token = this.tokens.get(key);
    if (token !== undefined) return { header: `Bearer ${token}`, kind: 'bearer', key, token };
    if (credentials !== undefined && this.basicRegistries.has(ref.registry)) {
      return { header: basicAuthorization(credentials), kind: 'basic' };
    }
    return undefined;
  }

  /** A pull token for the repository from the challenge's realm; one fetch at a time per cache key. */
  private token(
    key: string,
    challenge: Extract<AuthChallenge, { scheme: 'bearer' }>,
    ref: ImageReference,
    credentials: Credentials | undefined,
    signal: AbortSignal | undefined,
  ): Promise<string> {
    const pending = this.tokenFetches.get(key);
    if (pending !== undefined) return pending;
    const fetching = this.fetchToken(key, challenge, ref, credentials, signal).finally(() => {
      this.tokenFetches.delete(key);
    });
    this.tokenFetches.set(key, fetching);
    return fetching;
  }

  private async fetchToken(
    key: string,
    challenge: Extract<AuthChallenge, { scheme: 'bearer' }>,
    ref: ImageReference,
    credentials: Credentials | undefined,
    signal: AbortSignal | undefined,
  ): Promise<string> {
    let realm: URL;
    try {
      realm = new URL(challenge.realm);
    } catch {
      throw new ImageError('BAD_RESPONSE', `${ref.registry}: bad token realm ${JSON.stringify(challenge.realm)}`);
    }
    if (realm.protocol !== 'https:' && !(realm.protocol === 'http:' && this.plainHttp(bareHost(realm.hostname)))) {
      throw new ImageError(
        'BAD_RESPONSE',
        `${ref.registry}: the token realm ${realm.origin} is not HTTPS: credentials are not sent there`,
      );
    }
    if (challenge.service !== undefined) realm.searchParams.set('service', challenge.service);
    realm.searchParams.set('scope', `repository:${ref.repository}:pull`);
    const auth: Authorization | undefined =
      credentials === undefined ? undefined : { header: basicAuthorization(credentials), kind: 'basic' };
    const sent = await this.withRetries(signal, () => this.send(realm, realm.origin, 'application/json', auth, signal));
    const what = `${ref.registry}: token service ${realm.origin}`;
    if (!sent.response.ok) {
      const errors = await readErrors(sent);
      const detail = errors.length > 0 ? `: ${errors.map((e) => `${e.code} ${e.message}`.trim()).join('; ')}` : '';
      const code = statusCode(sent.response.status) ?? 'BAD_RESPONSE';
      const why =
        sent.response.status === 401
          ? credentials === undefined
            ? ' wants credentials'
            : ' refused the credentials'
          : '';
      throw new ImageError(code, `${what}${why} (HTTP ${sent.response.status}${detail})`);
    }
    const body = await readBody(sent, MAX_TOKEN_BODY, this.timeoutMs, signal, 'token');
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch {
      throw new ImageError('BAD_RESPONSE', `${what}: the answer is not JSON`);
    }
    const fields = (typeof json === 'object' && json !== null ? json : {}) as Record<string, unknown>;
    const token = [fields['token'], fields['access_token']].find((t) => typeof t === 'string' && t.length > 0);
    if (typeof token !== 'string' || !/^[\x21-\x7e]+$/.test(token)) {
      throw new ImageError('BAD_RESPONSE', `${what}: no usable token in the answer`);
    }
    const expiresIn = fields['expires_in'];
    this.tokens.set(key, token, typeof expiresIn === 'number' && expiresIn > 0 ? expiresIn : DEFAULT_TOKEN_LIFE_S);
    return token;
  }

  /** `https://host[:port]`, or `http://` for a host allowed plain HTTP. */
  private origin(registry: string): string {
    let url: URL;
    try {
      url = new URL(`https://${registry}`);
    } catch {
      throw new ImageError('BAD_REFERENCE', `bad registry host ${JSON.stringify(registry)}`);
    }
    return this.plainHttp(bareHost(url.hostname)) ? `http://${url.host}` : `https://${url.host}`;
  }

  /**
   * One exchange: GET, following redirects by hand (at most 5). The Authorization header goes only to the
   * registry's origin; a redirect to plain HTTP is refused unless that host is allowed it. Throws Retryable for
   * connection errors, timeouts, 5xx, 429 and 408.
   */
  private async send(
    first: URL,
    registryOrigin: string,
    accept: string,
    auth: Authorization | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Sent> {
    const controller = new AbortController();
    const abort = (reason: unknown): void => controller.abort(reason);
    const onAbort = (): void => abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const timedOut = new Retryable(`no response within ${this.timeoutMs} ms`);
    const timer = setTimeout(() => abort(timedOut), this.timeoutMs);
    let url = first;
    try {
      for (let hop = 0; ; hop++) {
        const fromRegistry = url.origin === registryOrigin;
        const headers: Record<string, string> = {
          accept,
          'accept-encoding': 'identity', // bytes as stored: they are what the digest covers
          'user-agent': this.userAgent,
        };
        if (auth !== undefined && fromRegistry) headers['authorization'] = auth.header;
        let response: Response;
        try {
          response = await fetch(url, { headers, redirect: 'manual', signal: controller.signal });
        } catch (error) {
          if (signal?.aborted) throw signal.reason;
          if (controller.signal.aborted) throw controller.signal.reason;
          throw new Retryable(`${url.host}: ${describe(error)}`, undefined, { cause: error });
        }
        const location = response.headers.get('location');
        if ([301, 302, 303, 307, 308].includes(response.status) && location !== null) {
          await discard(response);
          if (hop >= MAX_REDIRECTS)
            throw new ImageError('BAD_RESPONSE', `${first.host}: more than ${MAX_REDIRECTS} redirects`);
          const next = new URL(location, url);
          const plainAllowed = next.protocol === 'http:' && this.plainHttp(bareHost(next.hostname));
          if (next.protocol !== 'https:' && !plainAllowed) {
            throw new ImageError(
              'BAD_RESPONSE',
              `${first.host}: refusing a redirect to ${next.protocol}//${next.host}`,
            );
          }
          url = next;
          continue;
        }
        if (response.status >= 500 || response.status === 429 || response.status === 408) {
          const retryAfter = retryAfterMs(response.headers.get('retry-after'));
          await discard(response);
          throw new Retryable(`${url.host}: HTTP ${response.status}`, retryAfter);
        }
        clearTimeout(timer);
        return { response, url, fromRegistry, abort };
      }
    } catch (error) {
      clearTimeout(timer);
      controller.abort(error);
      throw error;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  private async withRetries<T>(signal: AbortSignal | undefined, attempt: () => Promise<T>): Promise<T> {
    let last: Retryable | undefined;
    for (let i = 0; i < this.retry.attempts; i++) {
      if (i > 0) {
        const delay = Math.min(this.retry.maxMs, last?.retryAfterMs ?? backoffDelay(i, this.retry));
        await sleep(delay, signal);
      }
      try {
        return await attempt();
      } catch (error) {
        if (!(error instanceof Retryable)) throw error;
        last = error;
      }
    }
    throw new ImageError(
      'REGISTRY_UNAVAILABLE',
      `${last?.message ?? 'failed'} (after ${this.retry.attempts} attempts)`,
      {
        cause: last,
      },
    );
  }
}

function image(manifest: Extract<Manifest, { kind: 'image' }>) {
  return { mediaType: manifest.mediaType, config: manifest.config, layers: manifest.layers };
}

const ERROR_CODES: Partial<Record<string, ImageErrorCode>> = {
  MANIFEST_UNKNOWN: 'NOT_FOUND',
  NAME_UNKNOWN: 'NOT_FOUND',
  BLOB_UNKNOWN: 'NOT_FOUND',
  DENIED: 'FORBIDDEN',
  UNAUTHORIZED: 'UNAUTHORIZED',
  NAME_INVALID: 'BAD_REFERENCE',
  TAG_INVALID: 'BAD_REFERENCE',
};

function statusCode(status: number): ImageErrorCode | undefined {
  switch (status) {
    case 401:
      return 'UNAUTHORIZED';
    case 403:
      return 'FORBIDDEN';
    case 404:
      return 'NOT_FOUND';
    default:
      return undefined;
  }
}

/** The distribution API's `{"errors":[{"code","message"}]}`, when the body is that (bounded, best effort). */
async function readErrors(sent: Sent): Promise<DistributionError[]> {
  try {
    const body = await readBody(sent, MAX_ERROR_BODY, 5000, undefined, 'error');
    const json = JSON.parse(body.toString('utf8')) as { errors?: unknown };
    if (!Array.isArray(json.errors)) return [];
    return json.errors.slice(0, 5).flatMap((e: unknown) => {
      if (typeof e !== 'object' || e === null) return [];
      const { code, message } = e as { code?: unknown; message?: unknown };
      return typeof code === 'string'
        ? [{ code: code.slice(0, 64), message: typeof message === 'string' ? message.slice(0, 200) : '' }]
        : [];
    });
  } catch {
    return [];
  }
}

/** A whole (small) body, at most `max` bytes, each chunk within `idleMs` of the last. */
async function readBody(
  sent: Sent,
  max: number,
  idleMs: number,
  signal: AbortSignal | undefined,
  what: string,
): Promise<Buffer> {
  const body = sent.response.body;
  if (body === null) return Buffer.alloc(0);
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  const onAbort = (): void => sent.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for (;;) {
      const stalled = new ImageError('REGISTRY_UNAVAILABLE', `${what}: no data for ${idleMs} ms`);
      const timer = setTimeout(() => sent.abort(stalled), idleMs);
      let result: ReadableStreamReadResult<Uint8Array>;
      try {
        result = await reader.read();
      } finally {
        clearTimeout(timer);
      }
      if (result.done) break;
      total += result.value.length;
      if (total > max) {
        sent.abort(new Error('too large'));
        throw new ImageError('TOO_LARGE', `${what}: more than ${max} bytes`);
      }
      chunks.push(result.value);
    }
  } catch (error) {
    throw streamError(error, signal, `${what}: the connection broke after ${total} bytes`);
  } finally {
    signal?.removeEventListener('abort', onAbort);
    reader.releaseLock();
  }
  return Buffer.concat(chunks);
}

/** What a body's stream failed with, as an ImageError (or the caller's abort reason). */
function streamError(error: unknown, signal: AbortSignal | undefined, broke: string): unknown {
  if (isImageError(error)) return error;
  if (signal?.aborted) return signal.reason;
  return new ImageError('REGISTRY_UNAVAILABLE', `${broke} (${describe(error)})`, { cause: error });
}

/** A blob's body as a Node stream, through a DigestVerifier; pulls from the network only as it is read. */
class VerifiedBlobStream extends Readable {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  private reading = false;

  constructor(
    private readonly sent: Sent,
    private readonly verifier: DigestVerifier,
    private readonly idleMs: number,
    private readonly signal: AbortSignal | undefined,
  ) {
    super({ highWaterMark: 1024 * 1024 });
    this.reader = sent.response.body?.getReader();
    signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  private readonly onAbort = (): void => {
    this.destroy(asError(this.signal?.reason ?? 'aborted'));
  };

  override _read(): void {
    if (this.reading) return;
    this.reading = true;
    this.pull().catch((error: unknown) => this.destroy(asError(error)));
  }

  /** Reads and pushes until the buffer is full (Node calls _read again) or the body ends. */
  private async pull(): Promise<void> {
    try {
      await this.pullChunks();
    } finally {
      this.reading = false;
    }
  }

  private async pullChunks(): Promise<void> {
    const what = this.verifier.expected;
    for (;;) {
      let result: ReadableStreamReadResult<Uint8Array>;
      if (this.reader === undefined) {
        result = { done: true, value: undefined };
      } else {
        const stalled = new ImageError(
          'REGISTRY_UNAVAILABLE',
          `${what}: no data for ${this.idleMs} ms after ${this.verifier.received} of ${this.verifier.size} bytes`,
        );
        const timer = setTimeout(() => this.sent.abort(stalled), this.idleMs);
        try {
          result = await this.reader.read();
        } catch (error) {
          throw streamError(
            error,
            this.signal,
            `${what}: the connection broke after ${this.verifier.received} of ${this.verifier.size} bytes`,
          );
        } finally {
          clearTimeout(timer);
        }
      }
      if (this.destroyed) return;
      if (result.done) {
        this.verifier.finish(); // throws SIZE_MISMATCH / DIGEST_MISMATCH: the stream errors instead of ending
        this.push(null);
        return;
      }
      this.verifier.update(result.value); // throws SIZE_MISMATCH as soon as too many bytes come
      if (!this.push(result.value)) return;
    }
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.signal?.removeEventListener('abort', this.onAbort);
    this.sent.abort(error ?? new Error('closed'));
    callback(error);
  }
}

function contentLength(response: Response): number | undefined {
  const value = response.headers.get('content-length');
  if (value === null || !/^\d+$/.test(value.trim())) return undefined;
  return Number(value.trim());
}

function retryAfterMs(value: string | null): number | undefined {
  if (value === null) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

async function discard(response: Response): Promise<void> {
  try {
    await response.body?.cancel();
  } catch {
    // nothing to do: the connection is dropped with it
  }
}

function bareHost(hostname: string): string {
  return hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
}

/**
 * A network error's most telling message (undici wraps the system error as `cause`). Duck-typed: fetch's errors
 * may come from another realm (Node's internals under Jest), where `instanceof Error` is false.
 */
function describe(error: unknown): string {
  const message = (value: unknown): string | undefined =>
    typeof value === 'object' && value !== null && typeof (value as { message?: unknown }).message === 'string'
      ? (value as { message: string }).message
      : undefined;
  const cause = typeof error === 'object' && error !== null ? (error as { cause?: unknown }).cause : undefined;
  const causeMessage = message(cause);
  if (causeMessage !== undefined) {
    const code = (cause as { code?: unknown }).code;
    return typeof code === 'string' && !causeMessage.includes(code) ? `${code} ${causeMessage}` : causeMessage;
  }
  return message(error) ?? String(error);
}

/** An Error to destroy a stream with (an abort reason may be anything). */
function asError(value: unknown): Error {
  if (typeof value === 'object' && value !== null && typeof (value as { message?: unknown }).message === 'string') {
    return value as Error;
  }
  return new Error(String(value));
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
