#!/usr/bin/env bash
# One backup of every database of the PostgreSQL instance, over verified TLS with the client
# certificate (libpq's PG* variables; no password), into BACKUP_DIR/NAME, NAME being the UTC
# time (20261201T024100Z). The backup is written under .partial-NAME and renamed when complete:
# a backup directory either has every file and its SHA256SUMS, or does not exist. A run that
# fails (the server unreachable, a full volume, a killed pod) leaves the earlier backups as
# they were; only after a complete backup are the oldest ones beyond BACKUP_RETENTION removed.
#   globals.sql      roles and tablespaces (pg_dumpall --globals-only, without passwords)
#   NNN.dump         one database each (pg_dump custom format), named in databases.tsv
#   MANIFEST         format, creation time, server version
#   SHA256SUMS       of every other file
set -euo pipefail
umask 0077

root=${BACKUP_DIR:?}
retention=${BACKUP_RETENTION:?}
started=$SECONDS

log() { printf '%s backup: %s\n' "$(date -u +%H:%M:%S)" "$*"; }
# shellcheck source=backups.sh
. "$(dirname "$0")/backups.sh"

name=$(date -u +%Y%m%dT%H%M%SZ)
while [ -e "$root/$name" ]; do sleep 1; name=$(date -u +%Y%m%dT%H%M%SZ); done
work=$root/.partial-$name

cleanup() {
    local rc=$?
    if [ "$rc" -ne 0 ]; then
        rm -rf "$work"
        log "FAILED (exit $rc): backup $name was not written; the earlier backups are kept"
        df -h "$root" | sed 's/^/backup: /' || true
    fi
    exit "$rc"
}
trap cleanup EXIT

mkdir "$work"
server=$(psql -X -At -d postgres -c 'SHOW server_version_num')
log "dumping PostgreSQL $server at $PGHOST:$PGPORT as $PGUSER into $name"
pg_dumpall --globals-only --no-role-passwords --file "$work/globals.sql"

n=0
: >"$work/databases.tsv"
while IFS= read -r db; do
    n=$((n + 1))
    file=$(printf '%03d.dump' "$n")
    pg_dump --format=custom --dbname="$db" --file="$work/$file"
    printf '%s\t%s\n' "$file" "$db" >>"$work/databases.tsv"
    log "dumped $db ($(stat -c %s "$work/$file") bytes)"
done < <(psql -X -At -d postgres -c \
    "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname")
[ "$n" -gt 0 ] || { log "no database found"; exit 1; }

printf 'format 1\ncreated %s\nserver_version_num %s\ndatabases %s\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$server" "$n" >"$work/MANIFEST"
(cd "$work" && sha256sum globals.sql databases.tsv MANIFEST ./*.dump >SHA256SUMS)
sync "$work"/* 2>/dev/null || sync
mv "$work" "$root/$name"
sync

# Retention: the newest complete backups stay; leftovers of killed runs go.
complete | head -n -"$retention" | while IFS= read -r old; do
    rm -rf "${root:?}/$old"
    log "removed $old (more than $retention backups)"
done
find "$root" -mindepth 1 -maxdepth 1 -name '.partial-*' -exec rm -rf {} + 2>/dev/null || true

size=$(du -sb "$root/$name" | cut -f1)
log "wrote $name: $n databases, $size bytes, in $((SECONDS - started)) s; kept: $(complete | tr '\n' ' ')"
echo "BACKUP_NAME=$name"
echo "BACKUP_BYTES=$size"
