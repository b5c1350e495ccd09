"""Bad data input is exit 2 naming the file, never evidence silently dropped or counted twice.

Real tiny digit trees (tests/conftest.py) damaged the ways users damage them: broken and
looping symbolic links, unreadable entries, manifests with repeated rows or columns.
"""

import os
import re
import shutil
from pathlib import Path

import pytest
from helpers import save_tiny, write_suite

from qa.cli import main
from qa.data import scan_image_folder
from qa.errors import InputError
from qa.manifest import read_manifest
from trainer.cli import main as trainer_main

CLASSES = ["0", "1", "2"]
N_VAL = 12  # 4 images in each of 3 classes
AS_ROOT = os.geteuid() == 0


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("ckpt") / "cand.pt", seed=2, class_names=CLASSES)


def _qa_run(tmp_path, data, ckpt, capsys) -> tuple[int, str]:
    """`qa run` end to end on `data` (a folder, or a `{manifest: ...}` mapping): code, stderr."""
    suite = write_suite(tmp_path / "s.yaml", data, "- {kind: top1_accuracy, min: 0.0}\n")
    argv = ["run", str(suite), str(ckpt), "--out", str(tmp_path / "r"), "--no-cache", "--quiet"]
    code = main(argv)
    return code, capsys.readouterr().err


def _one_line(err: str, *expected: str) -> None:
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for text in expected:
        assert text in err, err


def test_a_dangling_class_folder_is_exit_2_end_to_end(tiny_digits, tmp_path, ckpt, capsys):
    val = tiny_digits / "val"
    assert _qa_run(tmp_path, val, ckpt, capsys)[0] == 0
    shutil.move(val / "2", tmp_path / "moved")
    (val / "2").symlink_to(tmp_path / "moved")
    assert _qa_run(tmp_path, val, ckpt, capsys)[0] == 0  # a working link is followed
    (tmp_path / "moved").rename(tmp_path / "gone")
    code, err = _qa_run(tmp_path, val, ckpt, capsys)
    assert code == 2
    _one_line(err, f"{val / '2'}: broken symbolic link to {tmp_path / 'moved'}")


def test_training_does_not_drop_a_dangling_class_either(tiny_digits, tmp_path, capsys):
    (tiny_digits / "train" / "3").symlink_to(tmp_path / "gone")
    argv = ["finetune", "--data", str(tiny_digits), "--out", str(tmp_path / "run")]
    assert trainer_main([*argv, "--epochs", "1", "--workers", "0", "--image-size", "16"]) == 2
    _one_line(capsys.readouterr().err, f"{tiny_digits / 'train' / '3'}: broken symbolic link")
    assert not (tmp_path / "run").exists()


def _damage(val: Path, tmp_path: Path, how: str) -> tuple[Path, str]:
    """Damage the val tree one way; the entry the error must name and what it must say."""
    one = val / "1"
    if how == "dangling image":
        (one / "extra.png").symlink_to(tmp_path / "gone.png")
        return one / "extra.png", "broken symbolic link to"
    if how == "dangling subfolder":
        (one / "more").symlink_to(tmp_path / "gone", target_is_directory=True)
        return one / "more", "broken symbolic link to"
    if how == "self link":
        (one / "self.png").symlink_to(one / "self.png")
        return one / "self.png", "Too many levels of symbolic links"
    if how == "loop to its class":
        (one / "loop").symlink_to(one, target_is_directory=True)
        return one / "loop", f"leads to {one} again"
    if how == "loop to the root":
        (one / "up").symlink_to(val, target_is_directory=True)
        return one / "up", f"leads to {val} again"
    if how == "two classes, one folder":
        shutil.rmtree(val / "2")
        (val / "2").symlink_to(one, target_is_directory=True)
        return val / "2", f"leads to {one} again"
    if how == "one image twice":
        first = sorted(one.iterdir())[0]
        (one / "zz-again.png").symlink_to(first)
        return one / "zz-again.png", f"leads to {first} again"
    if how == "fifo":
        os.mkfifo(one / "pipe.png")
        return one / "pipe.png", "expected an image file, found not a regular file"
    if how == "image outside any class":
        shutil.copy(sorted(one.iterdir())[0], val / "stray.png")
        return val / "stray.png", "image outside any class folder"
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how",
    [
        "dangling image",
        "dangling subfolder",
        "self link",
        "loop to its class",
        "loop to the root",
        "two classes, one folder",
        "one image twice",
        "fifo",
        "image outside any class",
    ],
)
def test_an_unusable_entry_is_named(tiny_digits, tmp_path, how):
    named, says = _damage(tiny_digits / "val", tmp_path, how)
    with pytest.raises(InputError) as caught:
        scan_image_folder(tiny_digits / "val")
    assert str(caught.value).startswith(f"{named}: ") and says in str(caught.value)


