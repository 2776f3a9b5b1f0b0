// The image config's run section, and users resolved from the unpacked root's /etc/passwd and /etc/group.
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolveUser } from '../resolve-user';
import { parseImageRunConfig } from '../run-config';
import { scratch } from './support/tar-writer';

const base = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } };

describe('parseImageRunConfig', () => {
  it('takes the run section of a config, from text, bytes or a parsed value', () => {
    const doc = {
      ...base,
      config: {
        Entrypoint: ['/docker-entrypoint.sh'],
        Cmd: ['nginx', '-g', 'daemon off;'],
        Env: ['PATH=/usr/local/bin:/usr/bin', 'EMPTY=', 'WITH_EQ=a=b'],
        WorkingDir: '/srv',
        User: 'app:staff',
        ExposedPorts: { '80/tcp': {} },
        Labels: { a: 'b' },
      },
    };
    const expected = {
      entrypoint: ['/docker-entrypoint.sh'],
      cmd: ['nginx', '-g', 'daemon off;'],
      env: ['PATH=/usr/local/bin:/usr/bin', 'EMPTY=', 'WITH_EQ=a=b'],
      workingDir: '/srv',
      user: 'app:staff',
    };
    expect(parseImageRunConfig(JSON.stringify(doc))).toEqual(expected);
    expect(parseImageRunConfig(Buffer.from(JSON.stringify(doc)))).toEqual(expected);
    expect(parseImageRunConfig(doc)).toEqual(expected);
  });

  it('leaves out what is absent, null or empty; keeps an explicitly empty array', () => {
    expect(parseImageRunConfig(base)).toEqual({ env: [] });
    expect(parseImageRunConfig({ ...base, config: null })).toEqual({ env: [] });
    expect(
      parseImageRunConfig({ ...base, config: { Entrypoint: null, Cmd: [], Env: null, User: '', WorkingDir: '' } }),
    ).toEqual({
      cmd: [],
      env: [],
    });
  });

  it('checks the platform: linux/amd64 only (NO_MATCHING_PLATFORM)', () => {
    for (const [os, architecture] of [
      ['linux', 'arm64'],
      ['windows', 'amd64'],
      [undefined, 'amd64'],
      ['linux', undefined],
    ]) {
      expect(() => parseImageRunConfig({ ...base, os, architecture })).toThrow(
        expect.objectContaining({ code: 'NO_MATCHING_PLATFORM' }),
      );
    }
  });

  it('refuses invalid or unbounded configs with UNSUPPORTED_MANIFEST', () => {
    const bad: [string, unknown][] = [
      ['not JSON', '{nope'],
      ['not an object', '[1]'],
      ['config not an object', { ...base, config: 'x' }],
      ['Cmd not an array', { ...base, config: { Cmd: 'sh -c x' } }],
      ['Cmd of non-strings', { ...base, config: { Cmd: ['a', 1] } }],
      ['NUL in Cmd', { ...base, config: { Cmd: ['a\0b'] } }],
      ['NUL in Entrypoint', { ...base, config: { Entrypoint: ['\0'] } }],
      ['Env without =', { ...base, config: { Env: ['JUSTKEY'] } }],
      ['Env with an empty key', { ...base, config: { Env: ['=value'] } }],
      ['NUL in Env', { ...base, config: { Env: ['A=b\0c'] } }],
      ['relative WorkingDir', { ...base, config: { WorkingDir: 'srv' } }],
      ['NUL in WorkingDir', { ...base, config: { WorkingDir: '/a\0' } }],
      ['User not a string', { ...base, config: { User: 1000 } }],
      ['NUL in User', { ...base, config: { User: 'app\0' } }],
      ['a huge argument', { ...base, config: { Cmd: ['x'.repeat(200_000)] } }],
      ['too many arguments', { ...base, config: { Cmd: Array.from({ length: 5000 }, () => 'x') } }],
      [
        'too much altogether',
        { ...base, config: { Env: Array.from({ length: 100 }, (_, i) => `K${i}=${'v'.repeat(20_000)}`) } },
      ],
      ['a huge document', JSON.stringify({ ...base, history: 'h'.repeat(5 * 1024 * 1024) })],
    ];
    for (const [what, doc] of bad) {
      expect([what, () => parseImageRunConfig(doc)]).toEqual([what, expect.any(Function)]);
      expect(() => parseImageRunConfig(doc)).toThrow(expect.objectContaining({ code: 'UNSUPPORTED_MANIFEST' }));
    }
  });
});

