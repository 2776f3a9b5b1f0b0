export * from './lib/join';
export * from './lib/node-connection';
