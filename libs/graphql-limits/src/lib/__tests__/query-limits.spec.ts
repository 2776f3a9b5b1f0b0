import type { GraphQLError, ValidationRule } from 'graphql';
import { parse, specifiedRules, validate } from 'graphql';
import type { QueryLimits } from '../query-limits';
import { DEFAULT_QUERY_LIMITS, queryLimitRules } from '../query-limits';
import { schema } from './schema';

/** All of graphql's rules plus ours, so a test query that is itself invalid shows up as an extra error. */
function check(query: string, limits: Partial<QueryLimits> = {}, rules: readonly ValidationRule[] = specifiedRules) {
  return validate(schema, parse(query), [...rules, ...queryLimitRules({ ...DEFAULT_QUERY_LIMITS, ...limits })]);
}

const reasons = (errors: readonly GraphQLError[]) => errors.map((error) => error.extensions['reason']);

/** `{ pods { edges { node { containers { … id } } } } }` nested to exactly `depth` fields. */
const podsOfDepth = (depth: number) =>
  `{ pods { edges { node { ${'containers { '.repeat(depth - 4)}id${' }'.repeat(depth - 4)} } } } }`;

const aliased = (count: number, field: string) => Array.from({ length: count }, (_, i) => `a${i}: ${field}`).join(' ');

describe('DEFAULT_QUERY_LIMITS', () => {
  it('has the documented values and cannot be changed in place', () => {
    expect(DEFAULT_QUERY_LIMITS).toEqual({
      maxDepth: 10,
      maxAliases: 30,
      maxCost: 5000,
      maxRootFields: 20,
      maxPageSize: 100,
    });
    expect(Object.isFrozen(DEFAULT_QUERY_LIMITS)).toBe(true);
  });
});

describe('depth', () => {
  it('accepts an ordinary query and a query exactly at the limit', () => {
    expect(check('{ viewer { tenant { name } } }')).toEqual([]);
    expect(check(podsOfDepth(10))).toEqual([]);
  });

  it('rejects one level over the limit', () => {
    const errors = check(podsOfDepth(11));
    expect(errors).toHaveLength(1);
    expect(errors[0].message).toBe('Query depth 11 exceeds the maximum of 10.');
    expect(errors[0].extensions).toEqual({ code: 'BAD_USER_INPUT', reason: 'QUERY_TOO_DEEP', limit: 10, actual: 11 });
  });

  it('rejects a depth-20 query with one error located at the operation', () => {
    const errors = check(podsOfDepth(20));
    expect(errors).toHaveLength(1);
    expect(errors[0].message).toBe('Query depth 20 exceeds the maximum of 10.');
    expect(errors[0].locations).toEqual([{ line: 1, column: 1 }]);
  });

  it('counts `{ a { b } }` as depth 2, __typename included', () => {
    expect(check('{ viewer { __typename } }', { maxDepth: 2 })).toEqual([]);
    expect(reasons(check('{ viewer { tenant { __typename } } }', { maxDepth: 2 }))).toEqual(['QUERY_TOO_DEEP']);
  });

  it('follows fragment spreads and inline fragments', () => {
    const query = `
      { viewer { ...T } }
      fragment T on Viewer { tenant { ... on Tenant { pods { edges { node { ...P } } } } } }
      fragment P on Pod { containers { containers { id } } }
    `;
    expect(check(query, { maxDepth: 8 })).toEqual([]);
    expect(check(query, { maxDepth: 7 })[0].extensions).toMatchObject({ reason: 'QUERY_TOO_DEEP', actual: 8 });
  });

  it('measures each operation on its own', () => {
    const errors = check(`query Shallow { viewer { tenant { name } } } query Deep ${podsOfDepth(12)}`);
    expect(errors).toHaveLength(1);
    expect(errors[0].message).toBe('Query depth 12 exceeds the maximum of 10.');
  });

  it('terminates on fragment cycles, which graphql reports itself', () => {
    const errors = check(`
      { pods { edges { node { ...A } } } }
      fragment A on Pod { containers { ...B } }
      fragment B on Pod { containers { ...A } }
    `);
    expect(errors.map((error) => error.message)).toEqual(['Cannot spread fragment "A" within itself via "B".']);
  });
});

