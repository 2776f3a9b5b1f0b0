// A real registry for integration tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1, a free port and
// a temp storage directory, in three flavours: open, Basic auth (htpasswd, bcrypt via apache2-utils' htpasswd)
// and token auth (a TokenService in this process). Installed by scripts/lib.sh (setup_machine).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Digest } from '../../digest';
import { digestHex } from '../../digest';
import { TokenService, type RegistryUser } from './registry-token-service';

export type { RegistryUser } from './registry-token-service';

const REGISTRY_BINARY = '/usr/bin/docker-registry';
const HTPASSWD_BINARY = '/usr/bin/htpasswd';
export const TOKEN_SERVICE_NAME = 'caas-test-registry';
const TOKEN_ISSUER = 'caas-test-token-issuer';

export type RegistryFlavour = 'open' | 'basic' | 'token';

export interface TestRegistryOptions {
  readonly flavour: RegistryFlavour;
  /** Users of the basic and token flavours (the token flavour grants pull on each user's `repositories`). */
  readonly users?: Readonly<Record<string, RegistryUser>>;
  /** Token lifetime (`expires_in`) of the token flavour. */
  readonly tokenExpiresIn?: number;
}

/** The user the push helper authenticates as on the basic flavour (added to every basic registry). */
const PUSHER = { name: 'pusher', password: randomBytes(12).toString('hex') };

export function requireRegistryTools(): void {
  for (const binary of [REGISTRY_BINARY, HTPASSWD_BINARY, '/usr/bin/openssl']) {
    if (!existsSync(binary)) {
      throw new Error(
        `${binary} is missing: apt-get install docker-registry apache2-utils openssl (scripts/lib.sh setup_machine)`,
      );
    }
  }
}

export class TestRegistry {
  private readonly exited: Promise<void>;
  private log = '';

  private constructor(
    readonly flavour: RegistryFlavour,
    /** `127.0.0.1:<port>`: the registry part of references. */
    readonly host: string,
    private readonly dir: string,
    private readonly child: ChildProcess,
    /** The token flavour's token service. */
    readonly tokenService: TokenService | undefined,
  ) {
    this.exited = exitOf(child);
    this.capture(child);
  }

  /** Starts a registry and waits until `GET /v2/` answers (200 or 401). */
  static async start(options: TestRegistryOptions): Promise<TestRegistry> {
    requireRegistryTools();
    // The free port may be taken between our probe and the registry's bind: then another one.
    for (let attempt = 1; ; attempt++) {
      try {
        return await TestRegistry.startOnce(options);
      } catch (error) {
        if (attempt >= 3 || !String(error).includes('address already in use')) throw error;
      }
    }
  }

  private static async startOnce(options: TestRegistryOptions): Promise<TestRegistry> {
    const dir = mkdtempSync(join(tmpdir(), 'caas-registry-'));
    try {
      const port = await freePort();
      const host = `127.0.0.1:${port}`;
      let auth = '';
      let tokenService: TokenService | undefined;
      const users = options.users ?? {};
      if (options.flavour === 'basic') {
        const lines = [...Object.entries(users), [PUSHER.name, { password: PUSHER.password }] as const].map(
          ([name, user]) =>
            execFileSync(HTPASSWD_BINARY, ['-n', '-b', '-B', '-C', '4', name, user.password], {
              encoding: 'utf8',
            }).trim(),
        );
        writeFileSync(join(dir, 'htpasswd'), `${lines.join('\n')}\n`);
        auth = `auth:\n  htpasswd:\n    realm: caas-test\n    path: ${join(dir, 'htpasswd')}\n`;
      } else if (options.flavour === 'token') {
        tokenService = await TokenService.start({
          dir,
          service: TOKEN_SERVICE_NAME,
          issuer: TOKEN_ISSUER,
          users,
          ...(options.tokenExpiresIn === undefined ? {} : { expiresIn: options.tokenExpiresIn }),
        });
        auth =
          `auth:\n  token:\n    realm: ${tokenService.realm}\n    service: ${TOKEN_SERVICE_NAME}\n` +
          `    issuer: ${TOKEN_ISSUER}\n    rootcertbundle: ${tokenService.certificatePath}\n`;
      }
      const configPath = join(dir, 'config.yml');
      writeFileSync(
        configPath,
        [
          'version: 0.1',
          'log:',
          '  level: warn',
          '  accesslog:',
          '    disabled: true',
          'storage:',
          '  filesystem:',
          `    rootdirectory: ${join(dir, 'storage')}`,
          '  maintenance:',
          '    uploadpurging:',
          '      enabled: false',
          'http:',
          `  addr: ${host}`,
          `  secret: ${randomBytes(16).toString('hex')}`,
          auth,
        ].join('\n'),
      );
      const registry = new TestRegistry(options.flavour, host, dir, launch(configPath), tokenService);
      await registry.waitReady();
      return registry;
    } catch (error) {
      rmSync(dir, { recursive: true, force: true });
      throw error;
    }
  }

