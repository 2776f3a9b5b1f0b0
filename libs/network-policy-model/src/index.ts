export * from './lib/labels';
export * from './lib/model';
export * from './lib/normalize';
