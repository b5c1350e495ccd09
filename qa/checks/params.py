"""Parameters that several check kinds share, each declared once, so that a key is validated
and described (in `qa checks`) the same way wherever it appears.

A kind takes a shared key by its type, `gate_on: GateOn = "bound"`, and sets its default
there; the corruption checks share a whole base class, CorruptionParams. A key declared
otherwise in a second kind is a contract-test failure (tests/test_registry_contract.py).

`gate_on` has one vocabulary everywhere: `bound` compares the one-sided bound at the suite's
confidence on the side the gate implies: the lower bound for a `min`, the upper bound for a
`max`, and against a baseline the side that would show a regression. `point` compares the
point estimate instead. Results report both.
"""

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from qa.checks import CheckParams
from qa.evidence import CLEAN, View
from qa.metrics.calibration import BINNINGS
from qa.perturb import SEVERITIES, check_name

GateOn = Annotated[
    Literal["bound", "point"],
    Field(
        description="compare the one-sided bound at the suite's confidence (lower for `min`, "
        "upper for `max`, the regression's side against a baseline) or the point estimate"
    ),
]
Resamples = Annotated[int, Field(ge=100, description="bootstrap resamples")]
Seed = Annotated[
    int, Field(description="seed of the bootstrap (and of any hold-out half or cross-validation)")
]
Bins = Annotated[int, Field(ge=1, le=1000, description="number of confidence bins")]
Binning = Annotated[Literal[BINNINGS], Field(description="equal-width or equal-mass bins")]
Perturbations = Annotated[
    list[Annotated[str, AfterValidator(check_name)]],
    Field(
        min_length=1, description="perturbation names (see qa.perturb; user-registered ones too)"
    ),
]
Severities = Annotated[
    list[Annotated[int, Field(ge=1, le=5)]],
    Field(min_length=1, description="severities from 1 to 5 to run each perturbation at"),
]
Show = Annotated[int, Field(ge=0, description="how many failing paths to list in the details")]
MaxFailed = Annotated[int, Field(ge=0, description="most failing samples allowed")]
MaxDistance = Annotated[
    int,
    Field(ge=0, le=64, description="Hamming distance (of 64 bits) that counts as near-duplicate"),
]


class CorruptionParams(CheckParams):
    """Which perturbations, at which severities: the corruption views a check reads."""

    perturbations: Perturbations
    severities: Severities = Field(list(SEVERITIES))

    @model_validator(mode="after")
    def _distinct(self):
        for key in ("perturbations", "severities"):
            values = getattr(self, key)
            if len(set(values)) != len(values):
                raise ValueError(f"`{key}` lists a value twice: {values}")
        return self

    def corruption_views(self, model: str = "candidate") -> list[View]:
        """One logits view per (perturbation, severity) of `model`."""
        return [
            View(model=model, perturbation=name, severity=s)
            for name in self.perturbations
            for s in self.severities
        ]

    def views(self) -> list[View]:
        """Clean logits and the logits under every listed perturbation and severity."""
        return [CLEAN, *self.corruption_views()]
