"""Run configuration: YAML files validated once into typed sections.

A config file has one section per pipeline stage plus the model spec. It is checked
when loaded (unknown keys and wrong types are errors naming the key); past that point
code receives these frozen objects, never a raw dict. Defaults live here, beside the
field that declares them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, Self, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from atlas.errors import ConfigError, choices_hint
from atlas.version import package_version

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def updated(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied, validated like a config file (a
        :class:`ConfigError` names a bad key or value)."""
        if not changes:
            return self
        try:
            return type(self).model_validate({**self.model_dump(), **changes})
        except ValidationError as err:
            reasons = "; ".join(_describe(e, type(self)) for e in err.errors())
            raise ConfigError(f"{type(self).__name__}: {reasons}") from None


class ModelSpec(Section):
    """Which network to load and how its inputs are prepared.

    ``arch`` names the model in its family (:mod:`atlas.models`): a torchvision
    classification model name (``resnet18``, ``googlenet``), ``timm:<name>``,
    ``hf:<folder or hub id>`` (a Hugging Face image classifier) or
    ``package.module:callable``; it may be left out when ``weights`` is a checkpoint
    written by ``atlas train``, which records it. ``weights`` is a local file
    (``.pt``/``.pth``/``.safetensors``), a torchvision weights name (``DEFAULT``,
    ``IMAGENET1K_V1``), ``pretrained`` (timm's or Hugging Face's own), all downloaded so
    only where there is internet, or null for random initialization. Preprocessing fields
    left null come from the checkpoint, then the family (torchvision's weights, timm's data
    config, the Hugging Face image processor), then ImageNet's 224 px statistics.
    """

    arch: str | None = Field(
        default=None,
        description="a torchvision model name, timm:<name>, hf:<folder or hub id> or "
        "package.module:callable; null when weights is a checkpoint of atlas train",
    )
    weights: str | None = Field(
        default=None,
        description="a local .pt/.pth/.safetensors file, a torchvision weights name, "
        "'pretrained', or null (random weights)",
    )
    num_classes: PositiveInt | None = Field(
        default=None,
        description="classes of the head (default: the checkpoint's, then the family's)",
    )
    input_size: PositiveInt | None = Field(
        default=None,
        description="side of the square input in px (default: checkpoint, family, then 224)",
    )
    resize_size: PositiveInt | None = Field(
        default=None, description="shorter side before the center crop; default: input_size"
    )
    mean: tuple[float, float, float] | None = Field(
        default=None,
        description="per-channel normalization mean (default: checkpoint, family, then ImageNet's)",
    )
    std: tuple[float, float, float] | None = Field(
        default=None, description="per-channel normalization std (default: as mean)"
    )
    class_names: list[str] | str | None = Field(
        default=None, description="a list, or a text file with one name per line"
    )
    kwargs: dict[str, Any] = Field(
        default_factory=dict, description="extra keyword arguments for the model builder"
    )

    @field_validator("std")
    @classmethod
    def _std_positive(cls, value):
        if value is not None and min(value) <= 0:
            raise ValueError("std values must be positive")
        return value


class DataConfig(Section):
    """The generated demo world (``atlas make-data``)."""

    seed: int = Field(default=0, description="seed of the generated world")
    image_size: PositiveInt = Field(default=64, description="side of each generated image in px")
    train_per_class: PositiveInt = Field(default=1000, description="training images per class")
    test_per_class: PositiveInt = Field(
        default=200, description="test images per class, on the habitats of training"
    )
    swapped_per_class: PositiveInt = Field(
        default=200, description="test images per class with the look-alikes' habitats swapped"
    )
    confounded: bool = Field(
        default=True, description="false: the look-alikes live on every habitat (no shortcut)"
    )
    cue_conflict_per_pair: NonNegativeInt = Field(
        default=5,
        description="cue-conflict images (a class's shape with another's texture) per pair",
    )


