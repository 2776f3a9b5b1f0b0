import { ModuleException } from '../common/errors/module.exception';

export enum PodLogExceptionCode {
  INVALID_LOG_QUERY = 'INVALID_LOG_QUERY',
}

export class PodLogException extends ModuleException<PodLogExceptionCode> {}
