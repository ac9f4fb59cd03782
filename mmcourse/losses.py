"""Training objectives shared by several models of the book.

``contrastive_loss`` is the symmetric InfoNCE loss of CLIP and ALIGN. Built in §39.3 for a small
dual encoder; §40.1 trains CLIP with it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def contrastive_loss(
    image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor | float
) -> torch.Tensor:
    """The symmetric InfoNCE loss of a batch of matching pairs (Oord et al. 2018; CLIP, Radford et
    al. 2021).

    Row ``i`` of ``image_emb`` (B, D) and row ``i`` of ``text_emb`` (B, D) are a positive pair;
    every other row of the batch is a negative. With ``logits = logit_scale * image_emb @
    text_emb.T`` (B, B), the loss is the mean of the cross-entropy of picking the right text for
    each image (rows) and the right image for each text (columns)::

        (CE(logits, arange(B)) + CE(logits.T, arange(B))) / 2

    Args:
        image_emb, text_emb: (B, D) embeddings. CLIP passes L2-normalised ones, so that the logits
            are scaled cosine similarities; the function does not normalise them itself.
        logit_scale: the multiplier ``1 / temperature`` (a float or a scalar tensor), i.e. the
            *exponentiated* learnable parameter: CLIP stores ``log(1 / 0.07)`` and passes its
            ``exp()``.

    Returns:
        The scalar loss; ``log(B)`` when all logits are equal. It equals the ``loss`` of
        ``transformers.CLIPModel(..., return_loss=True)`` given that model's embeddings and scale.
    Built in §39.3.
    """
    if image_emb.dim() != 2 or text_emb.dim() != 2:
        raise ValueError(
            f"expected image_emb and text_emb of shape (B, D), got {tuple(image_emb.shape)} and "
            f"{tuple(text_emb.shape)}"
        )
    if image_emb.shape != text_emb.shape:
        raise ValueError(
            f"expected one text per image (equal shapes), got image_emb {tuple(image_emb.shape)} "
            f"and text_emb {tuple(text_emb.shape)}"
        )
    scale_shape = tuple(torch.as_tensor(logit_scale).shape)
    if torch.Size(scale_shape).numel() != 1:
        raise ValueError(f"expected a scalar logit_scale, got shape {scale_shape}")
    logits = logit_scale * image_emb @ text_emb.T  # (B, D) @ (D, B) -> (B, B): images x texts
    targets = torch.arange(len(logits), device=logits.device)  # the positives are on the diagonal
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
