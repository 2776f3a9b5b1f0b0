-- CreateEnum
CREATE TYPE "TenantStatus" AS ENUM ('ACTIVE', 'SUSPENDED');

-- CreateEnum
CREATE TYPE "Role" AS ENUM ('VIEWER', 'MEMBER', 'ADMIN', 'OWNER');

-- CreateEnum
CREATE TYPE "EgressDefault" AS ENUM ('ALLOW_NAT', 'DENY');

-- CreateEnum
CREATE TYPE "NodeStatus" AS ENUM ('REGISTERED', 'READY', 'NOT_READY');

-- CreateEnum
CREATE TYPE "Accelerator" AS ENUM ('KVM', 'TCG');

-- CreateEnum
CREATE TYPE "PodPhase" AS ENUM ('PENDING', 'SCHEDULED', 'STARTING', 'RUNNING', 'SUCCEEDED', 'FAILED', 'STOPPED', 'DELETING');

-- CreateEnum
CREATE TYPE "DesiredState" AS ENUM ('RUNNING', 'STOPPED', 'DELETED');

-- CreateEnum
CREATE TYPE "RestartPolicy" AS ENUM ('NEVER', 'ON_FAILURE', 'ALWAYS');

-- CreateEnum
CREATE TYPE "ContainerPhase" AS ENUM ('WAITING', 'RUNNING', 'EXITED');

-- CreateEnum
CREATE TYPE "PolicyType" AS ENUM ('INGRESS', 'EGRESS');

-- CreateEnum
CREATE TYPE "EventType" AS ENUM ('NORMAL', 'WARNING');

