export * from './lib/pod-logs';
export * from './lib/pod-events';
