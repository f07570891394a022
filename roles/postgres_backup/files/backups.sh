# shellcheck shell=bash
# Sourced by backup.sh and restore.sh: what counts as a complete backup under $root.

# The complete backups, oldest first: directories named by their UTC time that have their
# SHA256SUMS (backup.sh writes it last, before the rename), not leftovers of killed runs.
complete() {
    local d
    for d in "$root"/*/; do
        d=${d%/}
        [[ ${d##*/} =~ ^[0-9]{8}T[0-9]{6}Z$ ]] && [ -f "$d/SHA256SUMS" ] && echo "${d##*/}"
    done | sort
}
