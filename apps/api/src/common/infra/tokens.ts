/** Injection tokens for the process-wide clients. */
export const DB = Symbol('DB');
export const PRISMA = Symbol('PRISMA');
export const REDIS = Symbol('REDIS');
