"""Fusing two modalities: early, late and intermediate fusion (cross-attention, GMU, FiLM and
Flamingo's tanh gate).

Every fusion model here answers a question about an image from the same two inputs,
``image_tokens`` (B, M, image_dim) from a frozen image encoder and ``text_ids`` (B, L), and returns
answer logits (B, num_answers); they differ only in *where* the two streams meet:

- ``EarlyFusion``: image and text tokens are concatenated at the input of one joint transformer.
- ``LateFusion``: each modality is classified alone and the two outputs are added.
- ``CrossAttentionFusion``: text tokens attend to image tokens in a cross-attention block.
- ``GMUFusion``: a Gated Multimodal Unit (Arevalo et al. 2017) mixes each image token with the
  question.
- ``FiLMFusion``: the question scales and shifts the image features (FiLM, Perez et al. 2018).
- ``FlamingoFusion``: Flamingo's tanh-gated cross-attention block (Alayrac et al. 2022), the
  identity at initialisation.

The building blocks (``CrossAttention``, ``CrossAttentionBlock``, ``GatedCrossAttentionBlock``,
``GatedMultimodalUnit``, ``FiLM``) are general and reused by later sections;
``GatedCrossAttentionBlock`` loads the weights of IDEFICS's ``IdeficsGatedCrossAttentionLayer`` and
reproduces its outputs. Built in §39.4.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.nn import ACTIVATIONS, MLP, EncoderBlock, MultiHeadAttention, mask_to_bias


# ---------------------------------------------------------------------------- building blocks
class CrossAttention(MultiHeadAttention):
    """Multi-head cross-attention: queries from ``x`` (B, N, dim), keys and values from ``context``
    (B, M, context_dim).

    ``softmax(q k^T / sqrt(d_head) + mask) v`` with the projections ``q_proj``, ``k_proj``,
    ``v_proj`` and ``out_proj`` of :class:`mmcourse.nn.MultiHeadAttention`; ``bias=False`` drops
    their biases (IDEFICS, LLaMA). Output (B, N, dim). Built in §39.4.
    """

    def __init__(
        self, dim: int, num_heads: int, context_dim: int | None = None, bias: bool = True
    ) -> None:
        super().__init__(dim, num_heads)
        context_dim = context_dim or dim
        self.q_proj = nn.Linear(dim, dim, bias=bias)
        self.k_proj = nn.Linear(context_dim, dim, bias=bias)
        self.v_proj = nn.Linear(context_dim, dim, bias=bias)
        self.out_proj = nn.Linear(dim, dim, bias=bias)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from every token of ``x`` (B, N, D) to every token of ``context`` (B, M, D_c).

        ``attention_mask`` is a bool tensor broadcastable to (B, heads, N, M), True where a query
        may attend to a key (e.g. ``media_mask[:, None, None, :]`` for a (B, M) mask of real media
        tokens). Returns the output (B, N, D) and, if ``return_attention``, the weights
        (B, heads, N, M), else None.
        """
        if x.dim() != 3 or context.dim() != 3 or x.shape[0] != context.shape[0]:
            raise ValueError(
                "expected x of shape (B, N, D) and context of shape (B, M, D_c) with the same B, "
                f"got {tuple(x.shape)} and {tuple(context.shape)}"
            )
        batch, length, dim = x.shape
        heads, head_dim = self.num_heads, self.head_dim
        q = self.q_proj(x).view(batch, length, heads, head_dim).transpose(1, 2)  # (B, h, N, d)
        k, v = (  # (B, M, D_c) -> (B, h, M, d)
            proj(context).view(batch, context.shape[1], heads, head_dim).transpose(1, 2)
            for proj in (self.k_proj, self.v_proj)
        )
        bias = None if attention_mask is None else mask_to_bias(attention_mask, x.dtype)
        if return_attention:
            scores = q @ k.transpose(-2, -1) * head_dim**-0.5  # (B, h, N, M)
            if bias is not None:
                scores = scores + bias
            weights = scores.softmax(dim=-1)
            out = weights @ v  # (B, h, N, M) @ (B, h, M, d) -> (B, h, N, d)
        else:
            weights = None
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        out = out.transpose(1, 2).reshape(batch, length, dim)  # (B, h, N, d) -> (B, N, D)
        return self.out_proj(out), weights


