"""Where perturbations are registered: each built-in by a decorator on its own function, in its
family module, which imports no torch, so the torch-free commands can read the registry."""

import dataclasses
import importlib
import importlib.util
import pkgutil
import subprocess
import sys

import pytest

import qa.perturb
from qa.perturb import FAMILY_MODULES, HELD_OUT, IMAGENET_C, MCE_DEFAULT, PERTURBATIONS

# (group, imagenet_c, min_size, graded, ladders) of every built-in, in registration order: the
# order is the default perturbations' order (MCE_DEFAULT) in a robustness check and its report.
BUILTIN_SPECS = {
    "gaussian_noise": ("noise", True, 1, True, True),
    "shot_noise": ("noise", True, 1, True, True),
    "impulse_noise": ("noise", True, 1, True, True),
    "speckle_noise": ("noise", True, 1, True, True),
    "defocus_blur": ("blur", True, 16, True, True),
    "glass_blur": ("blur", True, 16, True, True),
    "motion_blur": ("blur", True, 16, True, True),
    "zoom_blur": ("blur", True, 16, True, True),
    "gaussian_blur": ("blur", True, 16, True, True),
    "snow": ("weather", True, 16, True, True),
    "frost": ("weather", True, 16, True, True),
    "spatter": ("weather", True, 16, True, True),
    "fog": ("weather", True, 16, True, True),
    "brightness": ("weather", True, 1, True, True),
    "contrast": ("digital", True, 1, True, True),
    "saturate": ("digital", True, 1, True, True),
    "pixelate": ("digital", True, 16, True, True),
    "jpeg_compression": ("digital", True, 8, True, True),
    "elastic_transform": ("digital", True, 16, True, True),
    "rotate": ("geometric", False, 16, True, False),
    "translate": ("geometric", False, 16, True, False),
    "scale": ("geometric", False, 16, True, False),
    "hflip": ("geometric", False, 1, False, False),
}


def flags(spec) -> tuple:
    """What a spec declares besides its name and function."""
    return (spec.group, spec.imagenet_c, spec.min_size, spec.graded, spec.ladders)


def test_builtins_keep_their_names_groups_flags_and_order():
    assert [(name, flags(spec)) for name, spec in PERTURBATIONS.items()] == list(
        BUILTIN_SPECS.items()
    )
    # The paper's 15, without ImageNet-C's four held-out corruptions (HELD_OUT)
    assert MCE_DEFAULT == (
        "gaussian_noise",
        "shot_noise",
        "impulse_noise",
        "defocus_blur",
        "glass_blur",
        "motion_blur",
        "zoom_blur",
        "snow",
        "frost",
        "fog",
        "brightness",
        "contrast",
        "pixelate",
        "jpeg_compression",
        "elastic_transform",
    )
    assert len(IMAGENET_C) == 19 and set(IMAGENET_C) == set(MCE_DEFAULT) | set(HELD_OUT)


@pytest.mark.parametrize("name", sorted(BUILTIN_SPECS))
def test_a_builtin_is_the_module_level_function_of_a_family_module(name):
    fn = PERTURBATIONS[name].fn
    assert fn.__module__ in FAMILY_MODULES
    assert fn.__qualname__ == fn.__name__, f"{name}: register a module-level function"
    assert getattr(sys.modules[fn.__module__], fn.__name__) is fn, f"{name}: no wrapper"


@pytest.mark.parametrize("module", FAMILY_MODULES)
def test_importing_a_family_module_registers_its_own_perturbations(module, monkeypatch):
    """Run the module's code afresh into an empty registry: the entries it creates are the
    built-ins whose functions it defines, with the same flags."""
    monkeypatch.setattr(qa.perturb, "PERTURBATIONS", {})
    fresh = importlib.util.module_from_spec(importlib.util.find_spec(module))
    fresh.__spec__.loader.exec_module(fresh)
    created = qa.perturb.PERTURBATIONS
    own = {n: s for n, s in PERTURBATIONS.items() if s.fn.__module__ == module}
    assert own, f"{module} registers nothing"
    assert list(created) == list(own)
    for name, spec in created.items():
        assert spec.fn is getattr(fresh, spec.fn.__name__)
        assert dataclasses.replace(spec, fn=own[name].fn) == own[name]


def test_every_perturb_module_that_registers_is_a_listed_family(monkeypatch):
    """A module that registers perturbations is listed, else `import qa.perturb` misses them."""
    modules = {f"qa.perturb.{m.name}" for m in pkgutil.iter_modules(qa.perturb.__path__)}
    assert set(FAMILY_MODULES) <= modules
    for name in sorted(modules - set(FAMILY_MODULES)):
        monkeypatch.setattr(qa.perturb, "PERTURBATIONS", {})
        fresh = importlib.util.module_from_spec(importlib.util.find_spec(name))
        fresh.__spec__.loader.exec_module(fresh)
        assert not qa.perturb.PERTURBATIONS, f"list {name} in FAMILY_MODULES"


def test_the_registry_is_filled_without_importing_torch():
    code = (
        "import sys, qa.perturb, qa.checks.robustness, qa.adversarial\n"
        "specs = qa.perturb.PERTURBATIONS.values()\n"
        "assert {s.fn.__module__ for s in specs} == set(qa.perturb.FAMILY_MODULES)\n"
        "assert 'gaussian_noise' in qa.perturb.known_names()\n"
        "heavy = {'torch', 'torchvision', 'scipy'} & {m.split('.')[0] for m in sys.modules}\n"
        "assert not heavy, f'imported {heavy}'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_user_perturbation_is_one_decorated_function(monkeypatch):
    import torch

    monkeypatch.setattr(qa.perturb, "PERTURBATIONS", dict(PERTURBATIONS))

    @qa.perturb.register("darken", "digital", min_size=4)
    def darken(images, severity, rng):
        return images * (1 - severity / 10)

    assert qa.perturb.PERTURBATIONS["darken"].fn is darken
    assert qa.perturb.check_name("darken") == "darken"
    images = torch.full((2, 3, 4, 4), 0.8)
    torch.testing.assert_close(qa.perturb.apply("darken", images, 5, [1, 2]), images * 0.5)
    with pytest.raises(TypeError, match="unexpected keyword argument 'graded_'"):
        qa.perturb.register("other", "digital", graded_=False)(darken)
    assert "other" not in qa.perturb.PERTURBATIONS
