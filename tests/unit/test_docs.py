"""Docs stay true: the configuration reference matches the models; README links resolve."""

from __future__ import annotations

import re
from pathlib import Path

from mqtop.docgen import main as docgen_main

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_reference_is_up_to_date(capsys):
    assert docgen_main(["--check"]) == 0, capsys.readouterr().err


def test_readme_and_docs_links_resolve():
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" in target:
                continue
            assert (doc.parent / target).exists(), f"{doc.name}: broken link {target}"


def test_readme_names_the_commands_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "-m pytest -q -ra -n 3 --dist loadfile"
    assert f"MQTOP_REQUIRE_BROKERS=1 python {command}\n" in readme
    assert f"python3 {command}\n" in ci and "MQTOP_REQUIRE_BROKERS=1" in ci
    assert "mqtop demo" in readme and ".ci/run" in readme


# `pip install mqtop`, `pip install 'mqtop[demo]'`, `pip3 install -U mqtop`...: a name on an
# index that belongs to an unrelated project
INSTALL_BY_NAME = re.compile(r"pip3?\s+install\s+(?:-\S+\s+)*['\"]?mqtop(?:\[|['\"\s]|$)")


def test_nothing_tells_users_to_install_mqtop_by_name_from_an_index():
    import subprocess
    import sys

    sources = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    sources += sorted((ROOT / "mqtop").rglob("*.py"))
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0)!r}"
        for path in sources
        for match in INSTALL_BY_NAME.finditer(path.read_text())
    ]
    commands = ["", "demo", "metrics", "queues", "check", "serve", "dlq", "config", "init"]
    for command in commands:
        out = subprocess.run(
            [sys.executable, "-m", "mqtop", *command.split(), "--help"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
        found += [
            f"mqtop {command} --help: {m.group(0)!r}" for m in INSTALL_BY_NAME.finditer(out.stdout)
        ]
    assert found == []
