export * from './policy.exception';
export * from './policy-apply';
export { netnsPath } from './utils/nft.util';
