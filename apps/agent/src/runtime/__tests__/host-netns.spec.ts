import { execFileSync } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { ensureHostNetns, netnsPath } from '../host-netns';

const name = `caas-t-${process.pid}`;
const ip = (...args: string[]) => execFileSync('ip', args, { encoding: 'utf8' });

afterAll(() => {
  try {
    ip('netns', 'delete', name);
  } catch {
    // never created
  }
});

describe('ensureHostNetns', () => {
  it('creates the namespace with its loopback up, and keeps the same one when called again', async () => {
    expect(await ensureHostNetns(name)).toBe(netnsPath(name));
    expect(ip('-n', name, '-o', 'link', 'show', 'lo')).toMatch(/[<,]UP[,>]/);
    const inode = () =>
      execFileSync('ip', ['netns', 'exec', name, 'readlink', '/proc/self/ns/net'], { encoding: 'utf8' });
    const first = inode();
    expect(first).not.toBe(readlinkSync('/proc/self/ns/net'));
    await ensureHostNetns(name);
    expect(inode()).toBe(first);
  });
});
