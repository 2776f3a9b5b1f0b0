import { ModuleException } from '../common/errors/module.exception';

export enum TenantExceptionCode {
  TENANT_NOT_FOUND = 'TENANT_NOT_FOUND',
  SLUG_TAKEN = 'SLUG_TAKEN',
  INVALID_TENANT_INPUT = 'INVALID_TENANT_INPUT',
  NETWORK_IDS_EXHAUSTED = 'SUBNET_POOL_EXHAUSTED',
}

export class TenantException extends ModuleException<TenantExceptionCode> {}
