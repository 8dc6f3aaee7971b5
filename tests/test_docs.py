"""README.md and docs/*.md name only settings, files, sections and commands that exist.

The manual drifts where nobody runs it: a renamed setting, a moved file, a heading that became
another page's, a flag that was dropped. Each check below reads the markdown as a reader would
and holds what it names against the repository: `Settings` and the environment variables the
code reads, the files on disk, the headings of the linked page, and the `--help` of the real
entry points (run once each, as subprocesses, and cached). A failure names the doc file, the
line and the missing name.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

from settings import Settings

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = (README, *sorted((ROOT / "docs").glob("*.md")))
README_MAX_LINES = 300

# Environment variables the docs may name although no code of this repository reads them:
# each is read by a program the connector only configures. Keep it short.
EXTERNAL_ENV_NAMES = frozenset(
    {
        "TEMPORAL_CODEC_AUTH",  # the temporal CLI's variable for --codec-auth
        "TEMPORAL_CODEC_PASS_ACCESS_TOKEN",  # the Temporal Web UI server's variable
    }
)
# Flags of programs that are not this repository's (the temporal CLI, its dev server), named in
# prose next to the connector's own.
EXTERNAL_FLAGS = frozenset({"--address", "--codec-endpoint", "--codec-auth", "--ui-codec-endpoint"})
# Programs whose command lines the docs show (their flags are theirs, not the connector's).
EXTERNAL_PROGRAMS = frozenset(
    {"temporal", ".venv/bin/temporal", "docker", "curl", "kill", "openssl"}
)
# Paths below the data dir exist only while (or after) a stack runs: `.data/stack.env`,
# `<data-dir>/run/<name>.pid`. Nothing else is exempt.
RUNTIME_PREFIXES = (".data/", "<data-dir>/")
# File names a bare (slash-less) backticked name is checked for: code and docs.
BARE_CHECKED_SUFFIXES = (".py", ".md", ".sh", ".yml", ".yaml", ".toml")
PATH_SUFFIXES = (
    *BARE_CHECKED_SUFFIXES,
    ".json",
    ".png",
    ".txt",
    ".lock",
    ".keys",
    ".env",
    ".db",
    ".state",
    ".log",
    ".pid",
)
# Code whose string literals and variables count as "read by the code".
NON_PYTHON_CODE = ("scripts/run", "scripts/test", "scripts/bootstrap", "scripts/refresh_histories")
NON_PYTHON_CODE_GLOBS = (".ci/*", "Dockerfile", "docker-compose.yml", "deploy/**/*")
SKIPPED_DIRS = {
    ".venv",
    ".git",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".data",
    "cleeng_mollie_connector.egg-info",
}

UPPER_NAME = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")
UPPER_WILDCARD = re.compile(r"\b([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*_)\*")
EXACT_UPPER = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
BACKTICKS = re.compile(r"`([^`]+)`")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
QUOTED = re.compile(r"\"([^\"\n]{3,80})\"")
MD_NAME = re.compile(r"[\w./-]*?([\w-]+\.md)\b")


# --- Reading the markdown ---------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """Consecutive lines of one doc: a prose paragraph, or one command of a code block."""

    doc: Path
    first_line: int  # 1-based
    text: str
    code: bool

    def line_of(self, offset: int) -> int:
        return self.first_line + self.text.count("\n", 0, offset)

    def where(self, offset: int = 0) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line_of(offset)}"


@cache
def lines_of(doc: Path) -> tuple[str, ...]:
    return tuple(doc.read_text(encoding="utf-8").splitlines())


@cache
def blocks_of(doc: Path) -> tuple[Block, ...]:
    """Prose paragraphs, and the commands of fenced and indented code blocks (a command
    continued with a trailing backslash is one block)."""
    blocks: list[Block] = []
    paragraph: list[tuple[int, str]] = []
    fenced = False
    command: list[tuple[int, str]] = []

    def flush_paragraph() -> None:
        if paragraph:
            blocks.append(Block(doc, paragraph[0][0], "\n".join(t for _, t in paragraph), False))
            paragraph.clear()

    def add_code_line(number: int, text: str) -> None:
        command.append((number, text.rstrip("\\").rstrip()))
        if not text.rstrip().endswith("\\"):
            blocks.append(Block(doc, command[0][0], " ".join(t for _, t in command), True))
            command.clear()

    previous_blank = True
    for number, line in enumerate(lines_of(doc), start=1):
        if line.lstrip().startswith("```"):
            flush_paragraph()
            fenced = not fenced
            previous_blank = False
            continue
        if fenced:
            add_code_line(number, line)
            continue
        indented_code = line.startswith("    ") and (previous_blank or bool(command))
        if indented_code and not paragraph:
            add_code_line(number, line[4:])
            continue
        if not line.strip():
            flush_paragraph()
            previous_blank = True
            continue
        previous_blank = False
        paragraph.append((number, line))
    flush_paragraph()
    return tuple(blocks)


def prose(doc: Path) -> Iterator[Block]:
    return (block for block in blocks_of(doc) if not block.code)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped (but `-` and
    `_`), spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache
def anchors_of(doc: Path) -> frozenset[str]:
    """Every anchor GitHub gives the doc's headings (a repeated one gets -1, -2, ...)."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in lines_of(doc):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        match = None if fenced else HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            anchors.add(base if count == 0 else f"{base}-{count}")
    return frozenset(anchors)