@pytest.mark.skipif(AS_ROOT, reason="root reads every file whatever its permissions")
@pytest.mark.parametrize("what", ["subfolder", "image"])
def test_an_entry_without_permission_is_named(tiny_digits, tmp_path, what):
    one = tiny_digits / "val" / "1"
    if what == "subfolder":
        entry = one / "more"
        entry.mkdir()
        shutil.copy(sorted(one.glob("*.png"))[0], entry / "copy.png")
    else:
        entry = sorted(one.iterdir())[0]
    entry.chmod(0)
    try:
        with pytest.raises(InputError, match=f"^{re.escape(str(entry))}: cannot"):
            scan_image_folder(tiny_digits / "val")
    finally:
        entry.chmod(0o755)


def test_links_to_images_and_folders_elsewhere_count(tiny_digits, tmp_path):
    val, elsewhere = tiny_digits / "val", tmp_path / "elsewhere"
    shutil.copytree(tiny_digits / "train" / "1", elsewhere / "batch")
    (val / "1" / "batch").symlink_to(elsewhere / "batch", target_is_directory=True)
    outside = shutil.copy(
        elsewhere / "batch" / sorted(os.listdir(elsewhere / "batch"))[0], tmp_path
    )
    (val / "2" / "outside.png").symlink_to(outside)
    (val / "2" / "README.txt").write_text("notes, not an image")
    (val / ".DS_Store").write_bytes(b"\0")
    classes, samples = scan_image_folder(val)
    assert classes == CLASSES and len(samples) == N_VAL + 8 + 1
    linked = [s for s in samples if "batch" in s.path.parts]
    assert len(linked) == 8 and {s.label for s in linked} == {1}
    assert samples[-1].path == val / "2" / "outside.png" and samples[-1].label == 2


def _manifest(tmp_path: Path, data: Path, lines: list[str], bom: bool = False) -> Path:
    path = tmp_path / "eval.csv"
    path.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def _rows(data: Path) -> list[str]:
    return [
        f"{p.relative_to(data).as_posix()},{p.parent.name}" for p in sorted(data.rglob("*.png"))
    ]


def test_a_repeated_manifest_row_is_exit_2_end_to_end(tiny_digits, tmp_path, ckpt, capsys):
    val = tiny_digits / "val"
    manifest = _manifest(tmp_path, val, ["path,label", *_rows(val) * 5])
    code, err = _qa_run(tmp_path, f"{{manifest: {manifest}, root: {val}}}", ckpt, capsys)
    assert code == 2
    _one_line(err, f"{manifest}:{N_VAL + 2}: column 'path': 0/", "repeats line 2")


@pytest.mark.parametrize(
    ("again", "expected"),
    [
        ("./0/{name}", "0/{name} repeats line 2"),
        ("0//{name}", "0/{name} repeats line 2"),
        ("1/../0/{name}", "1/../0/{name} repeats line 2 (0/{name}, the same file)"),
        ("link/{name}", "link/{name} repeats line 2 (0/{name}, the same file)"),
    ],
)
def test_a_path_listed_twice_names_both_lines(tiny_digits, tmp_path, again, expected):
    val = tiny_digits / "val"
    (val / "link").symlink_to(val / "0", target_is_directory=True)
    rows = _rows(val / "0")
    name = sorted(os.listdir(val / "0"))[0]
    lines = ["path,label", *(f"0/{r}" for r in rows), again.format(name=name) + ",0"]
    manifest = _manifest(tmp_path, val, lines)
    message = f"{manifest}:{len(lines)}: column 'path': " + expected.format(name=name)
    with pytest.raises(InputError) as caught:
        read_manifest(manifest, val)
    assert str(caught.value) == message


