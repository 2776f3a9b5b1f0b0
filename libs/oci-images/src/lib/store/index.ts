export * from './content-store';
