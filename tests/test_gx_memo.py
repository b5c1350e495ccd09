"""great-expectations' outcomes are remembered by the frame's exact contents, the expectation's
name and keyword arguments and GX's version: within a process (`trainer finetune --gate`
re-judges unchanged data every epoch) and in a run's cache folder (a warm run imports no GX).
A remembered outcome must be the one GX would give, and a damaged entry is never trusted."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from qa import gx

BETWEEN = ("ExpectColumnValuesToBeBetween", {"column": "width", "min_value": 32})


def _validations(monkeypatch) -> list:
    calls = []
    real = gx._validate

    def counted(batch, exp):
        calls.append(type(exp).__name__)
        return real(batch, exp)

    monkeypatch.setattr(gx, "_validate", counted)
    monkeypatch.setattr(gx, "_MEMO", type(gx._MEMO)())
    return calls


def test_the_same_frame_and_expectation_are_validated_once(monkeypatch):
    calls = _validations(monkeypatch)
    frame = pd.DataFrame({"width": [32, 32, 31], "label": ["a", "b", "a"]})
    first = gx.run(frame, [BETWEEN])
    again = gx.run(frame.copy(), [BETWEEN])
    assert calls == ["ExpectColumnValuesToBeBetween"]
    assert again == first and first[0].failed_rows == [2]
    again[0].failed_rows.append(99)  # a caller's change never reaches the remembered outcome
    assert gx.run(frame, [BETWEEN])[0].failed_rows == [2]


def test_a_changed_value_or_expectation_is_validated_again(monkeypatch):
    calls = _validations(monkeypatch)
    frame = pd.DataFrame({"width": [32.0, 32.0, 31.0]})
    gx.run(frame, [BETWEEN])
    nudged = frame.copy()
    nudged.loc[2, "width"] = 31.000000000000004  # one ulp: JSON at 15 digits would not see it
    assert gx.run(nudged, [BETWEEN])[0].failed_rows == [2]
    other = ("ExpectColumnValuesToBeBetween", {"column": "width", "min_value": 31})
    assert gx.run(frame, [other])[0].success
    assert len(calls) == 3


def test_outcomes_kept_in_a_folder_serve_another_process_without_importing_gx(tmp_path):
    frame = pd.DataFrame({"width": [32, 32, 31], "label": ["a", "b", "a"]})
    with gx.outcomes_kept_in(tmp_path):
        first = gx.run(
            frame,
            [BETWEEN, ("ExpectColumnValuesToBeInSet", {"column": "label", "value_set": ["a"]})],
        )
    assert len(list(tmp_path.rglob("*" + gx.SUFFIX))) == 2
    code = (
        "import sys, json, dataclasses, pandas as pd\n"
        "from qa import gx\n"
        "frame = pd.DataFrame({'width': [32, 32, 31], 'label': ['a', 'b', 'a']})\n"
        f"with gx.outcomes_kept_in({str(tmp_path)!r}):\n"
        f"    got = gx.run(frame, [{BETWEEN!r}, ('ExpectColumnValuesToBeInSet', "
        "{'column': 'label', 'value_set': ['a']})])\n"
        "assert 'great_expectations' not in sys.modules\n"
        "print(json.dumps([dataclasses.asdict(o) for o in got]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert [gx.Outcome(**o) for o in json.loads(out.stdout)] == first
    assert first[1].failed_rows == [1]


def _checksummed(outcome: dict) -> dict:
    return {"checksum": gx._checksum(outcome), "outcome": outcome}


@pytest.mark.parametrize(
    "damage",
    [
        lambda e: {**e, "outcome": {**e["outcome"], "failed_rows": []}},  # checksum disagrees
        lambda e: _checksummed({**e["outcome"], "failed_rows": "2"}),  # agrees, but not rows
        lambda e: _checksummed({**e["outcome"], "extra": 1}),  # a field Outcome has not
        lambda e: {"outcome": e["outcome"]},  # no checksum
    ],
)
def test_a_damaged_entry_is_validated_again(monkeypatch, tmp_path, damage):
    calls = _validations(monkeypatch)
    frame = pd.DataFrame({"width": [32, 32, 31]})
    with gx.outcomes_kept_in(tmp_path):
        gx.run(frame, [BETWEEN])
        (entry,) = tmp_path.rglob("*" + gx.SUFFIX)
        entry.write_text(json.dumps(damage(json.loads(entry.read_text()))))
        monkeypatch.setattr(gx, "_MEMO", type(gx._MEMO)())
        assert gx.run(frame, [BETWEEN])[0].failed_rows == [2]
    assert len(calls) == 2
