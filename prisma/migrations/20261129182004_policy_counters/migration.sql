-- CreateTable
CREATE TABLE "policy_counters" (
    "nodeId" UUID NOT NULL,
    "tenantId" UUID NOT NULL,
    "name" VARCHAR(120) NOT NULL,
    "packets" BIGINT NOT NULL,
    "bytes" BIGINT NOT NULL,
    "sentAt" TIMESTAMPTZ(3) NOT NULL,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "policy_counters_pkey" PRIMARY KEY ("nodeId","tenantId","name")
);

-- CreateIndex
CREATE INDEX "policy_counters_tenantId_name_idx" ON "policy_counters"("tenantId", "name");

-- AddForeignKey
ALTER TABLE "policy_counters" ADD CONSTRAINT "policy_counters_nodeId_fkey" FOREIGN KEY ("nodeId") REFERENCES "nodes"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "policy_counters" ADD CONSTRAINT "policy_counters_tenantId_fkey" FOREIGN KEY ("tenantId") REFERENCES "tenants"("id") ON DELETE CASCADE ON UPDATE CASCADE;

