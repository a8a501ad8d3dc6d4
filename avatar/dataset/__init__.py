"""Datasets of avatars: sliders, meshes, textures and renders in one Zarr v3 store.

    import avatar.dataset
    cfg = avatar.dataset.load_config("configs/datasets/faces-10k.yaml")
    avatar.dataset.generate(cfg, workers=2)        # or: avatar generate configs/datasets/faces-10k.yaml
    ds = avatar.dataset.open("data/faces-10k.zarr")
    ds.sliders, ds.slider_names, ds.sliders_normalized   # (N, P) numpy
    ds.vertices, ds.textures, ds.renders                 # lazy dask arrays over the zarr chunks
    ds.faces, ds.uv, ds.parts, ds.rig, ds.card

    S = avatar.dataset.sample(cfg, 0, 100)         # the slider rows alone, no meshes

The store needs nothing of this package to read: ``zarr.open_group(path)``,
``dask.array.from_zarr`` and ``xarray.open_zarr`` all work on it (every array
carries dimension names).
"""
from __future__ import annotations

from .config import SAMPLERS, DatasetConfig, config_from_text, load_config
from .generate import DatasetError, Summary, compute_shard, generate, write_shard
from .samplers import Sampler, sample
from .store import Dataset, open, verify

__all__ = ["SAMPLERS", "Dataset", "DatasetConfig", "DatasetError", "Sampler", "Summary", "compute_shard",
           "config_from_text", "generate", "load_config", "open", "sample", "verify", "write_shard"]
