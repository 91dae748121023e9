"""Start a narrower SparseUNet from a wider one's weights: keep, in each feature space of the U-Net,
the channels whose batch-norm scales are largest (network slimming, Liu et al. 2017), and slice every
weight that reads or writes that space accordingly.

    state = narrow_unet_state(wide_state, (32, 64, 96, 128), (24, 48, 96, 128))
    narrow_unet.load_state_dict(state)

A channel whose batch norm scales it to ~0 contributes ~nothing downstream, so dropping the least
scaled ones changes the network least; fine-tuning recovers the rest. Weights are in pcseg's layout
(sparse convs [kernel volume, in, out], the decoder's shortcut a Linear [out, in]).
"""
from __future__ import annotations

from typing import Sequence

import torch


def _space_names(levels: int, blocks: int) -> dict[str, list[str]]:
    """Each feature space of the U-Net and the batch norms that write it (their scales rank its channels)."""
    spaces: dict[str, list[str]] = {}
    for i in range(levels):
        spaces[f"S{i}"] = ["stem.1" if i == 0 else f"downs.{i - 1}.1"] + \
                          [f"encoders.{i}.{j}.conv2.1" for j in range(blocks)]  # the residual sums share it
        for j in range(blocks):
            spaces[f"E{i}.{j}"] = [f"encoders.{i}.{j}.conv1.1"]
        if i < levels - 1:
            spaces[f"U{i}"] = [f"up_norms.{i}.0"]
            spaces[f"D{i}"] = [f"decoders.{i}.{j}.conv2.1" for j in range(blocks)]
            for j in range(blocks):
                spaces[f"F{i}.{j}"] = [f"decoders.{i}.{j}.conv1.1"]
    return spaces


def _roles(levels: int, blocks: int) -> dict[str, tuple[str | None, str]]:
    """Module name -> (space it reads, space it writes); None: the network's input (never narrowed);
    'cat{i}': decoder i's input, the up-sampled features and the skip side by side."""
    roles: dict[str, tuple[str | None, str]] = {"stem.0": (None, "S0"), "stem.1": ("S0", "S0")}
    for i in range(levels):
        for j in range(blocks):
            e = f"encoders.{i}.{j}"
            roles[f"{e}.conv1.0"], roles[f"{e}.conv1.1"] = (f"S{i}", f"E{i}.{j}"), (f"E{i}.{j}", f"E{i}.{j}")
            roles[f"{e}.conv2.0"], roles[f"{e}.conv2.1"] = (f"E{i}.{j}", f"S{i}"), (f"S{i}", f"S{i}")
        if i == levels - 1:
            continue
        roles[f"downs.{i}.0"], roles[f"downs.{i}.1"] = (f"S{i}", f"S{i + 1}"), (f"S{i + 1}", f"S{i + 1}")
        below = f"D{i + 1}" if i + 1 < levels - 1 else f"S{levels - 1}"  # what the level below hands up
        roles[f"ups.{i}"], roles[f"up_norms.{i}.0"] = (below, f"U{i}"), (f"U{i}", f"U{i}")
        for j in range(blocks):
            d = f"decoders.{i}.{j}"
            first_in = f"cat{i}" if j == 0 else f"D{i}"
            roles[f"{d}.conv1.0"], roles[f"{d}.conv1.1"] = (first_in, f"F{i}.{j}"), (f"F{i}.{j}", f"F{i}.{j}")
            roles[f"{d}.conv2.0"], roles[f"{d}.conv2.1"] = (f"F{i}.{j}", f"D{i}"), (f"D{i}", f"D{i}")
            if j == 0:
                roles[f"{d}.shortcut"] = (f"cat{i}", f"D{i}")
    return roles


def kept_channels(state: dict[str, torch.Tensor], old_widths: Sequence[int], new_widths: Sequence[int],
                  blocks: int = 1, prefix: str = "") -> dict[str, torch.Tensor]:
    """Space name -> LongTensor of the old channels kept (sorted), the largest summed |batch-norm scale|."""
    levels = len(old_widths)
    kept: dict[str, torch.Tensor] = {}
    for name, writers in _space_names(levels, blocks).items():
        level = int(name[1:].split(".")[0])
        old, new = old_widths[level], new_widths[level]
        score = sum(state[f"{prefix}{w}.weight"].detach().abs().float() for w in writers)
        kept[name] = torch.topk(score, new).indices.sort().values if new < old else torch.arange(old)
    for i in range(levels - 1):  # decoder i reads [up-sampled U_i, skip S_i]
        kept[f"cat{i}"] = torch.cat([kept[f"U{i}"], old_widths[i] + kept[f"S{i}"]])
    return kept


def narrows(old_widths: Sequence[int], new_widths: Sequence[int]) -> bool:
    """Whether a U-Net of ``new_widths`` can start from one of ``old_widths``: as many levels, none wider."""
    old_widths, new_widths = list(old_widths), list(new_widths)
    return len(old_widths) == len(new_widths) and all(1 <= n <= o for o, n in zip(old_widths, new_widths))


def narrow_unet_state(state: dict[str, torch.Tensor], old_widths: Sequence[int], new_widths: Sequence[int],
                      blocks: int = 1, prefix: str = "") -> dict[str, torch.Tensor]:
    """The SparseUNet weights ``state`` (keys under ``prefix``) of ``old_widths`` cut to ``new_widths``
    (as many levels, each at most as wide); keys outside the U-Net are returned as they are."""
    old_widths, new_widths = tuple(old_widths), tuple(new_widths)
    if not narrows(old_widths, new_widths):
        raise ValueError(f"narrow_unet_state: widths {list(new_widths)} do not narrow {list(old_widths)} "
                         "(as many levels, none wider)")
    kept = kept_channels(state, old_widths, new_widths, blocks, prefix)
    roles = _roles(len(old_widths), blocks)
    out = {}
    for key, value in state.items():
        module, _, leaf = key[len(prefix):].rpartition(".") if key.startswith(prefix) else ("", "", "")
        if module not in roles or leaf == "num_batches_tracked":
            out[key] = value
            continue
        reads, writes = roles[module]
        if module.endswith("shortcut"):               # nn.Linear: [out, in]
            out[key] = value[kept[writes]][:, kept[reads]]
        elif value.dim() == 3:                         # sparse conv: [volume, in, out]
            value = value[:, kept[reads]] if reads is not None else value
            out[key] = value[:, :, kept[writes]]
        else:                                          # batch norm (and conv bias): per output channel
            out[key] = value[kept[writes]]
    return out
