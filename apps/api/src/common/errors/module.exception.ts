/**
 * Base of every module's exception. `code` is the module's own string enum (a stable `reason` clients
 * may branch on); `graphql-error.mapper.ts` maps each to one of the fixed `extensions.code` values.
 * The message is shown to the caller as is: it must never carry internals or secret values.
 */
export abstract class ModuleException<C extends string> extends Error {
  constructor(
    readonly code: C,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}
