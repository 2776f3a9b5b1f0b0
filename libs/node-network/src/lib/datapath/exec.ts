import { execFile } from 'node:child_process';

/** A command that exited non-zero; carries argv and stderr so callers can tell "exists" from real failures. */
export class CommandError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly exitCode: number | string | null,
    readonly stderr: string,
  ) {
    super(`${argv.join(' ')} failed (${String(exitCode)}): ${stderr.trim()}`);
    this.name = 'CommandError';
  }
}

/** Runs a program with an argument vector (never a shell), optionally feeding stdin; resolves with stdout. */
export function run(file: string, args: readonly string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      [...args],
      { maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' },
      (error, stdout, stderr) => {
        if (error) {
          const code = (error as NodeJS.ErrnoException & { code?: number | string }).code ?? null;
          reject(new CommandError([file, ...args], code, stderr || error.message));
        } else resolve(stdout);
      },
    );
    if (input !== undefined) child.stdin?.end(input);
  });
}

/**
 * Commands aimed at one network namespace: a named one (`ip netns`), or the caller's own when `name` is undefined
 * (the real agent on a real host).
 */
export class Netns {
  constructor(readonly name: string | undefined) {}

  private wrap(file: string, args: readonly string[]): [string, string[]] {
    return this.name === undefined ? [file, [...args]] : ['ip', ['netns', 'exec', this.name, file, ...args]];
  }

  ip(args: readonly string[]): Promise<string> {
    return run('ip', this.name === undefined ? args : ['-n', this.name, ...args]);
  }

  async ipJson<T>(args: readonly string[]): Promise<T[]> {
    const out = await this.ip(['-j', ...args]);
    return out.trim() === '' ? [] : (JSON.parse(out) as T[]);
  }

  bridge(args: readonly string[]): Promise<string> {
    return run('bridge', this.name === undefined ? args : ['-n', this.name, ...args]);
  }

  async bridgeJson<T>(args: readonly string[]): Promise<T[]> {
    const out = await this.bridge(['-j', ...args]);
    return out.trim() === '' ? [] : (JSON.parse(out) as T[]);
  }

  /** One `nft -f -` batch: one transaction, all or nothing. */
  nft(script: string): Promise<string> {
    const [file, args] = this.wrap('nft', ['-f', '-']);
    return run(file, args, script);
  }

  nftCommand(args: readonly string[]): Promise<string> {
    const [file, argv] = this.wrap('nft', args);
    return run(file, argv);
  }

  /**
   * `conntrack -D <filter>` in this namespace. Best effort where the `conntrack` tool is missing; "0 flow entries
   * have been deleted" (exit 1) is not an error.
   */
  async conntrackDelete(filter: readonly string[]): Promise<void> {
    const [file, args] = this.wrap('conntrack', ['-D', ...filter]);
    try {
      await run(file, args);
    } catch (error) {
      if (!(error instanceof CommandError)) throw error;
      if (error.exitCode === 'ENOENT' || /No such file|not found/.test(error.stderr)) return;
      if (/\b0 flow entries have been deleted/.test(error.stderr)) return;
      throw error;
    }
  }

  async sysctl(values: Readonly<Record<string, string | number>>): Promise<void> {
    const pairs = Object.entries(values).map(([k, v]) => `${k}=${v}`);
    if (pairs.length === 0) return;
    const [file, args] = this.wrap('sysctl', ['-q', '-w', ...pairs]);
    await run(file, args);
  }
}

interface NftCounterJson {
  nftables: { counter?: { name: string; packets: number; bytes: number } }[];
}

/** All named counters of one `inet` table. */
export async function readCounters(
  ns: Netns,
  table: string,
): Promise<Record<string, { packets: number; bytes: number }>> {
  const out = await ns.nftCommand(['-j', 'list', 'counters', 'table', 'inet', table]);
  const result: Record<string, { packets: number; bytes: number }> = {};
  for (const item of (JSON.parse(out) as NftCounterJson).nftables) {
    if (item.counter) result[item.counter.name] = { packets: item.counter.packets, bytes: item.counter.bytes };
  }
  return result;
}
