"""Tar shards in webdataset's layout give what the ImageFolder of the same images gives."""

import gzip
import tarfile
from pathlib import Path

import pytest
from helpers import add_member, write_shards

from qa import data
from qa.data import content_fingerprint, load_dataset, read_bytes
from qa.errors import InputError
from qa.profile import profile_samples
from qa.shards import expand
from qa.suite_models import DataSpec
from qa.thumbnails import thumbnail_uri


def test_shards_and_the_image_folder_give_the_same_dataset_fingerprint_and_bytes(
    tiny_digits, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # patterns are relative to the current folder, as paths are
    folder = load_dataset(DataSpec(path=str(tiny_digits / "val")))
    pattern = write_shards(tiny_digits / "val", Path("shards"))
    shards = load_dataset(DataSpec(shards=pattern))
    assert shards.ids == folder.ids and shards.ids[0] == "0/" + Path(shards.ids[0]).name
    assert shards.class_names == folder.class_names == ["0", "1", "2"]
    assert [s.label for s in shards.samples] == [s.label for s in folder.samples]
    assert content_fingerprint(shards) == content_fingerprint(folder)
    assert [read_bytes(s) for s in shards.samples] == [read_bytes(s) for s in folder.samples]
    assert shards.samples[0].where.startswith("shards/val-00")
    assert shards.samples[0].where.endswith(".tar:" + shards.ids[0])

    args = {"class_names": folder.class_names, "split": "eval", "workers": 1}
    by_tar = profile_samples(shards.samples, shards.root, ids=shards.ids, **args)
    by_file = profile_samples(folder.samples, folder.root, **args)
    assert by_tar.equals(by_file)
    assert thumbnail_uri(shards.samples[3]) == thumbnail_uri(folder.samples[3]) is not None


def test_labels_come_from_cls_text_or_json_and_are_class_names(tmp_path):
    with tarfile.open(tmp_path / "s.tar", "w") as tar:
        add_member(tar, "a.png", b"x")
        add_member(tar, "a.cls", b"7\n")
        add_member(tar, "b.jpg", b"y")
        add_member(tar, "b.json", b'{"label": "cat", "other": 1}')
        add_member(tar, "c.png", b"z")
        add_member(tar, "c.json", b'{"label": 7}')
        add_member(tar, "c.txt", b"ignored")
        add_member(tar, "._c.png", b"a macOS resource fork, hidden")
    dataset = load_dataset(DataSpec(shards=str(tmp_path / "s.tar")))
    assert dataset.class_names == ["7", "cat"]
    assert dataset.ids == ["a.png", "c.png", "b.jpg"]  # by class, then name
    assert [read_bytes(s) for s in dataset.samples] == [b"x", b"z", b"y"]


def test_brace_ranges_expand_zero_padded_as_written():
    assert expand("v-{000..002}.tar") == ["v-000.tar", "v-001.tar", "v-002.tar"]
    assert expand("v-{8..10}.tar") == ["v-8.tar", "v-9.tar", "v-10.tar"]
    assert expand("{0..1}/{08..09}") == ["0/08", "0/09", "1/08", "1/09"]
    assert expand("plain.tar") == ["plain.tar"]
    for bad in ("v-{3..1}.tar", "v-{a,b}.tar", "v-{0..2.tar", "{0..999}{0..999}"):
        with pytest.raises(ValueError):
            expand(bad)


def _shard(path: Path, members: list[tuple[str, bytes]]) -> str:
    with tarfile.open(path, "w") as tar:
        for name, payload in members:
            add_member(tar, name, payload)
    return str(path)


@pytest.mark.parametrize(
    "members, says",
    [
        ([("a.png", b"x")], "s.tar:a.png: no label (expected a .cls or .json member"),
        ([("a.cls", b"0")], "s.tar:a.cls: sample 'a' has no image member"),
        ([("a.png", b"x"), ("a.jpg", b"y"), ("a.cls", b"0")], "s.tar:a.jpg: a second image"),
        ([("a.png", b"x"), ("a.cls", b" ")], "s.tar:a.png: .cls: expected a class name"),
        ([("a.png", b"x"), ("a.json", b"[1]")], "a.png: .json: expected UTF-8 text or a JSON"),
        ([("a.png", b"x"), ("a.json", b'{"label": true}')], "expected a class name, found True"),
        (
            [("a.png", b"x"), ("a.cls", b"dog"), ("a.json", b'{"label": "cat"}')],
            "s.tar:a.png: .cls says 'dog' but .json says 'cat'",
        ),
        ([("a.txt", b"x")], "expected image samples in the shards, found none"),
    ],
)
def test_each_shard_problem_is_one_line_naming_the_member(tmp_path, members, says):
    with pytest.raises(InputError) as info:
        load_dataset(DataSpec(shards=_shard(tmp_path / "s.tar", members)))
    assert says in str(info.value) and "\n" not in str(info.value)


def test_bad_shard_files_are_refused(tmp_path):
    good = [("a.png", b"x" * 3000), ("a.cls", b"0"), ("b.png", b"y"), ("b.cls", b"0")]
    pattern = _shard(tmp_path / "s-0.tar", good)
    _shard(tmp_path / "s-1.tar", [("b.png", b"z"), ("b.cls", b"1")])
    with pytest.raises(InputError, match=r"s-1.tar: sample 'b' is also in .*s-0.tar"):
        load_dataset(DataSpec(shards=str(tmp_path / "s-{0..1}.tar")))
    with pytest.raises(InputError, match=r"s-2.tar: shard not found"):
        load_dataset(DataSpec(shards=str(tmp_path / "s-{0..2}.tar")))
    raw = Path(pattern).read_bytes()
    (tmp_path / "z.tar").write_bytes(gzip.compress(raw))
    with pytest.raises(InputError, match=r"z\.tar: cannot read as an uncompressed tar file"):
        load_dataset(DataSpec(shards=str(tmp_path / "z.tar")))
    (tmp_path / "cut.tar").write_bytes(raw[:2048])  # inside a.png's data
    with pytest.raises(InputError, match=r"cut\.tar:a\.png: the shard is truncated inside"):
        load_dataset(DataSpec(shards=str(tmp_path / "cut.tar")))
    end_of_b = 512 * (1 + 6 + 3 * 2)  # a.png: a header and 6 blocks; the others 1 + 1
    (tmp_path / "short.tar").write_bytes(raw[:end_of_b])  # whole members, no end block
    with pytest.raises(InputError, match=r"short\.tar: the shard is truncated"):
        load_dataset(DataSpec(shards=str(tmp_path / "short.tar")))


def test_read_bytes_names_the_member_of_a_shard_cut_after_indexing(tmp_path):
    pattern = _shard(tmp_path / "s.tar", [("a.png", b"x" * 3000), ("a.cls", b"0")])
    (sample,) = load_dataset(DataSpec(shards=pattern)).samples
    Path(pattern).write_bytes(Path(pattern).read_bytes()[:1000])
    with pytest.raises(InputError, match=r"s.tar:a.png: cannot read \(the shard ends after"):
        data.read_bytes(sample)
    Path(pattern).unlink()
    with pytest.raises(InputError, match=r"s.tar:a.png: cannot read \(No such file"):
        data.read_bytes(sample)
