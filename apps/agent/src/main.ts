import pino from 'pino';
import { ConfigError } from '@caas/config';
import { loadAgentConfig } from './config/agent-config';

/**
 * The node agent. So far it only validates its configuration and says so: joining, the desired-set
 * loop and the runtime arrive with their issues. It exits non-zero so that nobody mistakes it for a
 * working node.
 */
function main(): void {
  const config = loadAgentConfig();
  const log = pino({ level: config.LOG_LEVEL, base: { app: 'agent' } });
  log.error(
    { apiUrl: config.API_URL },
    'the node agent cannot run pods yet: joining and the runtime are not implemented',
  );
  process.exitCode = 69; // EX_UNAVAILABLE
}

try {
  main();
} catch (error) {
  process.stderr.write(`${error instanceof ConfigError ? error.message : `agent failed: ${String(error)}`}\n`);
  process.exitCode = error instanceof ConfigError ? 78 : 1;
}
