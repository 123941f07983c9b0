"""The pages cannot rot: links resolve, `dvc exp run -S` lines load, params.md lists every key
with its default, `dcgan` lines parse, and no page names a commit or a word a reader cannot find.

Each rule is a function of the page texts, so each is also checked against a page broken on
purpose (the ``*_catches_*`` tests): a rule that cannot fail would guard nothing."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from dcgan.config import DcganError, load_all

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").glob("*.md")])

# Words a reader cannot look up: how the work was organised, not what the project is.
FORBIDDEN = (
    r"\bstops? \d+\b",
    r"git log lacks",
    r"\bhypervisor\b",
    r"(?<![\w(/#])#\d+\b",  # an issue number; "#anchor" links and "#1" in code are not prose
)
MAX_COMMITS = 8  # each the provenance of a result a reader can check out and rerun
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
HEX = re.compile(r"(?<![\w/.-])[0-9a-f]{7,40}(?![\w/.-])")


def _prose_and_code(text: str) -> tuple[str, list[str]]:
    """The page without its fenced code blocks, and the blocks' shell lines: every line of a
    bash, sh or console block, and lines typed after a `$ ` prompt in any other."""
    prose, code, fence = [], [], None
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fence = None if fence is not None else line.strip("` \n") or "text"
            continue
        if fence is None:
            prose.append(line)
        elif fence in ("bash", "sh", "shell", "console") or line.startswith("$ "):
            code.append(line)
    return "\n".join(prose), code


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    prose, _ = _prose_and_code(page.read_text())
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6} (.+)$", prose, re.M)}


def broken_links(page: Path, text: str) -> Iterator[str]:
    """Relative links whose file, or whose #anchor in that file, does not exist."""
    prose, _ = _prose_and_code(text)
    for match in LINK.finditer(prose):
        target = match.group(1) or match.group(2)
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: not ours to check offline
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            yield f"{page.name}: {target} (no such file)"
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            yield f"{page.name}: {target} (no such heading in {file.name})"


def exp_run_lines(text: str) -> Iterator[str]:
    """Every `dvc exp run` command of a page, continuation lines joined, in code and prose."""
    joined = re.sub(r"\\\n\s*", " ", text)
    for line in joined.splitlines():
        for command in re.findall(r"dvc exp run[^`\n]*", line):
            yield command.split(" #")[0].split(" && ")[0]


def bad_overrides(command: str, params: Path, scratch: Path) -> Iterator[str]:
    """An override DVC would refuse (a sweep without --queue, a key params.yaml lacks), or
    params with it applied that the stages' config refuses."""
    from dvc.utils.hydra import apply_overrides, get_hydra_sweeps, to_hydra_overrides

    words = shlex.split(command)
    overrides = [words[i + 1] for i, word in enumerate(words[:-1]) if word in ("-S", "--set-param")]
    if not overrides:
        return
    keys = {
        f"{block}.{key}"
        for block, values in yaml.safe_load(params.read_text()).items()
        for key in values
    }
    try:
        parsed = to_hydra_overrides(overrides)
    except Exception as error:  # hydra's grammar errors have no common base worth naming
        yield f"{command}: DVC cannot parse it ({error})"
        return
    for override in parsed:
        if override.key_or_group not in keys:
            yield f"{command}: params.yaml has no key {override.key_or_group}"
            return
    if any(o.is_sweep_override() for o in parsed) and "--queue" not in words:
        yield f"{command}: a sweep, which DVC refuses without --queue"
        return
    for sweep in get_hydra_sweeps({"params.yaml": overrides}):
        copy = scratch / "params.yaml"
        shutil.copyfile(params, copy)
        apply_overrides(copy, sweep["params.yaml"])
        try:
            load_all(copy)
        except DcganError as error:
            yield f"{command}: {error}"


def _cell(text: str) -> object:
    value = yaml.safe_load(text.strip().strip("`")) if text.strip() else None
    if isinstance(value, str):
        try:
            return float(value)  # YAML 1.1 reads 1e-4 as a string
        except ValueError:
            return value
    return value


def params_rows_missing(params_md: str, params: Path) -> Iterator[str]:
    """Keys of params.yaml without a row in params.md, or whose row gives another default."""
    rows = {}
    for match in re.finditer(r"^\| `([\w.]+)` \| ([^|]*) \|", params_md, re.M):
        rows[match.group(1)] = _cell(match.group(2))
    for block, values in yaml.safe_load(params.read_text()).items():
        for key, default in values.items():
            name = f"{block}.{key}"
            if name not in rows:
                yield f"params.md has no row for {name}"
            elif rows[name] != default and rows[name] != _cell(str(default)):
                yield f"params.md gives {name} = {rows[name]!r}, params.yaml {default!r}"


def dcgan_lines(text: str) -> Iterator[list[str]]:
    """The words of every `dcgan ...` command in a page's code blocks."""
    _, code = _prose_and_code(text)
    for line in code:
        line = re.sub(r"^\$ ", "", line.strip())
        line = re.sub(r"^\w+=\S+ ", "", line)  # VAR=value dcgan ...
        if not line.startswith("dcgan "):
            continue
        command = re.split(r"\s(?:#|\||&&|>|2>)", line)[0]
        yield shlex.split(command)[1:]


