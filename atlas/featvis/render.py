"""The render loop: optimize a batch of images to maximize an objective.

Lucent's ``render_vis`` optimizes one objective per call; here every batch element has
its own target and its own seed, and one forward/backward pass serves them all. Hooks
are removed and the model's parameters restored whatever happens; the device is the
model's; nothing is swallowed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from atlas.config import Recipe
from atlas.featvis import warps
from atlas.featvis.fold import fold_batchnorm
from atlas.featvis.objectives import Objective
from atlas.featvis.params import fft_image
from atlas.featvis.relu import Switch, redirect_relus
from atlas.featvis.seeding import seeded
from atlas.layers import Hooks, get_layer
from atlas.models import LoadedModel, channels_last_input

# Lucent's standard set (pad, jitter, scale, rotate, jitter): its numbers, cheaper.
STANDARD_TRANSFORMS = (warps.LucentSet(),)
LUCENT_SIZE = 224  # the input size Lucent's standard set was tuned for (Lucid's InceptionV1)


def transforms_for(recipe: Recipe) -> list[Callable]:
    """The robustness transforms ``recipe.transforms`` names, for its icons of
    ``recipe.icon_size`` px.

    ``affine`` (the default): one mild random warp per step (:class:`warps.RandomAffine`,
    its amounts the recipe's ``shift``, ``scale`` and ``rotate``, framed by ``pad`` px of
    grey), which keeps the layer's central position over the icon's centre.

    ``standard``: Lucent's standard set as it is (its maps, applied as matrices:
    :class:`warps.LucentSet`). ``scaled``: the same set with its pixel
    amounts (padding 12, jitter 8 then 4) scaled by ``size / 224``, so an icon is shaken
    by the same fraction of its side as a 224 px one; at 224 px it is Lucent's set. On a
    64 px icon the standard jitter moves the image by up to a fifth of its side, more
    than a late layer's central position tolerates: the icons reach a fraction of the
    objective (see tests/featvis/test_render.py). ``none``: no transforms."""
    kind = recipe.transforms
    if kind == "none":
        return []
    if kind == "affine":
        return [
            warps.RandomAffine(recipe.shift, tuple(recipe.scale), recipe.rotate, pad=recipe.pad)
        ]
    if kind == "standard":
        return list(STANDARD_TRANSFORMS)
    factor = recipe.icon_size / LUCENT_SIZE
    pad, first, last = (round(amount * factor) for amount in (12, 8, 4))
    return [warps.LucentSet(pad=pad, first_jitter=first, last_jitter=last)]


def _then_resize(transform: Callable, size: int) -> Callable:
    def apply(image: torch.Tensor) -> torch.Tensor:
        image = transform(image)
        if image.shape[-1] == size and image.shape[-2] == size:
            return image
        return torch.nn.functional.interpolate(
            image, size=(size, size), mode="bilinear", align_corners=False
        )

    return apply


def robust_warp(recipe: Recipe) -> warps.RandomAffine:
    """The random warps a finished icon is measured under (the recipe's ``robust_shift``,
    ``robust_scale`` and ``robust_rotate``): stronger than a mild recipe's, so that an
    icon which only works pixel-exact (a high-frequency pattern fitted to one position)
    falls below one whose feature survives being moved, zoomed and turned."""
    return warps.RandomAffine(recipe.robust_shift, tuple(recipe.robust_scale), recipe.robust_rotate)


ROBUST_SEED = 20190306  # the robust warps' draws: the same for every icon and recipe


class _Enough(Exception):
    """Raised by a hook once every layer an objective reads has run."""


@contextmanager
def _stop_after(module: torch.nn.Module, layers: Sequence[str]) -> Iterator[None]:
    """Stop ``module``'s forward passes (by :class:`_Enough`) once every layer of
    ``layers`` has given its output: the rest of the network cannot change an objective
    that reads only those layers (MobileNetV2's forward to ``features.6`` is a fifth of
    the whole)."""
    seen: set[str] = set()

    def hook(name: str, *_) -> None:
        seen.add(name)
        if len(seen) == len(layers):
            seen.clear()
            raise _Enough

    with Hooks() as hooks:
        for name in layers:
            hooks.forward(get_layer(module, name), partial(hook, name))
        yield


@dataclass
class RenderResult:
    images: np.ndarray  # (B, H, W, 3) float32 in [0, 1]
    values: np.ndarray  # (B,) objective of each final image, untransformed
    history: np.ndarray  # (recorded steps, B) objective during the optimization
    # (B,) the mean objective of each final image under the robust warps (NaN: not measured)
    robust_values: np.ndarray | None = None


def render(
    model: LoadedModel,
    objective: Objective,
    recipe: Recipe,
    *,
    seeds: Sequence[int],
    transforms: Sequence[Callable] | None = None,
    record_every: int = 0,
    redirect_relu_steps: int = 0,
) -> RenderResult:
    """Optimize ``len(seeds)`` images of ``recipe.icon_size`` px to maximize ``objective``
    (one score per element): ``recipe.steps`` steps of Adam (step size ``recipe.lr``,
    constant or falling along a cosine, ``recipe.lr_schedule``) through the recipe's
    transforms (``transforms``: others instead). Element b starts from ``seeds[b]``; the
    transforms' random draws come from ``recipe.seed`` and are shared by the batch, so an
    element's result does not depend on the rest of its batch. For the first
    ``redirect_relu_steps`` steps the ReLUs pass gradient to units that start dead, as
    Lucid's do (:mod:`atlas.featvis.relu`). ``record_every``: keep the objective every so
    many steps, in ``history``. ``robust_values``: each final image's mean objective
    under ``recipe.robust_samples`` draws of :func:`robust_warp` (the same draws for every
    image)."""
    size, steps, lr = recipe.icon_size, recipe.steps, recipe.lr
    if transforms is None:
        transforms = transforms_for(recipe)
    # Batch norms folded into their convolutions: the same network, an eighth faster.
    module, _ = fold_batchnorm(model.module, objective.layers)
    if module is not model.module:
        model = dataclasses.replace(model, module=module)
    device = model.device
    params, image_f = fft_image(size, seeds=seeds, device=device)
    optimizer = torch.optim.Adam(params, lr=lr)
    # "cosine": the step size falls from lr to a twentieth of it, settling the details.
    schedule = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps, eta_min=lr / 20)
        if recipe.lr_schedule == "cosine"
        else None
    )
    transform = seeded(list(transforms), recipe.seed)
    measure = seeded([robust_warp(recipe)], ROBUST_SEED)
    if model.fixed_size:  # the transforms change the size; this network takes one only
        transform = _then_resize(transform, model.preprocessing.input_size)
        measure = _then_resize(measure, model.preprocessing.input_size)
    read = sorted(objective.layers)
    history = []
    frozen = [(p, p.requires_grad) for p in module.parameters()]
    was_training = module.training
    module.eval()
    try:
        for p, _ in frozen:
            p.requires_grad_(False)  # gradients for the image only
        with (
            (
                redirect_relus(module, model.family.gates.modules)
                if redirect_relu_steps
                else nullcontext(Switch(False))
            ) as relus,
            model.capture(read, detach=False) as activations,
            nullcontext() if objective.uses_output or not read else _stop_after(module, read),
        ):

            def score(images: torch.Tensor) -> torch.Tensor:
                inputs = model.preprocessing.normalize(images)
                output = None
                with suppress(_Enough):  # stopped once the objective's layers have run
                    # Channels-last runs convolutions faster on the CPU and with cuDNN.
                    output = module(channels_last_input(inputs))
                return objective(activations, output)

            for step in range(steps):
                relus.active = step < redirect_relu_steps
                optimizer.zero_grad(set_to_none=True)
                values = score(transform(image_f()))
                (-values.sum()).backward()
                optimizer.step()
                if schedule is not None:
                    schedule.step()
                if record_every and step % record_every == 0:
                    history.append(values.detach().cpu().numpy())
            with torch.no_grad():
                final = image_f()
                values = score(final)
                robust = [score(measure(final)) for _ in range(recipe.robust_samples)]
    finally:
        for p, flag in frozen:
            p.requires_grad_(flag)
        module.train(was_training)
    return RenderResult(
        images=final.permute(0, 2, 3, 1).cpu().numpy().astype(np.float32),
        values=values.detach().cpu().numpy(),
        history=np.array(history, dtype=np.float32).reshape(len(history), len(seeds)),
        robust_values=(
            torch.stack(robust).mean(dim=0).cpu().numpy()
            if robust
            else np.full(len(seeds), np.nan, np.float32)
        ),
    )