class SwiGLU(nn.Module):
    """The LLaMA feed-forward network ``down(silu(gate(x)) * up(x))``, without biases:
    (B, N, dim) -> (B, N, dim). IDEFICS's gated cross-attention layers use it. Built in §39.4."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden_dim, bias=False)
        self.up_proj = nn.Linear(dim, hidden_dim, bias=False)
        self.down_proj = nn.Linear(hidden_dim, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))  # (B, N, D) -> (B, N, D)


_NORMS = {"layernorm": nn.LayerNorm, "rmsnorm": nn.RMSNorm}


class CrossAttentionBlock(nn.Module):
    """A pre-norm cross-attention block: text tokens read the media tokens, then an MLP.

    ``x = x + xattn(norm1(x), media)`` then ``x = x + mlp(norm2(x))``; x (B, N, dim), media
    (B, M, media_dim) -> (B, N, dim). ``mlp`` is an activation of ``mmcourse.nn.ACTIVATIONS`` (a
    two-layer MLP with it) or ``"swiglu"``; ``norm`` is ``"layernorm"`` or ``"rmsnorm"``; ``bias``
    applies to the attention projections. Built in §39.4.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_dim: int,
        mlp: str = "gelu",
        norm: str = "layernorm",
        bias: bool = True,
        media_dim: int | None = None,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        if norm not in _NORMS:
            raise ValueError(f"unknown norm {norm!r}, expected one of {sorted(_NORMS)}")
        if mlp != "swiglu" and mlp not in ACTIVATIONS:
            raise ValueError(
                f"unknown mlp {mlp!r}, expected 'swiglu' or one of {sorted(ACTIVATIONS)}"
            )
        self.norm1 = _NORMS[norm](dim, eps=eps)
        self.attn = CrossAttention(dim, num_heads, media_dim, bias=bias)
        self.norm2 = _NORMS[norm](dim, eps=eps)
        self.mlp = SwiGLU(dim, mlp_dim) if mlp == "swiglu" else MLP(dim, mlp_dim, mlp)

    def attend(
        self,
        x: torch.Tensor,
        media: torch.Tensor,
        media_mask: torch.Tensor | None,
        return_attention: bool,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The cross-attention term ``xattn(norm1(x), media)`` (B, N, D) and the weights (or None).

        ``media_mask`` is (B, M), the media tokens every text token of a sample may read, or
        (B, N, M), per text token (Flamingo's rule that a token reads only the image just before
        it, §40.5). A text token that may read no media token gets a zero term: no message."""
        if media_mask is None:
            mask = reads = None
        elif media_mask.dim() == 2:
            mask, reads = media_mask[:, None, None, :], media_mask.any(dim=1)[:, None, None]
        elif media_mask.dim() == 3:  # (B, N, M) -> (B, 1, N, M); reads (B, N, 1)
            mask, reads = media_mask[:, None], media_mask.any(dim=-1)[..., None]
        else:
            raise ValueError(f"expected media_mask of shape (B, M) or (B, N, M), "
                             f"got {tuple(media_mask.shape)}")
        attended, weights = self.attn(self.norm1(x), media, mask, return_attention)
        if reads is not None:
            attended = attended * reads  # no media: no message
        return attended, weights

    def forward(
        self,
        x: torch.Tensor,
        media: torch.Tensor,
        media_mask: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns the block's output (B, N, D) and the attention weights (B, heads, N, M) if
        ``return_attention`` (else None). ``media_mask`` (B, M) is True for real media tokens, or
        (B, N, M) per text token (see :meth:`attend`)."""
        attended, weights = self.attend(x, media, media_mask, return_attention)
        x = x + attended
        return x + self.mlp(self.norm2(x)), weights


class GatedCrossAttentionBlock(CrossAttentionBlock):
    """Flamingo's gated cross-attention dense block (Alayrac et al. 2022):

    ``x = x + tanh(attn_gate) * xattn(norm1(x), media)``, then
    ``x = x + tanh(ff_gate) * mlp(norm2(x))``; x (B, N, dim) text tokens, media (B, M, media_dim)
    -> (B, N, dim). Both gates start at 0, so the freshly inserted block is the identity and a
    pretrained language model below and above it is undisturbed; training opens the gates.
    ``vector_gates=True`` gives one gate per channel (IDEFICS's ``alpha_type="vector"``). Other
    arguments as in :class:`CrossAttentionBlock`. Built in §39.4; the Flamingo-style VLM of §40.4
    inserts it between the layers of a language model.
    """

    def __init__(
        self, dim: int, num_heads: int, mlp_dim: int, vector_gates: bool = False, **kwargs
    ) -> None:
        super().__init__(dim, num_heads, mlp_dim, **kwargs)
        shape = (dim,) if vector_gates else (1,)
        self.attn_gate = nn.Parameter(torch.zeros(shape))
        self.ff_gate = nn.Parameter(torch.zeros(shape))

    def forward(
        self,
        x: torch.Tensor,
        media: torch.Tensor,
        media_mask: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """As :meth:`CrossAttentionBlock.forward`, with the two tanh gates on the residual
        branches."""
        attended, weights = self.attend(x, media, media_mask, return_attention)
        x = x + torch.tanh(self.attn_gate) * attended
        return x + torch.tanh(self.ff_gate) * self.mlp(self.norm2(x)), weights

    @classmethod
    def from_transformers(cls, layer: nn.Module) -> GatedCrossAttentionBlock:
        """A block with the configuration and weights of ``layer``, a transformers
        ``IdeficsGatedCrossAttentionLayer`` (RMSNorm, SwiGLU, attention without biases), in eval
        mode."""
        if not hasattr(layer, "alpha_cross_attn") or not hasattr(layer, "cross_attn"):
            raise TypeError(
                "expected a transformers IdeficsGatedCrossAttentionLayer, "
                f"got {type(layer).__name__}"
            )
        if layer.cross_attn.qk_layer_norms:
            raise ValueError("IDEFICS layers with qk_layer_norms=True are not supported "
                             "(got qk_layer_norms=True)")
        probe = torch.linspace(-4, 4, 9)
        if not torch.allclose(layer.mlp.act_fn(probe), F.silu(probe)):  # several SiLU classes exist
            raise ValueError("only SiLU (hidden_act='silu') is supported, "
                             f"got {type(layer.mlp.act_fn).__name__}")
        attn = layer.cross_attn
        block = cls(attn.q_proj.in_features, attn.num_heads, layer.mlp.gate_proj.out_features,
                    vector_gates=layer.alpha_cross_attn.numel() > 1, mlp="swiglu", norm="rmsnorm",
                    bias=False, media_dim=attn.k_proj.in_features,
                    eps=layer.input_layernorm.variance_epsilon)
        state = {
            "norm1.weight": layer.input_layernorm.weight,
            "norm2.weight": layer.post_attention_layernorm.weight,
            "attn.q_proj.weight": attn.q_proj.weight,
            "attn.k_proj.weight": attn.k_proj.weight,
            "attn.v_proj.weight": attn.v_proj.weight,
            "attn.out_proj.weight": attn.o_proj.weight,
            "mlp.gate_proj.weight": layer.mlp.gate_proj.weight,
            "mlp.up_proj.weight": layer.mlp.up_proj.weight,
            "mlp.down_proj.weight": layer.mlp.down_proj.weight,
            "attn_gate": layer.alpha_cross_attn.reshape(-1),  # (1,) or (1, 1, D) -> (1,) or (D,)
            "ff_gate": layer.alpha_dense.reshape(-1),
        }
        block.load_state_dict({k: v.detach().clone() for k, v in state.items()})
        return block.eval()


class GatedMultimodalUnit(nn.Module):
    """The Gated Multimodal Unit (Arevalo et al. 2017), a learned, input-dependent mix of two
    modalities: ``h_a = tanh(W_a a)``, ``h_b = tanh(W_b b)``, ``z = sigmoid(W_z [a; b])`` and
    ``h = z * h_a + (1 - z) * h_b``.

    ``a`` (..., dim_a) and ``b`` (..., dim_b) with broadcastable leading dimensions -> ``h``
    (..., dim); the gate ``z`` says, per channel, how much of each modality goes through.
    Built in §39.4.
    """

    def __init__(self, dim_a: int, dim_b: int, dim: int) -> None:
        super().__init__()
        self.proj_a = nn.Linear(dim_a, dim, bias=False)
        self.proj_b = nn.Linear(dim_b, dim, bias=False)
        self.gate = nn.Linear(dim_a + dim_b, dim, bias=False)

    def forward(
        self, a: torch.Tensor, b: torch.Tensor, return_gate: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``h`` (..., dim), and the gate ``z`` (..., dim) as well if ``return_gate``."""
        dim_a, dim_b = self.proj_a.in_features, self.proj_b.in_features
        if a.shape[-1] != dim_a or b.shape[-1] != dim_b:
            raise ValueError(f"expected a (..., {dim_a}) and b (..., {dim_b}), "
                             f"got {tuple(a.shape)} and {tuple(b.shape)}")
        shape = torch.broadcast_shapes(a.shape[:-1], b.shape[:-1])
        a, b = a.expand(*shape, dim_a), b.expand(*shape, dim_b)  # (..., d_a), (..., d_b)
        z = torch.sigmoid(self.gate(torch.cat([a, b], dim=-1)))  # (..., d_a + d_b) -> (..., D)
        h = z * torch.tanh(self.proj_a(a)) + (1 - z) * torch.tanh(self.proj_b(b))
        return (h, z) if return_gate else h


class FiLM(nn.Module):
    """Feature-wise linear modulation (Perez et al. 2018): ``FiLM(F | c) = gamma(c) * F + beta(c)``.

    ``gamma`` and ``beta`` (B, dim) are one linear map of the conditioning vector ``condition``
    (B, cond_dim); they scale and shift every channel of ``features`` (B, ..., dim), the same at
    every position. The bias of ``gamma`` starts at 1, so an untrained FiLM layer scales the
    features by about 1. Built in §39.4.
    """

    def __init__(self, cond_dim: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * dim)
        with torch.no_grad():
            self.proj.bias[:dim].fill_(1.0)  # gamma = 1 + (a linear function of the condition)

    def forward(self, features: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        dim, cond_dim = self.proj.out_features // 2, self.proj.in_features
        if (condition.dim() != 2 or condition.shape[1] != cond_dim or features.shape[-1] != dim
                or features.shape[0] != condition.shape[0]):
            raise ValueError(
                f"expected features (B, ..., {dim}) and condition (B, {cond_dim}) with the same B, "
                f"got {tuple(features.shape)} and {tuple(condition.shape)}"
            )
        gamma, beta = self.proj(condition).chunk(2, dim=-1)  # (B, D_c) -> 2 x (B, D)
        view = (features.shape[0],) + (1,) * (features.dim() - 2) + (-1,)  # over all positions
        return gamma.view(view) * features + beta.view(view)


# ---------------------------------------------------------------------------- the fusion models
@dataclass
class FusionConfig:
    """The sizes shared by the fusion models of §39.4.

    ``image_dim`` is the width of the image tokens (from a frozen encoder), ``vocab_size`` and
    ``max_text_len`` describe the questions, ``dim``/``num_heads``/``mlp_dim`` the model's width,
    and ``num_answers`` the number of classes. Built in §39.4.
    """

    image_dim: int
    vocab_size: int
    max_text_len: int = 16
    dim: int = 32
    num_heads: int = 4
    mlp_dim: int = 64
    num_answers: int = 2

    def __post_init__(self) -> None:
        if self.dim % self.num_heads != 0:
            raise ValueError("dim must be divisible by num_heads, "
                             f"got dim={self.dim} and num_heads={self.num_heads}")


class TextEncoder(nn.Module):
    """Token embeddings plus learned positions, then ``num_layers`` encoder blocks:
    ids (B, L) -> (B, L, dim). Built in §39.4."""

    def __init__(self, config: FusionConfig, num_layers: int = 1) -> None:
        super().__init__()
        self.embed = nn.Embedding(config.vocab_size, config.dim)
        self.pos = nn.Parameter(0.02 * torch.randn(config.max_text_len, config.dim))
        self.blocks = nn.ModuleList(
            EncoderBlock(config.dim, config.num_heads, config.mlp_dim) for _ in range(num_layers)
        )

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.dim() != 2 or ids.shape[1] > self.pos.shape[0]:
            raise ValueError(f"expected token ids of shape (B, L) with L <= {self.pos.shape[0]}, "
                             f"got {tuple(ids.shape)}")
        x = self.embed(ids) + self.pos[: ids.shape[1]]  # (B, L) -> (B, L, D)
        for block in self.blocks:
            x, _ = block(x)
        return x


class FusionModel(nn.Module):
    """What the fusion models share: the config, input checks and the answer head (LayerNorm and
    Linear). Subclasses implement ``forward(image_tokens (B, M, image_dim), text_ids (B, L))``,
    which returns logits (B, num_answers). Built in §39.4.
    """

    def __init__(self, config: FusionConfig) -> None:
        super().__init__()
        self.config = config
        self.head = nn.Sequential(nn.LayerNorm(config.dim),
                                  nn.Linear(config.dim, config.num_answers))

    def check_inputs(self, image_tokens: torch.Tensor, text_ids: torch.Tensor) -> None:
        """Raise a ValueError unless image_tokens is (B, M, image_dim) and text_ids (B, L)."""
        dim = self.config.image_dim
        if (image_tokens.dim() != 3 or image_tokens.shape[-1] != dim or text_ids.dim() != 2
                or image_tokens.shape[0] != text_ids.shape[0]):
            raise ValueError(
                f"expected image_tokens (B, M, {dim}) and text_ids (B, L) with the same B, "
                f"got {tuple(image_tokens.shape)} and {tuple(text_ids.shape)}"
            )


class EarlyFusion(FusionModel):
    """Early fusion: image tokens and word embeddings, each with a modality embedding, are
    concatenated into one sequence for a joint transformer (2 blocks); the mean token is classified.
    Built in §39.4."""

    def __init__(self, config: FusionConfig, num_layers: int = 2) -> None:
        super().__init__(config)
        self.image_proj = nn.Linear(config.image_dim, config.dim)
        self.text = TextEncoder(config, num_layers=0)  # embeddings only: fusion starts at the input
        self.modality = nn.Parameter(0.02 * torch.randn(2, config.dim))
        self.blocks = nn.ModuleList(
            EncoderBlock(config.dim, config.num_heads, config.mlp_dim) for _ in range(num_layers)
        )

    def forward(self, image_tokens: torch.Tensor, text_ids: torch.Tensor) -> torch.Tensor:
        self.check_inputs(image_tokens, text_ids)
        images = self.image_proj(image_tokens) + self.modality[0]  # (B, M, D_img) -> (B, M, D)
        x = torch.cat([images, self.text(text_ids) + self.modality[1]], dim=1)  # (B, M + L, D)
        for block in self.blocks:
            x, _ = block(x)
        return self.head(x.mean(dim=1))  # (B, M + L, D) -> (B, answers)


class LateFusion(FusionModel):
    """Late fusion: an image-only and a text-only classifier (one encoder block each), whose logits
    are added. No feature of one modality ever meets a feature of the other. Built in §39.4."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__(config)  # self.head classifies the text
        self.image_proj = nn.Linear(config.image_dim, config.dim)
        self.image_block = EncoderBlock(config.dim, config.num_heads, config.mlp_dim)
        self.image_head = nn.Sequential(nn.LayerNorm(config.dim),
                                        nn.Linear(config.dim, config.num_answers))
        self.text = TextEncoder(config, num_layers=1)

    def unimodal_logits(
        self, image_tokens: torch.Tensor, text_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The image-only and the text-only logits, each (B, answers)."""
        self.check_inputs(image_tokens, text_ids)
        images, _ = self.image_block(self.image_proj(image_tokens))  # (B, M, D)
        return self.image_head(images.mean(dim=1)), self.head(self.text(text_ids).mean(dim=1))

    def forward(self, image_tokens: torch.Tensor, text_ids: torch.Tensor) -> torch.Tensor:
        image_logits, text_logits = self.unimodal_logits(image_tokens, text_ids)
        return image_logits + text_logits  # the decisions are combined, nothing else


class CrossAttentionFusion(FusionModel):
    """Intermediate fusion by cross-attention: the encoded question tokens attend to the image
    tokens in a :class:`CrossAttentionBlock`; the mean question token is classified. Built in §39.4.
    """

    block_class: type[CrossAttentionBlock] = CrossAttentionBlock

    def __init__(self, config: FusionConfig) -> None:
        super().__init__(config)
        self.image_proj = nn.Linear(config.image_dim, config.dim)
        self.text = TextEncoder(config, num_layers=1)
        self.block = self.block_class(config.dim, config.num_heads, config.mlp_dim)

    def forward(
        self, image_tokens: torch.Tensor, text_ids: torch.Tensor, return_attention: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits (B, answers), and the cross-attention weights (B, heads, L, M) if
        ``return_attention``."""
        self.check_inputs(image_tokens, text_ids)
        x = self.text(text_ids)  # (B, L) -> (B, L, D)
        x, weights = self.block(x, self.image_proj(image_tokens), return_attention=return_attention)
        logits = self.head(x.mean(dim=1))  # (B, L, D) -> (B, answers)
        return (logits, weights) if return_attention else logits


class FlamingoFusion(CrossAttentionFusion):
    """Intermediate fusion by Flamingo's tanh-gated cross-attention: :class:`CrossAttentionFusion`
    with a :class:`GatedCrossAttentionBlock`, so at initialisation the model is its text-only path.
    Built in §39.4."""

    block_class = GatedCrossAttentionBlock


class GMUFusion(FusionModel):
    """Intermediate fusion by a Gated Multimodal Unit: at every image token, the GMU mixes the token
    with the question vector (the mean of the encoded question); the fused tokens are max-pooled.
    Built in §39.4."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__(config)
        self.text = TextEncoder(config, num_layers=1)
        self.gmu = GatedMultimodalUnit(config.image_dim, config.dim, config.dim)

    def forward(self, image_tokens: torch.Tensor, text_ids: torch.Tensor) -> torch.Tensor:
        self.check_inputs(image_tokens, text_ids)
        question = self.text(text_ids).mean(dim=1)  # (B, L, D) -> (B, D)
        fused = self.gmu(image_tokens, question[:, None, :])  # -> (B, M, D)
        return self.head(fused.max(dim=1).values)  # max over image tokens -> (B, answers)


class FiLMFusion(FusionModel):
    """Intermediate fusion by FiLM: the question vector scales and shifts the channels of the image
    tokens inside a residual block, ``x + relu(FiLM(W x | q))``, as in the FiLM paper's CLEVR model;
    the tokens are then max-pooled. Built in §39.4."""

    def __init__(self, config: FusionConfig) -> None:
        super().__init__(config)
        self.text = TextEncoder(config, num_layers=1)
        self.image_proj = nn.Linear(config.image_dim, config.dim)
        self.linear = nn.Linear(config.dim, config.dim)
        self.film = FiLM(config.dim, config.dim)

    def forward(self, image_tokens: torch.Tensor, text_ids: torch.Tensor) -> torch.Tensor:
        self.check_inputs(image_tokens, text_ids)
        question = self.text(text_ids).mean(dim=1)  # (B, L, D) -> (B, D)
        x = F.relu(self.image_proj(image_tokens))  # (B, M, D_img) -> (B, M, D)
        x = x + F.relu(self.film(self.linear(x), question))  # the question modulates every channel
        return self.head(x.max(dim=1).values)  # max over image tokens -> (B, answers)
