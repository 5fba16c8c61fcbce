"""Segmentation loss for imbalanced classes: class-weighted (focal) cross-entropy + soft Dice.

Both terms honour ``ignore_index`` (255, no label) and per-pixel confidence weights
(harvested labels): a pixel's contribution is scaled by its weight, and ignored pixels
contribute nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from label_config.catalogue import IGNORE_INDEX


class SegmentationLoss(torch.nn.Module):
    """``ce_weight * CE + dice_weight * (1 - mean Dice)``.

    CE: per-pixel ``-alpha_y (1 - p_y)^gamma log p_y`` (plain weighted cross-entropy for
    ``gamma = 0``), averaged with weights ``pixel_weight * alpha_y`` (as torch's weighted
    ``mean``). Dice: per class ``(2 sum w p t + eps) / (sum w (p + t) + eps)`` over the batch,
    averaged over the classes present in the labels.

    Args:
        n_classes: Number of classes C.
        class_weights: ``alpha`` per class (None: all 1).
        ce_weight, dice_weight: Weights of the two terms.
        focal_gamma: Focusing parameter (0: cross-entropy).
        ignore_index: Label value of unlabelled pixels.
        eps: Dice smoothing.
    """

    alpha: torch.Tensor  # registered buffer (``register_buffer`` in ``__init__``)

    def __init__(
        self,
        n_classes: int,
        class_weights: Sequence[float] | None = None,
        ce_weight: float = 1.0,
        dice_weight: float = 1.0,
        focal_gamma: float = 0.0,
        ignore_index: int = IGNORE_INDEX,
        eps: float = 1.0,
    ) -> None:
        super().__init__()
        alpha = torch.ones(n_classes) if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        if alpha.shape != (n_classes,):
            raise ValueError(f"need {n_classes} class weights, got {len(alpha)}")
        self.register_buffer("alpha", alpha)
        self.n_classes = n_classes
        self.ce_weight, self.dice_weight, self.focal_gamma = ce_weight, dice_weight, focal_gamma
        self.ignore_index, self.eps = ignore_index, eps

    def forward(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Scalar loss of ``(B, C, H, W)`` logits against ``(B, H, W)`` labels and optional pixel weights."""
        logits = logits.float()
        valid = target != self.ignore_index
        w = valid.float() if weight is None else weight.float() * valid
        safe = torch.where(valid, target, torch.zeros_like(target))
        log_p = F.log_softmax(logits, dim=1)
        loss = logits.new_zeros(())
        if self.ce_weight:
            log_pt = log_p.gather(1, safe.unsqueeze(1)).squeeze(1)
            pixel = -log_pt
            if self.focal_gamma:
                pixel = pixel * (1 - log_pt.exp()).clamp(min=0) ** self.focal_gamma
            wa = w * self.alpha[safe]
            loss = loss + self.ce_weight * (pixel * wa).sum() / wa.sum().clamp(min=1e-12)
        if self.dice_weight:
            p = log_p.exp()
            onehot = F.one_hot(safe, self.n_classes).permute(0, 3, 1, 2).float()
            wc = w.unsqueeze(1)
            inter = (wc * p * onehot).sum(dim=(0, 2, 3))
            denom = (wc * (p + onehot)).sum(dim=(0, 2, 3))
            dice = (2 * inter + self.eps) / (denom + self.eps)
            present = (wc * onehot).sum(dim=(0, 2, 3)) > 0
            if present.any():
                loss = loss + self.dice_weight * (1 - dice[present].mean())
        return loss
