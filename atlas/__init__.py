"""Activation atlases for PyTorch image models."""
