"""The CI examples in examples/ci/ work as written: every file they read exists, every `qa` and
`trainer` command parses with the real parsers, and what they fetch, cache and publish are the
paths the suite and `qa run --out` use. A renamed file or flag fails here, not in a user's CI."""

import http.server
import importlib.util
import json
import os
import re
import shlex
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

import trainer.cli
from qa.cli import build_parser
from qa.report import REPORT_FILES
from qa.suite import load_suite

ROOT = Path(__file__).resolve().parents[1]
CI = ROOT / "examples" / "ci"
GITHUB = yaml.safe_load((CI / "github-actions.yml").read_text())
GITLAB = yaml.safe_load((CI / "gitlab-ci.yml").read_text())
JOB = GITHUB["jobs"]["gate"]
STEPS = JOB["steps"]
GITLAB_JOB = GITLAB["model-gate"]
PRODUCED = ("reports/", "checkpoints/", "data/")  # written by the job itself
CPU_TORCH = "--extra-index-url https://download.pytorch.org/whl/cpu"


def _expand(word: str, env: dict) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: str(env.get(m[1], m[0])), word)


def _commands(script: str, env: dict) -> list[list[str]]:
    """The simple commands of a shell script, split as the shell would, variables expanded
    (`if A; then B; fi` gives A and B)."""
    commands = []
    for line in script.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        command: list[str] = []
        for word in [*lexer, ";"]:
            if word in (";", "&&", "||", "|"):
                commands.append(command)
                command = []
            elif command or word not in ("if", "then", "else", "fi", "!"):
                command.append(_expand(word, env))
    return [c for c in commands if c]


def _github_commands() -> list[tuple[dict, list[str]]]:
    env = {**GITHUB["env"], **JOB.get("env", {})}
    return [
        (step, argv)
        for step in STEPS
        if "run" in step
        for argv in _commands(step["run"], {**env, **step.get("env", {})})
    ]


def _gitlab_commands(key: str = "script") -> list[list[str]]:
    env = GITLAB_JOB["variables"]
    return [argv for line in GITLAB_JOB[key] for argv in _commands(line, env)]


COMMANDS = {
    "github": [argv for _, argv in _github_commands()],
    "gitlab": _gitlab_commands() + _gitlab_commands("after_script"),
}


def _qa_run(example: str):
    (argv,) = [a for a in COMMANDS[example] if a[:2] == ["qa", "run"]]
    return build_parser().parse_args(argv[1:])


