import { ConfigError } from '@caas/config';
import { loadSchedulerConfig } from '../scheduler-config';

describe('scheduler configuration', () => {
  it('accepts the required URLs and defaults the log level', () => {
    expect(loadSchedulerConfig({ DATABASE_URL: 'postgresql://db/x', REDIS_URL: 'redis://r:6379/0' })).toEqual({
      DATABASE_URL: 'postgresql://db/x',
      REDIS_URL: 'redis://r:6379/0',
      LOG_LEVEL: 'info',
    });
  });

  it('names every missing or malformed variable', () => {
    expect(() => loadSchedulerConfig({ REDIS_URL: 'http://nope' })).toThrow(ConfigError);
    expect(() => loadSchedulerConfig({ REDIS_URL: 'http://nope' })).toThrow(/DATABASE_URL[\s\S]*REDIS_URL/);
  });
});
