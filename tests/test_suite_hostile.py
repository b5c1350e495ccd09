"""Hostile suites: bad input (exit 2, one line naming the file), quickly, never a crash.

Alias bombs, deep nesting, forbidden characters, oversized files and values YAML cannot hold
are refused before anything is built from them, by `qa validate` and by `qa run` before any
model loads; every non-finite number is refused wherever it is written.
"""

import pytest

from qa.cli import main
from qa.suite_yaml import MAX_DEPTH, MAX_NODES, MAX_SUITE_BYTES

VALID = "name: r\ndata: {eval: d}\nchecks:\n  - kind: top1_accuracy\n    min: 0.5\n"


def _alias_bomb(levels: int) -> str:
    """The "billion laughs": each level a list of 9 aliases of the level before (9**levels)."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


HOSTILE = {
    "alias bomb, 9 levels": (
        _alias_bomb(9),
        f":6: invalid YAML: more than {MAX_NODES} values once aliases are expanded",
    ),
    "alias bomb, 10 levels": (
        _alias_bomb(10),
        f":6: invalid YAML: more than {MAX_NODES} values once aliases are expanded",
    ),
    "100,000 nested lists": (
        "name: " + "[" * 100_000 + "\n",
        f":1: invalid YAML: nested deeper than {MAX_DEPTH} levels",
    ),
    "deep through aliases": (
        "a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 40 + "*a" + "]" * 40 + "\n",
        f":2: invalid YAML: nested deeper than {MAX_DEPTH} levels",
    ),
    "a NUL byte": (
        "name: r\ndata: {eval: d}\x00\n",
        ":2: invalid YAML: unacceptable character #x0000: special characters are not allowed",
    ),
    "an escape character": (
        VALID + "description: \x1b[2J\n",
        ":6: invalid YAML: unacceptable character #x001b: special characters are not allowed",
    ),
    "a recursive alias": (
        "name: r\nmodel: {arch: r, arch_kwargs: &k {k: *k}}\n" + VALID[8:],
        ":2: invalid YAML: found a recursive alias (a node inside itself)",
    ),
    "an impossible date": (
        "name: 2024-13-45\n",
        ":1: invalid YAML: cannot read '2024-13-45' as !!timestamp (month must be in 1..12)",
    ),
    "a 5000-digit integer": (
        "name: r\ndefaults: {batch_size: " + "9" * 5000 + "}\n",
        ":2: invalid YAML: cannot read '99999",
    ),
    "an oversized file": (
        VALID + "# padding\n" * (MAX_SUITE_BYTES // 10),
        f": expected a suite of at most {MAX_SUITE_BYTES >> 10} KiB, found a larger file",
    ),
}


@pytest.mark.parametrize("case", HOSTILE)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_hostile_suite_is_bad_input_in_one_line(tmp_path, monkeypatch, capsys, case, command):
    monkeypatch.chdir(tmp_path)
    text, expected = HOSTILE[case]
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    argv = [command, str(path)]
    if command == "run":  # the suite is read before any checkpoint: this one does not exist
        argv += [str(tmp_path / "model.pt"), "--out", str(tmp_path / "out"), "--quiet"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"error: {path}{expected}"), captured.err
    assert captured.err.count("\n") == 1 and captured.out == ""


NON_FINITE = {
    "max: .inf": (
        "  - kind: ece\n    max: .inf\n",
        "suite.yaml:6: checks[0].max: expected a finite number, found .inf",
    ),
    "min: -.inf": (
        "  - kind: top1_accuracy\n    min: -.inf\n",
        "suite.yaml:6: checks[0].min: expected a finite number, found -.inf",
    ),
    "max: .NaN": (
        "  - kind: ece\n    max: .NaN\n",
        "suite.yaml:6: checks[0].max: expected a finite number, found .NaN",
    ),
    "max: 1e999 (overflows to inf)": (
        "  - kind: ece\n    max: 1e999\n",
        "suite.yaml:6: checks[0].max: expected a finite number, found 1e999",
    ),
    "an explicit !!float tag": (
        "  - kind: class_balance\n    max_ratio: !!float .inf\n",
        "suite.yaml:6: checks[0].max_ratio: expected a finite number, found .inf",
    ),
    "inside a list": (
        "  - kind: ece\n    max: 0.1\nmodel:\n  arch: r\n  arch_kwargs: {w: [1.0, .inf]}\n",
        "suite.yaml:9: model.arch_kwargs.w[1]: expected a finite number, found .inf",
    ),
    "defaults": (
        "  - kind: ece\n    max: 0.1\ndefaults: {confidence: .nan}\n",
        "suite.yaml:7: defaults.confidence: expected a finite number, found .nan",
    ),
}


@pytest.mark.parametrize("case", NON_FINITE)
def test_every_non_finite_number_is_refused(tmp_path, monkeypatch, capsys, case):
    monkeypatch.chdir(tmp_path)
    body, expected = NON_FINITE[case]
    (tmp_path / "suite.yaml").write_text("name: r\ndata:\n  eval: d\nchecks:\n" + body)
    (tmp_path / "d").mkdir()  # the number is the one problem
    assert main(["validate", "suite.yaml"]) == 2
    assert capsys.readouterr().err == f"error: {expected}\n"


def test_finite_numbers_and_text_that_looks_infinite_still_load(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    body = "  - kind: ece\n    max: 1e-1\n    name: '.inf'\n  - kind: class_balance\n    max_ratio: 1e3\n"
    (tmp_path / "suite.yaml").write_text("name: '.nan'\ndata:\n  eval: d\nchecks:\n" + body)
    (tmp_path / "d").mkdir()  # validate checks that the data is there
    assert main(["validate", "suite.yaml"]) == 0
    assert capsys.readouterr().out == "ok: 2 checks\n"