def all_docs_text() -> Iterator[tuple[Path, int, str]]:
    for doc in DOCS:
        for number, line in enumerate(lines_of(doc), start=1):
            yield doc, number, line


def rel(doc: Path) -> str:
    return str(doc.relative_to(ROOT))


def report(problems: list[str]) -> str:
    return f"{len(problems)} name(s) in the docs that do not exist:\n  " + "\n  ".join(problems)


# --- Settings and environment variables -------------------------------------------------------


@cache
def setting_names() -> frozenset[str]:
    """The environment names of `Settings`: the field's name in upper case, and any alias."""
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        names.add(name.upper())
        for alias in (field.alias, field.validation_alias):
            if isinstance(alias, str):
                names.add(alias.upper())
            elif alias is not None and hasattr(alias, "choices"):
                names.update(str(choice).upper() for choice in alias.choices)
    return frozenset(names)


@cache
def repo_files() -> tuple[Path, ...]:
    """Every file of the working tree but the venv, git's and the tools' caches."""
    found: list[Path] = []
    for directory, subdirectories, files in os.walk(ROOT):
        subdirectories[:] = [d for d in subdirectories if d not in SKIPPED_DIRS]
        found.extend(Path(directory, name) for name in files)
    return tuple(found)


def code_files() -> Iterator[Path]:
    this = Path(__file__).resolve()
    return (path for path in repo_files() if path.suffix == ".py" and path != this)


@cache
def names_read_by_code() -> frozenset[str]:
    """UPPER_CASE names the code can read from the environment: Python string literals that are
    exactly such a name (`os.environ.get("OTEL_SERVICE_NAME")`, a stack.env key), keyword
    arguments named so (`dict(env, CONNECTOR_PUBLIC_URL=...)`), and any such word in the shell
    scripts, CI, Dockerfile and compose file."""
    names: set[str] = set()
    for path in code_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                if EXACT_UPPER.fullmatch(node.value):
                    names.add(node.value)
            elif isinstance(node, ast.keyword) and node.arg and EXACT_UPPER.fullmatch(node.arg):
                names.add(node.arg)
    others = [ROOT / name for name in NON_PYTHON_CODE]
    for pattern in NON_PYTHON_CODE_GLOBS:
        others.extend(ROOT.glob(pattern))
    for path in others:
        if path.is_file():
            names.update(UPPER_NAME.findall(path.read_text(encoding="utf-8")))
    return frozenset(names)


