import { Module } from '@nestjs/common';
import { TenantModule } from '../tenant/tenant.module';
import { ViewerResolver } from './viewer.resolver';

@Module({ imports: [TenantModule], providers: [ViewerResolver] })
export class ViewerModule {}
