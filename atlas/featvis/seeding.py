"""Random transforms that stay deterministic when renders run in parallel threads.

Our transforms (:class:`atlas.featvis.warps.Drawn`), like Lucent's, draw their randomness
from NumPy's global generator. A render gets a ``RandomState`` of its own, swapped in
under a lock around each draw (:func:`seeded`), so concurrent renders in threads give the
same icons as one render alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import numpy as np
import torch

_LOCK = threading.RLock()  # guards NumPy's global generator while it is swapped


def seeded(transforms: Sequence[Callable], seed: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Compose transforms so that their random draws come from a generator of their own,
    seeded with ``seed``. Transforms that draw as they run (Lucent's) run whole under the
    lock; ours (:class:`atlas.featvis.warps.Drawn`) only draw under it, and their warps
    run outside it, in parallel with other threads."""
    state = np.random.RandomState(seed).get_state()
    drawn = all(hasattr(transform, "draw") for transform in transforms)

    def apply(image: torch.Tensor) -> torch.Tensor:
        nonlocal state
        warps = []
        with _LOCK:
            saved = np.random.get_state()
            np.random.set_state(state)
            try:
                shape = tuple(image.shape[-2:])
                for transform in transforms:
                    if drawn:
                        warps.append(transform.draw(shape))
                        shape = warps[-1].shape_out(shape)
                    else:
                        image = transform(image)
            finally:
                state = np.random.get_state()
                np.random.set_state(saved)
        for warp in warps:
            image = warp(image)
        return image

    return apply
