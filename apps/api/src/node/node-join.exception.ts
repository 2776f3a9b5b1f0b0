import { ModuleException } from '../common/errors/module.exception';

/** The stable codes of `POST /v1/nodes/join` (ADR-009), answered as `{ error: { code, message } }`. */
export enum NodeJoinExceptionCode {
  BAD_REQUEST = 'BAD_REQUEST',
  /** Unknown, used and expired tokens look the same: no oracle. */
  INVALID_JOIN_TOKEN = 'INVALID_JOIN_TOKEN',
  NODE_NAME_TAKEN = 'NODE_NAME_TAKEN',
  RATE_LIMITED = 'RATE_LIMITED',
  /** Redis (the node's ACL user) or PostgreSQL could not be reached; nothing was written. */
  UNAVAILABLE = 'UNAVAILABLE',
  INTERNAL = 'INTERNAL',
}

export class NodeJoinException extends ModuleException<NodeJoinExceptionCode> {}

export function httpStatusOfJoinError(code: NodeJoinExceptionCode): number {
  switch (code) {
    case NodeJoinExceptionCode.BAD_REQUEST:
      return 400;
    case NodeJoinExceptionCode.INVALID_JOIN_TOKEN:
      return 401;
    case NodeJoinExceptionCode.NODE_NAME_TAKEN:
      return 409;
    case NodeJoinExceptionCode.RATE_LIMITED:
      return 429;
    case NodeJoinExceptionCode.UNAVAILABLE:
      return 503;
    case NodeJoinExceptionCode.INTERNAL:
      return 500;
  }
}
