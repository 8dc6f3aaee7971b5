#!/bin/sh
# Creates Temporal's two PostgreSQL databases and brings their schemas to the version this
# admin-tools image ships. Idempotent: a later run, or the run of a newer image during an
# upgrade, applies only the schema versions that are missing.
set -eu

: "${POSTGRES_SEEDS:?POSTGRES_SEEDS: the PostgreSQL host}"
: "${POSTGRES_USER:?POSTGRES_USER: the PostgreSQL role Temporal uses}"
: "${SQL_PASSWORD:?SQL_PASSWORD: that role password (temporal-sql-tool reads it from here)}"
port="${DB_PORT:-5432}"
schemas=/etc/temporal/schema/postgresql/v12

sql_tool() {
  temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$port" -u "$POSTGRES_USER" "$@"
}

for database_and_schema in temporal:temporal temporal_visibility:visibility; do
  database=${database_and_schema%%:*}
  schema=${database_and_schema#*:}
  # `create` fails on a database that exists; the two steps after it connect to the
  # database, so one that truly could not be created still stops the job.
  sql_tool --db "$database" create || echo "database $database not created: it exists already"
  # `setup-schema -v 0.0` leaves a schema newer than 0.0 untouched.
  sql_tool --db "$database" setup-schema -v 0.0
  sql_tool --db "$database" update-schema -d "$schemas/$schema/versioned"
done
echo "Temporal schemas are up to date"