def test_an_excel_manifest_with_a_byte_order_mark_reads(tiny_digits, tmp_path):
    val = tiny_digits / "val"
    dataset = read_manifest(_manifest(tmp_path, val, ["path,label", *_rows(val)], bom=True), val)
    assert dataset.class_names == CLASSES and len(dataset.samples) == N_VAL


@pytest.mark.parametrize(
    ("header", "row", "column"),
    [
        ("path,label,label", "{path},{label},{label}", "label"),
        ("path,camera,label,camera", "{path},A,{label},B", "camera"),
    ],
)
def test_a_repeated_column_is_named_with_the_header_line(
    tiny_digits, tmp_path, header, row, column
):
    val = tiny_digits / "val"
    pairs = [r.split(",") for r in _rows(val)]
    lines = [header, *(row.format(path=path, label=label) for path, label in pairs)]
    manifest = _manifest(tmp_path, val, lines)
    expected = f"{manifest}:1: column '{column}': expected once in the header, found it as columns"
    with pytest.raises(InputError, match=f"^{re.escape(expected)}"):
        read_manifest(manifest, val)


def test_a_row_spanning_lines_is_named_by_its_first_line(tiny_digits, tmp_path):
    val = tiny_digits / "val"
    first, second = _rows(val)[:2]
    lines = ["path,label,note", f'{first},"two\nlines"', f"{second.split(',')[0]},,x"]
    manifest = _manifest(tmp_path, val, lines)
    expected = f"{manifest}:4: column 'label': expected a value"
    with pytest.raises(InputError, match=f"^{re.escape(expected)}"):
        read_manifest(manifest, val)


@pytest.mark.parametrize(
    ("target", "says"),
    [("gone.png", "broken symbolic link to"), ("folder", "expected an image file, found a folder")],
)
def test_a_manifest_row_naming_an_unusable_file(tiny_digits, tmp_path, target, says):
    val = tiny_digits / "val"
    (val / "extra.png").symlink_to(tmp_path / target)
    (tmp_path / "folder").mkdir()
    manifest = _manifest(tmp_path, val, ["path,label", *_rows(val)[:3], "extra.png,0"])
    with pytest.raises(InputError) as caught:
        read_manifest(manifest, val)
    assert str(caught.value).startswith(f"{manifest}:5: column 'path': {val / 'extra.png'}: {says}")


def test_a_training_file_gone_after_the_scan_is_named(tiny_digits, tmp_path, monkeypatch):
    import trainer.data

    scan = trainer.data.scan_image_folder

    def scan_then_lose_one(root):
        classes, samples = scan(root)
        samples[0].path.unlink()  # as if another process deleted it in between
        return classes, samples

    monkeypatch.setattr(trainer.data, "scan_image_folder", scan_then_lose_one)
    with pytest.raises(InputError, match="cannot read \\(No such file or directory\\)"):
        trainer.data.load_splits(tiny_digits)


def test_permissions_are_asked_of_the_system_only_when_the_mode_does_not_say(
    tiny_digits, monkeypatch
):
    one = tiny_digits / "val" / "1"
    locked = sorted(one.glob("*.png"))[0]
    asked = []
    monkeypatch.setattr(os, "access", lambda p, mode: asked.append(str(p)) or str(p) != str(locked))
    scan_image_folder(tiny_digits / "val")
    assert asked == []  # every image is ours and readable by us
    locked.chmod(0o200)  # ours, not readable by its owner: only the system can say
    try:
        with pytest.raises(InputError, match=f"^{re.escape(str(locked))}: cannot read"):
            scan_image_folder(tiny_digits / "val")
    finally:
        locked.chmod(0o644)
    assert asked == [str(locked)]
