import { parse } from 'graphql';
import { checkPageSizeVariables } from '../page-size';
import { DEFAULT_QUERY_LIMITS } from '../query-limits';

const query = parse('query($n: Int, $m: Int) { pods(first: $n) { edges { node { containers(first: $m) { id } } } } }');

describe('checkPageSizeVariables', () => {
  it('rejects a variable page over the limit', () => {
    const error = checkPageSizeVariables(query, { n: 100000000 }, DEFAULT_QUERY_LIMITS);
    expect(error?.message).toBe('Page size 100000000 for "first" is outside the allowed range 0 to 100.');
    expect(error?.extensions).toEqual({
      code: 'BAD_USER_INPUT',
      reason: 'PAGE_SIZE_TOO_LARGE',
      limit: 100,
      actual: 100000000,
    });
  });

  it('accepts small, missing and null variables', () => {
    expect(checkPageSizeVariables(query, { n: 5, m: 100 }, DEFAULT_QUERY_LIMITS)).toBeNull();
    expect(checkPageSizeVariables(query, {}, DEFAULT_QUERY_LIMITS)).toBeNull();
    expect(checkPageSizeVariables(query, undefined, DEFAULT_QUERY_LIMITS)).toBeNull();
    expect(checkPageSizeVariables(query, { n: null }, DEFAULT_QUERY_LIMITS)).toBeNull();
  });

  it('checks variables used in nested fields and inside fragments, and negative sizes', () => {
    expect(checkPageSizeVariables(query, { n: 5, m: 101 }, DEFAULT_QUERY_LIMITS)?.extensions).toMatchObject({
      actual: 101,
    });
    const withFragment = parse(`
      query($k: Int) { viewer { ...T } }
      fragment T on Viewer { tenant { pods(last: $k) { edges { node { id } } } } }
    `);
    expect(checkPageSizeVariables(withFragment, { k: -3 }, DEFAULT_QUERY_LIMITS)?.message).toBe(
      'Page size -3 for "last" is outside the allowed range 0 to 100.',
    );
  });

  it('falls back to the default value only when the variable is not provided', () => {
    const withDefault = parse('query($n: Int = 1000) { pods(first: $n) { edges { node { id } } } }');
    expect(checkPageSizeVariables(withDefault, {}, DEFAULT_QUERY_LIMITS)?.extensions).toMatchObject({ actual: 1000 });
    expect(checkPageSizeVariables(withDefault, { n: 10 }, DEFAULT_QUERY_LIMITS)).toBeNull();
  });

  it('honours the configured maxPageSize and ignores other arguments', () => {
    expect(checkPageSizeVariables(query, { n: 20 }, { ...DEFAULT_QUERY_LIMITS, maxPageSize: 10 })).not.toBeNull();
    const other = parse('query($a: String) { pods(after: $a) { edges { node { id } } } }');
    expect(checkPageSizeVariables(other, { a: 100000000 }, DEFAULT_QUERY_LIMITS)).toBeNull();
  });
});