@cache
def setting_prefixes() -> frozenset[str]:
    """First words that make an UPPER_CASE name look like a setting: those of the settings and
    of the environment variables the code reads (`CLEENG_`, `TEMPORAL_`, `OTEL_`, ...)."""
    return frozenset(name.split("_")[0] for name in setting_names() | names_read_by_code())


@cache
def temporal_policies_used() -> frozenset[str]:
    """Workflow id reuse and conflict policies the connector's own code passes."""
    used: set[str] = set()
    policies = {WorkflowIDReusePolicy.__name__, WorkflowIDConflictPolicy.__name__}
    for path in code_files():
        if path.relative_to(ROOT).parts[0] == "tests":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in policies
            ):
                used.add(node.attr)
    return frozenset(used)


EMULATORS = {
    "MOLLIE_EMULATOR_": ("-m", "emulators.mollie"),
    "CLEENG_EMULATOR_": ("-m", "emulators.cleeng"),
}
POLICY_NAMES = frozenset(
    member.name for policy in (WorkflowIDReusePolicy, WorkflowIDConflictPolicy) for member in policy
)


def emulator_env_name_exists(name: str) -> bool:
    """`MOLLIE_EMULATOR_<OPTION>` / `CLEENG_EMULATOR_<OPTION>`: each emulator reads one per
    option of its `--help`."""
    for prefix, entry in EMULATORS.items():
        if name.startswith(prefix):
            flag = "--" + name.removeprefix(prefix).lower().replace("_", "-")
            return flag in help_of(entry).flags
    return False


def test_every_setting_the_docs_name_exists() -> None:
    known = setting_names() | names_read_by_code() | EXTERNAL_ENV_NAMES
    problems: list[str] = []
    for doc, number, line in all_docs_text():
        for name in UPPER_NAME.findall(line):
            if name in POLICY_NAMES:
                if name not in temporal_policies_used():
                    problems.append(
                        f"{rel(doc)}:{number}: workflow id policy {name}: the connector's code "
                        "passes it nowhere"
                    )
                continue
            if name.split("_")[0] not in setting_prefixes() or name in known:
                continue
            if emulator_env_name_exists(name):
                continue
            problems.append(
                f"{rel(doc)}:{number}: {name}: no such setting in settings.py, and no code reads it"
            )
        for prefix in UPPER_WILDCARD.findall(line):
            if not any(name.startswith(prefix) for name in known):
                problems.append(f"{rel(doc)}:{number}: {prefix}*: no setting starts so")
    assert not problems, report(problems)


# --- Files, links and anchors -----------------------------------------------------------------


@cache
def top_level_names() -> frozenset[str]:
    return frozenset(path.name for path in ROOT.iterdir())


@cache
def file_names_in_repo() -> frozenset[str]:
    return frozenset(path.name for path in repo_files())


def path_candidate(token: str) -> str | None:
    """The repository path a backticked token names, without `:line`, `::test` or `#anchor`;
    None for what is no repository path (URL paths, hosts, images, MIME types, ...)."""
    token = token.strip("()[],;\"'").rstrip(":.")
    if not token or "://" in token or token.startswith(("/", "~", "$", "-", ".../")):
        return None
    token = re.sub(r"(::.*|#.*|:\d+(-\d+)?)$", "", token)
    first = token.split("/", 1)[0]
    if "/" in token and first in top_level_names():
        return token
    if "/" in token and token.startswith(RUNTIME_PREFIXES):
        return token
    if (
        "/" not in token
        and token.endswith(BARE_CHECKED_SUFFIXES)
        and re.fullmatch(r"\w[\w.-]*", token)
    ):
        return token
    if "/" in token and token.endswith(PATH_SUFFIXES) and "." not in first.lstrip("."):
        return token  # a file below a directory that does not exist
    return None


