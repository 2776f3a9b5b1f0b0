export * from './lib/queue-names';
export * from './lib/jobs';
export * from './lib/job-options';
export * from './lib/outbox';
export * from './lib/node-contract';
export * from './lib/desired-set';
export * from './lib/node-reports';