-- CreateTable
CREATE TABLE "tenants" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "slug" VARCHAR(63) NOT NULL,
    "displayName" VARCHAR(200) NOT NULL,
    "status" "TenantStatus" NOT NULL DEFAULT 'ACTIVE',
    "suspendedAt" TIMESTAMPTZ(3),
    "subnet" VARCHAR(18) NOT NULL,
    "networkId" SERIAL NOT NULL,
    "egressDefault" "EgressDefault" NOT NULL DEFAULT 'ALLOW_NAT',
    "maxPods" INTEGER NOT NULL DEFAULT 10,
    "maxVcpus" INTEGER NOT NULL DEFAULT 16,
    "maxMemoryMiB" INTEGER NOT NULL DEFAULT 32768,
    "usedPods" INTEGER NOT NULL DEFAULT 0,
    "usedVcpus" INTEGER NOT NULL DEFAULT 0,
    "usedMemoryMiB" INTEGER NOT NULL DEFAULT 0,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "tenants_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "members" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "tenantId" UUID NOT NULL,
    "email" VARCHAR(320) NOT NULL,
    "displayName" VARCHAR(200),
    "role" "Role" NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "members_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "api_tokens" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "tenantId" UUID NOT NULL,
    "memberId" UUID,
    "name" VARCHAR(100) NOT NULL,
    "tokenHash" BYTEA NOT NULL,
    "prefix" VARCHAR(16) NOT NULL,
    "role" "Role" NOT NULL,
    "expiresAt" TIMESTAMPTZ(3),
    "revokedAt" TIMESTAMPTZ(3),
    "lastUsedAt" TIMESTAMPTZ(3),
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "api_tokens_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "registry_credentials" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "tenantId" UUID NOT NULL,
    "registry" VARCHAR(255) NOT NULL,
    "username" VARCHAR(255) NOT NULL,
    "secretCiphertext" BYTEA NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "registry_credentials_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "nodes" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "name" VARCHAR(63) NOT NULL,
    "status" "NodeStatus" NOT NULL DEFAULT 'REGISTERED',
    "cordoned" BOOLEAN NOT NULL DEFAULT false,
    "draining" BOOLEAN NOT NULL DEFAULT false,
    "epoch" INTEGER NOT NULL DEFAULT 1,
    "leaseExpiresAt" TIMESTAMPTZ(3),
    "lastHeartbeatAt" TIMESTAMPTZ(3),
    "diskPressure" BOOLEAN NOT NULL DEFAULT false,
    "accelerator" "Accelerator",
    "underlayAddress" INET,
    "labels" JSONB NOT NULL DEFAULT '{}',
    "taints" JSONB NOT NULL DEFAULT '[]',
    "capacityVcpus" INTEGER NOT NULL,
    "capacityMemoryMiB" INTEGER NOT NULL,
    "capacityPods" INTEGER NOT NULL,
    "capacityDiskBytes" BIGINT NOT NULL DEFAULT 0,
    "allocatedVcpus" INTEGER NOT NULL DEFAULT 0,
    "allocatedMemoryMiB" INTEGER NOT NULL DEFAULT 0,
    "allocatedPods" INTEGER NOT NULL DEFAULT 0,
    "desiredVersion" BIGINT NOT NULL DEFAULT 0,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "nodes_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "node_join_tokens" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "tokenHash" BYTEA NOT NULL,
    "prefix" VARCHAR(16) NOT NULL,
    "labels" JSONB NOT NULL DEFAULT '{}',
    "taints" JSONB NOT NULL DEFAULT '[]',
    "expiresAt" TIMESTAMPTZ(3) NOT NULL,
    "usedAt" TIMESTAMPTZ(3),
    "nodeId" UUID,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "node_join_tokens_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "pods" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "tenantId" UUID NOT NULL,
    "name" VARCHAR(63) NOT NULL,
    "labels" JSONB NOT NULL DEFAULT '{}',
    "spec" JSONB NOT NULL DEFAULT '{}',
    "vcpus" INTEGER NOT NULL,
    "memoryMiB" INTEGER NOT NULL,
    "restartPolicy" "RestartPolicy" NOT NULL DEFAULT 'ALWAYS',
    "generation" INTEGER NOT NULL DEFAULT 1,
    "observedGeneration" INTEGER NOT NULL DEFAULT 0,
    "desiredState" "DesiredState" NOT NULL DEFAULT 'RUNNING',
    "phase" "PodPhase" NOT NULL DEFAULT 'PENDING',
    "reason" VARCHAR(100),
    "message" VARCHAR(1000),
    "nodeId" UUID,
    "nodeEpoch" INTEGER,
    "ip" INET,
    "accelerator" "Accelerator",
    "imageDigests" JSONB NOT NULL DEFAULT '{}',
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,
    "scheduledAt" TIMESTAMPTZ(3),
    "startedAt" TIMESTAMPTZ(3),
    "finishedAt" TIMESTAMPTZ(3),

    CONSTRAINT "pods_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "containers" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "podId" UUID NOT NULL,
    "ordinal" INTEGER NOT NULL,
    "name" VARCHAR(63) NOT NULL,
    "image" VARCHAR(512) NOT NULL,
    "command" TEXT[],
    "args" TEXT[],
    "env" JSONB NOT NULL DEFAULT '[]',
    "workingDir" VARCHAR(4096),
    "user" VARCHAR(64),
    "cpuLimitMillis" INTEGER,
    "memoryLimitMiB" INTEGER,
    "phase" "ContainerPhase" NOT NULL DEFAULT 'WAITING',
    "exitCode" INTEGER,
    "signal" VARCHAR(16),
    "reason" VARCHAR(100),
    "restartCount" INTEGER NOT NULL DEFAULT 0,
    "startedAt" TIMESTAMPTZ(3),
    "finishedAt" TIMESTAMPTZ(3),

    CONSTRAINT "containers_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "ip_allocations" (
    "tenantId" UUID NOT NULL,
    "address" INET NOT NULL,
    "podId" UUID NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "ip_allocations_pkey" PRIMARY KEY ("tenantId","address")
);

