"""Training speed options that are not Lightning ``Trainer`` arguments, resolved where the Trainer is built.

- ``trainer.precision=auto`` (the default) becomes one of Lightning's precisions:
  ``bf16-mixed`` on CPUs with AVX512-BF16 or AMX (:func:`i3d_train.inference.fast.cpu_has_bf16`) and on GPUs
  of compute capability 8.0 or newer; ``16-mixed`` on older GPUs; ``32-true`` otherwise. The choice is
  printed once. Any other value passes through to Lightning unchanged. Under Lightning's autocast,
  batch-norm statistics and parameters stay fp32; the module takes the loss and metrics on fp32.
- ``trainer.compile=true`` compiles the net in place (``nn.Module.compile``: the state dict and the
  checkpoints keep their keys). Popped before the Trainer is instantiated.

Channels-last memory format is a model option (``model.channels_last``), applied by the LightningModule.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from pytorch_lightning.utilities import rank_zero_only
from torch import nn

from i3d_train.errors import ConfigError
from i3d_train.inference.fast import cpu_has_bf16

log = logging.getLogger(__name__)

GPU_ACCELERATORS = ("gpu", "cuda")


def _uses_gpu(accelerator: Any) -> bool:
    accelerator = str(accelerator or "auto").lower()
    if accelerator in GPU_ACCELERATORS:
        return True
    return accelerator == "auto" and torch.cuda.is_available()


def resolve_precision(precision: Any, accelerator: Any = "auto") -> tuple[str, str]:
    """``(Lightning precision, why)`` for a ``trainer.precision`` value and ``trainer.accelerator``."""
    if str(precision) != "auto":
        return precision, "set explicitly"
    if _uses_gpu(accelerator):
        major, minor = torch.cuda.get_device_capability()
        if major >= 8:
            return "bf16-mixed", f"GPU of compute capability {major}.{minor} has bfloat16"
        return "16-mixed", f"GPU of compute capability {major}.{minor} has no bfloat16"
    if cpu_has_bf16():
        return "bf16-mixed", "CPU has AVX512-BF16/AMX"
    return "32-true", "no bfloat16 or float16 hardware found"


def check_gpus(accelerator: Any, devices: Any) -> None:
    """One line (ConfigError) instead of CUDA's traceback when the trainer asks for GPUs that are not here."""
    if not _uses_gpu(accelerator):
        return
    have = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if have == 0:
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise ConfigError(
            f"trainer.accelerator={accelerator} but no CUDA GPU is visible (torch {torch.__version__}, {build}): "
            "use trainer=cpu (or trainer.accelerator=auto)"
        )
    if isinstance(devices, int) and devices > have:
        raise ConfigError(f"trainer.devices={devices} but {have} GPU(s) visible: set trainer.devices={have} or fewer")


def trainer_config(trainer_cfg: DictConfig | dict, net: nn.Module | None = None) -> DictConfig:
    """A copy of ``trainer_cfg`` ready for Lightning: ``precision=auto`` resolved (printed once) and
    ``compile`` removed; with ``compile: true``, ``net`` is compiled in place."""
    src = trainer_cfg if isinstance(trainer_cfg, DictConfig) else OmegaConf.create(dict(trainer_cfg or {}))
    cfg = OmegaConf.create(OmegaConf.to_container(src, resolve=True))
    check_gpus(cfg.get("accelerator", "auto"), cfg.get("devices", 1))
    with open_dict(cfg):
        compile_net = bool(cfg.pop("compile", False))
        if "precision" in cfg:
            resolved, why = resolve_precision(cfg.precision, cfg.get("accelerator", "auto"))
            if str(cfg.precision) == "auto" and rank_zero_only.rank == 0:
                print(f"trainer.precision=auto: {resolved} ({why})")
            cfg.precision = resolved
    if compile_net:
        if net is None:
            raise ValueError("trainer.compile=true needs the net to compile")
        net.compile()
        if rank_zero_only.rank == 0:
            print("trainer.compile=true: the net is compiled on its first batches (this takes a while)")
    return cfg


def to_channels_last(net: nn.Module) -> nn.Module:
    """``net`` with its 5-D parameters and buffers (3D convolution weights) in ``channels_last_3d``;
    other tensors (2D convolutions, linear layers) unchanged. In place; returns ``net``."""
    with torch.no_grad():
        for t in [*net.parameters(), *net.buffers()]:
            if t.dim() == 5:
                t.data = t.data.contiguous(memory_format=torch.channels_last_3d)
    return net
