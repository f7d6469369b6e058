"""OmegaConf resolvers used by the configs in ``conf/`` (registered when ``i3d_train`` is imported).

- ``${channels:rgb}`` -> 3, ``${channels:flow}`` -> 2: input channels of a modality, so that
  ``model=i3d model.modality=flow`` builds a 2-channel I3D fed with flow clips.
"""

from __future__ import annotations

from omegaconf import OmegaConf

MODALITY_CHANNELS = {"rgb": 3, "flow": 2}


def modality_channels(modality: str) -> int:
    if modality not in MODALITY_CHANNELS:
        raise ValueError(f"unknown modality {modality!r}; expected one of {sorted(MODALITY_CHANNELS)}")
    return MODALITY_CHANNELS[modality]


def register_resolvers() -> None:
    if not OmegaConf.has_resolver("channels"):
        OmegaConf.register_new_resolver("channels", modality_channels)
