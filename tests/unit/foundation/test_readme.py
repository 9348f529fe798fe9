"""The README is written for users: it opens with a three-command quick start, links only
inside the repository, and has the troubleshooting table and licences a user looks for."""

from __future__ import annotations

import re

from tests.support import ROOT

README = (ROOT / "README.md").read_text()
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, flags=re.M | re.S)
    assert match, f"README.md has no '## {title}' section"
    return match.group(1)


def test_the_first_section_is_a_quick_start_of_three_commands() -> None:
    first = re.findall(r"^## (.+)$", README, flags=re.M)[0]
    assert first == "Quick start"
    block = re.search(r"```console\n(.*?)```", section("Quick start"), flags=re.S)
    assert block
    commands = [line for line in block.group(1).splitlines() if line.strip()]
    assert [c.split()[0] for c in commands] == ["helm", "kubectl", "kubectl"]
    assert "install" in commands[0] and "apply -f manifests/examples/" in commands[1]
    example = commands[1].split("apply -f ")[1].split()[0]
    assert (ROOT / example).is_file(), example


def test_every_link_stays_inside_the_repository_and_resolves() -> None:
    # Loopback is this machine, not a link: what `stylegan serve` prints when it starts.
    outside = README.replace("http://127.0.0.1:", "")
    assert "http://" not in outside and "https://" not in outside
    for target in LINK.findall(README):
        path = target.split("#")[0]
        assert not path.startswith(".."), f"{target} points outside the repository"
        assert (ROOT / path).exists(), f"README links {target}, which does not exist"


def test_troubleshooting_names_the_usual_troubles_and_the_command_for_each() -> None:
    rows = [line for line in section("Troubleshooting").splitlines()
            if line.startswith("| ") and not line.startswith("| symptom")]
    text = "\n".join(rows)
    for trouble in ("Pending", "ImagePullBackOff", "OOMKilled", "NaN", "budget"):
        assert trouble in text, trouble
    assert all("`kubectl " in row or "`stylegan " in row for row in rows)


def test_the_licence_is_there_and_datasets_have_theirs() -> None:
    assert "Apache License" in (ROOT / "LICENSE").read_text()[:200]
    licences = section("Licences")
    assert "(LICENSE)" in licences
    for dataset in ("FFHQ", "LFW", "NVIDIA"):
        assert dataset in licences
