import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { PolicyApplyError, PolicyApplyErrorCode } from '../policy.exception';

/** iproute2 accepts more, but every namespace we create matches this; nothing else reaches `nsenter`. */
const NETNS_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export const NFT_TIMEOUT_MS = 30_000;

/** Checks the name and that the namespace exists; returns its bind-mount path. */
export function netnsPath(netns: string): string {
  if (typeof netns !== 'string' || !NETNS_NAME.test(netns)) {
    throw new PolicyApplyError(
      PolicyApplyErrorCode.INVALID_NETNS,
      `invalid network namespace name ${JSON.stringify(netns)}`,
      { netns: String(netns) },
    );
  }
  const path = `/run/netns/${netns}`;
  if (!existsSync(path)) {
    throw new PolicyApplyError(PolicyApplyErrorCode.NETNS_NOT_FOUND, `network namespace ${netns} does not exist`, {
      netns,
    });
  }
  return path;
}

/**
 * Runs `nft <args>` inside the namespace (`nsenter --net=…`, cheaper than `ip netns exec`, which also remounts
 * /sys). With `script`, nft reads it from stdin (`-f -`): the whole script is ONE transaction.
 */
export function nft(netns: string, args: readonly string[], script?: string): Promise<string> {
  const path = netnsPath(netns);
  const argv = [`--net=${path}`, '--', 'nft', ...args, ...(script !== undefined ? ['-f', '-'] : [])];
  return new Promise((resolve, reject) => {
    const child = spawn('nsenter', argv, { stdio: ['pipe', 'pipe', 'pipe'], timeout: NFT_TIMEOUT_MS });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.stdin.on('error', () => undefined); // nft may exit before reading everything; the exit code tells.
    child.on('error', (error) => {
      reject(
        new PolicyApplyError(PolicyApplyErrorCode.NFT_FAILED, `nft could not run: ${error.message}`, {
          netns,
          stderr: Buffer.concat(err).toString('utf8'),
        }),
      );
    });
    child.on('close', (code, signal) => {
      const stderr = Buffer.concat(err).toString('utf8');
      if (code === 0) {
        resolve(Buffer.concat(out).toString('utf8'));
        return;
      }
      const what = `nft ${args.join(' ')}${script !== undefined ? ' -f -' : ''} in ${netns}`;
      reject(
        signal !== null || code === null
          ? new PolicyApplyError(PolicyApplyErrorCode.NFT_FAILED, `${what} was killed (${signal ?? 'unknown'})`, {
              netns,
              stderr,
              exitCode: code,
            })
          : new PolicyApplyError(PolicyApplyErrorCode.NFT_REJECTED, `${what} failed: ${firstLine(stderr)}`, {
              netns,
              stderr,
              exitCode: code,
            }),
      );
    });
    child.stdin.end(script ?? '');
  });
}

function firstLine(text: string): string {
  return text.split('\n').find((line) => line.trim() !== '') ?? '(no message)';
}
