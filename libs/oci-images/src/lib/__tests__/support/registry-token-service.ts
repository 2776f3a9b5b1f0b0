// A token service for docker-registry's `auth: token` (the distribution token spec), run in the test process:
// checks Basic credentials per user, grants `pull` on the repositories in the user's list (nothing else: a user
// without access gets a token that grants nothing, like Docker Hub), and signs RS256 JWTs with a self-signed
// certificate (generated with openssl) that the registry trusts as its `rootcertbundle`. The token header carries
// the certificate as `x5c`: distribution 2.8 verifies the chain against the bundle (no libtrust `kid` needed).
import { execFileSync } from 'node:child_process';
import { createPrivateKey, randomUUID, sign, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface RegistryUser {
  readonly password: string;
  /** Repositories the user may pull (token registry); every repository when absent. */
  readonly repositories?: readonly string[];
}

export interface TokenAccess {
  readonly type: 'repository';
  readonly name: string;
  readonly actions: readonly string[];
}

/** One token the service issued. */
export interface IssuedToken {
  /** The authenticated user, or undefined for an anonymous request. */
  readonly user: string | undefined;
  readonly scope: string | undefined;
  readonly granted: readonly TokenAccess[];
  readonly token: string;
}

export interface TokenServiceOptions {
  /** Where the key and certificate go (a temp directory the caller deletes). */
  readonly dir: string;
  readonly service: string;
  readonly issuer: string;
  readonly users: Readonly<Record<string, RegistryUser>>;
  /** `expires_in` of the tokens (default 300 s). */
  readonly expiresIn?: number;
}

export class TokenService {
  readonly issued: IssuedToken[] = [];
  /** Requests refused (bad credentials). */
  refused = 0;

  private constructor(
    private readonly server: Server,
    private readonly key: KeyObject,
    private readonly certificateDer: Buffer,
    readonly certificatePath: string,
    private readonly options: TokenServiceOptions,
  ) {}

  static async start(options: TokenServiceOptions): Promise<TokenService> {
    const keyPath = join(options.dir, 'token.key');
    const certificatePath = join(options.dir, 'token.crt');
    execFileSync(
      'openssl',
      // prettier-ignore
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', certificatePath, '-days', '2',
        '-subj', '/CN=caas-test-token-issuer'],
      { stdio: 'pipe' },
    );
    const pem = readFileSync(certificatePath, 'utf8');
    const der = Buffer.from(pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
    const key = createPrivateKey(readFileSync(keyPath));
    const holder: { service?: TokenService } = {};
    const server = createServer((req, res) => holder.service?.handle(req, res));
    const service = new TokenService(server, key, der, certificatePath, options);
    holder.service = service;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return service;
  }

  get realm(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/token`;
  }

  issuedTo(user: string | undefined): IssuedToken[] {
    return this.issued.filter((t) => t.user === user);
  }

  /** A signed token granting `access` (the push helper mints its own push tokens). */
  mint(subject: string, access: readonly TokenAccess[]): string {
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'RS256', x5c: [this.certificateDer.toString('base64')] };
    const claims = {
      iss: this.options.issuer,
      sub: subject,
      aud: this.options.service,
      exp: now + (this.options.expiresIn ?? 300),
      nbf: now - 1,
      iat: now,
      jti: randomUUID(),
      access,
    };
    const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
    const signature = sign('sha256', Buffer.from(signingInput), this.key); // RSASSA-PKCS1-v1_5 with SHA-256: RS256
    return `${signingInput}.${signature.toString('base64url')}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://token');
    const reply = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (url.pathname !== '/token') return reply(404, { errors: [{ code: 'NOT_FOUND', message: 'no such path' }] });
    if (url.searchParams.get('service') !== this.options.service) {
      return reply(400, { errors: [{ code: 'UNSUPPORTED', message: 'unknown service' }] });
    }
    let user: string | undefined;
    const authorization = req.headers.authorization;
    if (authorization !== undefined) {
      const match = /^Basic (.+)$/i.exec(authorization);
      const decoded = match?.[1] === undefined ? '' : Buffer.from(match[1], 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      const name = decoded.slice(0, colon);
      if (colon < 0 || this.options.users[name]?.password !== decoded.slice(colon + 1)) {
        this.refused++;
        res.setHeader('www-authenticate', 'Basic realm="token"');
        return reply(401, { errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] });
      }
      user = name;
    }
    const scope = url.searchParams.get('scope') ?? undefined;
    const granted: TokenAccess[] = [];
    const match = scope === undefined ? null : /^repository:([^:]+):(.+)$/.exec(scope);
    if (match?.[1] !== undefined && match[2] !== undefined && user !== undefined) {
      const allowed = this.options.users[user]?.repositories;
      if (allowed === undefined || allowed.includes(match[1])) {
        const actions = match[2].split(',').filter((a) => a === 'pull');
        if (actions.length > 0) granted.push({ type: 'repository', name: match[1], actions });
      }
    }
    const token = this.mint(user ?? '', granted);
    this.issued.push({ user, scope, granted, token });
    reply(200, {
      token,
      access_token: token,
      expires_in: this.options.expiresIn ?? 300,
      issued_at: new Date().toISOString(),
    });
  }
}

function base64url(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
}
