"""Run the tinycomp command line in a fresh process, as a user does: what
reaches the terminal is what the tests check."""
from __future__ import annotations

import subprocess
import sys


def tinycomp(*args, cwd=None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinycomp.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Non-zero exit, exactly one line on stderr holding every fragment, no traceback."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]
