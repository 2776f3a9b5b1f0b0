import { ModuleException } from '../common/errors/module.exception';

export enum RegistryCredentialExceptionCode {
  REGISTRY_CREDENTIAL_NOT_FOUND = 'REGISTRY_CREDENTIAL_NOT_FOUND',
  REGISTRY_CREDENTIAL_EXISTS = 'REGISTRY_CREDENTIAL_EXISTS',
  INVALID_REGISTRY_CREDENTIAL_INPUT = 'INVALID_REGISTRY_CREDENTIAL_INPUT',
}

export class RegistryCredentialException extends ModuleException<RegistryCredentialExceptionCode> {}
