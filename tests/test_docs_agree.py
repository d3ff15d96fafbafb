"""README.md and docs/*.md agree with the code: paths, modules, CLI flags and config keys.

A newcomer copies what the docs say; every name they copy must exist.
"""

from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path

import pytest

from rootwatch.commands.cli import build_parser
from rootwatch.program.settings import RootwatchSettings

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Schema names and JSON Lines ids that look like module paths but are not.
NOT_MODULES = re.compile(r"^rootwatch\.[a-z]+/v\d|^rootwatch\.git$")


def _text(path: Path) -> str:
    return path.read_text()


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_every_source_path_in_the_docs_exists(doc: Path) -> None:
    missing = [p for p in re.findall(r"`(rootwatch/[\w/]+\.py)`", _text(doc)) if not (ROOT / p).is_file()]
    assert not missing, f"{doc.name} names files that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_every_python_name_in_the_docs_imports(doc: Path) -> None:
    bad = []
    text = _text(doc)
    names = set(re.findall(r"`(rootwatch(?:\.\w+)+)(?:\([^`]*\))?`", text))
    names |= set(re.findall(r"^from (rootwatch(?:\.\w+)+) import (\w+)", text, re.M))  # type: ignore[arg-type]
    for name in names:
        if isinstance(name, tuple):
            module, attr = name
        else:
            if NOT_MODULES.match(name) or re.search(r"/v\d", name):
                continue
            module, attr = name, None
        try:
            importlib.import_module(module)
        except ImportError:
            module, _, attr = module.rpartition(".")
            try:
                obj = importlib.import_module(module)
            except ImportError:
                bad.append(name)
                continue
            if not hasattr(obj, attr):
                bad.append(name)
            continue
        if attr and not hasattr(importlib.import_module(module), attr):
            bad.append(name)
    assert not bad, f"{doc.name} names Python objects that do not exist: {sorted(map(str, bad))}"


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    out: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:  # noqa: SLF001 - argparse keeps them here
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            for name, sub in action.choices.items():
                out[name] = sub
                for inner, subsub in _subparsers(sub).items():
                    out[f"{name} {inner}"] = subsub
    return out


def _flags(parser: argparse.ArgumentParser) -> set[str]:
    return {opt for a in parser._actions for opt in a.option_strings}  # noqa: SLF001


def _commands_in(text: str) -> list[str]:
    """`rootwatch ...` command lines from code blocks and inline code."""
    found = []
    for block in re.findall(r"```(?:sh|text)?\n(.*?)```", text, re.S):
        found += [ln.strip().lstrip("$ ").strip() for ln in block.splitlines()]
    found += re.findall(r"`(rootwatch [^`]+)`", text)
    return [c for c in found if c.startswith("rootwatch ")]


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_every_cli_flag_in_the_docs_exists(doc: Path) -> None:
    parser = build_parser()
    subs = _subparsers(parser)
    top = _flags(parser)
    bad = []
    for line in _commands_in(_text(doc)):
        words = line.split("#")[0].split()[1:]
        words = [w for w in words if w not in top]
        if not words or not re.match(r"^[a-z]", words[0]):
            continue  # a placeholder (COMMAND) or a pip requirement, not a command line
        command = f"{words[0]} {words[1]}" if len(words) > 1 and f"{words[0]} {words[1]}" in subs else words[0]
        if command not in subs:
            bad.append(f"{line!r}: no command {command!r}")
            continue
        allowed = _flags(subs[command]) | top
        for flag in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", line.split("#")[0]):
            if flag not in allowed:
                bad.append(f"{line!r}: {command} has no {flag}")
    assert not bad, "\n".join(bad)


def _model_keys(model: type) -> set[str]:
    return {(f.alias or _camel(n)) for n, f in model.model_fields.items()}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def test_every_key_in_the_readme_config_table_exists() -> None:
    text = _text(ROOT / "README.md")
    table = text.split("| key | meaning |", 1)[1].split("\n\n", 1)[0]
    top = {_camel(n): f for n, f in RootwatchSettings.model_fields.items()}
    bad = []
    for row in table.splitlines()[2:]:
        cells = row.split("|")
        keys = re.findall(r"`(\w+)`", cells[1])
        for key in keys:
            if key not in top:
                bad.append(f"top-level key {key!r}")
        if len(keys) != 1:
            continue
        ann = top[keys[0]].annotation
        model = next((a for a in (ann, *getattr(ann, "__args__", ())) if hasattr(a, "model_fields")), None)
        if model is None:
            continue
        # Sub-keys outside parentheses (inside them: allowed values, match criteria).
        for sub in re.findall(r"`(\w+(?:\.\w+)?)`", re.sub(r"\([^()]*(?:\([^()]*\)[^()]*)*\)", "", cells[2])):
            node: type = model
            for part in sub.split("."):
                fields = {(f.alias or _camel(n)): f for n, f in node.model_fields.items()}
                if part not in fields:
                    bad.append(f"{keys[0]}.{sub}")
                    break
                inner = fields[part].annotation
                node = next((a for a in (inner, *getattr(inner, "__args__", ())) if hasattr(a, "model_fields")), node)
    assert not bad, bad
