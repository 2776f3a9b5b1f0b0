import { ModuleException } from '../common/errors/module.exception';

export enum PodExceptionCode {
  POD_NOT_FOUND = 'POD_NOT_FOUND',
  POD_NAME_TAKEN = 'POD_NAME_TAKEN',
  INVALID_POD_INPUT = 'INVALID_POD_INPUT',
  POD_QUOTA_EXCEEDED = 'POD_QUOTA_EXCEEDED',
  INVALID_POD_STATE = 'INVALID_POD_STATE',
  SUBNET_EXHAUSTED = 'SUBNET_EXHAUSTED',
}

export class PodException extends ModuleException<PodExceptionCode> {}