describe('aliases', () => {
  it('accepts up to the limit and rejects one over', () => {
    expect(check(`{ viewer { tenant { ${aliased(30, 'name')} } } }`)).toEqual([]);
    const errors = check(`{ viewer { tenant { ${aliased(31, 'name')} } } }`);
    expect(errors).toHaveLength(1);
    expect(errors[0].message).toBe('Alias count 31 exceeds the maximum of 30.');
    expect(errors[0].extensions).toEqual({ code: 'BAD_USER_INPUT', reason: 'TOO_MANY_ALIASES', limit: 30, actual: 31 });
  });

  it('reports 1,000 aliases with exactly one error', () => {
    const errors = check(`{ viewer { tenant { ${aliased(1000, 'name')} } } }`);
    expect(errors).toHaveLength(1);
    expect(errors[0].extensions).toMatchObject({ reason: 'TOO_MANY_ALIASES', actual: 1000 });
  });

  it('counts aliases inside fragments each time they are spread, and inside inline fragments', () => {
    const query = `
      { viewer { tenant { ...Names } } again: viewer { tenant { ...Names ... on Tenant { c: name } } } }
      fragment Names on Tenant { a: name b: name }
    `;
    expect(check(query, { maxAliases: 6 })).toEqual([]);
    expect(check(query, { maxAliases: 5 })[0].extensions).toMatchObject({ reason: 'TOO_MANY_ALIASES', actual: 6 });
  });
});

describe('root fields', () => {
  it('accepts up to the limit and rejects one over', () => {
    expect(check(`{ ${aliased(20, 'viewer { __typename }')} }`)).toEqual([]);
    const errors = check(`{ ${aliased(21, 'viewer { __typename }')} }`);
    expect(errors).toHaveLength(1);
    expect(errors[0].message).toBe('Root field count 21 exceeds the maximum of 20.');
    expect(errors[0].extensions).toEqual({
      code: 'BAD_USER_INPUT',
      reason: 'TOO_MANY_ROOT_FIELDS',
      limit: 20,
      actual: 21,
    });
  });

  it('expands fragments at the root but does not count nested fields', () => {
    const query = `
      { ...Root ... on Query { pods { edges { node { id name } } } } }
      fragment Root on Query { a: viewer { tenant { name } } b: viewer { tenant { name } } }
    `;
    expect(check(query, { maxRootFields: 3 })).toEqual([]);
    expect(check(query, { maxRootFields: 2 })[0].extensions).toMatchObject({
      reason: 'TOO_MANY_ROOT_FIELDS',
      actual: 3,
    });
  });
});

