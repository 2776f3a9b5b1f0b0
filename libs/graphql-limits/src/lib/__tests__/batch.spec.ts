import { checkBatch } from '../batch';

const operation = { query: '{ viewer { __typename } }' };

describe('checkBatch', () => {
  it('rejects a batch of 100 operations', () => {
    const error = checkBatch(Array.from({ length: 100 }, () => operation));
    expect(error?.message).toBe('Batch of 100 operations exceeds the maximum of 1.');
    expect(error?.extensions).toEqual({ code: 'BAD_USER_INPUT', reason: 'BATCH_TOO_LARGE', limit: 1, actual: 100 });
  });

  it('accepts a single operation object and an array of one', () => {
    expect(checkBatch(operation)).toBeNull();
    expect(checkBatch([operation])).toBeNull();
    expect(checkBatch(undefined)).toBeNull();
  });

  it('honours maxOperations', () => {
    expect(checkBatch([operation, operation], 2)).toBeNull();
    expect(checkBatch([operation, operation, operation], 2)?.extensions).toMatchObject({ limit: 2, actual: 3 });
  });
});