describe('resolveUser', () => {
  const tmp = scratch('caas-user-');
  let root: string;
  beforeAll(() => {
    root = join(tmp.dir, 'root');
    mkdirSync(join(root, 'etc'), { recursive: true });
    writeFileSync(
      join(root, 'etc/passwd'),
      [
        'root:x:0:0:root:/root:/bin/sh',
        'daemon:x:1:1::/:/usr/sbin/nologin',
        'app:x:1000:1000:App:/home/app:/bin/sh',
        'broken:x:notanumber:1::/:/bin/sh',
        '',
        'svc:x:2000:3000::/:/bin/sh',
      ].join('\n'),
    );
    writeFileSync(
      join(root, 'etc/group'),
      [
        'root:x:0:',
        'daemon:x:1:',
        'app:x:1000:',
        'staff:x:50:app,svc',
        'docker:x:999:app',
        'wheel:x:10:root',
        'again:x:50:app',
      ].join('\n'),
    );
  });

  it.each([
    [undefined, { uid: 0, gid: 0, additionalGids: [10] }],
    ['', { uid: 0, gid: 0, additionalGids: [10] }],
    ['root', { uid: 0, gid: 0, additionalGids: [10] }],
    ['app', { uid: 1000, gid: 1000, additionalGids: [50, 999] }],
    ['1000', { uid: 1000, gid: 1000, additionalGids: [50, 999] }],
    ['1000:1000', { uid: 1000, gid: 1000, additionalGids: [] }],
    ['app:staff', { uid: 1000, gid: 50, additionalGids: [] }],
    ['app:999', { uid: 1000, gid: 999, additionalGids: [] }],
    ['svc', { uid: 2000, gid: 3000, additionalGids: [50] }],
    ['4242', { uid: 4242, gid: 0, additionalGids: [] }],
    ['4242:4343', { uid: 4242, gid: 4343, additionalGids: [] }],
    [':staff', { uid: 0, gid: 50, additionalGids: [] }],
  ])('resolves %j', async (user, expected) => {
    expect(await resolveUser(user, root)).toEqual(expected);
  });

  it.each([['nobody'], ['app:nogroup'], ['broken'], ['app:1:2'], ['99999999999'], ['a\0b']])(
    'refuses %j with UNSUPPORTED_MANIFEST',
    async (user) => {
      await expect(resolveUser(user, root)).rejects.toMatchObject({ code: 'UNSUPPORTED_MANIFEST' });
    },
  );

  it('works without /etc/passwd for numeric users, and refuses names', async () => {
    const empty = join(tmp.dir, 'empty');
    mkdirSync(empty);
    expect(await resolveUser('1234:5678', empty)).toEqual({ uid: 1234, gid: 5678, additionalGids: [] });
    expect(await resolveUser(undefined, empty)).toEqual({ uid: 0, gid: 0, additionalGids: [] });
    await expect(resolveUser('app', empty)).rejects.toMatchObject({ code: 'UNSUPPORTED_MANIFEST' });
  });

  it('reads the files through symlinks as the guest would, never outside the root', async () => {
    // /etc -> /real-etc (absolute: from the root), /real-etc/passwd -> ../../../../host-passwd (clamped at the
    // root, as in a chroot): the host file beside the root is never read.
    const jail = join(tmp.dir, 'jail');
    const inside = join(jail, 'root');
    mkdirSync(join(inside, 'real-etc'), { recursive: true });
    writeFileSync(join(jail, 'host-passwd'), 'evil:x:0:0::/:/bin/sh\n');
    writeFileSync(join(inside, 'host-passwd'), 'guest:x:77:88::/:/bin/sh\n');
    symlinkSync('/real-etc', join(inside, 'etc'));
    symlinkSync('../../../../host-passwd', join(inside, 'real-etc/passwd'));
    expect(await resolveUser('guest', inside)).toEqual({ uid: 77, gid: 88, additionalGids: [] });
    await expect(resolveUser('evil', inside)).rejects.toMatchObject({ code: 'UNSUPPORTED_MANIFEST' });
    // A symlink loop is an error, not a hang.
    const loop = join(tmp.dir, 'loop');
    mkdirSync(join(loop, 'etc'), { recursive: true });
    symlinkSync('/etc/passwd', join(loop, 'etc/passwd'));
    await expect(resolveUser('1', loop)).rejects.toMatchObject({
      code: 'UNSUPPORTED_MANIFEST',
      message: expect.stringContaining('symlinks'),
    });
  });
});
