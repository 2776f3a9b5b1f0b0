export * from './lib/types';
export * from './lib/settings';
export * from './lib/reservation';
export * from './lib/filter';
export * from './lib/spread-index';
export * from './lib/prepared-nodes';
export * from './lib/place';
export * from './lib/random';
