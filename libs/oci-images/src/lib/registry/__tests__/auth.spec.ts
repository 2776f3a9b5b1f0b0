import { credentialIdentity, parseWwwAuthenticate, TokenCache, tokenCacheKey } from '../auth';

describe('parseWwwAuthenticate', () => {
  it('parses a Bearer challenge with quoted values holding commas and colons', () => {
    expect(
      parseWwwAuthenticate(
        'Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:team/app:pull,push"',
      ),
    ).toEqual([
      {
        scheme: 'bearer',
        realm: 'https://auth.example.com/token',
        service: 'registry.example.com',
        scope: 'repository:team/app:pull,push',
      },
    ]);
  });

  it('is case-insensitive in scheme and parameter names, and tolerant of spaces', () => {
    expect(parseWwwAuthenticate('bearer  Realm = "https://a/t" , SERVICE=reg ,error="insufficient_scope"')).toEqual([
      { scheme: 'bearer', realm: 'https://a/t', service: 'reg', error: 'insufficient_scope' },
    ]);
  });

  it('unescapes quoted strings and accepts unquoted URLs', () => {
    expect(parseWwwAuthenticate('Bearer realm="a\\"b\\\\c"')).toEqual([{ scheme: 'bearer', realm: 'a"b\\c' }]);
    expect(parseWwwAuthenticate('Bearer realm=https://auth.io/token,service=reg.io')).toEqual([
      { scheme: 'bearer', realm: 'https://auth.io/token', service: 'reg.io' },
    ]);
  });

  it('parses Basic, with or without a realm', () => {
    expect(parseWwwAuthenticate('Basic realm="Registry Realm"')).toEqual([
      { scheme: 'basic', realm: 'Registry Realm' },
    ]);
    expect(parseWwwAuthenticate('Basic')).toEqual([{ scheme: 'basic' }]);
  });

  it('parses several challenges in one header, skipping other schemes and token68', () => {
    expect(
      parseWwwAuthenticate(
        'Negotiate abc==, Basic realm="x, y", Bearer realm="https://a/t",service="s", Digest nonce="n"',
      ),
    ).toEqual([
      { scheme: 'basic', realm: 'x, y' },
      { scheme: 'bearer', realm: 'https://a/t', service: 's' },
    ]);
  });

  it('leaves out a Bearer challenge without a realm, and garbage', () => {
    expect(parseWwwAuthenticate('Bearer service="x"')).toEqual([]);
    expect(parseWwwAuthenticate('')).toEqual([]);
    expect(parseWwwAuthenticate(',,, "" ==')).toEqual([]);
    expect(parseWwwAuthenticate('Bearer realm="unterminated')).toEqual([{ scheme: 'bearer', realm: 'unterminated' }]);
  });
});

describe('token cache', () => {
  const alice = { username: 'alice', password: 'a-secret' };
  const bob = { username: 'bob', password: 'b-secret' };

  it('keys tokens on registry, repository and a hash of the credentials', () => {
    const keys = new Set([
      tokenCacheKey('reg.io', 'team/app', alice),
      tokenCacheKey('reg.io', 'team/app', bob),
      tokenCacheKey('reg.io', 'team/app', { ...alice, password: 'other' }),
      tokenCacheKey('reg.io', 'team/app', undefined),
      tokenCacheKey('reg.io', 'team/other', alice),
      tokenCacheKey('other.io', 'team/app', alice),
    ]);
    expect(keys.size).toBe(6);
    expect(tokenCacheKey('reg.io', 'team/app', alice)).toBe(tokenCacheKey('reg.io', 'team/app', { ...alice }));
    expect(credentialIdentity(alice)).not.toContain('a-secret');
    expect(credentialIdentity(undefined)).toBe('anonymous');
  });

  it('keeps a token until a little before it expires', () => {
    let now = 1_000_000;
    const cache = new TokenCache(10, () => now);
    cache.set('k', 't', 60);
    now += 53_000;
    expect(cache.get('k')).toBe('t');
    now += 1_500; // within the last tenth of its life
    expect(cache.get('k')).toBeUndefined();
    cache.set('long', 't', 3600);
    now += 3600_000 - 31_000;
    expect(cache.get('long')).toBe('t'); // at most 30 s early
    now += 2_000;
    expect(cache.get('long')).toBeUndefined();
    cache.set('dead', 't', 0);
    expect(cache.get('dead')).toBeUndefined();
  });

  it('forgets only the token that was refused, and stays bounded', () => {
    const cache = new TokenCache(3, () => 0);
    cache.set('k', 'new', 60);
    cache.delete('k', 'old');
    expect(cache.get('k')).toBe('new');
    cache.delete('k', 'new');
    expect(cache.get('k')).toBeUndefined();
    for (const k of ['a', 'b', 'c', 'd']) cache.set(k, k, 60);
    expect(cache.size).toBe(3);
    expect(cache.get('a')).toBeUndefined();
    expect(cache.get('d')).toBe('d');
  });
});
