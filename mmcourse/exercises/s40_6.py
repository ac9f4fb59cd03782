"""Hidden cases for the exercises of §40.6 (the key models)."""
from __future__ import annotations

from torch import nn

from .core import Case, register


# ---------------------------------------------------------------- 40.6 LLaVA's visual tokens
def _visual_tokens_cases() -> list[Case]:
    cases = []
    for image_size, patch_size, strategy in ((224, 14, "default"), (336, 14, "default"),
                                             (336, 14, "full"), (384, 16, "full"),
                                             (32, 8, "default"), (448, 32, "full")):
        expected = (image_size // patch_size) ** 2 + (strategy == "full")
        cases.append(Case((image_size, patch_size, strategy), expected,
                          f"a {image_size} px image, {patch_size} px patches, strategy {strategy!r}",
                          hint="a square image gives (image_size // patch_size) ** 2 patches; "
                               "'default' drops the [CLS] token, 'full' keeps it."))
    return cases


register("40.6.visual_tokens", _visual_tokens_cases)


# ---------------------------------------------------------------- 40.6 projector parameters
def _projector(vision_dim: int, text_dim: int, depth: int) -> nn.Module:
    layers = [nn.Linear(vision_dim, text_dim)]
    for _ in range(depth - 1):
        layers += [nn.GELU(), nn.Linear(text_dim, text_dim)]
    return nn.Sequential(*layers)


def _projector_cases() -> list[Case]:
    cases = []
    for vision_dim, text_dim, depth in ((1024, 5120, 1), (1024, 4096, 2), (32, 48, 2),
                                        (1152, 896, 2), (8, 4, 3), (768, 2560, 1)):
        expected = sum(p.numel() for p in _projector(vision_dim, text_dim, depth).parameters())
        kind = "a linear projection" if depth == 1 else f"an MLP of {depth} linear layers"
        cases.append(Case((vision_dim, text_dim, depth), expected,
                          f"{kind} from {vision_dim} to {text_dim} channels",
                          hint="every linear layer has a weight (in x out) and a bias (out); the "
                               "first maps vision_dim -> text_dim, the others text_dim -> text_dim."))
    return cases


register("40.6.projector_parameters", _projector_cases)


# ---------------------------------------------------------------- 40.6 Q-Former layer parameters
def _qformer_layer_cases() -> list[Case]:
    from mmcourse.models import QFormerLayer

    cases = []
    for dim, mlp_dim, encoder_dim, cross in ((768, 3072, 1408, True), (768, 3072, 1408, False),
                                             (32, 64, 24, True), (48, 80, 48, True),
                                             (16, 32, 40, False)):
        layer = QFormerLayer(dim, 4 if dim % 4 == 0 else 1, mlp_dim, encoder_dim, cross)
        expected = sum(p.numel() for p in layer.parameters())
        cases.append(Case((dim, mlp_dim, encoder_dim, cross), expected,
                          f"dim {dim}, mlp_dim {mlp_dim}, image features of {encoder_dim}, "
                          f"{'with' if cross else 'without'} cross-attention",
                          hint="self-attention: four dim x dim projections with biases; "
                               "cross-attention: queries and output dim x dim, keys and values "
                               "encoder_dim x dim, all with biases; the MLP: dim -> mlp_dim -> "
                               "dim with biases; a LayerNorm (weight and bias) after each "
                               "sub-layer."))
    return cases


register("40.6.qformer_layer_parameters", _qformer_layer_cases)
