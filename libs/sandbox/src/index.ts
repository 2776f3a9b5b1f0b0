export * from './lib/vmm';
export * from './lib/guest-connection';
export * from './lib/sandbox-spec';
export * from './lib/sandbox';
export * from './lib/sandbox-manager';
export * from './lib/busybox-image';
