"""Sharded runs (qa.distributed): the group's collectives, dying and hung ranks, and `qa run`
under torchrun, in real processes on the CPU (gloo).

Each test starts two processes, either through torchrun (`python -m torch.distributed.run
--standalone`, which picks a free port) or, to see what a rank does with no agent to stop it
(the multi-node case), as two plain processes given torchrun's environment.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import save_tiny, write_data, write_suite

from qa.cli import main
from qa.distributed import SINGLE, timeout_seconds
from qa.errors import InputError

# Group primitives on every rank; each rank writes what it saw to OUT/rank<K>.json.
PRIMITIVES = """
import json, sys
import numpy as np
from qa.distributed import from_environment
from qa.errors import InputError

def raised(group, error):
    try:
        group.check(error)
    except Exception as exc:
        return [type(exc).__name__, str(exc), isinstance(exc, InputError)]

with from_environment("cpu") as g:
    seen = {"world": g.world, "shards": {n: list(g.shard(n)) for n in (0, 1, 5, 7)}}
    rows = np.arange(12, dtype=np.float32).reshape(3, 4) if g.rank == 0 else np.zeros((0, 4))
    seen["none_on_1"] = g.gather_rows(rows)
    rows = np.full((g.rank + 2, 3), g.rank + 0.5, dtype=np.float32)
    seen["uneven"] = g.gather_rows(rows)
    seen["empty"] = g.gather_rows(np.zeros((0, 2), dtype=np.float32))
    seen = {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in seen.items()}
    seen["objects"] = g.all_gather_objects([f"{g.rank:064x}"] * 50_000)
    seen["broadcast"] = g.broadcast({"from": g.rank})
    seen["no_error"] = raised(g, None)
    seen["input_error"] = raised(g, InputError("x.jpg: cannot decode") if g.rank else None)
    seen["bug"] = raised(g, ValueError("boom\\nmore") if g.rank else None)
    json.dump(seen, open(f"{sys.argv[1]}/rank{g.rank}.json", "w"))
"""

# Rank 1 dies (or hangs) before a collective that rank 0 enters.
LOST_RANK = """
import os, sys, time
from qa.cli import _fail
from qa.distributed import from_environment
from qa.errors import PeerError

with from_environment("cpu") as g:
    g.broadcast("ready")
    if g.rank == 1:
        if sys.argv[1] == "die":
            os._exit(9)
        time.sleep(120)
    try:
        g.all_gather_objects(g.rank)
    except PeerError as exc:
        sys.exit(_fail(exc, g.rank)[0])
sys.exit("rank 0 was not told")
"""

# `qa run` on one rank: its stdout, stderr and exit code go to OUT/rank<K>.{stdout,stderr,code}.
# With --rank1-checkpoint PATH, rank 1 is given another checkpoint than rank 0; with
# $DIE_IN_ENGINE, rank 1 dies where the evidence is built.
QA_RUN = """
import contextlib, os, sys
import qa.application
from qa.cli import main

out, argv = sys.argv[1], sys.argv[2:]
rank = os.environ.get("RANK", "0")
if rank == "1" and os.environ.get("DIE_IN_ENGINE"):
    qa.application.build_evidence = lambda request: os._exit(9)
if "--rank1-checkpoint" in argv:
    at = argv.index("--rank1-checkpoint")
    other = argv[at + 1]
    del argv[at : at + 2]
    if rank == "1":
        argv[2] = other
