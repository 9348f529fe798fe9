"""The Dockerfile, read without a Docker engine: stages, pinned bases, the wheel, the user.

No image is built here (there is no Docker engine); the Dockerfile is parsed and its
promises checked: multi-stage with ``operator`` and ``trainer`` targets, every base image
pinned by digest (a CUDA runtime base for the trainer), the project installed from a wheel
built in a builder stage, no compiler, pip or package cache in the final images, no
secrets, the non-root uid the operator's pods run as. The digests themselves cannot be
checked offline: the tests assert their format (``sha256:`` and 64 hex digits) only.

The wheel is built for real (``pip wheel --no-deps``) from exactly the files the builder
stage copies, and its entry points must name the command the images run.
"""

from __future__ import annotations

import configparser
import fnmatch
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from stylegan_operator.reconcile.render import RUN_AS_USER
from tests.support import ROOT

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
CUDA_BASE = re.compile(
    r"^nvidia/cuda:(?P<major>\d+)\.(?P<minor>\d+)(\.\d+)?-cudnn-runtime-ubuntu\d\d\.\d\d"
    r"@sha256:[0-9a-f]{64}$"
)
FINAL_TARGETS = ("operator", "trainer")
BUILD_TOOLS = ("gcc", "g++", "build-essential", "make ", "clang", "python3-pip", "python3-dev",
               "pip install", "pip wheel", "/root/.cache")
SECRET_WORDS = ("KEY", "TOKEN", "PASSWORD", "SECRET", "CREDENTIAL")


