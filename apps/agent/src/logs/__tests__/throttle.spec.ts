import { throttled } from '../throttle';

describe('throttled', () => {
  it('reports each message at most once per period, with the count left out meanwhile', () => {
    let now = 0;
    const seen: [string, number][] = [];
    const onError = throttled(
      (error, suppressed) => seen.push([error.message, suppressed]),
      5_000,
      () => now,
    );
    for (let i = 0; i < 100; i++) {
      onError(new Error(i % 2 ? 'read ECONNRESET' : 'write EPIPE'));
      now += 10;
    }
    expect(seen).toEqual([
      ['write EPIPE', 0],
      ['read ECONNRESET', 0],
    ]);
    now = 5_100;
    onError(new Error('write EPIPE'));
    expect(seen.at(-1)).toEqual(['write EPIPE', 49]);
  });

  it('forgets the oldest message beyond its bound', () => {
    const seen: string[] = [];
    const onError = throttled(
      (error) => seen.push(error.message),
      5_000,
      () => 0,
      2,
    );
    for (const message of ['a', 'b', 'c', 'a']) onError(new Error(message));
    expect(seen).toEqual(['a', 'b', 'c', 'a']);
  });
});