with open(f"{out}/rank{rank}.stdout", "w") as o, open(f"{out}/rank{rank}.stderr", "w") as e:
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        code = main(argv)
open(f"{out}/rank{rank}.code", "w").write(str(code))
sys.exit(code)
"""

SUITE = """\
- {kind: top1_accuracy, min: 0.0}
- {kind: top1_accuracy, name: strict top-1, min: 0.9}
- {kind: topk_accuracy, k: 3, min: 0.0}
- {kind: per_class_recall, min: 0.0}
- {kind: ece, max: 1.0}
- {kind: nll, max: 100.0}
- {kind: corruption_accuracy, perturbations: [gaussian_noise], severities: [1, 2], min: 0.0}
"""


def _script(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _torchrun(script: Path, *args, env: dict | None = None) -> subprocess.CompletedProcess:
    """Two processes of `script` under torchrun on this machine; the agent's exit code."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", "2", str(script), *map(str, args)]
    return subprocess.run(
        command, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=300
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _plain_ranks(script: Path, *args, timeout: str, **extra: str) -> list[subprocess.Popen]:
    """Two processes of `script` given torchrun's environment (and `extra` variables), with
    no agent watching them."""
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    env.update(WORLD_SIZE="2", QA_DIST_TIMEOUT=timeout, **extra)
    return [
        subprocess.Popen(
            [sys.executable, str(script), *map(str, args)],
            env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in (0, 1)
    ]


def test_one_process_is_single_whose_collectives_are_identities():
    rows = np.ones((3, 2), dtype=np.float32)
    assert SINGLE.shard(5) == range(5) and SINGLE.shard(0) == range(0)
    assert SINGLE.gather_rows(rows) is not None and np.array_equal(SINGLE.gather_rows(rows), rows)
    assert SINGLE.all_gather_objects({"a": 1}) == [{"a": 1}]
    assert SINGLE.broadcast("x") == "x"
    assert SINGLE.check(None) is None
    error = InputError("x.jpg: cannot decode")
    with pytest.raises(InputError) as raised:
        SINGLE.check(error)
    assert raised.value is error  # the error itself: one process reads as it always has
    with pytest.raises(ZeroDivisionError):
        SINGLE.together(lambda: 1 / 0)
    assert SINGLE.together(lambda a, b: a + b, 1, b=2) == 3


@pytest.mark.parametrize("text", ["0", "-5", "soon", "inf", "nan"])
def test_the_timeout_must_be_a_positive_number_of_seconds(monkeypatch, text):
    monkeypatch.setenv("QA_DIST_TIMEOUT", text)
    with pytest.raises(InputError, match=f"QA_DIST_TIMEOUT: expected a positive number .*{text}"):
        timeout_seconds()
    monkeypatch.setenv("QA_DIST_TIMEOUT", "2.5")
    assert timeout_seconds() == 2.5


def test_the_group_primitives_with_two_processes(tmp_path):
    done = _torchrun(_script(tmp_path, "primitives.py", PRIMITIVES), tmp_path)
    assert done.returncode == 0, done.stderr
    zero, one = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert zero["world"] == one["world"] == 2
    for n in (0, 1, 5, 7):
        first, second = zero["shards"][str(n)], one["shards"][str(n)]
        assert first + second == list(range(n)) and abs(len(first) - len(second)) <= 1
    assert zero["none_on_1"] == np.arange(12).reshape(3, 4).tolist()
    assert zero["uneven"] == [[0.5] * 3] * 2 + [[1.5] * 3] * 3
    assert zero["empty"] == []
    assert one["none_on_1"] is one["uneven"] is one["empty"] is None
    expected = [[f"{r:064x}"] * 50_000 for r in (0, 1)]
    assert zero["objects"] == one["objects"] == expected
    assert zero["broadcast"] == one["broadcast"] == {"from": 0}
    assert zero["no_error"] is one["no_error"] is None
    bad_input = ["RankInputError", "rank 1: x.jpg: cannot decode", True]
    assert zero["input_error"] == one["input_error"] == bad_input
    assert zero["bug"] == one["bug"] == ["RankError", "rank 1: ValueError: boom", False]


def test_a_rank_that_dies_under_torchrun_stops_every_rank(tmp_path):
    script = _script(tmp_path, "lost.py", LOST_RANK)
    done = _torchrun(script, "die", env={"QA_DIST_TIMEOUT": "20"})
    # torchrun's agent stops the surviving rank (SIGTERM) and names the one that died
    assert done.returncode != 0
    assert "exitcode  : 9" in done.stderr and "rank      : 1" in done.stderr
    assert "rank 0 was not told" not in done.stderr


def test_a_rank_that_dies_with_no_agent_fails_the_other_with_a_message(tmp_path):
    ranks = _plain_ranks(_script(tmp_path, "lost.py", LOST_RANK), "die", timeout="20")
    (out0, err0), (_, _) = (p.communicate(timeout=120) for p in ranks)
    assert [p.returncode for p in ranks] == [3, 9]
    assert err0.startswith("error: all_gather_objects with the other ranks failed: another ")
    assert err0.count("\n") == 1 and out0 == ""


def test_a_rank_that_hangs_fails_the_other_after_the_timeout(tmp_path):
    ranks = _plain_ranks(_script(tmp_path, "lost.py", LOST_RANK), "hang", timeout="3")
    try:
        _, err0 = ranks[0].communicate(timeout=120)
    finally:
        ranks[1].kill()
        ranks[1].communicate()
    assert ranks[0].returncode == 3
    assert "did not answer within QA_DIST_TIMEOUT=3 s" in err0 and err0.count("\n") == 1


@pytest.fixture(scope="module")
def run_inputs(tmp_path_factory):
    """29 real digit images (shards of 15 and 14) and a small real checkpoint."""
    root = tmp_path_factory.mktemp("sharded")
    data = write_data(root / "data", per_class=3)
    next((data / "7").iterdir()).unlink()
    return data, save_tiny(root / "cand.pt", seed=3)


def _qa_run_under_torchrun(tmp_path: Path, suite: Path, ckpt: Path, *extra) -> tuple[int, int]:
    """`qa run` as two ranks under torchrun (CPU, gloo): each rank's exit code."""
    logs = tmp_path / "logs"
    logs.mkdir()
    argv = ["run", suite, ckpt, "--out", tmp_path / "sharded", "--no-cache", "--quiet", *extra]
    done = _torchrun(_script(tmp_path, "qa_run.py", QA_RUN), logs, *argv)
    codes = tuple(int((logs / f"rank{r}.code").read_text()) for r in (0, 1))
    assert done.returncode == (0 if codes == (0, 0) else 1), done.stderr
    return codes


def _rank_output(tmp_path: Path, rank: int, stream: str) -> str:
    return (tmp_path / "logs" / f"rank{rank}.{stream}").read_text()


def _assert_close(ours, theirs, where="metrics"):
    """Equal, floats within 1e-5 relative, through nested dicts and lists."""
    if isinstance(ours, float) and isinstance(theirs, float):
        assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-12, nan_ok=True), where
    elif isinstance(ours, dict) and isinstance(theirs, dict):
        assert ours.keys() == theirs.keys(), where
        for key in ours:
            _assert_close(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(ours, list) and isinstance(theirs, list):
        assert len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            _assert_close(a, b, f"{where}[{i}]")
    else:
        assert ours == theirs, where


def test_torchrun_matches_one_process(tmp_path, run_inputs):
    data, ckpt = run_inputs
    suite = write_suite(tmp_path / "suite.yaml", data, SUITE)
    alone = main(["run", str(suite), str(ckpt), "--out", str(tmp_path / "one"), "--no-cache"])
    assert alone == 1  # "strict top-1" fails a random-weight model
    assert _qa_run_under_torchrun(tmp_path, suite, ckpt) == (alone, alone)
    one = json.loads((tmp_path / "one" / "result.json").read_text())
    sharded = json.loads((tmp_path / "sharded" / "result.json").read_text())
    assert (one["environment"]["world_size"], sharded["environment"]["world_size"]) == (1, 2)
    assert sharded["verdict"] == one["verdict"] and sharded["overview"] == one["overview"]
    assert [c["status"] for c in sharded["checks"]] == [c["status"] for c in one["checks"]]
    assert len(one["checks"]) == 7 and one["checks"][-1]["kind"] == "corruption_accuracy"
    for ours, theirs in zip(sharded["checks"], one["checks"], strict=True):
        _assert_close(ours["metrics"], theirs["metrics"], ours["name"])
    assert _rank_output(tmp_path, 0, "stdout").startswith("FAIL")
    assert _rank_output(tmp_path, 1, "stdout") == _rank_output(tmp_path, 1, "stderr") == ""


def test_bad_input_on_one_rank_is_exit_2_on_every_rank_in_one_line(tmp_path, run_inputs):
    data, ckpt = run_inputs
    suite = write_suite(tmp_path / "suite.yaml", data, SUITE)
    missing = tmp_path / "only-on-rank-0.pt"
    codes = _qa_run_under_torchrun(tmp_path, suite, ckpt, "--rank1-checkpoint", missing)
    assert codes == (2, 2)
    err = _rank_output(tmp_path, 0, "stderr")
    assert err.startswith(f"error: rank 1: {missing}: ") and err.count("\n") == 1
    assert _rank_output(tmp_path, 1, "stdout") == _rank_output(tmp_path, 1, "stderr") == ""
    report = json.loads((tmp_path / "sharded" / "result.json").read_text())
    assert report["exit_code"] == 2 and report["error"]["message"] == err[len("error: ") : -1]


def test_a_rank_that_dies_during_qa_run_makes_rank_0_fail_with_a_message(tmp_path, run_inputs):
    data, ckpt = run_inputs
    suite = write_suite(tmp_path / "suite.yaml", data, SUITE)
    logs = tmp_path / "logs"
    logs.mkdir()
    argv = ["run", suite, ckpt, "--out", tmp_path / "out", "--no-cache", "--quiet"]
    script = _script(tmp_path, "qa_run.py", QA_RUN)
    ranks = _plain_ranks(script, logs, *argv, timeout="20", DIE_IN_ENGINE="1")
    for p in ranks:
        p.communicate(timeout=120)
    assert [p.returncode for p in ranks] == [3, 9]
    err = _rank_output(tmp_path, 0, "stderr")
    assert "with the other ranks failed: another rank died" in err and err.count("\n") == 1
