export * from './reference';
export { parseWwwAuthenticate, type AuthChallenge, type Credentials } from './auth';
export * from './manifest';
export {
  RegistryClient,
  type ConfigBlob,
  type RegistryClientOptions,
  type RequestOptions,
  type ResolvedImage,
  type RetryOptions,
} from './client';
