"""`qa perturbations`: every registered perturbation, as the registry describes it."""

import json

from qa import perturb
from qa.cli import main


def _listed(capsys, *extra) -> str:
    assert main(["perturbations", *extra]) == 0
    return capsys.readouterr().out


def test_the_json_lists_every_registered_perturbation_as_the_registry_has_it(capsys):
    rows = json.loads(_listed(capsys, "--json"))
    assert [r["name"] for r in rows] == sorted(
        perturb.PERTURBATIONS, key=lambda n: perturb.GROUPS.index(perturb.PERTURBATIONS[n].group)
    )
    for row in rows:
        spec = perturb.PERTURBATIONS[row["name"]]
        assert row["group"] == spec.group and row["min_size"] == spec.min_size
        assert row["imagenet_c"] == (row["name"] in perturb.IMAGENET_C) == spec.imagenet_c
        assert row["mce"] == (row["name"] in perturb.MCE_DEFAULT)
        assert row["graded"] == spec.graded
        assert row["ladders"] == (["imagenet_c", "cifar10_c"] if spec.ladders else ["own"])
    assert {r["name"] for r in rows if r["mce"]} == set(perturb.MCE_DEFAULT)
    assert any(r["ladders"] == ["own"] for r in rows)  # the geometric families have no reference


def test_the_table_has_a_row_per_perturbation_saying_its_ladders_and_the_mce_default(capsys):
    lines = _listed(capsys).splitlines()
    assert lines[0].split()[:3] == ["perturbation", "group", "ladders"]
    rows = {line.split()[0]: line.split() for line in lines[1:] if line.strip()}
    assert set(rows) == set(perturb.PERTURBATIONS)
    for name, cells in rows.items():
        spec = perturb.PERTURBATIONS[name]
        assert cells[1] == spec.group
        assert ("imagenet_c," in cells) == spec.ladders and ("own" in cells[2]) != spec.ladders
        flags = cells[-3:-1]  # ImageNet-C, in mCE
        assert flags == [
            "yes" if spec.imagenet_c else "-",
            "yes" if name in perturb.MCE_DEFAULT else "-",
        ]
        assert cells[-1] == f"{spec.min_size}x{spec.min_size}"


def test_a_perturbation_registered_by_user_code_is_listed_with_its_own_ladder(monkeypatch, capsys):
    monkeypatch.setattr(perturb, "PERTURBATIONS", dict(perturb.PERTURBATIONS))
    perturb.register_perturbation("darken", lambda x, s, rng: x * 0.5, "digital", min_size=4)
    row = next(r for r in json.loads(_listed(capsys, "--json")) if r["name"] == "darken")
    assert row == {
        "name": "darken",
        "group": "digital",
        "ladders": ["own"],
        "imagenet_c": False,
        "mce": False,
        "graded": True,
        "min_size": 4,
    }
    assert "darken" in _listed(capsys)
