"""Redirected ReLU gradients: a unit that starts dead still rises."""

import torch
from helpers import no_hooks_left
from torch import nn

from atlas.config import ModelSpec, Recipe
from atlas.featvis import objectives as obj
from atlas.featvis.relu import redirect_relus, redirected_relu
from atlas.featvis.render import render
from atlas.models import LoadedModel, Preprocessing


def test_the_gradient_reaches_a_dead_unit_only_where_it_would_raise_it():
    x = torch.tensor([[-1.0, -2.0, 3.0], [-1.0, -2.0, -3.0]], requires_grad=True)
    incoming = torch.tensor([[-1.0, 1.0, 1.0]] * 2)  # of the loss: -1 pushes x up
    (grad,) = torch.autograd.grad(redirected_relu(x), x, incoming)
    assert grad[0].tolist() == [0.0, 0.0, 1.0]  # reached through x > 0: the plain gradient
    assert grad[1].tolist() == [-1.0, 0.0, 0.0]  # reached nowhere: only where it raises x
    assert (redirected_relu(x) == torch.relu(x)).all()


class Dead(nn.Module):
    """A unit that is dead for grey images: relu(r + g + b - 2) at every pixel."""

    def __init__(self):
        super().__init__()
        self.unit = nn.Sequential(nn.Conv2d(3, 1, 1), nn.ReLU(inplace=True))
        self.unit[0].weight.data.fill_(1.0)
        self.unit[0].bias.data.fill_(-2.0)

    def forward(self, x):
        return self.unit(x).mean(dim=(1, 2, 3))[:, None]


def test_a_dead_unit_rises_with_redirected_gradients_and_stays_dead_without():
    model = LoadedModel(
        Dead(), ModelSpec(arch="x"), Preprocessing(8, 8, (0,) * 3, (1,) * 3), ["one"]
    )
    objective = obj.channel("unit", [0])
    recipe = Recipe(icon_size=8, steps=24, lr=0.1, lr_schedule="constant", transforms="none")
    plain = render(model, objective, recipe, seeds=[0])
    redirected = render(
        model, objective, recipe.updated(lr=0.05), seeds=[0], redirect_relu_steps=16
    )
    assert plain.values[0] == 0 and redirected.values[0] > 0.01
    assert no_hooks_left(model.module) and model.module.unit[1].inplace


def test_the_switch_and_the_exit_restore_plain_relus():
    relu = nn.ReLU(inplace=True)
    x = torch.tensor([[-1.0]], requires_grad=True)
    with redirect_relus(relu) as switch:
        (grad,) = torch.autograd.grad(relu(x).sum() * -1, x)
        assert grad.item() == -1.0
        switch.active = False
        (grad,) = torch.autograd.grad(relu(x * 1).sum() * -1, x)
        assert grad.item() == 0.0
    assert relu.inplace and not relu._forward_hooks
