"""Hidden cases for the exercises of §40.1 (CLIP and ALIGN)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .core import Case, register


# ---------------------------------------------------------------- 40.1 pooling at <eos>
def _eos_pool_cases() -> list[Case]:
    from mmcourse.models import CLIPTextConfig, CLIPTextTransformer

    g = torch.Generator().manual_seed(401)
    cases = []
    for batch, length, dim, eos in ((2, 5, 4, 9), (3, 7, 8, 2), (1, 4, 3, 5), (4, 6, 2, 2)):
        hidden = torch.randn(batch, length, dim, generator=g)
        ids = torch.randint(3, 9, (batch, length), generator=g)
        for row in range(batch):  # <eos> somewhere, padding (0) after it
            end = int(torch.randint(1, length, (1,), generator=g))
            ids[row, end], ids[row, end + 1:] = eos, 0
        ids[0, 0] = eos if eos != 2 else ids[0, 0]  # a second <eos>: the first one counts
        tower = CLIPTextTransformer(CLIPTextConfig(
            vocab_size=10, max_position_embeddings=length, hidden_size=4, num_hidden_layers=1,
            num_attention_heads=1, intermediate_size=4, eos_token_id=eos))
        positions = tower.eos_positions(ids)
        rule = "the highest id (legacy eos_token_id == 2)" if eos == 2 else f"the first id {eos}"
        cases.append(Case((hidden, ids, eos), hidden[torch.arange(batch), positions],
                          f"{batch} texts of {length} tokens, pooled at {rule}",
                          hint="eos_token_id == 2 means: take the position of the largest id "
                               "(argmax); otherwise the first position where the id equals "
                               "eos_token_id."))
    return cases


register("40.1.eos_pool", _eos_pool_cases)


# ---------------------------------------------------------------- 40.1 prompt ensembling
def _ensemble_cases() -> list[Case]:
    g = torch.Generator().manual_seed(4011)
    cases = []
    for classes, templates, dim in ((3, 1, 4), (5, 4, 8), (30, 6, 16)):
        text_emb = torch.randn(classes, templates, dim, generator=g) * 3 + 1  # not unit vectors
        expected = F.normalize(F.normalize(text_emb, dim=-1).mean(1), dim=-1)
        cases.append(Case((text_emb,), expected,
                          f"{classes} classes x {templates} templates, {dim} dimensions",
                          hint="normalise every prompt's embedding, average over the templates, "
                               "then normalise the average again."))
    return cases


register("40.1.ensemble", _ensemble_cases)


# ---------------------------------------------------------------- 40.1 chunked sigmoid loss
def _sigmoid_cases() -> list[Case]:
    g = torch.Generator().manual_seed(4012)
    cases = []
    for batch, dim, scale, bias, chunks in ((4, 8, 10.0, -10.0, 2), (12, 16, 5.0, -2.0, 3),
                                            (6, 4, 1.0, 0.0, 6), (8, 8, 20.0, -5.0, 1)):
        u = F.normalize(torch.randn(batch, dim, generator=g), dim=1)
        v = F.normalize(u + 0.5 * torch.randn(batch, dim, generator=g), dim=1)
        logits = scale * u @ v.T + bias  # (B, B)
        labels = 2 * torch.eye(batch) - 1  # +1 on the diagonal, -1 elsewhere
        expected = -F.logsigmoid(labels * logits).sum().item() / batch
        cases.append(Case((u, v, scale, bias, chunks), expected,
                          f"{batch} pairs in {chunks} chunks, scale {scale}, bias {bias}",
                          hint="each pair (i, j) adds -log sigmoid(z_ij * (scale * u_i.v_j + "
                               "bias)) with z_ij = +1 if i == j else -1; divide the sum by B, "
                               "not by B squared."))
    return cases


register("40.1.chunked_sigmoid_loss", _sigmoid_cases)
