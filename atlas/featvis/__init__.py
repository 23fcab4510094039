"""Feature visualization: batched objectives, Lucent's image parameterization, the
transforms (Lucent's standard set and a mild affine warp, as matrices) and our own render
loop (many targets optimized in one batch).

Following Lucid's optvis: a parameterization returns an image tensor, an objective maps
the model's activations to scores to maximize, transforms are plain functions, and
:func:`atlas.featvis.render.render` only runs the loop, with a recipe
(:class:`atlas.config.Recipe`), and scores each finished icon under strong random warps
too (its robust objective). :mod:`atlas.featvis.spectrum` measures how an icon's power
falls off with frequency, beside photographs'. The path from objectives to icons on workers is
:mod:`atlas.render`.
"""
