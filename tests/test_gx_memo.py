"""great-expectations' outcomes are remembered within a process by the frame's exact contents
and the expectation's configuration: `trainer finetune --gate` re-judges unchanged data every
epoch, and a remembered outcome must be the one GX would give."""

import pandas as pd

from qa import gx


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
    exp = gx.expectation("ExpectColumnValuesToBeBetween", {"column": "width", "min_value": 32})
    first = gx.run(frame, [exp])
    again = gx.run(frame.copy(), [exp])
    assert calls == ["ExpectColumnValuesToBeBetween"]
    assert again == first and first[0].failed_rows == [2]
    again[0].failed_rows.append(99)  # a caller's change never reaches the remembered outcome
    assert gx.run(frame, [exp])[0].failed_rows == [2]


def test_a_changed_value_or_expectation_is_validated_again(monkeypatch):
    calls = _validations(monkeypatch)
    frame = pd.DataFrame({"width": [32.0, 32.0, 31.0]})
    exp = gx.expectation("ExpectColumnValuesToBeBetween", {"column": "width", "min_value": 32})
    gx.run(frame, [exp])
    nudged = frame.copy()
    nudged.loc[2, "width"] = 31.000000000000004  # one ulp: JSON at 15 digits would not see it
    assert gx.run(nudged, [exp])[0].failed_rows == [2]
    other = gx.expectation("ExpectColumnValuesToBeBetween", {"column": "width", "min_value": 31})
    assert gx.run(frame, [other])[0].success
    assert len(calls) == 3
