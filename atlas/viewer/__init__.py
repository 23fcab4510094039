"""The tile viewer: the static site builder (:mod:`atlas.viewer.build`), its front-end
sources (``static/``) and the local server (:mod:`atlas.viewer.server`)."""
