"""Run a Markdown page's code blocks in order, in one folder: the docs' own test runner.

Every fenced block names its language. Shell blocks (bash, sh) run as one `bash -euo pipefail`
script; console blocks run each `$ ` line and compare what it prints with the lines shown under
it; python blocks run in one namespace per page; yaml, json and text blocks are shown, not run.
An HTML comment right above a block changes how it runs, always visibly in the page's source:

    <!-- docs-test: skip: REASON -->       not run (REASON is required)
    <!-- docs-test: slow: REASON -->       run only by the slow docs test (once in .ci/run)
    <!-- docs-test: needs: NAME -->        skipped unless the module or program NAME is installed
    <!-- docs-test: file: PATH -->         the block's text is written to PATH (a config to run)
    <!-- docs-test: copy: PATH -->         the repository's PATH is copied in first (same path)
    <!-- docs-test: before: COMMAND -->    a shell command run first (a results folder to read)
    <!-- docs-test: set: KEY=VALUE ... -->  added as --set to every `snn-lab run` in the block
    <!-- docs-test: set: NAME KEY=VALUE ... -->  the same, for `snn-lab run NAME` only
    <!-- docs-test: installed: REASON -->  its `pip install ...` steps are not run (REASON)
    <!-- docs-test: exit: N -->            a console block's commands end with status N
    <!-- docs-test: output: REASON -->     a console block's output is not compared (REASON)
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(r"^```(\S*)\s*$")
INDENTED = re.compile(r"^ {4}(\$ )?(snn-lab|python|pip|env|bash) ")  # an indented code block's command
DIRECTIVE = re.compile(r"^<!--\s*docs-test:\s*([a-z]+):\s*(.*?)\s*-->\s*$")
RUN = {"bash", "sh", "console", "python"}
SHOWN = {"yaml", "json", "text", "toml"}
KEYS = {"skip", "slow", "needs", "file", "copy", "before", "set", "installed", "exit", "output"}
REASONED = {"skip", "slow", "installed", "output"}


class DocsError(Exception):
    """A page the runner cannot run as written: page:line and what is wrong."""


@dataclass
class Block:
    """One fenced block: where it is, its language, text and the directives above it."""

    page: str
    line: int
    lang: str
    text: str
    directives: list[tuple[str, str]] = field(default_factory=list)

    def get(self, key: str) -> list[str]:
        return [v for k, v in self.directives if k == key]

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def parse(text: str, page: str = "<page>") -> list[Block]:
    """The page's fenced blocks with their directives; DocsError on a block the runner cannot place."""
    lines, blocks, pending, i = text.splitlines(), [], [], 0
    while i < len(lines):
        m = DIRECTIVE.match(lines[i])
        if m:
            pending.append((i + 1, m.group(1), m.group(2)))
        elif lines[i].lstrip().startswith("<!-- docs-test"):
            raise DocsError(f"{page}:{i + 1}: a docs-test comment must read <!-- docs-test: KEY: VALUE -->")
        fence = FENCE.match(lines[i])
        if INDENTED.match(lines[i]) and (i == 0 or not lines[i - 1].strip() or INDENTED.match(lines[i - 1])):
            raise DocsError(f"{page}:{i + 1}: an indented code block: fence it with its language so it runs")
        if fence:
            end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), None)
            if end is None:
                raise DocsError(f"{page}:{i + 1}: an unclosed code block")
            block = Block(page, i + 1, fence.group(1), "\n".join(lines[i + 1:end]) + "\n",
                          [(k, v) for _, k, v in pending])
            _check(block)
            blocks.append(block)
            pending, i = [], end
        elif pending and not m and lines[i].strip():
            raise DocsError(f"{page}:{pending[0][0]}: a docs-test comment must sit right above a code block")
        i += 1
    if pending:
        raise DocsError(f"{page}:{pending[0][0]}: a docs-test comment must sit right above a code block")
    return blocks


def _check(b: Block) -> None:
    if b.lang not in RUN | SHOWN:
        raise DocsError(f"{b.where}: a code block needs a language the docs test knows "
                        f"({', '.join(sorted(RUN | SHOWN))}), found {b.lang or 'none'!r}")
    for key, value in b.directives:
        if key not in KEYS:
            raise DocsError(f"{b.where}: unknown docs-test directive {key!r} (one of {', '.join(sorted(KEYS))})")
        if key in REASONED and len(value.split()) < 2:
            raise DocsError(f"{b.where}: docs-test {key}: needs its reason in words, found {value!r}")
    if b.lang in SHOWN and any(k not in ("file", "skip") for k, _ in b.directives):
        raise DocsError(f"{b.where}: a {b.lang} block is shown, not run: only file: applies to it")


