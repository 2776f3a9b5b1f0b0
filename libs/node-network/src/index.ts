export * from './lib/datapath';
export * from './lib/policy';
