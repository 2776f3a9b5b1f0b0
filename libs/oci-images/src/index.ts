export * from './lib/errors';
export * from './lib/digest';
export * from './lib/store';
