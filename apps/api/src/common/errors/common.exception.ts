import { ModuleException } from './module.exception';

export enum AuthExceptionCode {
  NOT_AUTHENTICATED = 'NOT_AUTHENTICATED',
  INVALID_TOKEN = 'INVALID_TOKEN',
  TENANT_SUSPENDED = 'TENANT_SUSPENDED',
  OPERATOR_ONLY = 'OPERATOR_ONLY',
  TENANT_ONLY = 'TENANT_ONLY',
  ROLE_TOO_LOW = 'ROLE_TOO_LOW',
  NO_ACCESS_DECLARATION = 'NO_ACCESS_DECLARATION',
  RATE_LIMITED = 'RATE_LIMITED',
}

export class AuthException extends ModuleException<AuthExceptionCode> {}

export enum InputExceptionCode {
  INVALID_ID = 'INVALID_ID',
  INVALID_CURSOR = 'INVALID_CURSOR',
  PAGE_SIZE_TOO_LARGE = 'PAGE_SIZE_TOO_LARGE',
  INVALID_INPUT = 'INVALID_INPUT',
  BATCH_TOO_LARGE = 'BATCH_TOO_LARGE',
}

export class InputException extends ModuleException<InputExceptionCode> {}
