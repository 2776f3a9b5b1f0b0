import { Inject, Injectable } from '@nestjs/common';
import type { PrismaClient } from '@caas/db';
import { Prisma } from '@caas/db';
import { SecretBox, registrySecretContext } from '@caas/security';
import type { ApiConfig } from '../config/api-config';
import { API_CONFIG } from '../config/api-config';
import { PRISMA } from '../common/infra/tokens';
import type { ConnectionShape, PageArgs } from '../common/pagination/connection';
import { pageQuery, toConnection } from '../common/pagination/connection';
import type { CreateRegistryCredentialInput, RegistryCredential } from './dtos/registry-credential.dto';
import { toRegistryCredential } from './dtos/registry-credential.dto';
import { RegistryCredentialException, RegistryCredentialExceptionCode } from './registry-credential.exception';

const HOST =
  /^(?=.{1,253}(:|$))([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*(:\d{1,5})?$/;
// eslint-disable-next-line no-control-regex
const PRINTABLE = /^[^\u0000-\u001f\u007f]+$/;

const invalid = (message: string) =>
  new RegistryCredentialException(RegistryCredentialExceptionCode.INVALID_REGISTRY_CREDENTIAL_INPUT, message);

@Injectable()
export class RegistryCredentialService {
  constructor(
    @Inject(PRISMA) private readonly prisma: PrismaClient,
    @Inject(API_CONFIG) private readonly config: ApiConfig,
    private readonly secrets: SecretBox,
  ) {}

  async list(tenantId: string, args: PageArgs): Promise<ConnectionShape<RegistryCredential>> {
    const query = pageQuery(args, this.config.GRAPHQL_MAX_PAGE_SIZE);
    const [rows, total] = await Promise.all([
      this.prisma.registryCredential.findMany({
        where: { tenantId, ...query.after },
        orderBy: query.orderBy,
        take: query.take,
      }),
      this.prisma.registryCredential.count({ where: { tenantId } }),
    ]);
    return toConnection(rows, query, total, toRegistryCredential);
  }

  async create(tenantId: string, input: CreateRegistryCredentialInput): Promise<RegistryCredential> {
    const registry = input.registry.trim().toLowerCase();
    if (!HOST.test(registry) || Number(registry.split(':')[1] ?? 443) > 65535) {
      throw invalid('registry must be a host name with an optional port, such as registry.example.com:5000.');
    }
    const username = input.username.trim();
    if (username.length < 1 || username.length > 255 || !PRINTABLE.test(username)) {
      throw invalid('username must be 1 to 255 printable characters.');
    }
    if (input.secret.length < 1 || input.secret.length > 4096 || !PRINTABLE.test(input.secret)) {
      throw invalid('secret must be 1 to 4096 printable characters.');
    }
    try {
      const row = await this.prisma.registryCredential.create({
        data: {
          tenantId,
          registry,
          username,
          secretCiphertext: this.secrets.seal(input.secret, registrySecretContext(tenantId, registry)),
        },
      });
      return toRegistryCredential(row);
    } catch (error) {
      if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === 'P2002') {
        throw new RegistryCredentialException(
          RegistryCredentialExceptionCode.REGISTRY_CREDENTIAL_EXISTS,
          `Credentials for ${registry} already exist; delete them first to replace them.`,
        );
      }
      throw error;
    }
  }

  async delete(tenantId: string, id: string): Promise<RegistryCredential> {
    const row = await this.prisma.registryCredential.findFirst({ where: { id, tenantId } });
    const deleted = row && (await this.prisma.registryCredential.deleteMany({ where: { id, tenantId } }));
    if (row === null || deleted?.count !== 1) {
      throw new RegistryCredentialException(
        RegistryCredentialExceptionCode.REGISTRY_CREDENTIAL_NOT_FOUND,
        'Registry credential not found.',
      );
    }
    return toRegistryCredential(row);
  }
}
