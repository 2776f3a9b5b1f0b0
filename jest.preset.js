// Shared Jest settings: SWC transform (with decorator metadata, as the build), path aliases from tsconfig.base.json.
const { readFileSync } = require('node:fs');
const { join } = require('node:path');

const swcrc = JSON.parse(readFileSync(join(__dirname, '.swcrc'), 'utf8'));
const { paths } = JSON.parse(readFileSync(join(__dirname, 'tsconfig.base.json'), 'utf8')).compilerOptions;

const moduleNameMapper = Object.fromEntries(
  Object.entries(paths).map(([alias, [target]]) => [`^${alias}$`, join(__dirname, target)]),
);

module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.(ts|js)$': ['@swc/jest', { ...swcrc, swcrc: false }] },
  // These dependencies load ESM-only packages (mercurius: `await import('quick-lru')`; @fastify/static, which
  // mercurius registers for GraphiQL: content-disposition). Node runs them natively; Jest's CommonJS runtime
  // cannot without --experimental-vm-modules, so they are compiled to CommonJS like our own code.
  transformIgnorePatterns: ['/node_modules/(?!(mercurius|quick-lru|content-disposition|@fastify/static)/)'],
  moduleFileExtensions: ['ts', 'js', 'json'],
  moduleNameMapper,
  testMatch: ['**/?(*.)+(spec|integration-spec|vm-spec|net-spec).ts'],
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
};
