export * from './lib/queue-names';
export * from './lib/jobs';
export * from './lib/job-options';
export * from './lib/outbox';
