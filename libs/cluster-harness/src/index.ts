export * from './lib/agent-host';
export * from './lib/cluster';
export * from './lib/processes';
export * from './lib/demo-registry';
export * from './lib/tcp-link';
export * from './lib/cleanup';
export * from './lib/fabric';