@dataclass
class Stage:
    base: str  # the FROM argument, ARGs not yet expanded
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args_of(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise AssertionError(f"Dockerfile has no stage {name!r}")

    def resolve(self, text: str) -> str:
        """``${ARG}`` and ``$ARG`` replaced by the global ARG defaults."""
        return re.sub(r"\$\{?(\w+)\}?", lambda m: self.global_args.get(m.group(1), m.group(0)),
                      text)

    def ancestors(self, stage: Stage) -> list[Stage]:
        """The stage and the stages it is built FROM, nearest first."""
        chain = [stage]
        names = {s.name: s for s in self.stages if s.name}
        while chain[-1].base in names:
            chain.append(names[chain[-1].base])
        return chain


def logical_lines(text: str) -> list[str]:
    """Instructions with their continuation lines joined; comment lines dropped."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue  # Docker drops comment lines, inside continuations too
        if stripped.endswith("\\"):
            current += stripped[:-1].rstrip() + " "
            continue
        current += stripped
        if current.strip():
            lines.append(current.strip())
        current = ""
    return lines


def parse(text: str) -> Dockerfile:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical_lines(text):
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            match = re.match(r"^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$", args.strip(), re.I)
            assert match, f"cannot read FROM {args!r}"
            stages.append(Stage(match.group(1), match.group(2)))
        elif not stages:
            assert keyword == "ARG", f"only ARG may come before the first FROM, got {keyword}"
            name, _, default = args.partition("=")
            global_args[name.strip()] = default.strip()
        else:
            stages[-1].instructions.append((keyword, args.strip()))
    return Dockerfile(global_args, stages)


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse(DOCKERFILE.read_text())


# --------------------------------------------------------------------------- stages
def test_parser_joins_continuations_and_drops_comments() -> None:
    parsed = parse("ARG A=1\nFROM x@sha256:" + "a" * 64 + " AS b\n# note\nRUN one \\\n"
                   "# inside\n && two\nUSER 1000\n")
    assert parsed.global_args == {"A": "1"}
    assert parsed.stages[0].name == "b"
    assert parsed.stages[0].instructions == [("RUN", "one && two"), ("USER", "1000")]


def test_is_multi_stage_with_operator_and_trainer_targets(dockerfile: Dockerfile) -> None:
    names = [s.name for s in dockerfile.stages]
    assert len(names) >= 3
    for target in FINAL_TARGETS:
        assert target in names, f"docker build --target {target} needs a stage named so"
    assert len(set(names)) == len(names), "stage names must be unique"


def test_every_base_image_is_pinned_by_digest(dockerfile: Dockerfile) -> None:
    names = {s.name for s in dockerfile.stages}
    for stage in dockerfile.stages:
        if stage.base in names:
            continue  # built on an earlier stage
        image = dockerfile.resolve(stage.base)
        assert DIGEST.search(image), f"stage {stage.name}: base {image} is not pinned by digest"


def test_trainer_runs_on_a_pinned_cuda_runtime_base(dockerfile: Dockerfile) -> None:
    trainer = dockerfile.stage("trainer")
    assert "$" in trainer.base, "the CUDA base is an ARG, so a build can swap the digest"
    image = dockerfile.resolve(trainer.base)
    match = CUDA_BASE.match(image)
    assert match, f"trainer base {image}: expected nvidia/cuda:<ver>-cudnn-runtime-ubuntu..."
    # torch's CUDA wheels should be those of the base image's CUDA version.
    index = dockerfile.global_args["TRAINER_TORCH_INDEX"]
    assert index.endswith(f"/cu{match.group('major')}{match.group('minor')}"), index


def test_operator_image_has_no_cuda_and_no_torch(dockerfile: Dockerfile) -> None:
    operator = dockerfile.resolve(dockerfile.stage("operator").base)
    assert "cuda" not in operator
    runs = " ".join(dockerfile.stage("venv-operator").args_of("RUN"))
    assert "torch" not in runs and "[trainer" not in runs, runs


def test_trainer_image_installs_the_trainer_extra(dockerfile: Dockerfile) -> None:
    runs = " ".join(dockerfile.stage("venv-trainer").args_of("RUN"))
    assert re.search(r"stylegan_operator-\*\.whl\)\[trainer\b", runs), runs


# --------------------------------------------------------------------------- the wheel
def test_the_wheel_is_built_in_a_builder_stage_and_installed_in_each_image(
    dockerfile: Dockerfile,
) -> None:
    builders = [s for s in dockerfile.stages
                if any(re.search(r"pip wheel --no-deps \. -w /wheels", r) for r in
                       s.args_of("RUN"))]
    assert len(builders) == 1, "one stage builds the project's wheel"
    builder = builders[0]
    assert builder.name not in FINAL_TARGETS
    for target in FINAL_TARGETS:
        copies = [c for c in dockerfile.stage(target).args_of("COPY") if c.startswith("--from=")]
        assert copies, f"{target} copies its virtualenv from a build stage"
        source = dockerfile.stage(copies[0].split()[0].removeprefix("--from="))
        chain = dockerfile.ancestors(source)
        assert builder in chain, f"{target}'s virtualenv is not built on the wheel's stage"
        assert any("/wheels/stylegan_operator-" in r for r in source.args_of("RUN")), (
            f"{source.name} does not install the wheel")


def _builder_context(dockerfile: Dockerfile, into: Path) -> Path:
    """The files the builder stage copies from the build context, copied to ``into``."""
    builder = next(s for s in dockerfile.stages
                   if any("pip wheel" in r for r in s.args_of("RUN")))
    for args in builder.args_of("COPY"):
        *sources, _ = args.split()
        for source in sources:
            path = ROOT / source.rstrip("/")
            target = into / source.rstrip("/")
            if path.is_dir():
                shutil.copytree(path, target, ignore=shutil.ignore_patterns(
                    "__pycache__", "*.pyc", "*.egg-info"))
            else:
                shutil.copy2(path, target)
    return into


@pytest.fixture(scope="module")
def wheel(dockerfile: Dockerfile, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built by pip from what the builder stage copies (~10 s)."""
    context = _builder_context(dockerfile, tmp_path_factory.mktemp("context"))
    out = tmp_path_factory.mktemp("wheels")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", ".",
         "-w", str(out)],
        cwd=context, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, f"pip wheel failed:\n{proc.stdout}\n{proc.stderr}"
    (built,) = out.glob("stylegan_operator-*.whl")
    return built


