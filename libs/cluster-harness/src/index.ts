export * from './lib/agent-host';
export * from './lib/cluster';
export * from './lib/processes';
