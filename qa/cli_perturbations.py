"""What `qa perturbations` shows: every registered perturbation with its group, its severity
ladders, whether it is an ImageNet-C corruption and in the mCE default, and its smallest image
side, as a table or JSON. Everything is read from the registry (qa.perturb), so a perturbation
registered there is listed with no change here. Torch-free, as qa.perturb is at import.
"""

import json

from rich.table import Table
from rich.text import Text

from qa import perturb

# the reference ladders a perturbation registered with `ladders=True` has; "own" otherwise
REFERENCE_LADDERS = [ladder for ladder in perturb.LADDERS if ladder != "auto"]
OWN = "own"


def perturbation_rows() -> list[dict]:
    """One row per registered perturbation, by group (in GROUPS' order), then in registry order.

    `ladders` is ["imagenet_c", "cifar10_c"] for a perturbation with the references' severity
    ladders and ["own"] for one whose severities are its own; `mce` says whether the
    `mean_corruption_error` check averages it by default (qa.perturb.MCE_DEFAULT).
    """
    specs = sorted(perturb.PERTURBATIONS.values(), key=lambda s: perturb.GROUPS.index(s.group))
    return [
        {
            "name": spec.name,
            "group": spec.group,
            "ladders": list(REFERENCE_LADDERS) if spec.ladders else [OWN],
            "imagenet_c": spec.imagenet_c,
            "mce": spec.name in perturb.MCE_DEFAULT,
            "graded": spec.graded,
            "min_size": spec.min_size,
        }
        for spec in specs
    ]


def as_json(rows: list[dict]) -> str:
    """The rows as indented JSON."""
    return json.dumps(rows, indent=2)


def table(rows: list[dict]) -> Table:
    """The rows as a table; every cell is literal text, never rich markup."""
    grid = Table(box=None, padding=(0, 1, 0, 0), highlight=False)
    for column in ("perturbation", "group", "ladders", "ImageNet-C", "in mCE", "min size"):
        grid.add_column(column, no_wrap=column in ("perturbation", "ladders"))
    for row in rows:
        # "ungraded": every severity gives the same image (hflip)
        ladders = ", ".join(row["ladders"]) + ("" if row["graded"] else ", ungraded")
        cells = (
            row["name"],
            row["group"],
            ladders,
            _yes(row["imagenet_c"]),
            _yes(row["mce"]),
            f"{row['min_size']}x{row['min_size']}",
        )
        grid.add_row(*map(Text, cells))
    return grid


def _yes(flag: bool) -> str:
    return "yes" if flag else "-"
