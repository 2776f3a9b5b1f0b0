export * from './lib/env';
