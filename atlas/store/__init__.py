"""The Zarr stores of a run: the one package that knows array names and layouts.

:mod:`atlas.store.run` holds what extraction writes (activations, attributions, the
image index); :mod:`atlas.store.maps` what the layout and grid stages derive from it.
"""

from atlas.store.run import (
    LayerGeometry,
    RunLayout,
    RunStore,
    StoreLayerError,
    StoreMismatchError,
    create_run,
    open_run,
    sibling,
    write_skipped_csv,
)

__all__ = [
    "LayerGeometry",
    "RunLayout",
    "RunStore",
    "StoreLayerError",
    "StoreMismatchError",
    "create_run",
    "open_run",
    "sibling",
    "write_skipped_csv",
]
