"""Every boolean role variable is read through `| bool` wherever an expression uses it.

Argument spec validation checks that `-e pki_ca_replace=false` is a boolean but leaves the value
as the text "false", which Jinja takes for true: an expression that uses such a flag directly
does the opposite of what the user asked (that replaced the CA once). This reads every Jinja
expression of the roles and playbooks (conditions, asserts, `{{ }}` and `{% %}` blocks, templates)
and requires each boolean variable of an argument spec to be followed by `| bool` in it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
# Task keywords whose whole value is an expression.
CONDITION_KEYS = {"when", "that", "changed_when", "failed_when", "until"}
JINJA_BLOCK = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)
# A quoted string inside an expression: a name in quotes is text, not the variable.
QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def boolean_variables() -> set[str]:
    names = set()
    for spec in ROOT.glob("roles/*/meta/argument_specs.yml"):
        for entry_point in yaml.safe_load(spec.read_text())["argument_specs"].values():
            names |= {name for name, option in (entry_point.get("options") or {}).items()
                      if option.get("type") == "bool"}
    return names


def expressions(node: Any, key: str = "") -> Iterator[str]:
    """The Jinja expressions in a loaded YAML document."""
    if isinstance(node, dict):
        for child_key, value in node.items():
            yield from expressions(value, str(child_key))
    elif isinstance(node, list):
        for item in node:
            yield from expressions(item, key)
    elif isinstance(node, str):
        if key in CONDITION_KEYS:
            yield node
        else:
            yield from JINJA_BLOCK.findall(node)


def sources() -> Iterator[Any]:
    """One test parameter per file: its path and its expressions."""
    for path in sorted([*ROOT.glob("roles/*/tasks/*.yml"), *ROOT.glob("roles/*/vars/*.yml"),
                        *ROOT.glob("roles/*/handlers/*.yml"), *ROOT.glob("playbooks/*.yml")]):
        yield pytest.param(path, list(expressions(yaml.safe_load(path.read_text()))),
                           id=str(path.relative_to(ROOT)))
    for path in sorted(ROOT.glob("roles/*/templates/**/*.j2")):
        yield pytest.param(path, JINJA_BLOCK.findall(path.read_text()), id=str(path.relative_to(ROOT)))


def unguarded_uses(expression: str, names: set[str]) -> list[str]:
    text = QUOTED.sub("''", expression)
    return [match.group(0) for name in names
            for match in re.finditer(rf"(?<![\w.]){name}\b(?!\s*\|\s*bool\b)", text)]


def test_the_scan_finds_the_flags_and_an_unguarded_use() -> None:
    names = boolean_variables()
    assert {"pki_ca_replace", "uninstall_purge", "pki_ca_rollover_step"} <= names
    assert unguarded_uses("{{ 'x' if pki_ca_replace else 'y' }}", names) == ["pki_ca_replace"]
    assert unguarded_uses("not pki_ca_replace | bool and 'pki_ca_replace' in x", names) == []


@pytest.mark.parametrize("path,found", list(sources()))
def test_boolean_variables_are_read_through_the_bool_filter(path: Path, found: list[str]) -> None:
    names = boolean_variables()
    unguarded = sorted({use for expression in found for use in unguarded_uses(expression, names)})
    assert not unguarded, (
        f"{path.relative_to(ROOT)} uses {', '.join(unguarded)} without '| bool': a value given as "
        "text on the command line ('false') would count as true")