class TrainConfig(Section):
    """Training or fine-tuning a classifier (``atlas train``)."""

    seed: int = Field(default=0, description="seed of initialization, shuffling and augmentation")
    epochs: PositiveInt = Field(default=6, description="passes over the training set")
    batch_size: PositiveInt = Field(default=128, description="images per optimization step")
    optimizer: Literal["adamw", "sgd"] = Field(default="adamw", description="the optimizer")
    lr: float = Field(default=3e-3, gt=0, description="learning rate")
    weight_decay: float = Field(default=5e-4, ge=0, description="weight decay")
    label_smoothing: float = Field(
        default=0.0, ge=0, lt=1, description="label smoothing of the cross-entropy targets"
    )
    freeze: Literal["none", "backbone"] = Field(
        default="none", description="'backbone' trains only the classification head"
    )
    augment: bool = Field(default=True, description="random horizontal flips and shifts")
    mix: Literal["none", "cutmix", "mixup"] = Field(
        default="none",
        description="mix each batch: paste a box of another image (CutMix) or blend two "
        "images (MixUp), the targets mixed in proportion",
    )
    mix_alpha: float = Field(default=1.0, gt=0, description="Beta(alpha, alpha) of the mixing")
    device: str = Field(default="auto", description="'auto', 'cpu', 'cuda' or 'cuda:N'")
    precision: Literal["fp32", "bf16"] = Field(
        default="fp32",
        description="'bf16' runs the forward and backward passes in bfloat16 (autocast; the "
        "weights and the optimizer stay fp32): about twice as fast on CPUs with AMX or "
        "AVX-512 BF16 and on recent GPUs, slower on CPUs without them",
    )
    max_memory_gb: float = Field(
        default=4.0, gt=0, description="the decoded training set must fit in this much memory"
    )


class ExtractConfig(Section):
    """Activations of one or more layers into the run's Zarr store (``atlas extract``).

    Keys marked "operational" change how fast the work runs, not its result, so they are
    left out of the store's config hash: a resumed run may change them.
    """

    layer: str | list[str] = Field(description="layer name, or a list of them")
    sampling: Literal["random", "center", "all", "mean"] = Field(
        default="random",
        description="which spatial positions become samples: one random position per image "
        "(away from the border; the Distill default), the center, every position "
        "(up to max_positions), or the spatial mean",
    )
    border: int = Field(
        default=1, ge=0, description="'random' keeps this many positions from the edge"
    )
    max_positions: PositiveInt = Field(default=64, description="cap of samples per image for 'all'")
    seed: int = Field(
        default=0, description="seed of the positions drawn per image ('random' sampling)"
    )
    attribution: Literal["auto", "all", "topk", "off"] = Field(
        default="auto",
        description="class attribution per sample: every class, the top-k predicted classes, "
        "or none; 'auto' is 'all' up to 32 classes, else 'topk'",
    )
    attribution_k: PositiveInt = Field(
        default=5, description="classes attributed per sample when attribution is 'topk'"
    )
    topk: PositiveInt = Field(default=5, description="predictions recorded per sample")
    channel_top: NonNegativeInt = Field(
        default=9,
        description="per channel of a spatial layer, the images where it is highest (its "
        "largest value over the whole map; Zeiler & Fergus's exemplars); 0: off",
    )
    limit: PositiveInt | None = Field(default=None, description="use only the first N images")
    max_pixels: PositiveInt = Field(
        default=89_478_485, description="larger images are skipped as bombs"
    )
    chunk_size: PositiveInt = Field(default=1024, description="images per task and per Zarr chunk")
    batch_size: PositiveInt = Field(default=128, description="operational: images per forward pass")
    workers: PositiveInt | None = Field(
        default=None, description="operational: Dask workers (default: cores)"
    )
    threads_per_worker: PositiveInt = Field(
        default=1, description="operational: torch threads per worker"
    )
    decode_threads: PositiveInt = Field(
        default=1, description="operational: decoding threads per worker"
    )
    processes: bool = Field(
        default=False,
        description="operational: local workers as processes instead of threads (threads "
        "start at once and share the imported model code; processes isolate memory)",
    )
    device: str = Field(default="auto", description="operational: 'auto', 'cpu', 'cuda'")

    OPERATIONAL: ClassVar[tuple[str, ...]] = (
        "batch_size",
        "workers",
        "threads_per_worker",
        "decode_threads",
        "processes",
        "device",
    )

    @property
    def layers(self) -> list[str]:
        return [self.layer] if isinstance(self.layer, str) else list(self.layer)

    @field_validator("attribution", mode="before")
    @classmethod
    def _yaml_off(cls, value):
        return "off" if value is False else value  # YAML reads a bare `off` as false

    @field_validator("layer")
    @classmethod
    def _layer_given(cls, value):
        names = [value] if isinstance(value, str) else value
        if not names or any(not n for n in names) or len(set(names)) != len(names):
            raise ValueError("give one layer name or a list of distinct names")
        return value


