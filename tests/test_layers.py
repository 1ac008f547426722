"""The layer contracts of docs/architecture.md hold: `lint-imports` (import-linter) exits 0.

The contracts are in pyproject.toml (`[tool.importlinter]`): packages import only the packages
below them, and the pure packages import no web, database or terminal library.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = "from importlinter.cli import lint_imports_command; lint_imports_command()"  # the `lint-imports` script


def test_every_import_linter_contract_is_kept() -> None:
    # Execute
    done = subprocess.run([sys.executable, "-c", LINT_IMPORTS, "--no-cache", str(ROOT / "pyproject.toml")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    # Assert
    assert done.returncode == 0, done.stdout + done.stderr
