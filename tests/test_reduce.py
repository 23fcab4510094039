import numpy as np
import pytest
import zarr
from sklearn.manifold import trustworthiness

from atlas.reduce import (
    NonFiniteError,
    normalize_layout,
    umap_kernels,
    umap_layout,
    umap_layout_info,
)


def clusters(n=1500, dims=48, k=5, seed=0, spread=0.6):
    """Activation-like data: ReLU of points around k well-separated centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2, (k, dims))
    labels = rng.integers(0, k, n)
    return np.maximum(centres[labels] + rng.normal(0, spread, (n, dims)), 0).astype(
        np.float32
    ), labels


def label_agreement(xy, labels, k=10):
    from sklearn.neighbors import NearestNeighbors

    index = NearestNeighbors(n_neighbors=k + 1).fit(xy).kneighbors(xy, return_distance=False)[:, 1:]
    return (labels[index] == labels[:, None]).mean()


def test_known_clusters_stay_separated():
    x, labels = clusters()
    xy = umap_layout(x)
    assert xy.shape == (1500, 2) and xy.dtype == np.float32 and np.isfinite(xy).all()
    assert label_agreement(xy, labels) > 0.95  # chance is 0.2


def rare_groups(n_big=6000, groups=40, size=10, dims=48, seed=0):
    """Five big clusters plus ``groups`` small ones of ``size`` points each (0.16 % of the
    points apiece), every small one far from the rest: what a sample-based layout loses."""
    rng = np.random.default_rng(seed + 1)  # centres unlike the big clusters' own
    big, big_labels = clusters(n=n_big, dims=dims, k=5, seed=seed, spread=1.0)
    centres = rng.normal(0, 2, (groups, dims))
    small = np.maximum(np.repeat(centres, size, 0) + rng.normal(0, 0.3, (groups * size, dims)), 0)
    labels = np.concatenate([big_labels, 5 + np.repeat(np.arange(groups), size)])
    return np.concatenate([big, small]).astype(np.float32), labels


def island_share(xy, labels, rare):
    """Share of the small groups' 2-D 5 nearest neighbours that are of their own group."""
    from sklearn.neighbors import NearestNeighbors

    near = NearestNeighbors(n_neighbors=6).fit(xy).kneighbors(xy[rare], return_distance=False)
    return (labels[near[:, 1:]] == labels[rare][:, None]).mean()


def test_the_landmark_path_optimises_every_vector_and_keeps_small_groups():
    x, labels = rare_groups()
    xy, info = umap_layout_info(x, exact_below=1000)
    assert info.method == "landmarks" and info.neighbours == "ivf" and info.distinct == len(x)
    assert info.cells > 0 and info.n_epochs == 40 and "landmarks" in info.describe()
    assert np.isfinite(xy).all() and label_agreement(xy, labels) > 0.95
    rare = labels >= 5
    assert island_share(xy, labels, rare) > 0.95
    # The start alone (each vector at its cell's landmark) does not: the epochs do it.
    start = umap_layout(x, exact_below=1000, n_epochs=1)
    assert island_share(start, labels, rare) < 0.9


def test_the_landmark_path_is_deterministic_for_a_seed():
    x, _ = clusters(n=3000)
    first = umap_layout(x, exact_below=1000, seed=2)
    assert np.array_equal(first, umap_layout(x, exact_below=1000, seed=2))
    assert not np.array_equal(first, umap_layout(x, exact_below=1000, seed=3))


def test_fit_size_in_a_config_is_an_error_that_says_what_to_do():
    from pydantic import ValidationError

    from atlas.config import ReduceConfig

    with pytest.raises(ValidationError, match=r"fit_size is gone.*delete the key"):
        ReduceConfig.model_validate({"fit_size": 5000})


def test_duplicates_and_zero_vectors_land_together():
    x, _ = clusters(n=600)
    x[100:160] = 0  # dead ReLU samples
    x[300:320] = x[299]  # exact copies
    xy, info = umap_layout_info(x)
    assert info.distinct == 600 - 59 - 20
    assert np.ptp(xy[100:160], axis=0).max() == 0
    assert (xy[300:320] == xy[299]).all()


def test_deterministic_for_a_seed():
    x, _ = clusters(n=500)
    assert np.array_equal(umap_layout(x, seed=3), umap_layout(x, seed=3))
    assert not np.array_equal(umap_layout(x, seed=3), umap_layout(x, seed=4))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 12])
def test_fewer_samples_than_neighbours(n):
    x, _ = clusters(n=n)
    xy = umap_layout(x, n_neighbors=15)
    assert xy.shape == (n, 2) and np.isfinite(xy).all()


def test_nan_and_inf_are_refused_with_the_sample():
    x, _ = clusters(n=100)
    x[42, 3] = np.nan
    with pytest.raises(NonFiniteError, match="sample 42") as err:
        umap_layout(x)
    assert err.value.index == 42
    x[42, 3] = 0
    x[7, 0] = np.inf
    with pytest.raises(NonFiniteError, match="sample 7"):
        umap_layout(x)


