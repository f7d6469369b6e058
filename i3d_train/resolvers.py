"""OmegaConf resolvers used by the configs in ``conf/`` (registered when ``i3d_train`` is imported).

- ``${channels:rgb}`` -> 3, ``${channels:flow}`` -> 2: input channels of a modality, so that
  ``model=i3d model.modality=flow`` builds a 2-channel I3D fed with flow clips.
- ``${checkpoint_filename:val/loss}`` -> ``epoch{epoch:03d}-loss{val/loss:.4f}``: the best checkpoint is
  named after the metric that chose it (``epoch003-loss0.1234.ckpt``, ``epoch016-acc1.0000.ckpt``).
- ``${run_time:%Y-%m-%d_%H-%M-%S}``: the run's start time, the same in every process of a multi-GPU run
  (``i3d_train.runtime.distributed``), for Hydra's run and sweep folders.
"""

from __future__ import annotations

from omegaconf import OmegaConf

MODALITY_CHANNELS = {"rgb": 3, "flow": 2}


def modality_channels(modality: str) -> int:
    if modality not in MODALITY_CHANNELS:
        raise ValueError(f"unknown modality {modality!r}; expected one of {sorted(MODALITY_CHANNELS)}")
    return MODALITY_CHANNELS[modality]


def checkpoint_filename(monitor: str) -> str:
    """ModelCheckpoint's ``filename`` for a monitored metric: ``acc`` for accuracies, else the metric's
    last name (``val/loss`` -> ``loss``)."""
    name = monitor.rsplit("/", 1)[-1]
    tag = "acc" if "acc" in name else name
    return f"epoch{{epoch:03d}}-{tag}{{{monitor}:.4f}}"


def register_resolvers() -> None:
    from i3d_train.runtime.distributed import run_time

    for name, fn in (
        ("channels", modality_channels),
        ("checkpoint_filename", checkpoint_filename),
        ("run_time", run_time),
    ):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)
