#!/usr/bin/env bash
# Runs every check and test: lint, typecheck, format, unit, integration (real PostgreSQL and Redis)
# and end-to-end suites, plus the schema-drift checks. Installs and starts what is missing first.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

setup_machine
export TEST_DATABASE_ADMIN_URL="${TEST_DATABASE_ADMIN_URL:-$(db_url postgres)}"
export TEST_REDIS_URL="${TEST_REDIS_URL:-$REDIS_URL}"
export DATABASE_URL="${DATABASE_URL:-$(db_url postgres)}"
export CHECKPOINT_DISABLE=1

cd "$ROOT"
say "checking that schema.prisma and the migrations agree"
npx nx run prisma:db:check --skip-nx-cache
say "lint, typecheck, format and tests"
npx nx run-many -t lint typecheck fmt test --outputStyle=stream "$@"
say "all checks passed"
