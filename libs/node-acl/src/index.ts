export * from './lib/node-acl';
