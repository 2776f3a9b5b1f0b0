import { InputException, InputExceptionCode } from '../errors/common.exception';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Rejects a malformed id before it reaches the database. */
export function assertId(id: string, what = 'id'): string {
  if (!UUID.test(id)) throw new InputException(InputExceptionCode.INVALID_ID, `${what} is not a valid id.`);
  return id.toLowerCase();
}