class ReduceConfig(Section):
    """The 2-D layout of one layer's activations (``atlas reduce``); see atlas/reduce.py."""

    layer: str | None = Field(default=None, description="default: the store's only layer")
    n_neighbors: int = Field(
        default=15,
        ge=2,
        description="UMAP's neighbours per point: larger keeps more global structure",
    )
    min_dist: float = Field(
        default=0.1, ge=0, description="UMAP's smallest distance between laid-out points"
    )
    metric: Literal["cosine", "euclidean"] = Field(
        default="cosine", description="distance between activation vectors"
    )
    seed: int = Field(default=0, description="seed of the layout")
    pca_dims: PositiveInt = Field(default=64, description="principal components kept before kNN")
    exact_below: int = Field(
        default=20_000,
        ge=200,
        description="up to this many distinct vectors: exact neighbours and umap-learn's own "
        "fit; above: IVF neighbours, a landmark start, then epochs over every vector",
    )
    nprobe: PositiveInt = Field(default=8, description="IVF cells searched per vector")
    n_epochs: PositiveInt | None = Field(
        default=None,
        description="epochs over the whole graph; default: umap-learn's (500 up to 10,000 "
        "vectors, 200 above) up to exact_below, 40 from the landmark start",
    )
    clip: tuple[float, float] = Field(default=(1.0, 99.0), description="percentiles kept per axis")
    clip_widen: float = Field(
        default=0.1, ge=0, description="share of the percentile range added on each side"
    )
    margin: float = Field(
        default=0.05,
        ge=0,
        lt=0.5,
        description="share of the unit square left empty on each side of the layout",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_fit_size(cls, data):
        if isinstance(data, dict) and "fit_size" in data:
            raise ValueError(
                "fit_size is gone: every vector is now optimised against its own neighbours "
                "(docs/stages.md, atlas reduce); delete the key"
            )
        return data


class GridConfig(Section):
    """Cells at several zoom levels (``atlas grid``); see atlas/grid.py."""

    levels: list[PositiveInt] = Field(
        default_factory=lambda: [10, 20, 40], description="cells per side; each divides the largest"
    )
    min_count: PositiveInt = Field(default=3, description="cells with fewer samples stay empty")
    top_k: PositiveInt = Field(default=5, description="top classes and labels kept per cell")
    exemplars: int = Field(default=8, ge=0, description="samples nearest each cell's mean")

    @field_validator("levels")
    @classmethod
    def _nesting(cls, levels):
        finest = max(levels)
        bad = [v for v in levels if finest % v]
        if bad:
            raise ValueError(f"level {bad[0]} does not divide the finest level {finest}")
        return sorted(set(levels))


class Recipe(Section):
    """How an icon is optimized: the one recipe of the render path (``atlas/render.py``),
    whatever the icon maximizes. The sections that render (render, report) are recipes,
    each with its own defaults; the channel pages use the render section's."""

    icon_size: PositiveInt = Field(
        default=64,
        description="icon side in px: best the receptive field of the layer's central "
        "position (pixels outside it cannot change the objective and stay grey)",
    )
    steps: PositiveInt = Field(default=128, description="optimization steps per icon")
    lr: float = Field(default=0.1, gt=0, description="Adam's step size")
    lr_schedule: Literal["cosine", "constant"] = Field(
        default="cosine", description="step size constant, or falling to a twentieth of lr"
    )
    transforms: Literal["affine", "scaled", "standard", "none"] = Field(
        default="affine",
        description="one mild random warp per step (affine: shift, scale, rotate below), "
        "Lucent's standard set with its pixel shifts scaled to the icon size (scaled), as it "
        "is (standard, tuned for 224 px), or none",
    )
    shift: NonNegativeInt = Field(default=1, description="affine: largest shift in px")
    scale: tuple[float, float] = Field(default=(0.95, 1.05), description="affine: zoom range")
    rotate: float = Field(default=5.0, ge=0, description="affine: largest rotation, degrees")
    pad: NonNegativeInt = Field(
        default=0,
        description="affine: a border of initial grey this many px wide around the icon "
        "before each warp (the network sees icon_size + 2 pad px), so that what a shift or "
        "turn moves out of the icon is still seen, as Lucid's atlas pads by 16",
    )
    attempts: PositiveInt = Field(
        default=1,
        description="starts per icon, each from its own seed; the icon keeps the one whose "
        "final objective is highest (Lucid's atlas: best of 4)",
    )
    robust_samples: NonNegativeInt = Field(
        default=16,
        description="measure: random warps each final icon is scored under (robust "
        "objective: the mean of those scores); 0: not measured",
    )
    robust_shift: NonNegativeInt = Field(
        default=8, description="measure: largest shift of the robust warps, px"
    )
    robust_scale: tuple[float, float] = Field(
        default=(0.9, 1.1), description="measure: zoom range of the robust warps"
    )
    robust_rotate: float = Field(
        default=20.0, ge=0, description="measure: largest rotation of the robust warps, degrees"
    )
    seed: int = Field(
        default=0,
        description="of the transforms' draws; channels and classes start from seed + index",
    )
    batch_size: PositiveInt | None = Field(
        default=32, description="operational: icons per optimization (null: all at once)"
    )


class RenderConfig(Recipe):
    """Feature visualization of every grid cell (``atlas render``); see atlas/icons.py.

    Keys listed in ``OPERATIONAL`` change how fast icons are made, which are shown, or how
    they are measured, not what an icon shows, so they are not part of an icon's cache
    key nor of the render store's settings."""

    cossim_pow: float = Field(default=4.0, ge=0, description="weight of direction purity")
    whiten: bool = Field(default=True, description="whiten targets with the layer's statistics")
    levels: list[PositiveInt] | None = Field(default=None, description="default: every grid level")
    tile_size: PositiveInt = Field(default=256, description="deep-zoom tile side in px")
    batch_size: PositiveInt = Field(default=32, description="operational: cells per optimization")
    workers: PositiveInt | None = Field(default=None, description="operational: default cores")
    processes: bool = Field(default=False, description="operational: worker processes")
    device: str = Field(default="auto", description="operational: 'auto', 'cpu', 'cuda'")
    grey_tolerance: float = Field(
        default=0.04,
        gt=0,
        description="a pixel this close to the initial grey (0.5) in every channel counts as "
        "never reached, in the icons' grey share",
    )

    OPERATIONAL: ClassVar[tuple[str, ...]] = (
        "batch_size",
        "workers",
        "processes",
        "device",
        "levels",
        "tile_size",
        "grey_tolerance",
        "robust_samples",
        "robust_shift",
        "robust_scale",
        "robust_rotate",
    )
    # Keys added to the recipe after icons were first cached: left out of an icon's content
    # key (and so of its seed) while at their default, so that icons rendered before they
    # existed keep their keys and their pixels.
    LATER_KEYS: ClassVar[tuple[str, ...]] = ("pad", "attempts")
    # The order the keys had before the recipe was declared apart (Recipe's first, by
    # inheritance): config records and the render store's settings list them so, byte for
    # byte as before; keys added since follow them.
    DUMP_ORDER: ClassVar[tuple[str, ...]] = (
        "icon_size",
        "steps",
        "lr",
        "lr_schedule",
        "cossim_pow",
        "whiten",
        "transforms",
        "shift",
        "scale",
        "rotate",
        "seed",
        "levels",
        "tile_size",
        "batch_size",
        "workers",
        "processes",
        "device",
    )

    def content_settings(self) -> dict[str, Any]:
        """The settings that change what an icon shows (JSON values): every key but the
        operational ones, and the later keys only where they differ from their default."""
        settings = self.model_dump(mode="json", exclude=set(self.OPERATIONAL))
        defaults = type(self).model_fields
        for key in self.LATER_KEYS:
            if getattr(self, key) == defaults[key].default:
                settings.pop(key)
        return settings

    @model_serializer(mode="wrap")
    def _in_dump_order(self, handler):
        dumped = handler(self)
        first = {key: dumped[key] for key in self.DUMP_ORDER if key in dumped}
        return first | {key: value for key, value in dumped.items() if key not in first}


class ChannelsConfig(Section):
    """Channel pages (``atlas channels``): each channel's top dataset images beside its
    feature visualization, rendered with the render section's recipe; see atlas/channels.py."""

    layers: list[str] | None = Field(
        default=None, description="default: every layer whose channel tops were extracted"
    )
    objective: Literal["neuron", "channel"] = Field(
        default="neuron",
        description="what an icon maximizes: the channel at the map's central position (one "
        "receptive field, as the crops beside it show) or its mean over the whole map",
    )
    redirect_relu_steps: NonNegativeInt = Field(
        default=16,
        description="steps at the start in which ReLUs pass gradient to units they block, as "
        "Lucid's render_vis does: a single channel is often dead for the starting image and "
        "would never move without it",
    )


class ClassesConfig(Section):
    """Class atlases, pair and checkpoint comparisons (``atlas classes``); see atlas/classes.py."""

    classes: list[str] | None = Field(default=None, description="default: every class")
    pairs: list[tuple[str, str]] = Field(default_factory=list, description="class pairs to compare")
    mode: Literal["winner", "topn"] = Field(
        default="winner", description="keep samples the class wins, or has in its top_n"
    )
    top_n: PositiveInt = Field(
        default=2, description="mode topn: a sample counts for a class among its top_n attributions"
    )
    layout: Literal["own", "global"] = Field(
        default="own", description="UMAP of the class's samples, or the global layout cut out"
    )
    compare_classes: list[str] | None = Field(
        default=None, description="classes compared across checkpoints (default: classes)"
    )
    size: PositiveInt = Field(default=8, description="cells per side")
    min_count: PositiveInt = Field(default=2, description="cells with fewer samples stay empty")
    exemplars: int = Field(default=6, ge=0, description="exemplar images kept per cell")


class AttributeConfig(Section):
    """Per-image attribution reports (``atlas attribute``); see atlas/reports/."""

    methods: list[str] = Field(
        default_factory=lambda: [
            "saliency",
            "guided_backprop",
            "gradcam",
            "occlusion",
            "integrated_gradients",
        ],
        description="attribution methods to run, in order",
    )
    target: str | int = Field(default="pred", description="'pred', 'label' or a class index")
    gradcam_layer: str | None = Field(
        default=None,
        description="layer of the class activation maps (gradcam, gradcam_pp, scorecam, "
        "layercam, eigencam); default: the output of the last block",
    )
    occlusion_window: PositiveInt | None = Field(
        default=None,
        description="occlusion window side in px; default: the input size / 7, at least 2 "
        "(32 px at 224)",
    )
    occlusion_stride: PositiveInt | None = Field(
        default=None, description="px between occlusion windows; default: half the window"
    )
    occlusion_baseline: float = Field(
        default=0.0, description="occlusion fill value, in normalized input units"
    )
    perturbations_per_eval: PositiveInt = Field(default=64, description="occlusion batch (memory)")
    ig_steps: PositiveInt = Field(
        default=32, description="integrated gradients: steps from the black image"
    )
    smoothgrad_samples: PositiveInt = Field(default=16, description="SmoothGrad: noisy copies")
    smoothgrad_noise: float = Field(
        default=0.15, gt=0, description="SmoothGrad: noise std, a share of the input's range"
    )
    smoothgrad_seed: int = Field(default=0, description="SmoothGrad: seed of the noise draws")
    internal_batch_size: PositiveInt = Field(
        default=8,
        description="integrated gradients: images per forward/backward pass (on a 2-core "
        "CPU, 8 of 224 px take a third of the time 32 do: the passes fit the caches)",
    )
    layers: list[str] = Field(default_factory=list, description="layers shown as activation grids")
    channels_shown: PositiveInt = Field(
        default=16, description="channels drawn in each activation grid"
    )
    randomize_layers: PositiveInt | None = Field(
        default=None,
        description="blocks re-initialized one by one, top down, in the cascading "
        "randomization check (default: every block)",
    )
    randomize_methods: list[str] | None = Field(
        default=None,
        description="methods given the cascading randomization check (default: every "
        "method run; the check reruns each method once per randomized block)",
    )
    randomization_flag: float = Field(
        default=0.7,
        description="flag maps whose rank correlation with the original is still at least "
        "this after the cascade",
    )
    deletion_steps: NonNegativeInt = Field(
        default=16, description="steps of each map's deletion and insertion curves (RISE); 0: none"
    )
    blocks_layer: str | None = Field(
        default=None,
        description="layer of each report's Building Blocks section (atlas.building_blocks: "
        "spatial attribution, neuron groups, semantic dictionary); null: none. The article's "
        "layers are non-negative (after a ReLU); a linear bottleneck's output is signed, so on "
        "MobileNetV2 a block's expansion (features.10.conv.0) is the closer match",
    )
    blocks_groups: PositiveInt = Field(
        default=6, description="neuron groups (NMF components) per image, 6 as in the article"
    )
    blocks_top_channels: PositiveInt = Field(
        default=4, description="channels per position in the semantic dictionary"
    )
    blocks_icon_steps: NonNegativeInt = Field(
        default=128,
        description="steps of each neuron group's feature visualization (the render recipe "
        "otherwise); 0: none",
    )
    sanity_photos: NonNegativeInt = Field(
        default=0,
        description="also run the published checks (atlas.attribution.sanity: the cascade "
        "averaged over the images with its floors, RISE's AUCs) on this many of the images, "
        "spread over them, and show their figure on the reports' index; 0: not run",
    )
    deletion_batch: PositiveInt = Field(
        default=16,
        description="frames per forward pass of the deletion and insertion curves (on a "
        "2-core CPU, 16 of 224 px take half the time per frame that 128 do)",
    )
    batch_size: PositiveInt = Field(default=16, description="images per forward/backward pass")
    limit: PositiveInt | None = Field(
        default=None,
        description="at most this many images per source, spread evenly over its listing",
    )
    per_class: PositiveInt | None = Field(
        default=None, description="at most this many images per label"
    )
    exemplars_per_cell: PositiveInt = Field(
        default=2, description="with --exemplars: images per grid cell"
    )
    exemplar_levels: list[PositiveInt] | None = Field(
        default=None,
        description="with --exemplars: the grid levels whose exemplars get reports (default: "
        "all; the viewer links the exemplars that have one)",
    )

    @field_validator("target")
    @classmethod
    def _target(cls, value):
        if isinstance(value, str) and value not in ("pred", "label") and not value.isdigit():
            raise ValueError("target must be 'pred', 'label' or a class index")
        return int(value) if isinstance(value, str) and value.isdigit() else value

    def occlusion_geometry(self, input_size: int) -> tuple[int, int]:
        """Occlusion's (window, stride) in px at ``input_size``: the ones set, else a
        window of a seventh of the side and a stride of half the window, the same share of
        the image whatever its size."""
        window = self.occlusion_window or max(2, round(input_size / 7))
        return window, self.occlusion_stride or max(1, window // 2)


class ReportConfig(Recipe):
    """The model report (``atlas report-model``): its class visualizations, with the
    recipe's keys at the report's own defaults."""

    classes: list[str] | None = Field(
        default=None, description="classes to visualize (default: the first 16)"
    )
    icon_size: PositiveInt = Field(default=96, description="side of each class visualization in px")
    lr: float = Field(default=0.05, gt=0, description="Adam's step size")
    lr_schedule: Literal["cosine", "constant"] = Field(
        default="constant", description="as render.lr_schedule"
    )
    transforms: Literal["scaled", "standard", "none"] = Field(
        default="scaled", description="as render.transforms (affine is for atlas icons)"
    )
    batch_size: PositiveInt | None = Field(
        default=None, description="classes per optimization (null: all at once)"
    )


class ShapeBiasConfig(Section):
    """Shape bias on a cue-conflict set (``atlas shape-bias``); see atlas/shape_bias.py."""

    categories: dict[str, list[str]] = Field(
        default_factory=dict,
        description="cue categories: classes that share their shape and texture, as one "
        "(name -> class names); a prediction of any of them is the category's",
    )
    examples: NonNegativeInt = Field(default=4, description="example images kept per outcome")
    batch_size: PositiveInt = Field(default=64, description="images per forward pass")


class AlignConfig(Section):
    """An aligned atlas (``atlas align``): the same images' activations in another
    checkpoint or layer, laid out in step with the run's own layout; see atlas/align.py."""

    layer: str | None = Field(
        default=None, description="the other store's layer (default: its only)"
    )
    pull: float = Field(
        default=1.0,
        ge=0,
        description="strength of the alignment term: each epoch pulls every point this much "
        "(times the step size) towards its counterpart in the run's layout; 0: none",
    )
    epochs: PositiveInt = Field(default=100, description="epochs of UMAP's optimisation")
    learning_rate: float = Field(default=0.5, gt=0, description="their first step size")
    levels: list[PositiveInt] | None = Field(
        default=None,
        description="grid levels of the aligned atlas, among grid.levels (default: all of them)",
    )


class ImageMapConfig(Section):
    """The image map (``atlas image-map``): whole images laid out by their pooled vectors
    (the "CNN codes") and snapped to a grid of thumbnails; see atlas/image_map.py."""

    layer: str | None = Field(default=None, description="pooled layer (default: the store's only)")
    levels: list[PositiveInt] = Field(
        default_factory=lambda: [8, 16, 32], description="cells per side, one image shown per cell"
    )
    min_dist: float = Field(
        default=0.5,
        ge=0,
        description="UMAP's min_dist for the map (the rest as in reduce): higher spreads "
        "each group over more cells",
    )
    reach: float = Field(
        default=1.5, gt=0, description="a cell shows the nearest unshown image this many cells away"
    )
    thumb_size: PositiveInt = Field(default=64, description="thumbnail side in px")
    tile_size: PositiveInt = Field(default=256, description="deep-zoom tile side in px")


class ViewerConfig(Section):
    """The viewer site (``atlas viewer``); see atlas/viewer/build.py."""

    crop_px: PositiveInt = Field(
        default=96, description="side in px of the exemplar crops the pages show"
    )


class Config(Section):
    """A whole run: the model and one section per stage."""

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, values):
        # A section whose keys are all commented out reads as null: every key at its default.
        if isinstance(values, dict):
            return {k: ({} if v is None else v) for k, v in values.items()}
        return values

    model: ModelSpec = ModelSpec()
    data: DataConfig = DataConfig()
    train: TrainConfig = TrainConfig()
    extract: ExtractConfig | None = None
    reduce: ReduceConfig = ReduceConfig()
    grid: GridConfig = GridConfig()
    render: RenderConfig = RenderConfig()
    channels: ChannelsConfig = ChannelsConfig()
    classes: ClassesConfig = ClassesConfig()
    attribute: AttributeConfig = AttributeConfig()
    report: ReportConfig = ReportConfig()
    shape_bias: ShapeBiasConfig = ShapeBiasConfig()
    align: AlignConfig = AlignConfig()
    image_map: ImageMapConfig = ImageMapConfig()
    viewer: ViewerConfig = ViewerConfig()

    def with_keys(self, section: str, **keys: Any) -> Config:
        """A copy with ``keys`` set in ``section``, validated as the file's own would be
        (a :class:`ConfigError` naming the key where a value does not fit)."""
        dumped = self.model_dump(mode="json", exclude_unset=True)
        dumped[section] = {**(dumped.get(section) or {}), **keys}
        return validate_config(dumped)

    def section_hash(self, *names: str) -> str:
        """A short stable hash of the named sections (all when none are named)."""
        return hash_sections(self.sections(*names))

    def sections(self, *names: str) -> dict[str, Any]:
        """The named sections (all when none are named) as plain JSON-ready values."""
        dumped = self.model_dump(mode="json")
        return {name: dumped[name] for name in (names or list(dumped))}

    def to_yaml(self, *names: str) -> str:
        """The resolved config (only the named sections, if any) as YAML."""
        return yaml.safe_dump(self.sections(*names), sort_keys=False)

    def record(self, *names: str) -> dict[str, str]:
        """What an output records about the sections a stage read: their ``hash``, the
        package ``version`` and the resolved ``yaml``. :func:`atlas.store.record_config`
        writes it beside a folder output or into a store's attributes."""
        return {
            "hash": self.section_hash(*names),
            "version": package_version(),
            "yaml": self.to_yaml(*names),
        }


def hash_sections(sections: Mapping[str, Any], *, separators: tuple[str, str] = (",", ":")) -> str:
    """A short stable hash of config sections (``{name: section or its dump}``, any
    JSON-able values), their JSON written with ``separators``."""
    dumped = {
        name: value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        for name, value in sections.items()
    }
    blob = json.dumps(dumped, sort_keys=True, separators=separators)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def annotated_yaml(config: Config, names: Sequence[str]) -> str:
    """The named sections of ``config`` as YAML in which every key is present: the ones set
    (or different from their default) as values, the others commented out at their
    default, each with its description."""
    lines = []
    for name in names:
        section = getattr(config, name)
        model = type(section) if section is not None else _section_type(name)
        doc = (model.__doc__ or "").strip().splitlines()[0]
        lines += [f"# {doc}", f"{name}:"]
        values = section.model_dump(mode="json") if section is not None else {}
        for key, field in model.model_fields.items():
            default = field.get_default(call_default_factory=True)
            default = default.model_dump(mode="json") if isinstance(default, BaseModel) else default
            value = values.get(key, default)
            required = field.is_required()
            shown = yaml.safe_dump({key: value}, default_flow_style=True, width=10_000).strip()
            shown = shown[1:-1] if shown.startswith("{") else shown
            note = f"  # {field.description}" if field.description else ""
            if section is not None and (required or _differs(value, default)):
                lines.append(f"  {shown}{note}")
            else:
                lines.append(f"  # {shown}{note}")
        lines.append("")
    return "\n".join(lines)


def _differs(value: Any, default: Any) -> bool:
    return json.dumps(value, sort_keys=True, default=str) != json.dumps(
        default, sort_keys=True, default=str
    )


def _section_type(name: str) -> type[BaseModel]:
    field = Config.model_fields[name]
    return next(
        t for t in (field.annotation, *get_args(field.annotation)) if hasattr(t, "model_fields")
    )


def load_config(path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML config, apply ``key.sub=value`` overrides, and validate it.

    Raises :class:`ConfigError` with a one-line message naming the file and key.
    """
    raw: dict[str, Any] = {}
    source = str(path) if path else "config"
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ConfigError(f"{path}: malformed YAML{where}: {problem}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of sections")
        raw = loaded
    for override in overrides:
        apply_override(raw, override)
    return validate_config(raw, source=source)


def validate_config(raw: dict[str, Any], *, source: str = "config") -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as err:
        reasons = "; ".join(_describe(e, Config) for e in err.errors())
        raise ConfigError(f"{source}: {reasons}") from None


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Set ``a.b.c=value`` in a nested dict; the value is parsed as YAML (``3``, ``[1,2]``)."""
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {override!r} is not of the form section.key=value")
    parts = key.strip().split(".")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    node = raw
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise ConfigError(f"override {override!r}: {where} is a value, not a section")
        node = child
    node[parts[-1]] = value


def _describe(error: dict[str, Any], root: type[BaseModel]) -> str:
    loc = [str(p) for p in error["loc"]]
    where = ".".join(loc) or "config"
    if error["type"] == "extra_forbidden":
        valid = _fields_at(root, loc[:-1])
        return f"unknown key {where} " + choices_hint(loc[-1], valid, label="valid keys")
    if error["type"] == "missing":
        return f"{where}: required key is missing"
    got = error.get("input")
    shown = "" if isinstance(got, dict) else f" (got {got!r})"
    return f"{where}: {error['msg']}{shown}"


def _fields_at(root: type[BaseModel], loc: list[str]) -> list[str]:
    """The keys allowed at a location below ``root``, for error messages."""
    model: Any = root
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        # Optional sections are annotated "Section | None": take the section type.
        options = [field.annotation, *get_args(field.annotation)]
        model = next((t for t in options if hasattr(t, "model_fields")), None)
    return list(getattr(model, "model_fields", {}))
