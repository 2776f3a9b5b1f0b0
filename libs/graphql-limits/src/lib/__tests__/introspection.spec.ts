import { getIntrospectionQuery, parse, specifiedRules, validate } from 'graphql';
import { introspectionDisabledRule, isIntrospectionQuery } from '../introspection';
import { schema } from './schema';

const detects = (query: string) => isIntrospectionQuery(parse(query));

describe('isIntrospectionQuery', () => {
  it('detects __schema and __type, aliased or not', () => {
    expect(detects(getIntrospectionQuery())).toBe(true);
    expect(detects('{ __type(name: "Pod") { name } }')).toBe(true);
    expect(detects('{ s: __schema { queryType { name } } }')).toBe(true);
  });

  it('detects introspection inside fragments and at any depth', () => {
    expect(detects('{ viewer { __typename } ...I } fragment I on Query { __schema { queryType { name } } }')).toBe(
      true,
    );
    expect(detects('{ ... on Query { viewer { tenant { __type(name: "Pod") { name } } } } }')).toBe(true);
    expect(
      detects(
        '{ viewer { ...A } } fragment A on Viewer { ...B } fragment B on Viewer { ...A __schema { types { name } } }',
      ),
    ).toBe(true);
  });

  it('does not treat __typename, ordinary fields or unused fragments as introspection', () => {
    expect(detects('{ __typename }')).toBe(false);
    expect(detects('{ viewer { __typename tenant { name } } }')).toBe(false);
    expect(detects('{ viewer { __typename } } fragment Unused on Query { __schema { types { name } } }')).toBe(false);
    expect(detects('fragment OnlyFragment on Query { __schema { types { name } } }')).toBe(false);
  });
});

describe('introspectionDisabledRule', () => {
  const check = (query: string) => validate(schema, parse(query), [...specifiedRules, introspectionDisabledRule]);

  it('reports one FORBIDDEN error for the full introspection query', () => {
    const errors = check(getIntrospectionQuery());
    expect(errors).toHaveLength(1);
    expect(errors[0].message).toBe('GraphQL introspection is disabled.');
    expect(errors[0].extensions).toEqual({ code: 'FORBIDDEN', reason: 'INTROSPECTION_DISABLED' });
  });

  it('reports one error even when several operations introspect', () => {
    expect(check('query A { __schema { queryType { name } } } query B { __type(name: "Pod") { name } }')).toHaveLength(
      1,
    );
  });

  it('allows __typename', () => {
    expect(check('{ __typename viewer { __typename } }')).toEqual([]);
  });
});
