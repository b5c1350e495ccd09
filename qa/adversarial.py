"""L-inf gradient attacks (FGSM, PGD) on [0, 1] images, and how an attack is named in a view.

An adversarial view is `View(kind="adversarial", perturbation=Attack(...).view_name())`: the
string carries every parameter ("pgd:eps=0.0078,steps=10,alpha=0.002,space=pixel"), so the
engine can rebuild the attack with `parse_attack` and the cache keys on all of it. The engine
computes that view's logits on `attack(...)`'s output; checks only read them.

`space` says where epsilon is measured: "pixel" on the [0, 1] scale of the decoded image,
"normalized" on the model's normalised input (so a channel's pixel budget is eps * std).
Adversarial images are always clamped to [0, 1]: they stay valid images.

This module imports torch only inside `attack`, so checks can name attacks without it.
"""

from dataclasses import asdict, dataclass

METHODS = ("fgsm", "pgd")
SPACES = ("pixel", "normalized")


@dataclass(frozen=True)
class Attack:
    """An L-inf attack: FGSM takes one step of eps; PGD takes `steps` of `alpha` from a random
    start inside the eps-ball, projecting back onto it after each (Madry et al. 2018)."""

    method: str
    eps: float
    steps: int = 1
    alpha: float = 0.0
    space: str = "pixel"

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"Expected an attack in {METHODS}, but got {self.method!r}")
        if self.space not in SPACES:
            raise ValueError(f"Expected `space` in {SPACES}, but got {self.space!r}")
        if not self.eps > 0:
            raise ValueError(f"Expected `eps` to be positive, but got {self.eps}")
        if self.method == "pgd" and (self.steps < 1 or not self.alpha > 0):
            raise ValueError(
                f"Expected PGD steps >= 1 and alpha > 0, but got {self.steps}, {self.alpha}"
            )

    def view_name(self) -> str:
        """The perturbation string of this attack's view; `parse_attack` reads it back exactly."""
        if self.method == "fgsm":
            return f"fgsm:eps={self.eps!r},space={self.space}"
        return f"pgd:eps={self.eps!r},steps={self.steps},alpha={self.alpha!r},space={self.space}"


def parse_attack(text: str) -> Attack:
    """The Attack named by a view's perturbation string (the inverse of `Attack.view_name`)."""
    method, _, rest = text.partition(":")
    fields = dict(item.partition("=")[::2] for item in rest.split(",") if item)
    unknown = set(fields) - {"eps", "steps", "alpha", "space"}
    if unknown or "eps" not in fields:
        raise ValueError(f"Expected 'method:eps=...[,steps=,alpha=,space=]', but got {text!r}")
    return Attack(
        method=method,
        eps=float(fields["eps"]),
        steps=int(fields.get("steps", 1)),
        alpha=float(fields.get("alpha", 0.0)),
        space=fields.get("space", "pixel"),
    )


def attack(
    model,
    images01,
    labels,
    normalize,
    method,
    eps,
    steps=1,
    alpha=0.0,
    space="pixel",
    generator=None,
):
    """Adversarial versions of `images01` (B, 3, H, W in [0, 1]) against `model`, in [0, 1].

    `model` takes normalised input (`normalize(images01)`) and returns logits; it should be in
    eval mode. The loss is the cross-entropy of the true `labels` (untargeted). Gradients are
    taken with respect to the images only, so the model's parameters get no `.grad`; this
    works inside the engine's inference_mode. `generator` seeds PGD's random start.
    """
    import torch

    spec = Attack(method, float(eps), int(steps), float(alpha), space)
    with torch.inference_mode(False), torch.enable_grad():
        clean = images01.detach().clone()
        labels = labels.detach().clone()
        budget = spec.eps * _pixel_units(normalize, clean, spec.space)
        if spec.method == "fgsm":
            sign = _loss_gradient_sign(model, normalize, clean, labels)
            return (clean + budget * sign).clamp(0, 1)
        start = torch.rand(clean.shape, generator=generator, device=clean.device, dtype=clean.dtype)
        x = (clean + (2 * start - 1) * budget).clamp(0, 1)
        step = spec.alpha * _pixel_units(normalize, clean, spec.space)
        for _ in range(spec.steps):
            x = x + step * _loss_gradient_sign(model, normalize, x, labels)
            x = torch.minimum(torch.maximum(x, clean - budget), clean + budget).clamp(0, 1)
        return x.detach()


def attack_view(model, images01, labels, normalize, view, generator=None):
    """The engine's hook: `attack` with the parameters encoded in an adversarial View's name."""
    spec = parse_attack(view.perturbation)
    return attack(model, images01, labels, normalize, **asdict(spec), generator=generator)


def _loss_gradient_sign(model, normalize, images, labels):
    """The sign of the cross-entropy's gradient with respect to the [0, 1] images."""
    import torch
    import torch.nn.functional as F

    x = images.detach().requires_grad_(True)
    loss = F.cross_entropy(model(normalize(x)), labels, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return grad.sign()


def _pixel_units(normalize, images, space: str):
    """(1, C, 1, 1) pixel-scale length of one unit of `space`: 1, or the channel's std.

    The std is read off `normalize` itself (any per-channel affine map), so no mean or std
    has to be passed separately.
    """
    import torch

    if space == "pixel":
        return torch.ones(1, images.shape[1], 1, 1, device=images.device, dtype=images.dtype)
    probe = torch.zeros(2, images.shape[1], 1, 1, device=images.device, dtype=images.dtype)
    probe[1] = 1
    gain = normalize(probe)
    return 1 / (gain[1:] - gain[:1])
