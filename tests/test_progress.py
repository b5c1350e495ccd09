"""Progress on stderr: plain, throttled lines in a log; rich bars on a terminal; none when quiet."""

import io
import re

import pytest
from helpers import write_suite
from rich.console import Console

from qa import progress
from qa.cli import main

SUITE = """\
- {kind: decodable}
- {kind: top1_accuracy, min: 0.0}
- {kind: corruption_accuracy, perturbations: [gaussian_noise], severities: [2], min: 0.0}
- {kind: adversarial_accuracy, attacks: [fgsm], min: 0.0}
"""
LINE = re.compile(r"^pass (\d+)/(\d+) (.+): ([\d,]+)/([\d,]+) images, ([\d,]+) s$")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_lines_at_start_and_finish_and_at_most_every_interval_between(monkeypatch):
    monkeypatch.setattr(progress, "INTERVAL_S", 10.0)
    out, clock = io.StringIO(), Clock()
    lines = progress.Lines([2000, 500], stream=out, clock=clock)
    lines.start("candidate + baseline on eval: clean, 60 corrupted", 2000)
    for _ in range(20):  # 100 images every 3 s: a line at 12, 24, 36, 48 and 60 s, no more
        clock.now += 3
        lines.advance(100)
    lines.finish()
    assert out.getvalue().splitlines() == [
        "pass 1/2 candidate + baseline on eval: clean, 60 corrupted: 0/2,000 images, 0 s",
        "pass 1/2 candidate + baseline on eval: clean, 60 corrupted: 400/2,000 images, 12 s",
        "pass 1/2 candidate + baseline on eval: clean, 60 corrupted: 800/2,000 images, 24 s",
        "pass 1/2 candidate + baseline on eval: clean, 60 corrupted: 1,200/2,000 images, 36 s",
        "pass 1/2 candidate + baseline on eval: clean, 60 corrupted: 1,600/2,000 images, 48 s",
        "pass 1/2 candidate + baseline on eval: clean, 60 corrupted: 2,000/2,000 images, 60 s",
        "pass 1/2 candidate + baseline on eval: clean, 60 corrupted: 2,000/2,000 images, 60 s",
    ]


def test_the_interval_is_the_module_constant(monkeypatch):
    monkeypatch.setattr(progress, "INTERVAL_S", 1.0)
    out, clock = io.StringIO(), Clock()
    lines = progress.Lines([30], stream=out, clock=clock)
    lines.start("candidate on eval: clean", 30)
    for _ in range(3):
        clock.now += 1.5
        lines.advance(10)
    assert [line.split(": ")[-1] for line in out.getvalue().splitlines()] == [
        "0/30 images, 0 s",
        "10/30 images, 2 s",
        "20/30 images, 3 s",
        "30/30 images, 4 s",
    ]


def test_skipped_passes_leave_the_count_and_a_pass_may_read_other_than_planned():
    out = io.StringIO()
    lines = progress.Lines([20, 20, 5], stream=out, clock=Clock())
    lines.skip()  # found in the cache
    for name in ("candidate on eval: clean", "candidate on eval (fgsm)"):
        lines.start(name, 18)  # two undecodable files left out
        lines.advance(18)
        lines.finish()
    found = [LINE.match(line).group(1, 2, 4, 5) for line in out.getvalue().splitlines()]
    assert found == [
        ("1", "2", "0", "18"),
        ("1", "2", "18", "18"),
        ("2", "2", "0", "18"),
        ("2", "2", "18", "18"),
    ]
    assert lines.plan.images == 36


def test_bars_show_the_run_above_the_pass_and_names_literally():
    console = Console(file=io.StringIO(), force_terminal=True, width=150, record=True)
    bars = progress.Bars([20, 40], console)
    with bars.progress:
        bars.skip()
        bars.start("candidate on eval: [bold]noise[/bold] s2", 30)
        bars.advance(12)
        bars.progress.refresh()
        overall, current = bars.progress.tasks
        assert (overall.total, overall.completed) == (30, 12)
        assert (current.total, current.completed) == (30, 12)
        table = bars.progress.make_tasks_table(bars.progress.tasks)
        console.print(table)
        bars.finish()
        assert len(bars.progress.tasks) == 1
    text = console.export_text()
    assert "pass 1/1, all images" in text
    assert "candidate on eval: [bold]noise[/bold] s2" in text  # a plugin's name, never markup
    assert text.index("pass 1/1") < text.index("candidate on eval")


@pytest.fixture(scope="module")
def suite(tmp_path_factory, data):
    return write_suite(tmp_path_factory.mktemp("suite") / "s.yaml", data, SUITE)


def test_a_run_in_a_log_prints_a_line_per_pass(tmp_path, suite, ckpt, capsys):
    code = main(["run", str(suite), str(ckpt), "--no-cache", "--out", str(tmp_path / "r")])
    assert code == 0
    found = [LINE.match(line) for line in capsys.readouterr().err.splitlines()]
    passes = [m.group(1, 2, 3, 4, 5) for m in found if m]
    # a profile, one decode pass (clean and the corruption) and one attack, 20 images each
    assert passes[0] == ("1", "3", "profile of eval", "0", "20")
    assert ("2", "3", "candidate on eval: clean, 1 corrupted", "20", "20") in passes
    assert passes[-1][:2] == ("3", "3") and passes[-1][3:] == ("20", "20")
    assert passes[-1][2].startswith("candidate on eval (fgsm")


def test_quiet_prints_no_progress(tmp_path, suite, ckpt, capsys):
    code = main(["run", str(suite), str(ckpt), "--no-cache", "--quiet", "--out", str(tmp_path)])
    assert code == 0
    assert "pass " not in capsys.readouterr().err
