export * from './lib/errors';
export * from './lib/digest';
export * from './lib/store';
export * from './lib/registry';
export * from './lib/unpack';
export * from './lib/image-service';
