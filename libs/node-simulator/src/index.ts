export * from './lib/simulated-node';