def missing_path(path: str) -> str | None:
    """Why a named repository path does not exist, or None when it does (or is made at run
    time below the data dir)."""
    if path.startswith(RUNTIME_PREFIXES):
        return None
    if "/" not in path:
        return None if path in file_names_in_repo() else "no file of that name in the repository"
    if "*" in path:
        return None if any(ROOT.glob(path)) else "matches no file"
    if re.search(r"[<>{}]", path):
        return None  # a placeholder
    return None if (ROOT / path).exists() else "does not exist"


def test_every_file_the_docs_name_exists() -> None:
    problems: list[str] = []
    for doc in DOCS:
        for block in prose(doc):
            for span in BACKTICKS.finditer(block.text):
                for token in span.group(1).split():
                    path = path_candidate(token)
                    why = path and missing_path(path)
                    if path and why:
                        problems.append(f"{block.where(span.start())}: `{path}` {why}")
                    elif path and "::" in token:
                        test = token.split("::", 1)[1].strip("()[],;.`")
                        source = (ROOT / path).read_text(encoding="utf-8")
                        if f"def {test}(" not in source:
                            problems.append(f"{block.where(span.start())}: {path} has no {test}")
            for link in LINK.finditer(block.text):
                target = link.group(1)
                if re.match(r"[a-z]+:", target):
                    continue
                linked = target.split("#", 1)[0]
                if linked and not (doc.parent / linked).exists():
                    problems.append(f"{block.where(link.start())}: {linked}: no such file")
    assert not problems, report(problems)


def test_every_anchor_the_docs_link_to_is_a_heading() -> None:
    problems: list[str] = []
    for doc in DOCS:
        for block in prose(doc):
            for link in LINK.finditer(block.text):
                target = link.group(1)
                if re.match(r"[a-z]+:", target) or "#" not in target:
                    continue
                file, anchor = target.split("#", 1)
                page = (doc.parent / file).resolve() if file else doc
                if page.suffix == ".md" and page.exists() and anchor not in anchors_of(page):
                    problems.append(
                        f"{block.where(link.start())}: #{anchor}: no such heading in "
                        f"{page.relative_to(ROOT)}"
                    )
    assert not problems, report(problems)


@cache
def sections_by_name() -> dict[str, frozenset[str]]:
    """Each doc's file name -> the slugs of the sections a reader can find by name: its
    headings, and the bold leads that open a paragraph (`**Changing workflow code.**`)."""
    sections: dict[str, frozenset[str]] = {}
    for doc in DOCS:
        leads = {
            slug(match.group(1))
            for block in prose(doc)
            if (match := re.match(r"\*\*([^*]+?)\.?\*\*", block.text))
        }
        sections[doc.name] = anchors_of(doc) | leads
    return sections


def names_a_section(quoted: str, sections: frozenset[str]) -> bool:
    """A section is named by its title, or by the start of it ("Not called" for "Not called
    (undocumented in Core API 3.1)")."""
    wanted = slug(quoted)
    return any(section == wanted or section.startswith(wanted + "-") for section in sections)


def section_reference(text: str, start: int, end: int) -> bool:
    """A quoted phrase that names a section: `see "X"`, `under "X"`, `FILE.md, "X"`,
    `("X" below)`, or one that is some doc's heading."""
    before = text[max(0, start - 12) : start].lower()
    after = text[end : end + 7].lower()
    return (
        bool(re.search(r"(see|under|\.md,|\.md\) \(|\.md`,)\s*$", before))
        or after.startswith((" below", " above"))
        or any(slug(text[start + 1 : end - 1]) in s for s in sections_by_name().values())
    )