def unparsed_dcgan_lines(text: str) -> Iterator[str]:
    """Lines `dcgan`'s own parser refuses (it exits 2; --help and --version exit 0)."""
    from dcgan.cli.parser import build_parser

    for words in dcgan_lines(text):
        try:
            with (
                contextlib.redirect_stdout(io.StringIO()),
                contextlib.redirect_stderr(io.StringIO()),
            ):
                build_parser().parse_args(words)
        except SystemExit as exit_:
            if exit_.code:
                yield "dcgan " + " ".join(words)


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)


def hashes(text: str) -> set[str]:
    """Words that look like abbreviated commit hashes (a digit and a letter, 7-40 hex)."""
    return {
        word
        for word in HEX.findall(text)
        if re.search(r"[0-9]", word) and re.search(r"[a-f]", word)
    }


def unknown_commits(found: set[str]) -> Iterator[str]:
    for word in sorted(found):
        if _git("cat-file", "-e", f"{word}^{{commit}}").returncode:
            yield word


def forbidden_words(text: str) -> Iterator[str]:
    prose, _ = _prose_and_code(text)
    for pattern in FORBIDDEN:
        for match in re.finditer(pattern, prose, re.I):
            yield match.group(0)


# --- the rules, on the pages as they are -------------------------------------------------


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_and_anchor_resolves(page):
    assert list(broken_links(page, page.read_text())) == []


def test_every_dvc_exp_run_override_names_a_key_and_loads(tmp_path):
    found = [
        (page.name, problem)
        for page in PAGES
        for command in exp_run_lines(page.read_text())
        for problem in bad_overrides(command, ROOT / "params.yaml", tmp_path)
    ]
    assert found == []


def test_params_md_has_every_key_with_its_default():
    params_md = (ROOT / "docs" / "params.md").read_text()
    assert list(params_rows_missing(params_md, ROOT / "params.yaml")) == []


def test_every_dcgan_command_in_a_code_block_parses():
    assert [(p.name, line) for p in PAGES for line in unparsed_dcgan_lines(p.read_text())] == []


def test_pages_name_only_commits_git_has_and_few_of_them():
    if _git("rev-parse", "--is-shallow-repository").stdout.strip() == "true":
        pytest.skip("a shallow clone lacks the history the pages cite; clone in full")
    found = set().union(*(hashes(p.read_text()) for p in PAGES))
    assert list(unknown_commits(found)) == []
    assert len(found) <= MAX_COMMITS, sorted(found)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_page_uses_words_from_outside_the_project(page):
    assert list(forbidden_words(page.read_text())) == []


def test_the_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200
    assert hashes("\n".join(lines)) == set()
    head = "\n".join(lines[:40])
    assert "./run pipeline" in head and "./run test" in head and ".gif)" in head


# --- each rule breaks when a page does ---------------------------------------------------


def test_a_broken_link_or_anchor_is_caught():
    page = ROOT / "docs" / "results.md"
    assert list(broken_links(page, "[ok](params.md) [a](../READ.md)")) == [
        "results.md: ../READ.md (no such file)"
    ]
    assert list(broken_links(page, "[b](params.md#no-such-heading)")) == [
        "results.md: params.md#no-such-heading (no such heading in params.md)"
    ]


def test_the_gpu_line_as_once_written_is_caught(tmp_path):
    def problems(line: str) -> list[str]:
        return [
            p for c in exp_run_lines(line) for p in bad_overrides(c, ROOT / "params.yaml", tmp_path)
        ]

    assert "sweep" in problems("dvc exp run -S train.devices=GPU:0,GPU:1")[0]
    quoted = problems("dvc exp run -S \"train.devices='GPU:0,GPU:1'\"")
    assert "train.devices" in quoted[0] and "mirrored" in quoted[0]
    assert problems("dvc exp run -S train.iteratons=5") == [
        "dvc exp run -S train.iteratons=5: params.yaml has no key train.iteratons"
    ]
    assert (
        problems("dvc exp run -S train.strategy=mirrored -S \"train.devices='GPU:0,GPU:1'\"") == []
    )


def test_a_missing_row_or_a_wrong_default_is_caught():
    params_md = (ROOT / "docs" / "params.md").read_text()
    assert list(
        params_rows_missing(params_md.replace("| `evaluate.seed` |", "| x |"), ROOT / "params.yaml")
    ) == ["params.md has no row for evaluate.seed"]
    wrong = params_md.replace("| `train.batch_size` | 128 |", "| `train.batch_size` | 64 |")
    assert list(params_rows_missing(wrong, ROOT / "params.yaml")) == [
        "params.md gives train.batch_size = 64, params.yaml 128"
    ]


def test_an_unknown_dcgan_flag_or_command_is_caught():
    page = "```bash\ndcgan sample -n 4 --sed 0 --out a.png\ndcgan smaple\ndcgan bench --help\n```"
    assert list(unparsed_dcgan_lines(page)) == [
        "dcgan sample -n 4 --sed 0 --out a.png",
        "dcgan smaple",
    ]


def test_an_unknown_commit_and_an_outside_word_are_caught():
    # The full hash: a short one can be all digits (1838586 was), which no word-finder can tell
    # from a number.
    head = _git("rev-parse", "HEAD").stdout.strip()
    assert hashes(f"at {head}, not at 0000000 or deadbee1; run 23f112d0") == {
        head,
        "deadbee1",
        "23f112d0",
    }
    assert list(unknown_commits({"deadbee1"})) == ["deadbee1"]
    assert list(forbidden_words("measured at stop 40, see #23's note; [a](#b1)")) == [
        "stop 40",
        "#23",
    ]
