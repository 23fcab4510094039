"""Every on-disk format of a run, one module a kind, each the only reader and writer of it.

- :mod:`atlas.store.base`: opening any store URL, arrays with named dimensions, config
  records;
- :mod:`atlas.store.records`: the typed record (:class:`~atlas.store.records.Record`) by
  which each module below declares its arrays, their dimensions and dtypes, once;
- :mod:`atlas.store.run`: what extraction writes (activations, attributions, image index);
- :mod:`atlas.store.layout`, :mod:`atlas.store.grid`: what reduce and grid derive;
- :mod:`atlas.store.render`: the icon cache and ``render.zarr``;
- :mod:`atlas.store.image_map`: the image map and its thumbnails;
- :mod:`atlas.store.classes`: class atlases, their report, and measures of them;
- :mod:`atlas.store.reports`: the index of an attribution-report folder.
- :mod:`atlas.store.shape_bias`: a model's shape bias on a cue-conflict set.
"""

from atlas.channel_tops import ChannelTops
from atlas.geometry import Box, LayerGeometry
from atlas.store.base import CONFIG_RECORD, open_group, record_config
from atlas.store.run import (
    ImageIndex,
    RunLayer,
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
    "CONFIG_RECORD",
    "Box",
    "ChannelTops",
    "ImageIndex",
    "LayerGeometry",
    "RunLayer",
    "RunLayout",
    "RunStore",
    "StoreLayerError",
    "StoreMismatchError",
    "create_run",
    "open_group",
    "open_run",
    "record_config",
    "sibling",
    "write_skipped_csv",
]
