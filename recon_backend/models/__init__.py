"""Reconstruction networks as plain ``nn.Module``s, state-dict compatible with fastMRI's."""

from recon_backend.models.unet import Unet
from recon_backend.models.varnet import NormUnet, SensitivityModel, VarNet, VarNetBlock

__all__ = ["NormUnet", "SensitivityModel", "Unet", "VarNet", "VarNetBlock"]
