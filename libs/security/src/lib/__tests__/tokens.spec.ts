import { displayPrefix, hashToken, issueToken, looksLikeToken, matchesHash } from '../tokens';

describe('tokens', () => {
  it('issues 256-bit caas_ tokens, distinct each time, with a short display prefix', () => {
    const a = issueToken();
    const b = issueToken();
    expect(a.token).toMatch(/^caas_[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(a.token.slice(5), 'base64url')).toHaveLength(32);
    expect(a.token).not.toEqual(b.token);
    expect(a.prefix).toBe(a.token.slice(0, 11));
    expect(Buffer.from(a.hash).equals(Buffer.from(hashToken(a.token)))).toBe(true);
    expect(a.hash).toHaveLength(32);
  });

  it('recognises well-formed tokens only', () => {
    const { token } = issueToken('caasjoin');
    expect(looksLikeToken(token)).toBe(true);
    expect(looksLikeToken(token, 'caas')).toBe(false);
    expect(looksLikeToken(token, 'caasjoin')).toBe(true);
    expect(looksLikeToken('caas_short')).toBe(false);
    expect(looksLikeToken(`${issueToken().token}x`)).toBe(false);
    expect(displayPrefix(token)).toBe(token.slice(0, 15));
  });

  it('matches a presented token against its stored hash', () => {
    const { token, hash } = issueToken();
    expect(matchesHash(token, hash)).toBe(true);
    expect(matchesHash(issueToken().token, hash)).toBe(false);
  });
});
