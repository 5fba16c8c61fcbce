"""The documentation: the MkDocs site under docs/ builds strictly (no broken link or anchor), and the
README stays a short front door that begins with the two commands for a fresh machine."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTALL_AND_UP = "    bash .ci/install && .venv/bin/scraiber up"
INSTALL_AND_TEST = "    bash .ci/install --test && .venv/bin/python -m pytest"


def test_site_builds_strictly(tmp_path):
    # relative -f path from the repository root: MkDocs refuses docs_dir == the config's folder given absolutely
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", "docs/mkdocs.yml", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "settings.html").is_file()


def test_readme_is_a_short_front_door_that_begins_with_the_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 220, f"README.md has {len(lines)} lines: move content into docs/"
    assert lines[0] == "# scrAiber"
    commands = [line for line in lines[:12] if line.startswith("    ")]
    assert commands == [INSTALL_AND_UP, INSTALL_AND_TEST], lines[:12]