def environment(bin_dir: Path) -> dict:
    """The commands' environment: this interpreter's snn-lab first on PATH, figures off-screen."""
    env = dict(os.environ, MPLBACKEND="Agg", COLUMNS="100", PYTHONHASHSEED="0")
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env.pop("FORCE_COLOR", None)
    return env


def _shell(b: Block, script: str) -> str:
    """The block's script with its directives applied (set:, installed:)."""
    if b.get("installed"):
        script = re.sub(r"pip install [^&;|\n]*(&&\s*)?", "", script)
    shared, scoped = [], []
    for value in b.get("set"):
        words = value.split()
        if "=" in words[0]:
            shared += words
        else:  # `set: NAME KEY=VALUE ...`: only for `snn-lab run NAME`
            scoped.append(f"{shlex.quote(words[0])}) extra+=({_sets(words[1:])});;")
    if shared or scoped:  # a function, so the page's own text runs unchanged and the shrink comes last
        script = (f'snn-lab() {{ if [ "${{1:-}}" = run ]; then local extra=({_sets(shared)}); '
                  f'case "${{2:-}}" in {" ".join(scoped)} *) ;; esac; '
                  f'command snn-lab "$@" "${{extra[@]}}"; else command snn-lab "$@"; fi; }}\n' + script)
    return script


def _sets(words: list[str]) -> str:
    return " ".join(f"--set {shlex.quote(kv)}" for kv in words)


def run_block(b: Block, cwd: Path, root: Path, namespace: dict, env: dict) -> None:
    """Run one block in `cwd`; AssertionError with page:line when it fails."""
    for path in b.get("copy"):
        (cwd / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / path, cwd / path)
    for command in b.get("before"):
        _bash(b, command, cwd, env)
    for path in b.get("file"):
        (cwd / path).parent.mkdir(parents=True, exist_ok=True)
        (cwd / path).write_text(b.text)
    if b.lang in ("bash", "sh"):
        _bash(b, _shell(b, b.text), cwd, env)
    elif b.lang == "console":
        _console(b, cwd, env)
    elif b.lang == "python":
        _python(b, cwd, namespace)


def _bash(b: Block, script: str, cwd: Path, env: dict, status: int = 0) -> str:
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=cwd, env=env, text=True, check=False,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if done.returncode != status:
        raise AssertionError(f"{b.where}: exit status {done.returncode} (expected {status}) from\n"
                             f"{script}\n--- output ---\n{done.stdout[-4000:]}")
    return done.stdout


def _console(b: Block, cwd: Path, env: dict) -> None:
    """Each `$ command` runs; its output must equal the lines under it (unless output: says why not)."""
    status = int((b.get("exit") or ["0"])[0])
    steps: list[tuple[str, list[str]]] = []
    for line in b.text.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
        else:
            raise AssertionError(f"{b.where}: a console block starts with a `$ ` command")
    for command, shown in steps:
        out = _bash(b, _shell(b, command), cwd, env, status)
        if not b.get("output"):
            got = [line.rstrip() for line in out.rstrip("\n").splitlines()]
            want = [line.rstrip() for line in "\n".join(shown).rstrip("\n").splitlines()]
            assert got == want, (f"{b.where}: `{command}` printed\n" + "\n".join(got)
                                 + "\n--- the page shows ---\n" + "\n".join(want))


def _python(b: Block, cwd: Path, namespace: dict) -> None:
    here = os.getcwd()
    os.chdir(cwd)
    try:
        exec(compile(b.text, f"{b.page}:{b.line}", "exec"), namespace)  # noqa: S102 (the docs run as written)
    except Exception as exc:
        raise AssertionError(f"{b.where}: {type(exc).__name__}: {exc}") from exc
    finally:
        os.chdir(here)


def missing(b: Block) -> str | None:
    """The first module or program a needs: directive names that is not installed."""
    import importlib.util

    for name in b.get("needs"):
        if shutil.which(name) is None and importlib.util.find_spec(name) is None:
            return name
    return None


def bin_dir() -> Path:
    """Where this interpreter's console scripts (snn-lab) are."""
    return Path(sys.executable).parent
