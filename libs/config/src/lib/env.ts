import type { z } from 'zod';

export class ConfigError extends Error {
  constructor(
    readonly app: string,
    readonly problems: string[],
  ) {
    super(`${app}: invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Parses an application's environment against its schema and fails with one message naming every
 * bad variable. Values are never echoed back: a secret mistyped into the wrong variable stays out of logs.
 */
export function parseEnv<S extends z.ZodTypeAny>(
  app: string,
  schema: S,
  env: Record<string, string | undefined> = process.env,
): z.infer<S> {
  const result = schema.safeParse(env);
  if (result.success) return result.data as z.infer<S>;
  const problems = result.error.issues.map(
    (issue) => `${issue.path.join('.') || '(environment)'}: ${issue.message.replace(/,? received '[^']*'/, '')}`,
  );
  throw new ConfigError(app, problems);
}
