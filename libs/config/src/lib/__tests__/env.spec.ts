import { z } from 'zod';
import { ConfigError, parseEnv } from '../env';

const schema = z.object({
  PORT: z.coerce.number().int().min(1).max(65535).default(4000),
  SECRET: z.string().min(8),
});

describe('parseEnv', () => {
  it('applies defaults and coerces', () => {
    expect(parseEnv('t', schema, { SECRET: 'abcdefgh' })).toEqual({ PORT: 4000, SECRET: 'abcdefgh' });
  });

  it('names every bad variable without echoing values', () => {
    let error: unknown;
    try {
      parseEnv('t', schema, { PORT: 'seventy', SECRET: 'short' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as ConfigError).message;
    expect(message).toContain('PORT');
    expect(message).toContain('SECRET');
    expect(message).not.toContain('short');
    expect(message).not.toContain('seventy');
  });
});
