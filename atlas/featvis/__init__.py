"""Feature visualization: batched objectives, Lucent's image parameterization and
transforms, and our own render loop (many targets optimized in one batch).

Following Lucid's optvis: a parameterization returns an image tensor, an objective maps
the model's activations to scores to maximize, transforms are plain functions, and
:func:`atlas.featvis.render.render` only runs the loop.
"""
