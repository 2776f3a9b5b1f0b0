export * from './lib/errors';
export * from './lib/frame';
export * from './lib/messages';