def test_memory_mapped_and_zarr_inputs_give_the_numpy_result(tmp_path):
    x, _ = clusters(n=400)
    np.save(tmp_path / "acts.npy", x)
    mapped = np.load(tmp_path / "acts.npy", mmap_mode="r")
    stored = zarr.create_array(
        str(tmp_path / "acts.zarr"), shape=x.shape, chunks=(64, 48), dtype="float32"
    )
    stored[:] = x
    reference = umap_layout(x)
    assert np.array_equal(umap_layout(mapped), reference)
    assert np.array_equal(umap_layout(stored), reference)


def test_pca_path_for_wide_vectors_and_euclidean_metric():
    x, labels = clusters(n=800, dims=300)
    info = umap_layout_info(x, pca_dims=32)[1]
    assert info.dims == 300 and info.pca_dims == 32
    assert label_agreement(umap_layout(x, pca_dims=32, metric="euclidean"), labels) > 0.95


def test_trustworthiness_close_to_umap_learn():
    import umap

    x, _ = clusters(n=1200, spread=1.5)
    reference = umap.UMAP(
        n_neighbors=15, min_dist=0.1, metric="cosine", random_state=0
    ).fit_transform(x)
    ours = umap_layout(x)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    gap = trustworthiness(unit, reference, n_neighbors=10) - trustworthiness(
        unit, ours, n_neighbors=10
    )
    assert gap < 0.02


def test_normalized_layout_fills_the_unit_square_inside_the_margin():
    rng = np.random.default_rng(0)
    xy = rng.uniform(-1, 1, (1000, 2)) * [10, 1] + [5, -3]
    xy[0] = [1e6, 1e6]  # an outlier is clipped, not allowed to squash everything else
    unit = normalize_layout(xy, clip=(1, 99), margin=0.05)
    assert unit.min() >= 0.05 - 1e-6 and unit.max() <= 0.95 + 1e-6
    assert (unit[0] == 0.95).all()
    # Lucid's rule: the 1-99 % range widened by a tenth of it on each side, so only the
    # outlier is clipped, and the rest keep their spacing between the low extreme and the
    # clipped outlier.
    low, high = np.percentile(xy, [1, 99], axis=0)
    top = high + 0.1 * (high - low)
    rest = xy[1:]
    expected = 0.05 + 0.9 * (rest - rest.min(0)) / (top - rest.min(0))
    np.testing.assert_allclose(unit[1:], expected, atol=1e-5)


def test_at_most_a_thousandth_of_a_real_layout_lands_on_the_frame():
    x, _ = clusters(n=5000, k=30, spread=1.5)
    unit = normalize_layout(umap_layout(x))
    frame = ((unit <= 0.05 + 1e-6) | (unit >= 0.95 - 1e-6)).any(axis=1)
    assert frame.mean() <= 0.001  # plain 1-99 % clipping put 4 % there
    assert frame.sum() >= 2  # the extremes themselves


LAYOUT_IN_A_PROCESS = """
import hashlib, sys
import numpy as np
from atlas.reduce import umap_kernels, umap_layout
x = np.random.default_rng(0).normal(size=(600, 16)).astype(np.float32)
xy = umap_layout(x, n_epochs=20)
kernels = umap_kernels().umap_
stats = [kernels.smooth_knn_dist.stats, kernels.compute_membership_strengths.stats]
print(hashlib.sha256(xy.tobytes()).hexdigest(), sum(len(s.cache_hits) for s in stats),
      sum(len(s.cache_misses) for s in stats))
"""


@pytest.mark.slow
def test_umap_kernels_compiled_once_are_loaded_by_the_next_process(tmp_path):
    """umap-learn's kernels go to numba's disk cache: the first process compiles (misses)
    and writes them, the next loads them (hits, no misses) and lays out the same."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}

    def run():
        out = subprocess.run(
            [sys.executable, "-c", LAYOUT_IN_A_PROCESS], env=env, capture_output=True, text=True
        )
        assert out.returncode == 0, out.stderr
        digest, hits, misses = out.stdout.split()
        return digest, int(hits), int(misses)

    first, second = run(), run()
    assert first[2] > 0 and first[1] == 0  # compiled here
    assert second[1] > 0 and second[2] == 0  # loaded
    assert first[0] == second[0]


def test_the_parallel_twin_of_a_cached_kernel_stays_uncached():
    """numba's cache does not tell a function's serial and parallel builds apart: only the
    serial epoch (what a seeded fit runs) may be cached."""
    from numba.core.caching import NullCache

    layouts = umap_kernels().layouts
    assert not isinstance(layouts._nb_optimize_layout_euclidean_single_epoch._cache, NullCache)
    assert isinstance(layouts._nb_optimize_layout_euclidean_single_epoch_parallel._cache, NullCache)
