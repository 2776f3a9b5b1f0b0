import { Inject, Injectable } from '@nestjs/common';
import type { Prisma, PrismaClient } from '@caas/db';
import { InputException, InputExceptionCode } from '../common/errors/common.exception';
import { PRISMA } from '../common/infra/tokens';
import type { ApiConfig } from '../config/api-config';
import { API_CONFIG } from '../config/api-config';
import type { ConnectionShape } from '../common/pagination/connection';
import { DEFAULT_PAGE_SIZE } from '../common/pagination/connection';
import type { Event } from './dtos/event.dto';
import { toEvent } from './dtos/event.dto';
import type { EventsArgs } from './dtos/pod.inputs';
import { podNotFound } from './pod.service';

const CURSOR = /^event:(\d{1,19})$/;

const encodeCursor = (id: bigint) => Buffer.from(`event:${id}`).toString('base64url');

function decodeCursor(cursor: string): bigint {
  const match = CURSOR.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  const id = match === null ? null : BigInt(match[1]);
  if (id === null || id > 9_223_372_036_854_775_807n) {
    throw new InputException(InputExceptionCode.INVALID_CURSOR, 'The cursor is not valid.');
  }
  return id;
}

/** The tenant's events, newest first (by id: events are appended, so ids follow commit order closely). */
@Injectable()
export class EventService {
  constructor(
    @Inject(PRISMA) private readonly prisma: PrismaClient,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
  ) {}

  /** With `podId`, that pod's events; a pod the tenant does not have (another tenant's, a deleted one) is NOT_FOUND. */
  async list(tenantId: string, args: EventsArgs, podId: string | null): Promise<ConnectionShape<Event>> {
    const first = args.first ?? DEFAULT_PAGE_SIZE;
    const max = this.config.GRAPHQL_MAX_PAGE_SIZE;
    if (first < 0 || first > max) {
      throw new InputException(
        InputExceptionCode.PAGE_SIZE_TOO_LARGE,
        `first must be between 0 and ${max}; it was ${first}.`,
      );
    }
    const before = args.after === undefined || args.after === null ? null : decodeCursor(args.after);
    if (podId !== null && (await this.prisma.pod.count({ where: { id: podId, tenantId } })) === 0) throw podNotFound();

    const where: Prisma.EventWhereInput = { tenantId, ...(podId !== null && { podId }) };
    const [rows, totalCount] = await Promise.all([
      this.prisma.event.findMany({
        where: before === null ? where : { ...where, id: { lt: before } },
        orderBy: { id: 'desc' },
        take: first + 1,
      }),
      this.prisma.event.count({ where }),
    ]);
    const page = rows.slice(0, first);
    const edges = page.map((row) => ({ cursor: encodeCursor(row.id), node: toEvent(row) }));
    return {
      edges,
      pageInfo: { hasNextPage: rows.length > page.length, endCursor: edges.at(-1)?.cursor ?? null },
      totalCount,
    };
  }
}
