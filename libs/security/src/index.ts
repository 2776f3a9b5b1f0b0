export * from './lib/tokens';
export * from './lib/secret-box';
export * from './lib/secret-contexts';
