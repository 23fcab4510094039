"""The pipeline's stages, one module and one function each: a config section and store
URLs in, outputs written. A stage holds no algorithm (that lives in the library modules
below it) and never imports another stage; ``atlas <stage>`` and the DVC pipeline call
exactly these functions.

==============  ==================================================
stage           function
==============  ==================================================
train           :func:`atlas.stages.train.train_checkpoint`
extract         :func:`atlas.stages.extract.extract_store`
reduce          :func:`atlas.stages.reduce.reduce_store`
grid            :func:`atlas.stages.grid.grid_store`
render          :func:`atlas.stages.render.render_store`
channels        :func:`atlas.stages.channels.channel_pages`
align           :func:`atlas.stages.align.align_store`
image-map       :func:`atlas.stages.image_map.image_map_store`
classes         :func:`atlas.stages.classes.classes_store`
attribute       :func:`atlas.stages.attribute.attribute_store`
report-model    :func:`atlas.stages.report_model.report_model`
shape-bias      :func:`atlas.stages.shape_bias.shape_bias_report`
viewer          :func:`atlas.stages.viewer.build_viewer`
==============  ==================================================

The demo's own stages live with it: make-data (:func:`atlas.demo.world.make_world`) and
demo-shortcut (:func:`atlas.demo.shortcut.shortcut_measures`).
"""
