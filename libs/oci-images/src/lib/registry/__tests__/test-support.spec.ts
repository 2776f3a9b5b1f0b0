// The test support's tar writer makes archives real tools read.
import { execFileSync } from 'node:child_process';
import { tarGz } from '../../__tests__/support/registry-tar';

it('writes ustar archives that GNU tar lists', () => {
  const long = `${'d'.repeat(60)}/${'e'.repeat(60)}/file.txt`;
  const archive = tarGz([
    { path: 'etc', type: 'directory' },
    { path: 'etc/hello', content: 'hello\n', mode: 0o600 },
    { path: 'bin/sh', type: 'symlink', linkname: '/bin/busybox' },
    { path: long, content: Buffer.alloc(1000, 1) },
  ]);
  const listing = execFileSync('tar', ['-tvzf', '-'], { input: archive, encoding: 'utf8' });
  expect(listing).toMatch(/^drwxr-xr-x root\/root +0 .* etc\/$/m);
  expect(listing).toMatch(/^-rw------- root\/root +6 .* etc\/hello$/m);
  expect(listing).toMatch(/^lrwxrwxrwx root\/root +0 .* bin\/sh -> \/bin\/busybox$/m);
  expect(listing).toMatch(new RegExp(`^-rw-r--r-- root/root +1000 .* ${long}$`, 'm'));
  expect(execFileSync('tar', ['-xOzf', '-', 'etc/hello'], { input: archive, encoding: 'utf8' })).toBe('hello\n');
});