def test_every_section_the_docs_name_in_quotes_is_a_heading() -> None:
    """`(see "The stack file")` names a heading of this page; `docs/cleeng-contract.md,
    "Termination and capturePayment"` or `[Development](development.md) ... under "X"` one of
    the page named next to it."""
    problems: list[str] = []
    for doc in DOCS:
        for block in prose(doc):
            for quote in QUOTED.finditer(block.text):
                if not section_reference(block.text, quote.start(), quote.end()):
                    continue
                window = block.text[max(0, quote.start() - 120) : quote.end() + 60]
                named = [m.group(1) for m in MD_NAME.finditer(window)]
                page = named[-1] if named else doc.name
                if page not in sections_by_name():
                    continue  # a document of another project
                if not names_a_section(quote.group(1), sections_by_name()[page]):
                    problems.append(
                        f'{block.where(quote.start())}: "{quote.group(1)}": no such heading or '
                        f"bold lead in {'README.md' if page == 'README.md' else 'docs/' + page}"
                    )
    assert not problems, report(problems)


# --- Commands ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Help:
    flags: frozenset[str]
    commands: frozenset[str]
    valued: frozenset[str]  # flags followed by a value (`--data-dir <path>`)


def parse_help(text: str) -> Help:
    """Flags anywhere in a `--help` (argparse or click), and the commands a click group lists."""
    commands: set[str] = set()
    in_commands = False
    for line in text.splitlines():
        if re.match(r"^\S", line):
            in_commands = line.strip().rstrip(":").lower() == "commands"
            continue
        match = re.match(r"^  (\w[\w-]*)\b", line)
        if in_commands and match:
            commands.add(match.group(1))
    valued = re.findall(r"(--[a-z][\w-]*)[ =](?:<|[A-Z]{2})", text)
    return Help(
        flags=frozenset(FLAG.findall(text)),
        commands=frozenset(commands),
        valued=frozenset(valued),
    )


# One process asks every entry point for its --help, the way `python -m X --help` or
# `python scripts/x.py --help` would (runpy, as `__main__`), and walks the operator CLI's typer
# app through every command path: a process per entry point costs a second or more each on this
# machine, most of it importing the same packages.
_HELP_DRIVER = textwrap.dedent(
    """
    import contextlib, io, json, runpy, sys
    import typer.main

    helps = {}
    for entry in json.loads(sys.argv[1]):
        out = io.StringIO()
        argv, path = sys.argv, list(sys.path)
        sys.argv = [entry[-1], "--help"]
        try:
            with contextlib.redirect_stdout(out):
                if entry[0] == "-m":
                    runpy.run_module(entry[1], run_name="__main__", alter_sys=True)
                else:
                    sys.path.insert(0, str(__import__("pathlib").Path(entry[0]).parent))
                    runpy.run_path(entry[0], run_name="__main__")
        except SystemExit as exit:
            if exit.code not in (0, None):
                raise
        finally:
            sys.argv, sys.path[:] = argv, path
        helps[" ".join(entry)] = out.getvalue()

    from connector_ops.app import app

    def walk(command, path):
        name = " ".join(["python -m connector_ops", *path])
        with command.context_class(command, info_name=name) as ctx:
            helps[" ".join(["-m connector_ops", *path])] = command.get_help(ctx)
            if hasattr(command, "list_commands"):
                for sub in command.list_commands(ctx):
                    walk(command.get_command(ctx, sub), [*path, sub])

    walk(typer.main.get_command(app), [])
    json.dump(helps, sys.stdout)
    """
)
OPS = ("-m", "connector_ops")


def entry_source(entry: tuple[str, ...]) -> Path | None:
    """The file that parses the entry point's command line."""
    if entry[0] != "-m":
        return ROOT / entry[0]
    spec = importlib.util.find_spec(entry[1])
    if spec is None or spec.origin is None:
        return None
    origin = Path(spec.origin)
    main = origin.with_name("__main__.py")
    return main if origin.name == "__init__.py" and main.exists() else origin


def has_command_line(entry: tuple[str, ...]) -> bool:
    """Whether the entry point parses flags with argparse: only those are asked for their
    --help, since the others would start running (a worker, the API)."""
    source = entry_source(entry)
    if source is None or not source.is_file() or source.suffix not in ("", ".py"):
        return False
    text = source.read_text(encoding="utf-8")
    return bool(re.search(r"^\s*(import|from) argparse\b", text, re.MULTILINE))


