import { ConfigError } from '@caas/config';
import { loadAgentConfig } from '../agent-config';

describe('agent configuration', () => {
  it('needs the API URL and defaults the state directory', () => {
    expect(loadAgentConfig({ API_URL: 'https://api.example:4000' })).toMatchObject({
      API_URL: 'https://api.example:4000',
      STATE_DIR: '/var/lib/caas-agent',
    });
  });

  it('refuses a relative state directory and a missing API URL', () => {
    expect(() => loadAgentConfig({ STATE_DIR: 'relative/dir' })).toThrow(ConfigError);
    expect(() => loadAgentConfig({ STATE_DIR: 'relative/dir' })).toThrow(/API_URL[\s\S]*STATE_DIR/);
  });
});
