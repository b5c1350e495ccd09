"""examples/demo_expect.py: `make demo` succeeds only when good passes and flawed fails as named."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).parents[1] / "examples" / "demo_expect.py"


def _report(folder: Path, verdict: str, exit_code: int, failed: tuple[str, ...] = ()) -> Path:
    passed = [name for name in ("top-1 accuracy", "3 read as 8") if name not in failed]
    checks = [{"name": name, "status": "pass", "message": "ok"} for name in passed]
    checks += [{"name": name, "status": "fail", "message": f"{name} missed"} for name in failed]
    folder.mkdir(parents=True)
    result = {
        "verdict": verdict,
        "exit_code": exit_code,
        "checkpoint": {"path": f"{folder.name}.pt"},
        "summary": {"pass": len(passed), "fail": len(failed)},
        "error": None,
        "checks": checks,
    }
    (folder / "result.json").write_text(json.dumps(result))
    return folder


def _expect(good: Path, flawed: Path, *fails: str) -> subprocess.CompletedProcess:
    args = [sys.executable, str(SCRIPT), str(good), str(flawed)]
    args += [arg for name in fails for arg in ("--fails", name)]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def test_the_story_told(tmp_path):
    good = _report(tmp_path / "good", "pass", 0)
    flawed = _report(tmp_path / "flawed", "fail", 1, ("3 read as 8", "top-2 accuracy"))
    done = _expect(good, flawed, "3 read as 8")
    assert done.returncode == 0, done.stderr
    assert "good  : good.pt: PASS (exit 0; 2 pass)" in done.stdout
    assert "  failed: 3 read as 8: 3 read as 8 missed" in done.stdout
    assert "  failed: top-2 accuracy: top-2 accuracy missed" in done.stdout


@pytest.mark.parametrize(
    ("good", "flawed", "unexpected"),
    [
        (("fail", 1, ("x",)), ("fail", 1, ("3 read as 8",)), "good candidate was expected to pass"),
        (("pass", 0), ("pass", 0), "flawed candidate was expected to fail its gates"),
        (("pass", 0), ("fail", 1, ("top-2 accuracy",)), "expected to fail '3 read as 8'"),
        (("pass", 0), ("error", 2), "flawed candidate was expected to fail its gates"),
    ],
)
def test_any_other_outcome_fails_the_demo(tmp_path, good, flawed, unexpected):
    done = _expect(_report(tmp_path / "g", *good), _report(tmp_path / "f", *flawed), "3 read as 8")
    assert done.returncode == 1 and unexpected in done.stderr


def test_a_missing_report_or_an_unknown_check_fails_the_demo(tmp_path):
    good = _report(tmp_path / "good", "pass", 0)
    done = _expect(good, tmp_path / "absent", "3 read as 8")
    assert done.returncode == 1 and "no report in" in done.stdout
    flawed = _report(tmp_path / "flawed", "fail", 1, ("3 read as 8",))
    done = _expect(good, flawed, "3 read as 88")
    assert done.returncode == 1 and "the suite has no check named '3 read as 88'" in done.stderr