@cache
def helps() -> dict[tuple[str, ...], Help]:
    """The --help of every entry point the docs run (empty for one without a command line),
    and of every command path of the operator CLI as `("-m", "connector_ops", "holds", ...)`."""
    entries = sorted(
        {entry for c in all_commands() if not existence_problem(c) and (entry := help_entry(c))}
        | set(EMULATORS.values())
    )
    asked = [entry for entry in entries if entry != OPS and has_command_line(entry)]
    done = subprocess.run(
        [sys.executable, "-c", _HELP_DRIVER, json.dumps(asked)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "200", "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"},
    )
    assert done.returncode == 0, f"asking the entry points for --help failed:\n{done.stderr}"
    found: dict[tuple[str, ...], Help] = dict.fromkeys(
        entries, Help(frozenset(), frozenset(), frozenset())
    )
    for key, text in json.loads(done.stdout).items():
        found[tuple(key.split())] = parse_help(text)
    return found


def help_of(entry: tuple[str, ...]) -> Help:
    return helps()[entry]


@dataclass(frozen=True)
class Command:
    """One invocation of an entry point of this repository, as a doc writes it."""

    block: Block
    offset: int
    entry: tuple[str, ...]  # ("-m", "launcher") or ("scripts/demo_purchase.py",)
    args: tuple[str, ...]
    shown: str  # as the doc names it


PYTHONS = {"python", "python3", ".venv/bin/python"}
# scripts/<x> that are shell front ends: what each runs (its flags are that program's).
SHELL_SCRIPTS = {"scripts/run": ("-m", "launcher"), "scripts/test": None, "scripts/bootstrap": None}


def tokens_of(text: str) -> list[str]:
    try:
        return shlex.split(text, comments=False)
    except ValueError:
        return text.split()


def commands_in(block: Block, text: str, offset: int) -> Iterator[Command]:
    """The repository's commands in `text` (a code line or a backticked span)."""
    text = re.sub(r"^\s*\$\s+", "", text)
    text = re.sub(r"(^|\s)#\s.*$", "", text)  # a trailing comment
    for segment in re.split(r"\|\||&&|;|\|", text):
        tokens = [token.strip("[]") for token in tokens_of(segment)]
        while tokens and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", tokens[0]):
            tokens.pop(0)  # VAR=value before the command
        if not tokens:
            continue
        head, rest = tokens[0], tokens[1:]
        if head in PYTHONS and len(rest) >= 2 and rest[0] == "-m":
            yield Command(block, offset, ("-m", rest[1]), tuple(rest[2:]), f"python -m {rest[1]}")
        elif head in PYTHONS and rest and rest[0].endswith(".py"):
            yield Command(block, offset, (rest[0],), tuple(rest[1:]), rest[0])
        elif head.startswith("scripts/"):
            yield Command(block, offset, (head,), tuple(rest), head)


def all_commands() -> Iterator[Command]:
    for doc in DOCS:
        for block in blocks_of(doc):
            if block.code:
                yield from commands_in(block, block.text, 0)
            else:
                for span in BACKTICKS.finditer(block.text):
                    yield from commands_in(block, span.group(1).replace("\n", " "), span.start())


def module_problem(module: str) -> str | None:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return "no such module"
    origin = Path(spec.origin).resolve()
    if ROOT not in origin.parents or ".venv" in origin.parts:
        return f"not a module of this repository ({origin})"
    return None


def existence_problem(command: Command) -> str | None:
    if command.entry[0] == "-m":
        return module_problem(command.entry[1])
    return None if (ROOT / command.entry[0]).is_file() else "no such script"


def help_entry(command: Command) -> tuple[str, ...] | None:
    """The entry point whose --help lists the command's flags (None: not checkable here)."""
    if command.entry[0] in SHELL_SCRIPTS:
        return SHELL_SCRIPTS[command.entry[0]]
    return command.entry


