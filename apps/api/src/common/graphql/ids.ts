import { InputException, InputExceptionCode } from '../errors/common.exception';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const isUuid = (text: string): boolean => UUID.test(text);

/** Rejects a malformed id before it reaches the database. */
export function assertId(id: string, what = 'id'): string {
  if (!isUuid(id)) throw new InputException(InputExceptionCode.INVALID_ID, `${what} is not a valid id.`);
  return id.toLowerCase();
}
