"""More of the class-activation-map family, computed by the ``grad-cam`` package
(pytorch-grad-cam) behind our one face: Grad-CAM++ (Chattopadhyay et al. 2018), Score-CAM
(Wang et al. 2020), Layer-CAM (Jiang et al. 2021) and Eigen-CAM (Muhammad & Yeasin 2020).

Each is that package's class on our layer (:class:`atlas.attribution.gradcam.LayerMap`:
the last block by default), for our targets. Its maps come as the package makes them:
rectified, scaled to [0, 1] per image and resized to the input.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from atlas.attribution.gradcam import LayerMap
from atlas.layers import get_layer


class LibraryCAM(LayerMap):
    """A pytorch-grad-cam method (``library_class``) on our layer."""

    signed = False
    library_class: ClassVar[str] = ""

    def attribute(self, inputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        import pytorch_grad_cam
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        module = self.model.module
        method = getattr(pytorch_grad_cam, self.library_class)
        targets = [ClassifierOutputTarget(int(t)) for t in target]
        frozen = [(p, p.requires_grad) for p in module.parameters()]
        try:
            # Gradients for the activations only: the model's parameters gain no .grad.
            for p, _ in frozen:
                p.requires_grad_(False)
            with (
                torch.enable_grad(),
                method(
                    model=module,
                    target_layers=[get_layer(module, self.layer)],
                    # tokens and channels-last outputs as (C, H, W) maps, as everywhere else
                    reshape_transform=self.model.view(self.layer),
                ) as cam,
            ):
                maps = cam(
                    input_tensor=inputs.detach().clone().requires_grad_(True), targets=targets
                )
                shape = cam.activations_and_grads.activations[0].shape
        finally:
            for p, flag in frozen:
                p.requires_grad_(flag)
        self.resolution = tuple(shape[2:])
        return torch.as_tensor(maps, dtype=torch.float32, device=inputs.device)


class GradCAMPlusPlus(LibraryCAM):
    name = "gradcam_pp"
    title = "Grad-CAM++"
    paper = "Grad-CAM++ (Chattopadhyay et al. 2018), by pytorch-grad-cam"
    library_class = "GradCAMPlusPlus"


class ScoreCAM(LibraryCAM):
    name = "scorecam"
    title = "Score-CAM"
    paper = "Score-CAM (Wang et al. 2020), by pytorch-grad-cam: a forward pass per channel"
    library_class = "ScoreCAM"


class LayerCAM(LibraryCAM):
    name = "layercam"
    title = "Layer-CAM"
    paper = "Layer-CAM (Jiang et al. 2021), by pytorch-grad-cam"
    library_class = "LayerCAM"


class EigenCAM(LibraryCAM):
    name = "eigencam"
    title = "Eigen-CAM"
    paper = "Eigen-CAM (Muhammad & Yeasin 2020), by pytorch-grad-cam: not class-specific"
    library_class = "EigenCAM"
