import type { Type } from '@nestjs/common';
import { ArgsType, Field, Int, ObjectType } from '@nestjs/graphql';
import { InputException, InputExceptionCode } from '../errors/common.exception';
import { isUuid } from '../graphql/ids';

export const DEFAULT_PAGE_SIZE = 20;

@ArgsType()
export class PageArgs {
  @Field(() => Int, { nullable: true, description: `Page size (default ${DEFAULT_PAGE_SIZE}; the server caps it).` })
  first?: number;

  @Field(() => String, { nullable: true, description: 'Opaque cursor: return the items after it.' })
  after?: string;
}

@ObjectType()
export class PageInfo {
  @Field(() => Boolean)
  hasNextPage!: boolean;

  @Field(() => String, { nullable: true })
  endCursor!: string | null;
}

export interface ConnectionShape<T> {
  edges: { cursor: string; node: T }[];
  pageInfo: PageInfo;
  totalCount: number;
}

/** A Relay connection type (`edges { cursor node }`, `pageInfo`, `totalCount`) for one node type. */
export function Connection<T>(node: Type<T>, name: string): Type<ConnectionShape<T>> {
  @ObjectType(`${name}Edge`)
  class Edge {
    @Field(() => String)
    cursor!: string;

    @Field(() => node)
    node!: T;
  }

  @ObjectType(`${name}Connection`)
  class ConnectionType {
    @Field(() => [Edge])
    edges!: Edge[];

    @Field(() => PageInfo)
    pageInfo!: PageInfo;

    @Field(() => Int)
    totalCount!: number;
  }
  return ConnectionType;
}

/** Keyset position: rows are ordered by (createdAt, id). */
export interface Keyset {
  createdAt: Date;
  id: string;
}

const EARLIEST = new Date('2000-01-01T00:00:00Z');
const LATEST = new Date('9999-12-31T23:59:59Z');

export function encodeCursor(row: Keyset): string {
  return Buffer.from(JSON.stringify([row.createdAt.toISOString(), row.id])).toString('base64url');
}

function decodeCursor(cursor: string): Keyset {
  try {
    const [createdAt, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown[];
    const date = new Date(String(createdAt));
    // Only what the server itself could have written: a UUID and a timestamp PostgreSQL can store.
    if (typeof id === 'string' && isUuid(id) && date >= EARLIEST && date <= LATEST) return { createdAt: date, id };
  } catch {
    // fall through: any undecodable cursor is the caller's mistake
  }
  throw new InputException(InputExceptionCode.INVALID_CURSOR, 'The cursor is not valid.');
}

export interface PageQuery {
  take: number;
  /** A Prisma `where` fragment selecting rows after the cursor, or `undefined` for the first page. */
  after: { OR: object[] } | undefined;
  orderBy: [{ createdAt: 'asc' }, { id: 'asc' }];
}

/** Validates page arguments and turns them into a keyset query (one extra row tells if more follow). */
export function pageQuery(args: PageArgs, maxPageSize: number): PageQuery {
  const first = args.first ?? DEFAULT_PAGE_SIZE;
  if (first < 0 || first > maxPageSize) {
    throw new InputException(
      InputExceptionCode.PAGE_SIZE_TOO_LARGE,
      `first must be between 0 and ${maxPageSize}; it was ${first}.`,
    );
  }
  const cursor = args.after === undefined || args.after === null ? undefined : decodeCursor(args.after);
  return {
    take: first + 1,
    after: cursor && {
      OR: [{ createdAt: { gt: cursor.createdAt } }, { createdAt: cursor.createdAt, id: { gt: cursor.id } }],
    },
    orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
  };
}

export function toConnection<R extends Keyset, T>(
  rows: R[],
  query: PageQuery,
  totalCount: number,
  toNode: (row: R) => T,
): ConnectionShape<T> {
  const page = rows.slice(0, query.take - 1);
  const edges = page.map((row) => ({ cursor: encodeCursor(row), node: toNode(row) }));
  return {
    edges,
    pageInfo: { hasNextPage: rows.length > page.length, endCursor: edges.at(-1)?.cursor ?? null },
    totalCount,
  };
}
