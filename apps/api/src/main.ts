import { ConfigError } from '@caas/config';
import { createApiApp } from './app';
import { loadApiConfig } from './config/api-config';

async function main(): Promise<void> {
  const config = loadApiConfig();
  const app = await createApiApp(config);
  await app.listen({ port: config.PORT, host: config.HOST });
  const log = app.getHttpAdapter().getInstance().log;
  log.info(`GraphQL API on http://${config.HOST}:${config.PORT}/graphql`);
  const stop = (signal: NodeJS.Signals) => {
    log.info({ signal }, 'API stopping: draining requests and closing connections');
    app.close().then(
      () => {
        log.info('API stopped');
        process.exit(0);
      },
      (error: unknown) => {
        log.error({ err: error }, 'API did not stop cleanly');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`);
    process.exit(78); // EX_CONFIG
  }
  process.stderr.write(`api failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
