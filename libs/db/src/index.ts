export * from './lib/prisma-client';
export * from './generated/client';
