export * from './lib/tokens';
export * from './lib/secret-box';
