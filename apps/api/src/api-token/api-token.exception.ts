import { ModuleException } from '../common/errors/module.exception';

export enum ApiTokenExceptionCode {
  API_TOKEN_NOT_FOUND = 'API_TOKEN_NOT_FOUND',
  ROLE_ABOVE_CALLER = 'ROLE_ABOVE_CALLER',
  INVALID_API_TOKEN_INPUT = 'INVALID_API_TOKEN_INPUT',
}

export class ApiTokenException extends ModuleException<ApiTokenExceptionCode> {}
