"""`qa describe` and `trainer describe` print a checkpoint's facts the same way, literally."""

import json

from helpers import save_tiny

from qa.checkpoint import describe, description_lines
from qa.cli import main as qa_main
from trainer.cli import main as trainer_main

MARKUP = ["[bold red]", "[/x]", *(str(i) for i in range(8))]


def test_qa_and_trainer_describe_print_the_same_lines(tmp_path, capsys):
    path = save_tiny(tmp_path / "m.pt", seed=1, class_names=MARKUP)
    assert qa_main(["describe", str(path)]) == 0
    shown = capsys.readouterr().out
    assert trainer_main(["describe", str(path)]) == 0
    assert capsys.readouterr().out == shown
    assert shown == "\n".join(description_lines(describe(path))) + "\n"
    (names,) = [line for line in shown.splitlines() if line.startswith("class_names ")]
    assert names.endswith(f"  {json.dumps(MARKUP)}")  # names that look like markup, as-is


def test_trainer_describe_json_is_the_facts(tmp_path, capsys):
    path = save_tiny(tmp_path / "m.pt", seed=1)
    assert trainer_main(["describe", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(describe(path)))


def test_description_lines_give_each_provenance_entry_a_line_and_escape_control_characters():
    info = {
        "path": "m.pt",
        "arch": "resnet\x1b[2J18",
        "temperature": 1.5,
        "resumable": False,
        "provenance": {"config": {"seed": 1}, "bad\nkey": "x"},
    }
    width = len('"provenance.bad\\nkey"')  # the longest key, escaped
    assert description_lines(info) == [
        f"{key:<{width}}  {value}"
        for key, value in [
            ("path", "m.pt"),
            ("arch", '"resnet\\u001b[2J18"'),
            ("temperature", "1.5"),
            ("resumable", "false"),
            ("provenance.config", '{"seed": 1}'),
            ('"provenance.bad\\nkey"', "x"),
        ]
    ]