def _option(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def _scalars(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _scalars(value)
    elif isinstance(node, list):
        for item in node:
            yield from _scalars(item)
    elif node is not None:
        yield str(node)


@pytest.mark.parametrize("example", [GITHUB, GITLAB], ids=["github", "gitlab"])
def test_every_file_of_the_repository_the_example_names_exists(example):
    words = {w for s in _scalars(example) for w in re.split(r"[\s'\",()\[\]]+", s)}
    files = {
        w
        for w in words
        if re.fullmatch(r"[\w.-]+(/[\w.-]+)*\.(ya?ml|toml|py|txt|cfg|md|sh)", w)
        and not w.startswith(PRODUCED)
    }
    assert {"pyproject.toml", "suites/release.yaml"} <= files
    assert [f for f in files if not (ROOT / f).is_file()] == []


@pytest.mark.parametrize("example", COMMANDS)
def test_every_qa_and_trainer_command_parses_with_the_real_parsers(example):
    ran = [argv[0] for argv in COMMANDS[example] if argv[0] in ("qa", "trainer")]
    assert ran.count("qa") == 1 and ran.count("trainer") == 1
    for argv in COMMANDS[example]:
        if argv[0] == "qa":
            build_parser().parse_args(argv[1:])  # argparse exits on a bad command line
        elif argv[0] == "trainer":
            trainer.cli.build_parser().parse_args(argv[1:])  # raises InputError


@pytest.mark.parametrize("example", COMMANDS)
def test_the_gate_reads_what_the_fetch_step_writes(example):
    run = _qa_run(example)
    suite = load_suite(run.suite)
    written = {_option(argv, "--output") for argv in COMMANDS[example]}
    assert {run.checkpoint, run.baseline} <= written  # gh release download / curl --output
    # the deployed model the suite names (suite paths resolve against the suite's folder)
    assert os.path.normpath(suite.baseline) == os.path.normpath(run.baseline)
    (data_out,) = [_option(a, "--out") for a in COMMANDS[example] if a[:2] == ["trainer", "data"]]
    for split in suite.data.splits().values():
        assert Path(os.path.normpath(split.path)).parent == Path(data_out)


@pytest.mark.parametrize("example", COMMANDS)
def test_qa_is_installed_from_the_checkout_with_cpu_torch(example):
    installs = [" ".join(a) for a in COMMANDS[example] if a[:2] == ["pip", "install"]]
    assert installs == [f"pip install . {CPU_TORCH}"]


def test_github_job_fails_with_qas_exit_code_and_reports_run_anyway():
    gate = [s for s, argv in _github_commands() if argv[:2] == ["qa", "run"]]
    assert len(gate) == 1 and "continue-on-error" not in gate[0]
    assert len(_commands(gate[0]["run"], {})) == 1  # the step's exit code is qa's
    after = STEPS[STEPS.index(gate[0]) + 1 :]
    assert after and all("always()" in step["if"] for step in after)


def _step(uses: str) -> dict:
    (step,) = [s for s in STEPS if s.get("uses", "").startswith(uses)]
    return step


def test_github_publishes_junit_keeps_the_reports_and_comments_the_summary():
    out = Path(_qa_run("github").out)
    assert Path(_step("mikepenz/action-junit-report@")["with"]["report_paths"]) == out / "junit.xml"
    kept = {Path(p) for p in _step("actions/upload-artifact@")["with"]["path"].split()}
    assert kept == {out / name for name in REPORT_FILES.values()}
    comment = _step("marocchino/sticky-pull-request-comment@")["with"]
    assert Path(comment["path"]) == out / REPORT_FILES["md"] and comment["header"]
    assert GITHUB["permissions"]["checks"] == "write"
    assert GITHUB["permissions"]["pull-requests"] == "write"


def test_github_caches_pip_and_the_views_keyed_on_the_suite_and_checkpoints():
    run = _qa_run("github")
    python = _step("actions/setup-python@")["with"]
    assert python["cache"] == "pip" and (ROOT / python["cache-dependency-path"]).is_file()
    cache = _step("actions/cache@")
    assert cache["with"]["path"] == run.cache_dir
    (hashed,) = re.findall(r"hashFiles\(([^)]*)\)", cache["with"]["key"])
    assert set(re.findall(r"'([^']+)'", hashed)) == {run.suite, run.checkpoint, run.baseline}
    fetch = [s for s, argv in _github_commands() if "--output" in argv]
    gate = [s for s, argv in _github_commands() if argv[:2] == ["qa", "run"]]
    # hashFiles reads the checkpoints when the cache step runs: after the fetch, before qa
    assert STEPS.index(fetch[-1]) < STEPS.index(cache) < STEPS.index(gate[0])


def test_gitlab_job_fails_with_qas_exit_code_and_keeps_the_reports_always():
    script = GITLAB_JOB["script"]
    assert script[-1].startswith("qa run ") and "allow_failure" not in GITLAB_JOB
    assert not any("||" in line for line in script)
    out = Path(_qa_run("gitlab").out)
    artifacts = GITLAB_JOB["artifacts"]
    assert artifacts["when"] == "always"
    assert Path(artifacts["reports"]["junit"]) == out / "junit.xml"
    assert {Path(p) for p in artifacts["paths"]} == {out / n for n in REPORT_FILES.values()}


def test_gitlab_caches_pip_and_the_views_keyed_on_the_suite_and_checkpoints():
    run = _qa_run("gitlab")
    caches = {tuple(c["paths"]): c["key"] for c in GITLAB_JOB["cache"]}
    pip_dir = GITLAB_JOB["variables"]["PIP_CACHE_DIR"].removeprefix("$CI_PROJECT_DIR/")
    assert caches[(pip_dir,)]["files"] == ["pyproject.toml"]
    views = caches[(run.cache_dir,)]
    assert views["files"] == [run.suite]
    fetched = " ".join(GITLAB_JOB["script"])
    for version in ("$CANDIDATE_VERSION", "$BASELINE_VERSION"):  # what names each checkpoint
        assert version in views["prefix"] and f"/{version}/" in fetched


def test_gitlab_posts_the_summary_as_a_note_after_the_script():
    (note,) = [a for a in COMMANDS["gitlab"] if a[0] == "python"]
    assert (ROOT / note[1]).is_file()
    assert Path(note[2]) == Path(_qa_run("gitlab").out) / REPORT_FILES["md"]


class _GitLab(http.server.BaseHTTPRequestHandler):
    """The notes API of one merge request, one note a page (to exercise paging)."""

    notes: list[dict]

    def _reply(self, payload, next_page: int | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        if next_page is not None:
            self.send_header("X-Next-Page", str(next_page))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> str:
        assert self.headers["PRIVATE-TOKEN"] == "secret"
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))["body"]

    def do_GET(self):
        url = urlparse(self.path)
        assert url.path == "/api/v4/projects/7/merge_requests/3/notes"
        page = int(parse_qs(url.query)["page"][0])
        more = page < len(self.notes)
        self._reply(self.notes[page - 1 : page], page + 1 if more else None)

    def do_POST(self):
        self.notes.append({"id": 100 + len(self.notes), "body": self._body()})
        self._reply(self.notes[-1])

    def do_PUT(self):
        note_id = int(self.path.rsplit("/", 1)[1])
        (note,) = [n for n in self.notes if n["id"] == note_id]
        note["body"] = self._body()
        self._reply(note)

    def log_message(self, *args):
        pass


def test_the_gitlab_note_is_created_once_then_updated(tmp_path, monkeypatch, capsys):
    spec = importlib.util.spec_from_file_location("note", CI / "gitlab_mr_note.py")
    note = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(note)
    _GitLab.notes = [{"id": 1, "body": "LGTM"}]
    server = http.server.HTTPServer(("127.0.0.1", 0), _GitLab)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("CI_API_V4_URL", f"http://127.0.0.1:{server.server_port}/api/v4")
        monkeypatch.setenv("CI_PROJECT_ID", "7")
        monkeypatch.setenv("CI_MERGE_REQUEST_IID", "3")
        monkeypatch.setenv("QA_NOTES_TOKEN", "secret")
        summary = tmp_path / "summary.md"
        for text in ("### qa: FAIL\n", "### qa: PASS\n"):
            summary.write_text(text)
            assert note.main([str(summary)]) == 0
        assert capsys.readouterr().out.splitlines() == [
            "merge request note: created",
            "merge request note: updated note 101",
        ]
        assert _GitLab.notes == [
            {"id": 1, "body": "LGTM"},
            {"id": 101, "body": f"### qa: PASS\n\n{note.MARKER}\n"},
        ]
        monkeypatch.delenv("QA_NOTES_TOKEN")
        assert note.main([str(summary)]) == 1
        assert capsys.readouterr().err.startswith("merge request note not posted: KeyError")
    finally:
        server.shutdown()
