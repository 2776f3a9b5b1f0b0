/**
 * The driver adapter the Prisma CLI uses for migrations (Prisma 6's JavaScript schema engine, which
 * runs offline; the Rust engine would be downloaded at first use).
 *
 * Works around prisma/orm#27403: `@prisma/adapter-pg` has no column-type mapping for PostgreSQL's
 * catalog types (`"char"`, `name`, `regproc`, …) that the schema engine reads while introspecting,
 * and fails with "Column type … could not be deserialized". Results in those types are relabelled as
 * `text` (or `text[]`) before the adapter sees them; their text form is exactly what the engine wants.
 * Only the CLI uses this adapter; the applications use `libs/db`.
 */
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';

const TEXT_OID = 25;
const TEXT_ARRAY_OID = 1009;
/** "char", name, int2vector, regproc, oidvector, pg_node_tree, regtype, pg_ndistinct, pg_dependencies. */
const CATALOG_SCALAR_OIDS = new Set([18, 19, 22, 24, 30, 194, 2206, 3361, 3402, 28, 1033, 2205]);
/** "char"[], name[], regproc[]. */
const CATALOG_ARRAY_OIDS = new Set([1002, 1003, 1008, 1034, 2210, 2211]);

type Field = { dataTypeID: number };
type Result = { fields?: Field[] };

function relabel(result: Result | Result[] | undefined): void {
  for (const one of Array.isArray(result) ? result : [result]) {
    for (const field of one?.fields ?? []) {
      if (CATALOG_SCALAR_OIDS.has(field.dataTypeID)) field.dataTypeID = TEXT_OID;
      else if (CATALOG_ARRAY_OIDS.has(field.dataTypeID)) field.dataTypeID = TEXT_ARRAY_OID;
    }
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
      // eslint-disable-next-line @typescript-eslint/no-unsafe-argument
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

export function migrationAdapter(connectionString: string): PrismaPg {
  return new PrismaPg({ connectionString, Client: CatalogAsTextClient });
}
