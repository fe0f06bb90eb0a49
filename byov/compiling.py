"""`--compile`: torch.compile of the trainable part of a method (docs/gpu.md#compile).

`nn.Module.compile` compiles a module's forward in place: the module tree, parameter names,
state_dict keys and checkpoints stay exactly as without it, so a compiled run resumes an
uncompiled one and vice versa. The first steps are slow (compilation); the maths is the same
graph, so losses agree with the eager run to rounding (fused kernels reorder float sums).
"""
from __future__ import annotations

import torch.nn as nn


def trainable_children(method: nn.Module) -> list[str]:
    """Names of the method's direct submodules that hold a parameter the optimizer updates:
    BYOV's encoder/decoder `model` (and its `frame_encoder` when not frozen), AE2's `embedder`."""
    return [name for name, child in method.named_children()
            if any(p.requires_grad for p in child.parameters())]


def compile_trainable(method: nn.Module, **options) -> list[str]:
    """Compile (in place) each trainable direct submodule of `method`; returns their names.

    options: keywords of torch.compile (backend, mode, dynamic, ...).
    Raises:
        ValueError: the method has no trainable submodule (nothing would be compiled).
    """
    names = trainable_children(method)
    if not names:
        raise ValueError(f"--compile: {type(method).__name__} has no trainable submodule to "
                         f"compile")
    for name in names:
        getattr(method, name).compile(**options)
    return names
