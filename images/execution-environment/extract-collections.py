"""Copy named collections out of PyPI's ``ansible`` wheel into a collections path.

    extract-collections.py ANSIBLE_WHEEL DEST_COLLECTIONS_PATH COLLECTIONS_TXT

Writes DEST/ansible_collections/<namespace>/<name>/ for every ``namespace.name``
line of COLLECTIONS_TXT, so the execution environment needs neither Galaxy nor
the whole ``ansible`` package (hundreds of collections).
"""
from __future__ import annotations

import sys
import zipfile
from pathlib import Path, PurePosixPath


def wanted(collections_txt: Path) -> list[str]:
    names = []
    for line in collections_txt.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line)
    return names


def extract(wheel: Path, dest: Path, names: list[str]) -> None:
    prefixes = {n: "ansible_collections/%s/" % n.replace(".", "/") for n in names}
    found = {n: 0 for n in names}
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            for name, prefix in prefixes.items():
                if info.filename.startswith(prefix) and not info.is_dir():
                    rel = PurePosixPath(info.filename)
                    if ".." in rel.parts:
                        raise SystemExit("unsafe path in wheel: %s" % info.filename)
                    target = dest.joinpath(*rel.parts)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(zf.read(info))
                    found[name] += 1
    missing = [n for n, count in found.items() if count == 0]
    if missing:
        raise SystemExit("%s does not carry: %s" % (wheel.name, ", ".join(missing)))


def main(argv: list[str]) -> None:
    if len(argv) != 4:
        raise SystemExit(__doc__)
    wheel, dest, collections_txt = Path(argv[1]), Path(argv[2]), Path(argv[3])
    extract(wheel, dest, wanted(collections_txt))


if __name__ == "__main__":
    main(sys.argv)
