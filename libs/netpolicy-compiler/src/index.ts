export * from './lib/ir';
export * from './lib/compile';
export * from './lib/render';
export * from './lib/evaluate';
export * from './lib/diff';
export * from './lib/incremental';
