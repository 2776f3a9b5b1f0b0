export * from './lib/cidr';
