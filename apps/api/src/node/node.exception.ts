import { ModuleException } from '../common/errors/module.exception';

export enum NodeExceptionCode {
  NODE_NOT_FOUND = 'NODE_NOT_FOUND',
  INVALID_NODE_INPUT = 'INVALID_NODE_INPUT',
}

export class NodeException extends ModuleException<NodeExceptionCode> {}