def test_the_wheel_holds_the_three_packages_and_the_stylegan_command(
    wheel: Path, dockerfile: Dockerfile,
) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        parser = configparser.ConfigParser()
        parser.read_string(archive.read(entry_points).decode())
    for module in ("stylegan_operator/cli/main.py", "stylegan_trainer/train/loop.py",
                   "stylegan_common/storage/base.py"):
        assert module in names, f"the wheel lacks {module}"
    assert parser["console_scripts"]["stylegan"].strip() == "stylegan_operator.cli.main:main"
    for target in FINAL_TARGETS:
        (entrypoint,) = dockerfile.stage(target).args_of("ENTRYPOINT")
        assert entrypoint == '["stylegan"]', f"{target}: ENTRYPOINT {entrypoint}"
    assert fnmatch.fnmatch(wheel.name, "stylegan_operator-*-py3-none-any.whl")


# --------------------------------------------------------------------------- final images
@pytest.mark.parametrize("target", FINAL_TARGETS)
def test_final_image_runs_as_the_pods_non_root_uid(dockerfile: Dockerfile, target: str) -> None:
    users = dockerfile.stage(target).args_of("USER")
    assert users, f"{target} sets no USER: it would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), f"{target}: USER {users[-1]} must be numeric for runAsNonRoot"
    assert int(uid) == RUN_AS_USER


@pytest.mark.parametrize("target", FINAL_TARGETS)
def test_final_image_has_no_build_tools_or_caches(dockerfile: Dockerfile, target: str) -> None:
    stage = dockerfile.stage(target)
    for keyword, args in stage.instructions:
        if keyword in ("RUN", "COPY", "ADD"):
            for tool in BUILD_TOOLS:
                assert tool not in args, f"{target}: {keyword} {args!r} brings in {tool.strip()}"
    for run in stage.args_of("RUN"):
        if "apt-get install" in run:
            assert "--no-install-recommends" in run and "rm -rf /var/lib/apt/lists" in run
    # Nothing but the virtualenv comes from the build stages.
    for copy in stage.args_of("COPY"):
        assert copy.startswith("--from=") and copy.split()[1:] == ["/opt/stylegan",
                                                                    "/opt/stylegan"], copy


@pytest.mark.parametrize("target", FINAL_TARGETS)
def test_final_image_finds_its_commands(dockerfile: Dockerfile, target: str) -> None:
    env = " ".join(dockerfile.stage(target).args_of("ENV"))
    assert re.search(r"PATH=/opt/stylegan/bin:", env), "stylegan and torchrun must be on PATH"


def test_no_secrets_in_args_or_environment(dockerfile: Dockerfile) -> None:
    names = list(dockerfile.global_args)
    for stage in dockerfile.stages:
        for keyword, args in stage.instructions:
            if keyword == "ENV":
                names += re.findall(r"(\w+)=", args)
            elif keyword == "ARG":
                names.append(args.split("=")[0])
    for name in names:
        assert not any(word in name.upper() for word in SECRET_WORDS), f"{name} looks secret"
    assert not re.search(r"--mount=type=secret|\.netrc|id_rsa", DOCKERFILE.read_text())


# --------------------------------------------------------------------------- .dockerignore
def test_dockerignore_keeps_environments_and_outputs_out_of_the_context() -> None:
    patterns = {line.strip() for line in DOCKERIGNORE.read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    for needed in (".git", ".venv", "out", ".pytest_cache", ".mypy_cache", ".ruff_cache",
                   "**/__pycache__"):
        assert needed in patterns, f".dockerignore lacks {needed}"
    for kept in ("pyproject.toml", "README.md", "operator", "trainer"):
        assert not any(fnmatch.fnmatch(kept, p) for p in patterns), f"{kept} is ignored"


def test_torch_is_required_only_by_the_trainer_extra(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        (metadata,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        requires = [line.removeprefix("Requires-Dist:").strip()
                    for line in archive.read(metadata).decode().splitlines()
                    if line.startswith("Requires-Dist:")]
    heavy = [r for r in requires if re.match(r"(torch|scikit-image|numpy)\b", r)]
    assert heavy, requires
    for requirement in heavy:
        assert 'extra == "trainer"' in requirement, f"{requirement} is not behind [trainer]"
    assert any(r.startswith("kopf") and "extra" not in r for r in requires), requires
