import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { LogController } from 'fastify';
import pino from 'pino';
import { RateLimiter, TokenVerifier } from '@caas/api-auth';
import { AppModule } from './app.module';
import { registerRequestAuthentication } from './common/auth/request-authentication';
import { PinoNestLogger } from './common/infra/pino-logger';
import type { ApiConfig } from './config/api-config';

/** Builds the API (not listening yet): used by `main.ts`, the tests and the benchmark alike. */
export async function createApiApp(config: ApiConfig): Promise<NestFastifyApplication> {
  const logger = pino({
    level: config.LOG_LEVEL,
    base: { app: 'api' },
    redact: ['req.headers.authorization', 'headers.authorization'],
  });
  const adapter = new FastifyAdapter({
    loggerInstance: logger,
    logController: new LogController({ disableRequestLogging: true }),
  });
  const app = await NestFactory.create<NestFastifyApplication>(AppModule.forConfig(config), adapter, {
    logger: new PinoNestLogger(logger),
    abortOnError: false,
  });
  registerRequestAuthentication(adapter.getInstance(), {
    verifier: app.get(TokenVerifier),
    limiter: app.get(RateLimiter),
  });
  await app.init();
  return app;
}
