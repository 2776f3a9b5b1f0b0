import { ImageError } from '../../errors';
import { parseReference } from '../reference';

const DIGEST = 'sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';

describe('parseReference', () => {
  it.each([
    ['127.0.0.1:5000/team/app:1.2', '127.0.0.1:5000', 'team/app', '1.2', undefined, '127.0.0.1:5000/team/app:1.2'],
    [
      `registry.example.com/app@${DIGEST}`,
      'registry.example.com',
      'app',
      undefined,
      DIGEST,
      `registry.example.com/app@${DIGEST}`,
    ],
    [`app:tag@${DIGEST}`, 'registry-1.docker.io', 'library/app', 'tag', DIGEST, `docker.io/library/app:tag@${DIGEST}`],
    [
      'docker.io/library/busybox',
      'registry-1.docker.io',
      'library/busybox',
      'latest',
      undefined,
      'docker.io/library/busybox:latest',
    ],
    ['busybox', 'registry-1.docker.io', 'library/busybox', 'latest', undefined, 'docker.io/library/busybox:latest'],
    ['index.docker.io/team/app:v1', 'registry-1.docker.io', 'team/app', 'v1', undefined, 'docker.io/team/app:v1'],
    [
      'registry-1.docker.io/nginx',
      'registry-1.docker.io',
      'library/nginx',
      'latest',
      undefined,
      'docker.io/library/nginx:latest',
    ],
    ['team/app', 'registry-1.docker.io', 'team/app', 'latest', undefined, 'docker.io/team/app:latest'],
    ['localhost/app', 'localhost', 'app', 'latest', undefined, 'localhost/app:latest'],
    [
      'localhost:5000/a/b/c:V_1.0-rc',
      'localhost:5000',
      'a/b/c',
      'V_1.0-rc',
      undefined,
      'localhost:5000/a/b/c:V_1.0-rc',
    ],
    ['[::1]:5000/app:x', '[::1]:5000', 'app', 'x', undefined, '[::1]:5000/app:x'],
    ['Registry.Example.COM/app', 'registry.example.com', 'app', 'latest', undefined, 'registry.example.com/app:latest'],
    ['reg.io/a__b/c-d.e_f/g--h', 'reg.io', 'a__b/c-d.e_f/g--h', 'latest', undefined, 'reg.io/a__b/c-d.e_f/g--h:latest'],
  ])('%s', (input, registry, repository, tag, digest, canonical) => {
    const ref = parseReference(input);
    expect(ref).toMatchObject({ registry, repository, tag, digest });
    expect(ref.toString()).toBe(canonical);
    expect(parseReference(ref.toString())).toEqual(ref);
  });

  it('fetches by digest when there is one, else by tag', () => {
    expect(parseReference(`app:1@${DIGEST}`).manifestReference).toBe(DIGEST);
    expect(parseReference('app:1').manifestReference).toBe('1');
    const pinned = parseReference('reg.io/app:1').withDigest(DIGEST);
    expect(pinned.toString()).toBe(`reg.io/app:1@${DIGEST}`);
  });

  it.each([
    '',
    'app/UPPER',
    'app:',
    'app:-tag',
    'app:.tag',
    `app:${'t'.repeat(129)}`,
    'app@sha256:abc',
    `app@sha512:${'a'.repeat(128)}`,
    `app@sha256:${'A'.repeat(64)}`,
    'a//b',
    '/app',
    'app/',
    '-app',
    'app-',
    'a..b',
    'reg.io/',
    ':tag',
    'exa mple.com/app',
    'reg_io.com/app',
    '-reg.io/app',
    'reg.io:port/app',
    `reg.io/${'a'.repeat(250)}`,
    'x'.repeat(2000),
  ])('refuses %j with BAD_REFERENCE', (input) => {
    let error: unknown;
    try {
      parseReference(input);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ImageError);
    expect(error).toMatchObject({ code: 'BAD_REFERENCE' });
  });
});
