#!/usr/bin/env bash
# restore.sh verify|restore: check a backup made by backup.sh (BACKUP_DIR/RESTORE_NAME, "latest"
# for the newest complete one), and with "restore" load it into the PostgreSQL instance that
# libpq's PG* variables name (verified TLS, client certificate): roles from globals.sql, then
# each database dropped and created again from its dump; databases that are not in the backup
# are dropped, so that the instance holds what it held when the backup was made. "verify"
# changes nothing: restore.yml runs it before it stops Backstage.
set -euo pipefail

mode=${1:?verify or restore}
root=${BACKUP_DIR:?}
want=${RESTORE_NAME:-latest}
started=$SECONDS

log() { printf '%s restore: %s\n' "$(date -u +%H:%M:%S)" "$*"; }
refuse() { log "REFUSED: $*"; exit 2; }
# shellcheck source=backups.sh
. "$(dirname "$0")/backups.sh"

if [ "$want" = latest ]; then
    name=$(complete | tail -n 1)
    [ -n "$name" ] || refuse "there is no complete backup in the backup volume"
else
    [[ $want =~ ^[0-9]{8}T[0-9]{6}Z$ ]] || refuse "'$want' is not a backup name (YYYYMMDDTHHMMSSZ, or latest)"
    name=$want
    [ -d "$root/$name" ] || refuse "there is no backup $name; the backups are: $(complete | tr '\n' ' ')"
fi
dir=$root/$name
[ -f "$dir/SHA256SUMS" ] || refuse "backup $name is incomplete (it has no SHA256SUMS)"
for f in MANIFEST globals.sql databases.tsv; do
    grep -q " $f\$" "$dir/SHA256SUMS" || refuse "backup $name is corrupt: SHA256SUMS does not cover $f"
done
(cd "$dir" && sha256sum --check --quiet --strict SHA256SUMS) >/dev/null 2>&1 ||
    refuse "backup $name is corrupt: its files do not match SHA256SUMS ($(cd "$dir" && sha256sum --check --quiet SHA256SUMS 2>&1 | head -n 3 | tr '\n' ' '))"
grep -qx 'format 1' "$dir/MANIFEST" || refuse "backup $name has an unknown format"
while IFS=$'\t' read -r file db; do
    grep -q " \\./$file\$\| $file\$" "$dir/SHA256SUMS" || refuse "backup $name is corrupt: $file is not in SHA256SUMS"
    pg_restore --list "$dir/$file" >/dev/null || refuse "backup $name is corrupt: $file ($db) cannot be read"
done <"$dir/databases.tsv"
log "backup $name verified: $(wc -l <"$dir/databases.tsv") databases, $(du -sb "$dir" | cut -f1) bytes, made by PostgreSQL $(sed -n 's/^server_version_num //p' "$dir/MANIFEST")"
echo "RESTORE_BACKUP=$name"
[ "$mode" = restore ] || exit 0

server=$(psql -X -At -d postgres -c 'SHOW server_version_num')
log "restoring $name into PostgreSQL $server at $PGHOST:$PGPORT"
# Roles: those that exist already (the superuser) report an error that changes nothing.
psql -X -q -d postgres -v ON_ERROR_STOP=0 -f "$dir/globals.sql" 2>&1 | grep -v 'already exists' || true

wanted=$(cut -f2 "$dir/databases.tsv")
while IFS= read -r db; do
    if ! grep -qxF -- "$db" <<<"$wanted"; then
        printf 'DROP DATABASE IF EXISTS :"db" WITH (FORCE);\n' | psql -X -q -v ON_ERROR_STOP=1 -v db="$db" -d postgres
        log "dropped $db (not in the backup)"
    fi
done < <(psql -X -At -d postgres -c \
    "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate AND datname <> 'postgres'")

while IFS=$'\t' read -r file db; do
    if [ "$db" = postgres ]; then
        pg_restore --exit-on-error --clean --if-exists --dbname=postgres "$dir/$file"
    else
        printf 'DROP DATABASE IF EXISTS :"db" WITH (FORCE);\n' | psql -X -q -v ON_ERROR_STOP=1 -v db="$db" -d postgres
        pg_restore --exit-on-error --create --dbname=postgres "$dir/$file"
    fi
    log "restored $db"
done <"$dir/databases.tsv"
log "restored $name in $((SECONDS - started)) s"
echo "RESTORED=$name"
