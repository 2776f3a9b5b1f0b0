/**
 * The driver adapter the Prisma CLI uses for migrations (Prisma 6's JavaScript schema engine, which
 * runs offline; the Rust engine would be downloaded at first use). See docs/adr-000-offline-prisma.md.
 *
 * Works around prisma/orm#27403: `@prisma/adapter-pg` has no column-type mapping for PostgreSQL's
 * catalog types (`"char"`, `name`, `regproc`, …) that the schema engine reads while introspecting,
 * and fails with "Column type … could not be deserialized". Results in those types are relabelled as
 * `text` (or `text[]`) before the adapter sees them; their text form is exactly what the engine wants.
 *
 * One exception: the engine reads `pg_constraint.contype` (a `"char"`) with a getter that accepts only
 * a character value, and panics (`RuntimeError: unreachable`) on text — which happens as soon as the
 * database has a CHECK or EXCLUDE constraint. So `"char"` result columns are reported to the engine as
 * the driver-adapter `Character` type instead (its other `"char"` reads accept both).
 *
 * Only the CLI uses this adapter; the applications use `libs/db`.
 */
import { PrismaPg } from '@prisma/adapter-pg';
import type { SqlDriverAdapter, SqlQuery, SqlResultSet, Transaction } from '@prisma/driver-adapter-utils';
import { ColumnTypeEnum } from '@prisma/driver-adapter-utils';
import pg from 'pg';

const CHAR_OID = 18;
const TEXT_OID = 25;
const TEXT_ARRAY_OID = 1009;
/** "char", name, int2vector, regproc, oidvector, pg_node_tree, regtype, pg_ndistinct, pg_dependencies. */
const CATALOG_SCALAR_OIDS = new Set([18, 19, 22, 24, 30, 194, 2206, 3361, 3402, 28, 1033, 2205]);
/** "char"[], name[], regproc[]. */
const CATALOG_ARRAY_OIDS = new Set([1002, 1003, 1008, 1034, 2210, 2211]);

type Field = { dataTypeID: number };
type Result = { fields?: Field[]; rows?: unknown[] };

/** The positions of the `"char"` columns of a result, keyed by its rows array (which the adapter passes on as is). */
const charColumns = new WeakMap<object, number[]>();

function relabel(result: Result | Result[] | undefined): void {
  for (const one of Array.isArray(result) ? result : [result]) {
    const chars: number[] = [];
    (one?.fields ?? []).forEach((field, index) => {
      if (field.dataTypeID === CHAR_OID) chars.push(index);
      if (CATALOG_SCALAR_OIDS.has(field.dataTypeID)) field.dataTypeID = TEXT_OID;
      else if (CATALOG_ARRAY_OIDS.has(field.dataTypeID)) field.dataTypeID = TEXT_ARRAY_OID;
    });
    if (chars.length > 0 && one?.rows) charColumns.set(one.rows, chars);
  }
}

class CatalogAsTextClient extends pg.Client {
  // pg's overloads cannot be restated generically; the override only post-processes results.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  override query(...args: any[]): any {
    const last = args[args.length - 1];
    if (typeof last === 'function') {
      args[args.length - 1] = (err: Error | null, res: Result) => {
        if (!err) relabel(res);
        (last as (e: Error | null, r: Result) => void)(err, res);
      };
      return (super.query as (...a: unknown[]) => unknown)(...args);
    }
    const out = (super.query as (...a: unknown[]) => unknown)(...args);
    if (out && typeof (out as Promise<Result>).then === 'function') {
      return (out as Promise<Result>).then((res) => {
        relabel(res);
        return res;
      });
    }
    return out;
  }
}

/** Makes `queryRaw` report the `"char"` columns recorded by `relabel` as `Character`. */
function withCharacterColumns<Q extends { queryRaw(query: SqlQuery): Promise<SqlResultSet> }>(queryable: Q): Q {
  const queryRaw = queryable.queryRaw.bind(queryable);
  queryable.queryRaw = async (query: SqlQuery) => {
    const result = await queryRaw(query);
    for (const index of charColumns.get(result.rows) ?? []) result.columnTypes[index] = ColumnTypeEnum.Character;
    return result;
  };
  return queryable;
}

function patchAdapter<A extends SqlDriverAdapter>(adapter: A): A {
  withCharacterColumns(adapter);
  const startTransaction = adapter.startTransaction.bind(adapter);
  adapter.startTransaction = async (...args: Parameters<SqlDriverAdapter['startTransaction']>): Promise<Transaction> =>
    withCharacterColumns(await startTransaction(...args));
  return adapter;
}

class MigrationAdapterFactory extends PrismaPg {
  override async connect() {
    return patchAdapter(await super.connect());
  }

  override async connectToShadowDb() {
    return patchAdapter(await super.connectToShadowDb());
  }
}

export function migrationAdapter(connectionString: string): PrismaPg {
  // allowExitOnIdle: idle pool connections do not keep the CLI alive, so it exits when its work is done
  // instead of after pg's 10-second idle timeout (`migrate diff` went from ~12.5 s to ~2.5 s here).
  return new MigrationAdapterFactory({ connectionString, Client: CatalogAsTextClient, allowExitOnIdle: true });
}