def flags_in(args: Iterable[str]) -> Iterator[str]:
    for arg in args:
        if FLAG.fullmatch(arg.split("=", 1)[0]):
            yield arg.split("=", 1)[0]


def connector_ops_problems(command: Command) -> Iterator[str]:
    """Walk the operator CLI's command tree along the command's words: each must be a command
    of its group, each flag one of the path's options."""
    path: tuple[str, ...] = OPS
    flags = set(help_of(path).flags)
    valued = set(help_of(path).valued)
    skip = False
    for arg in command.args:
        current = help_of(path)
        shown = " ".join(("python", *path))
        if skip:
            skip = False
        elif arg.startswith("-"):
            flag = arg.split("=", 1)[0]
            if FLAG.fullmatch(flag) and flag not in flags:
                yield f"{shown}: no option {flag}"
            skip = flag in valued and "=" not in arg
        elif current.commands:
            if arg not in current.commands:
                yield f"{shown}: no command {arg!r}"
                return
            path = (*path, arg)
            flags |= help_of(path).flags
            valued |= help_of(path).valued


def test_every_command_the_docs_give_exists() -> None:
    problems: list[str] = []
    for command in all_commands():
        where = command.block.where(command.offset)
        why = existence_problem(command)
        if why:
            problems.append(f"{where}: {command.shown}: {why}")
        elif command.entry == OPS:
            problems.extend(f"{where}: {problem}" for problem in connector_ops_problems(command))
        elif (entry := help_entry(command)) is not None:
            for flag in flags_in(command.args):
                if flag not in help_of(entry).flags:
                    problems.append(f"{where}: {command.shown}: no option {flag}")
    assert not problems, report(problems)


def test_every_flag_the_docs_name_in_prose_exists() -> None:
    """A flag in running text (`--method ideal`, `workflow reset --to`) belongs to an entry
    point the same page runs: it must be one of their flags (or the temporal CLI's)."""
    known: dict[Path, set[str]] = {doc: set(EXTERNAL_FLAGS) for doc in DOCS}
    for command in all_commands():
        if existence_problem(command):
            continue
        if command.entry == OPS:
            ops = (h.flags for key, h in helps().items() if key[: len(OPS)] == OPS)
            known[command.block.doc].update(*ops)
        elif (entry := help_entry(command)) is not None:
            known[command.block.doc] |= help_of(entry).flags
    problems: list[str] = []
    for doc in DOCS:
        for block in prose(doc):
            for span in BACKTICKS.finditer(block.text):
                words = span.group(1).split()
                if words and (words[0] in PYTHONS or words[0].startswith("scripts/")):
                    continue  # a whole command: checked above
                if words and words[0] in EXTERNAL_PROGRAMS:
                    continue  # another program's command line
                for flag in FLAG.findall(span.group(1)):
                    if flag not in known[doc]:
                        problems.append(
                            f"{block.where(span.start())}: {flag}: no entry point this page "
                            "runs has it"
                        )
    assert not problems, report(problems)


# --- Shape ------------------------------------------------------------------------------------


def test_readme_is_a_front_door() -> None:
    count = len(lines_of(README))
    assert count <= README_MAX_LINES, (
        f"README.md has {count} lines (at most {README_MAX_LINES}): move detail to docs/"
    )


def test_every_doc_starts_with_a_one_line_purpose() -> None:
    problems: list[str] = []
    for doc in DOCS[1:]:
        lines = [*lines_of(doc), "", "", ""]
        if not lines[0].startswith("# "):
            problems.append(f"{rel(doc)}:1: no `# Title` first")
        elif lines[1] or not lines[2] or lines[2].startswith(("#", "|", "-", "`", ">")) or lines[3]:
            problems.append(
                f"{rel(doc)}:3: the title is not followed by a one-line purpose (a single line "
                "between blank lines)"
            )
    assert not problems, "\n".join(problems)
