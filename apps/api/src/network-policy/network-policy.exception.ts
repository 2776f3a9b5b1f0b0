import { ModuleException } from '../common/errors/module.exception';

export enum NetworkPolicyExceptionCode {
  NETWORK_POLICY_NOT_FOUND = 'NETWORK_POLICY_NOT_FOUND',
  NETWORK_POLICY_NAME_TAKEN = 'NETWORK_POLICY_NAME_TAKEN',
  INVALID_NETWORK_POLICY_INPUT = 'INVALID_NETWORK_POLICY_INPUT',
  /** Another update committed between reading the policy and writing it; nothing was written. */
  NETWORK_POLICY_CHANGED_CONCURRENTLY = 'NETWORK_POLICY_CHANGED_CONCURRENTLY',
}

export class NetworkPolicyException extends ModuleException<NetworkPolicyExceptionCode> {}
