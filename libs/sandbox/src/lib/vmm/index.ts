// The VMM driver layer: QEMU microVMs for pods. Pure builders and decisions, thin I/O around them.
export * from './errors';
export * from './paths';
export * from './tsc';
export * from './qemu-args';
export * from './accel';
export * from './qmp-codec';
export * from './qmp-client';
export * from './access';
export * from './uid';
export * from './cgroup';
export * from './proc';
export * from './launch';
export * from './lifecycle';
