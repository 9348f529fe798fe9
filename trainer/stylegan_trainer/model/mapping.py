"""The mapping network: z (and a label) to the style vectors w, with the truncation trick.

Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (arXiv:1912.04958):
2nd-moment-normalised z (plus an embedded, normalised label when ``c_dim > 0``),
``mapping_layers`` equalised dense layers with lrelu and a 0.01 learning-rate multiplier, and a
tracked average ``w_avg`` (beta 0.995) for the truncation trick.

A module of its own because both networks use it: the generator maps (z, c) to w, and a
conditional discriminator maps the label alone (no z, no ``w_avg``) to its projection vector.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from stylegan_trainer.model.ops import FullyConnectedLayer, full_precision, normalize_2nd_moment

MAPPING_LR_MULTIPLIER = 0.01
W_AVG_BETA = 0.995


class MappingNetwork(nn.Module):
    """z (and c) -> w, broadcast to ``num_ws`` style vectors; tracks ``w_avg`` for truncation."""

    w_avg: Tensor  # buffer [w_dim]

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        num_ws: int | None,
        num_layers: int,
        lr_multiplier: float = MAPPING_LR_MULTIPLIER,
        w_avg_beta: float | None = W_AVG_BETA,
    ) -> None:
        super().__init__()
        if z_dim + c_dim == 0:
            raise ValueError("MappingNetwork: z_dim and c_dim cannot both be zero")
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.num_ws = num_ws
        self.w_avg_beta = w_avg_beta
        self.embed = FullyConnectedLayer(c_dim, w_dim) if c_dim > 0 else None
        in_features = z_dim + (w_dim if c_dim > 0 else 0)
        widths = [in_features] + [w_dim] * num_layers
        self.layers = nn.ModuleList(
            FullyConnectedLayer(
                widths[i], widths[i + 1], lr_multiplier=lr_multiplier, activation="lrelu"
            )
            for i in range(num_layers)
        )
        if w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(
        self,
        z: Tensor | None,
        c: Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_w_avg: bool = False,
    ) -> Tensor:
        parts = []
        if self.z_dim > 0:
            if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
                got = None if z is None else list(z.shape)
                raise ValueError(f"z: expected shape [N, {self.z_dim}], got {got}")
            parts.append(normalize_2nd_moment(full_precision(z)))
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                got = None if c is None else list(c.shape)
                raise ValueError(f"c: expected shape [N, {self.c_dim}] (c_dim > 0), got {got}")
            assert self.embed is not None
            parts.append(normalize_2nd_moment(self.embed(full_precision(c))))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for layer in self.layers:
            x = layer(x)
        if update_w_avg and self.w_avg_beta is not None:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is None:
            return x
        ws = x.unsqueeze(1).repeat(1, self.num_ws, 1)
        if truncation_psi != 1:
            if self.w_avg_beta is None:
                raise ValueError("truncation_psi: this mapping network tracks no w_avg")
            cutoff = self.num_ws if truncation_cutoff is None else truncation_cutoff
            truncated = self.w_avg.lerp(ws[:, :cutoff], truncation_psi)
            ws = torch.cat([truncated, ws[:, cutoff:]], dim=1)
        return ws
