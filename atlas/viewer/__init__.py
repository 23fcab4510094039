"""The tile viewer: the static site builder (:mod:`atlas.viewer.build`, wiring one module
per page over :mod:`atlas.viewer.site`, reading the stores through
:mod:`atlas.viewer.data`), its front-end sources (``static/``) and the local server
(:mod:`atlas.viewer.server`)."""
