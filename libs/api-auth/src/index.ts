export * from './lib/principal';
export * from './lib/token-verifier';
export * from './lib/rate-limiter';
export * from './lib/authenticate';
