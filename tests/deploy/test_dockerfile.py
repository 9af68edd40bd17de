"""deploy/Dockerfile, linted structurally without a Docker engine, and the pinned
dependency closure it installs (deploy/requirements.lock)."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy import lockfile

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / "deploy" / "Dockerfile.dockerignore"

#: Packages and commands that compile things: they belong in the builder only.
BUILD_TOOLS = re.compile(
    r"\b(build-essential|gcc|g\+\+|clang|make|cmake|libpq-dev|python3-dev|"
    r"pip\s+(install|wheel)|apt-get\s+install|apk\s+add)\b"
)
PINNED_PYTHON = re.compile(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?")


@dataclass
class Instruction:
    keyword: str
    arguments: str

    @property
    def exec_form(self) -> list[str] | None:
        """The JSON (exec) form's argument list, or None for the shell form."""
        text = re.sub(r"^(--\w[\w-]*=\S+\s+)*(CMD\s+)?", "", self.arguments)
        if not text.startswith("["):
            return None
        loaded = json.loads(text)
        assert isinstance(loaded, list)
        assert all(isinstance(a, str) for a in loaded)
        return loaded


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse(text: str) -> list[Stage]:
    """Stages and instructions: comments dropped, ``\\`` continuations joined."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    assert not current, "dangling line continuation"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.fullmatch(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", arguments, re.I)
            assert match, f"FROM {arguments}"
            stages.append(Stage(match.group(1), match.group(2)))
        elif keyword == "ARG" and not stages:
            continue
        else:
            assert stages, f"{keyword} before FROM"
            stages[-1].instructions.append(Instruction(keyword, " ".join(arguments.split())))
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse(DOCKERFILE.read_text())


def lint(stages: list[Stage]) -> list[str]:
    """What is wrong with a Dockerfile's stages (empty: nothing)."""
    problems: list[str] = []
    if len(stages) < 2:
        problems.append("not multi-stage")
    for stage in stages:
        if not PINNED_PYTHON.fullmatch(stage.image):
            problems.append(f"base image {stage.image} is not a pinned python:3.11.x-slim")
    final = stages[-1]
    users = final.all("USER")
    if not users or users[-1].arguments.split(":")[0] in {"root", "0"}:
        problems.append("final stage runs as root")
    for instruction in final.instructions:
        if instruction.keyword == "RUN" and BUILD_TOOLS.search(instruction.arguments):
            problems.append(f"build tooling in the final stage: RUN {instruction.arguments}")
        if instruction.keyword in {"ADD"}:
            problems.append("ADD in the final stage (use COPY)")
    healthchecks = final.all("HEALTHCHECK")
    if len(healthchecks) != 1 or healthchecks[0].exec_form is None:
        problems.append("final stage needs one HEALTHCHECK in exec form")
    for keyword in ("ENTRYPOINT", "CMD"):
        found = final.all(keyword)
        if len(found) != 1 or found[0].exec_form is None:
            problems.append(f"final stage needs one {keyword} in exec form")
    names = {s.name for s in stages[:-1]}
    for copy in final.all("COPY"):
        source = re.match(r"--from=(\S+)", copy.arguments)
        if source is None:
            problems.append(f"final stage copies from the build context: COPY {copy.arguments}")
        elif source.group(1) not in names:
            problems.append(f"COPY --from={source.group(1)}: no such stage")
    return problems


def test_dockerfile_passes_the_lint(stages: list[Stage]) -> None:
    assert lint(stages) == []
    assert [s.name for s in stages] == ["builder", "runtime"]


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda t: t.replace("USER 10001:10001\n", ""), "runs as root"),
        (lambda t: t.replace("USER 10001:10001", "USER root"), "runs as root"),
        (lambda t: re.sub(r"HEALTHCHECK[^\n]*\\\n[^\n]*\n", "", t), "HEALTHCHECK"),
        (
            lambda t: t.replace(
                "python:3.11.14-slim-bookworm AS runtime", "python:3.11 AS runtime"
            ),
            "pinned",
        ),
        (
            lambda t: t.replace(
                "COPY --from=builder /app /app",
                "COPY --from=builder /app /app\nRUN apt-get install -y gcc",
            ),
            "build tooling",
        ),
        (
            lambda t: t.replace(
                'ENTRYPOINT ["python", "/app/deploy/entrypoint.py"]',
                "ENTRYPOINT python /app/deploy/entrypoint.py",
            ),
            "ENTRYPOINT",
        ),
        (lambda t: t.replace("COPY --from=builder /app /app", "COPY . /app"), "build context"),
    ],
)
def test_the_lint_catches_regressions(edit, problem: str) -> None:
    text = DOCKERFILE.read_text()
    edited = edit(text)
    assert edited != text, "the edit did not apply"
    problems = lint(parse(edited))
    assert any(problem in p for p in problems), problems


def test_runtime_runs_the_entrypoint_as_a_fixed_non_root_user(stages: list[Stage]) -> None:
    final = stages[-1]
    assert final.all("USER")[-1].arguments == "10001:10001"
    assert final.all("ENTRYPOINT")[0].exec_form == ["python", "/app/deploy/entrypoint.py"]
    assert final.all("CMD")[0].exec_form == ["serve", "gateway"]
    assert final.all("HEALTHCHECK")[0].exec_form == [
        "python",
        "/app/deploy/entrypoint.py",
        "healthcheck",
    ]
    env = " ".join(i.arguments for i in final.all("ENV"))
    for setting in ("RAPPORT_HOST=0.0.0.0", "RAPPORT_PORT=8000", "RAPPORT_ENVIRONMENT=production"):
        assert setting in env
    assert "EXPOSE 8000" in [f"{i.keyword} {i.arguments}" for i in final.instructions]


def test_builder_installs_only_locked_wheels(stages: list[Stage]) -> None:
    runs = " ".join(i.arguments for i in stages[0].all("RUN"))
    assert "pip wheel --wheel-dir /wheels --requirement deploy/requirements.lock" in runs
    for install in re.findall(r"pip install[^&]*", runs):
        assert "--no-index" in install, install


def test_every_copied_path_exists_and_is_in_the_build_context(stages: list[Stage]) -> None:
    patterns = [line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip()]
    patterns = [p for p in patterns if not p.startswith("#")]

    def ignored(path: str) -> bool:
        verdict = False
        for pattern in patterns:
            negated = pattern.startswith("!")
            bare = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, bare) or path.startswith(bare + "/"):
                verdict = not negated
        return verdict

    for copy in stages[0].all("COPY"):
        *sources, _ = copy.arguments.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert not ignored(source), f"{source} is excluded by the .dockerignore"
    assert ignored(".venv")
    assert ignored(".rapport")
    assert ignored("tests")


def test_requirements_lock_is_the_current_runtime_closure() -> None:
    assert lockfile.LOCK.read_text() == lockfile.render(), (
        "deploy/requirements.lock is stale: run .venv/bin/python -m tests.deploy.lockfile"
    )


def test_requirements_lock_keeps_every_pin_of_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = {}
    for line in lockfile.LOCK.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            locked[name] = version
    for raw in project["dependencies"]:
        requirement = Requirement(raw)
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", f"{raw} is not pinned"
        assert locked[canonicalize_name(requirement.name)] == specifier.version, raw
    dev_and_test = [
        Requirement(r) for extra in project["optional-dependencies"].values() for r in extra
    ]
    for requirement in dev_and_test:
        if canonicalize_name(requirement.name) in {"packaging"}:
            continue
        assert canonicalize_name(requirement.name) not in locked, requirement.name