describe('cost', () => {
  // containers(first: 5) { id } = 1 + 5·1 = 6; node = 1 + 1 + 6 = 8; edges = 9; pods(first: 10) = 1 + 10·9 = 91.
  const nested = '{ pods(first: 10) { edges { node { id containers(first: 5) { id } } } } }';

  it('charges one per field and multiplies paginated sub-selections', () => {
    expect(check(nested, { maxCost: 91 })).toEqual([]);
    const errors = check(nested, { maxCost: 90 });
    expect(errors).toHaveLength(1);
    expect(errors[0].message).toBe('Query cost 91 exceeds the maximum of 90.');
    expect(errors[0].extensions).toEqual({ code: 'BAD_USER_INPUT', reason: 'QUERY_TOO_COSTLY', limit: 90, actual: 91 });
  });

  it('rejects nested full pages under the default limits', () => {
    // containers(first: 100) { id } = 101; node = 102; edges = 103; pods(first: 100) = 1 + 100·103.
    const errors = check('{ pods(first: 100) { edges { node { containers(first: 100) { id } } } } }');
    expect(errors).toHaveLength(1);
    expect(errors[0].extensions).toMatchObject({ reason: 'QUERY_TOO_COSTLY', limit: 5000, actual: 10301 });
  });

  it('follows fragments, uses the larger of first/last and counts an unpaginated list once', () => {
    const query = `
      { pods(first: 2, last: 3) { ...Edges } }
      fragment Edges on PodConnection { edges { node { ... on Pod { containers { id } } } } }
    `;
    // containers { id } = 2; node = 3; edges = 4; pods = 1 + 3·4.
    expect(check(query, { maxCost: 13 })).toEqual([]);
    expect(check(query, { maxCost: 12 })[0].extensions).toMatchObject({ reason: 'QUERY_TOO_COSTLY', actual: 13 });
  });

  it('assumes a full page for a variable', () => {
    const query = 'query($n: Int) { pods(first: $n) { edges { node { id } } } }';
    expect(check(query, { maxCost: 301 })).toEqual([]);
    expect(check(query, { maxCost: 300 })[0].extensions).toMatchObject({ reason: 'QUERY_TOO_COSTLY', actual: 301 });
  });

  it('caps an oversized page at maxPageSize, leaving it to the page-size rule', () => {
    expect(reasons(check('{ pods(first: 100000000) { edges { node { id } } } }'))).toEqual(['PAGE_SIZE_TOO_LARGE']);
  });

  it('works for fields the schema does not have', () => {
    const errors = check('{ nope(first: 50) { deeper { id } } }', { maxCost: 100 }, []);
    expect(errors).toHaveLength(1);
    expect(errors[0].extensions).toMatchObject({ reason: 'QUERY_TOO_COSTLY', actual: 101 });
  });

  it('measures a fragment spread 2^40 times without expanding it', () => {
    const levels = Array.from({ length: 40 }, (_, i) => `fragment F${i + 1} on Pod { ...F${i} ...F${i} }`).join('\n');
    const query = `{ pods { edges { node { ...F40 } } } } fragment F0 on Pod { id } ${levels}`;
    expect(check(query, {}, []).map((error) => error.extensions)).toEqual([
      { code: 'BAD_USER_INPUT', reason: 'QUERY_TOO_COSTLY', limit: 5000, actual: 2 ** 40 + 3 },
    ]);
  });

  it('stays finite on exponential fragment fan-out', () => {
    const levels = Array.from({ length: 1100 }, (_, i) => `fragment F${i + 1} on Pod { ...F${i} ...F${i} }`).join('\n');
    const query = `{ pods { edges { node { ...F1100 } } } } fragment F0 on Pod { id } ${levels}`;
    const errors = check(query, {}, []);
    expect(errors).toHaveLength(1);
    expect(errors[0].extensions).toMatchObject({ reason: 'QUERY_TOO_COSTLY', actual: Number.MAX_SAFE_INTEGER });
  });
});

describe('page size', () => {
  it('accepts 0 to maxPageSize', () => {
    expect(
      check('{ a: pods(first: 0) { edges { node { id } } } b: pods(last: 100) { edges { node { id } } } }'),
    ).toEqual([]);
  });

  it('rejects first: 100000000', () => {
    const errors = check('{ pods(first: 100000000) { edges { node { id } } } }');
    expect(errors).toHaveLength(1);
    expect(errors[0].message).toBe('Page size 100000000 for "first" is outside the allowed range 0 to 100.');
    expect(errors[0].extensions).toEqual({
      code: 'BAD_USER_INPUT',
      reason: 'PAGE_SIZE_TOO_LARGE',
      limit: 100,
      actual: 100000000,
    });
    expect(errors[0].locations).toEqual([{ line: 1, column: 8 }]);
  });

  it('rejects one over the limit, negative sizes and `last`', () => {
    expect(reasons(check('{ pods(first: 101) { edges { node { id } } } }'))).toEqual(['PAGE_SIZE_TOO_LARGE']);
    expect(check('{ pods(last: -1) { edges { node { id } } } }')[0].message).toBe(
      'Page size -1 for "last" is outside the allowed range 0 to 100.',
    );
  });

  it('checks fields inside fragments and reports one error per document', () => {
    const errors = check(
      `
      { a: pods(first: 500) { edges { node { ...C } } } b: pods(first: 600) { edges { node { id } } } }
      fragment C on Pod { containers(first: 700) { id } }
    `,
      { maxCost: Infinity },
    );
    expect(errors).toHaveLength(1);
    expect(errors[0].extensions).toMatchObject({ reason: 'PAGE_SIZE_TOO_LARGE', actual: 500 });
    expect(
      reasons(
        check('{ viewer { ...T } } fragment T on Viewer { tenant { pods(first: 101) { edges { node { id } } } } }'),
      ),
    ).toEqual(['PAGE_SIZE_TOO_LARGE']);
  });

  it('leaves variables to checkPageSizeVariables', () => {
    expect(check('query($n: Int = 100000000) { pods(first: $n) { edges { node { id } } } }')).toEqual([]);
  });
});
