import { ModuleException } from '../common/errors/module.exception';

export enum PodLogExceptionCode {
  INVALID_LOG_QUERY = 'INVALID_LOG_QUERY',
  /** The pod does not exist or belongs to another tenant (the same answer: no existence oracle). */
  POD_NOT_FOUND = 'POD_NOT_FOUND',
  /** Too many log subscriptions open on this API process, for the tenant or for everyone. */
  TOO_MANY_LOG_STREAMS = 'TOO_MANY_LOG_STREAMS',
}

export class PodLogException extends ModuleException<PodLogExceptionCode> {}
