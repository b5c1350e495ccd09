"""Pretrained timm weights for `trainer finetune --arch timm/NAME --weights TAG`, read from the
local caches timm itself reads and never downloaded.

timm 1.x fetches a model's weights from the Hugging Face hub repository its pretrained config
names (`hf_hub_id`, e.g. timm/resnet18.a1_in1k): `model.safetensors`, else `pytorch_model.bin`,
kept in the hub cache as `models--timm--resnet18.a1_in1k/snapshots/REVISION/FILE`. The cache is
$HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub, as huggingface_hub resolves it.
Configs with only a `url` are read from torch hub's cache (`$TORCH_HOME/hub/checkpoints/`),
where older timm put them. Lookups only read the file system: nothing is ever fetched.
"""

import os
from pathlib import Path

import torch

from qa import timm_models
from qa.errors import InputError
from qa.torchfile import load_torch_file

HF_FILES = ("model.safetensors", "pytorch_model.bin")


def resolve(name: str, arch: str) -> dict:
    """The pretrained config --weights names for `arch`: DEFAULT (the tag in the arch name, or
    timm's default tag), a tag (a1_in1k) or a full name (resnet18.a1_in1k)."""
    model = timm_models.model_name(arch)
    base, _, own_tag = model.partition(".")
    if name == "DEFAULT":
        tag = own_tag
    else:
        stem, dot, tag = name.rpartition(".")
        if dot and stem != base:
            raise InputError(f"--weights: {name!r} belongs to another architecture than {arch}")
    cfg = timm_models.pretrained_cfg(timm_models.PREFIX + base + (f".{tag}" if tag else ""))
    if cfg is None or not (cfg.get("hf_hub_id") or cfg.get("url")):
        raise InputError(f"--weights: {arch} has no pretrained timm weights")
    return cfg


def hub_cache() -> Path:
    """The Hugging Face hub cache folder, from the environment as huggingface_hub reads it."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expandvars(explicit)).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    home = os.environ.get("HF_HOME") or os.path.join(xdg, "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def weights_file(cfg: dict) -> tuple[Path | None, str, Path]:
    """Where the weights of `cfg` are cached: (the file found or None, where to download
    them from, where to place them when they are missing)."""
    from huggingface_hub import try_to_load_from_cache

    repo, _, revision = (cfg.get("hf_hub_id") or "").partition("@")
    if repo:
        cache = hub_cache()
        for filename in HF_FILES:
            found = try_to_load_from_cache(
                repo, filename, cache_dir=cache, revision=revision or None
            )
            if isinstance(found, str):
                return Path(found), "", Path(found)
        folder = cache / f"models--{repo.replace('/', '--')}" / "snapshots" / (revision or "main")
        url = f"https://huggingface.co/{repo}/resolve/{revision or 'main'}/{HF_FILES[0]}"
        return None, url, folder / HF_FILES[0]
    path = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(cfg["url"])
    return (path if path.is_file() else None), cfg["url"], path


def pretrained(name: str, arch: str) -> tuple[dict, dict, dict]:
    """--weights for a timm architecture: the state_dict from the local cache, the
    preprocessing the weights were trained with, and the origin the checkpoint records.
    Missing weights are one line saying which file to place where."""
    cfg = resolve(name, arch)
    label = f"{cfg['architecture']}.{cfg['tag']}"
    found, url, place = weights_file(cfg)
    if found is None:
        raise InputError(
            f"--weights {label}: {place} not found; download {url} and place it there "
            "(the trainer never downloads)"
        )
    origin = {"kind": "weights", "name": label, "file": str(found)}
    return _read_state(found), timm_models.preprocessing(cfg), origin


def _read_state(path: Path) -> dict:
    """A weights file's tensors: safetensors read as such, anything else as a safe torch file."""
    if path.suffix != ".safetensors":
        return load_torch_file(path)
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError) as exc:
        raise InputError(f"--weights: {path}: not a readable safetensors file ({exc})") from None
