import { z } from 'zod';
import { parseEnv } from '@caas/config';

const schema = z.object({
  /** Where the agent joins the control plane (the API's HTTP endpoint). */
  API_URL: z.string().url(),
  /** Directory for the node identity, VM state and the image cache. */
  STATE_DIR: z.string().startsWith('/', 'must be an absolute path').default('/var/lib/caas-agent'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type AgentConfig = z.infer<typeof schema>;

export const loadAgentConfig = (env: Record<string, string | undefined> = process.env): AgentConfig =>
  parseEnv('agent', schema, env);