  /** `127.0.0.1:<port>/<repositoryAndTag>`. */
  ref(repositoryAndTag: string): string {
    return `${this.host}/${repositoryAndTag}`;
  }

  get url(): string {
    return `http://${this.host}`;
  }

  /** The storage directory (the filesystem driver's root). */
  get storage(): string {
    return join(this.dir, 'storage');
  }

  /** Where the registry keeps a blob's bytes. */
  blobPath(digest: Digest): string {
    const hex = digestHex(digest);
    return join(this.storage, 'docker/registry/v2/blobs/sha256', hex.slice(0, 2), hex, 'data');
  }

  /** Changes a stored blob's bytes (by default one byte flipped, same length): the registry serves them as they are. */
  tamperBlob(digest: Digest, change: (data: Buffer) => Buffer = flipLastByte): void {
    const path = this.blobPath(digest);
    writeFileSync(path, change(readFileSync(path)));
  }

  /** The Authorization header for pushing to a repository (the push helper's), if the flavour needs one. */
  pushAuthorization(repository: string): string | undefined {
    switch (this.flavour) {
      case 'open':
        return undefined;
      case 'basic':
        return `Basic ${Buffer.from(`${PUSHER.name}:${PUSHER.password}`).toString('base64')}`;
      case 'token':
        return `Bearer ${this.tokenService?.mint('pusher', [{ type: 'repository', name: repository, actions: ['pull', 'push'] }])}`;
    }
  }

  /** The registry's own log (warnings and errors), for a failing test's message. */
  get output(): string {
    return this.log;
  }

  /** Kills the registry process (SIGKILL by default) and waits for it to exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    await this.exited;
  }

  /** Sends a signal to the registry process without waiting (SIGSTOP freezes it; stop() still kills it). */
  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** Kills the registry, stops the token service, deletes the storage. */
  async stop(): Promise<void> {
    await this.kill();
    await this.tokenService?.close();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private capture(child: ChildProcess): void {
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => {
      this.log = (this.log + text).slice(-20_000);
    });
  }

  private async waitReady(): Promise<void> {
    const deadline = Date.now() + 15_000;
    let exited = false;
    void this.exited.then(() => (exited = true));
    while (Date.now() < deadline) {
      if (exited) throw new Error(`docker-registry exited at start:\n${this.log}`);
      try {
        const response = await fetch(`${this.url}/v2/`, { signal: AbortSignal.timeout(1000) });
        await response.body?.cancel();
        if (response.status === 200 || response.status === 401) return;
      } catch {
        // not listening yet
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    await this.kill();
    throw new Error(`docker-registry did not answer on ${this.host} within 15 s:\n${this.log}`);
  }
}

function launch(configPath: string): ChildProcess {
  // A clean environment: REGISTRY_* variables would override the config file.
  return spawn(REGISTRY_BINARY, ['serve', configPath], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
  });
}

function exitOf(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

function flipLastByte(data: Buffer): Buffer {
  const copy = Buffer.from(data);
  copy[copy.length - 1] = (copy[copy.length - 1] ?? 0) ^ 0xff;
  return copy;
}

/** A port nothing listens on right now (the registry binds it a moment later). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}