-- CreateTable
CREATE TABLE "network_policies" (
    "id" UUID NOT NULL DEFAULT gen_random_uuid(),
    "tenantId" UUID NOT NULL,
    "name" VARCHAR(63) NOT NULL,
    "podSelector" JSONB NOT NULL DEFAULT '{}',
    "policyTypes" "PolicyType"[],
    "ingress" JSONB NOT NULL DEFAULT '[]',
    "egress" JSONB NOT NULL DEFAULT '[]',
    "deny" JSONB NOT NULL DEFAULT '[]',
    "generation" INTEGER NOT NULL DEFAULT 1,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "network_policies_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "events" (
    "id" BIGSERIAL NOT NULL,
    "tenantId" UUID,
    "podId" UUID,
    "nodeId" UUID,
    "type" "EventType" NOT NULL DEFAULT 'NORMAL',
    "reason" VARCHAR(100) NOT NULL,
    "message" VARCHAR(2000) NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "events_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "outbox" (
    "id" BIGSERIAL NOT NULL,
    "aggregateType" VARCHAR(32) NOT NULL,
    "aggregateId" UUID NOT NULL,
    "tenantId" UUID,
    "generation" INTEGER NOT NULL,
    "kind" VARCHAR(64) NOT NULL,
    "payload" JSONB NOT NULL DEFAULT '{}',
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "sentAt" TIMESTAMPTZ(3),
    "attempts" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "outbox_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "tenants_slug_key" ON "tenants"("slug");

-- CreateIndex
CREATE UNIQUE INDEX "tenants_networkId_key" ON "tenants"("networkId");

-- CreateIndex
CREATE UNIQUE INDEX "members_tenantId_email_key" ON "members"("tenantId", "email");

-- CreateIndex
CREATE UNIQUE INDEX "api_tokens_tokenHash_key" ON "api_tokens"("tokenHash");

-- CreateIndex
CREATE INDEX "api_tokens_tenantId_createdAt_idx" ON "api_tokens"("tenantId", "createdAt");

-- CreateIndex
CREATE UNIQUE INDEX "registry_credentials_tenantId_registry_key" ON "registry_credentials"("tenantId", "registry");

-- CreateIndex
CREATE UNIQUE INDEX "nodes_name_key" ON "nodes"("name");

-- CreateIndex
CREATE UNIQUE INDEX "node_join_tokens_tokenHash_key" ON "node_join_tokens"("tokenHash");

-- CreateIndex
CREATE INDEX "pods_tenantId_createdAt_idx" ON "pods"("tenantId", "createdAt");

-- CreateIndex
CREATE INDEX "pods_nodeId_idx" ON "pods"("nodeId");

-- CreateIndex
CREATE INDEX "pods_phase_idx" ON "pods"("phase");

-- CreateIndex
CREATE UNIQUE INDEX "pods_tenantId_name_key" ON "pods"("tenantId", "name");

-- CreateIndex
CREATE UNIQUE INDEX "containers_podId_name_key" ON "containers"("podId", "name");

-- CreateIndex
CREATE UNIQUE INDEX "containers_podId_ordinal_key" ON "containers"("podId", "ordinal");

-- CreateIndex
CREATE UNIQUE INDEX "ip_allocations_podId_key" ON "ip_allocations"("podId");

-- CreateIndex
CREATE UNIQUE INDEX "network_policies_tenantId_name_key" ON "network_policies"("tenantId", "name");

-- CreateIndex
CREATE INDEX "events_tenantId_createdAt_idx" ON "events"("tenantId", "createdAt");

-- CreateIndex
CREATE INDEX "events_podId_createdAt_idx" ON "events"("podId", "createdAt");

-- CreateIndex
CREATE INDEX "outbox_sentAt_id_idx" ON "outbox"("sentAt", "id");

-- AddForeignKey
ALTER TABLE "members" ADD CONSTRAINT "members_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "api_tokens" ADD CONSTRAINT "api_tokens_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "api_tokens" ADD CONSTRAINT "api_tokens_memberId_fkey" FOREIGN KEY ("memberId") REFERENCES "members"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "registry_credentials" ADD CONSTRAINT "registry_credentials_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "node_join_tokens" ADD CONSTRAINT "node_join_tokens_nodeId_fkey" FOREIGN KEY ("nodeId") REFERENCES "nodes"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "pods" ADD CONSTRAINT "pods_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "pods" ADD CONSTRAINT "pods_nodeId_fkey" FOREIGN KEY ("nodeId") REFERENCES "nodes"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "containers" ADD CONSTRAINT "containers_podId_fkey" FOREIGN KEY ("podId") REFERENCES "pods"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "ip_allocations" ADD CONSTRAINT "ip_allocations_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "ip_allocations" ADD CONSTRAINT "ip_allocations_podId_fkey" FOREIGN KEY ("podId") REFERENCES "pods"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "network_policies" ADD CONSTRAINT "network_policies_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "events" ADD CONSTRAINT "events_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "events" ADD CONSTRAINT "events_podId_fkey" FOREIGN KEY ("podId") REFERENCES "pods"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "events" ADD CONSTRAINT "events_nodeId_fkey" FOREIGN KEY ("nodeId") REFERENCES "nodes"("id") ON DELETE CASCADE ON UPDATE CASCADE;
