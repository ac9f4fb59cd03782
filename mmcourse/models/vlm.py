"""Vision-language models built as the real ones are: a pretrained image tower and a pretrained
language model, joined by a connector.

- ``LLaVA`` (Liu et al. 2023): the connector turns the tower's patch features (B, N, D_v) into
  visual tokens (B, K, D_lm) that replace the ``<image>`` placeholder tokens of the prompt; the
  language model reads them like words. The connector may be a linear projection (LLaVA), the
  two-layer ``MLPProjector`` (LLaVA-1.5), a ``PatchMerger`` (Qwen2-VL: 2 x 2 patches per token)
  or a ``QFormerConnector`` (BLIP-2, whose wiring into the LM is the same). ``LLaVA.from_transformers`` loads ``LlavaForConditionalGeneration``.
- ``FlamingoVLM`` (Alayrac et al. 2022): a Perceiver Resampler turns each image into a few latents,
  and tanh-gated cross-attention blocks, inserted before the LM's layers and initialised at zero,
  let the text read them; no visual token enters the LM's sequence. In an interleaved sequence a
  token reads only the image whose ``<image>`` marker last precedes it.

Both take either ``pixel_values`` (the tower runs) or ``vision_features`` (the tower's selected
hidden states, precomputed once when the tower is frozen, as the notebooks do to train fast).
Built in §40.4; the instruction tuning and the interleaved format in §40.5.
"""
from __future__ import annotations

import torch
from torch import nn

from mmcourse.models.clip import CLIPVisionTower
from mmcourse.models.connectors import PerceiverResampler, QFormer
from mmcourse.models.fusion import GatedCrossAttentionBlock
from mmcourse.models.llama import KVCache, LlamaLM, LlamaOutput
from mmcourse.nn import ACTIVATIONS
from mmcourse.utils import model_device


# ------------------------------------------------------------------------------- connectors
class MLPProjector(nn.Module):
    """LLaVA-1.5's projector, ``linear_2(act(linear_1(x)))``: (B, N, vision_dim) -> (B, N, lm_dim).
    The names are those of transformers' ``LlavaMultiModalProjector``. Built in §40.4."""

    def __init__(self, vision_dim: int, lm_dim: int, act: str = "gelu", bias: bool = True) -> None:
        super().__init__()
        if act not in ACTIVATIONS:
            raise ValueError(f"unknown activation {act!r}, expected one of {sorted(ACTIVATIONS)}")
        self.linear_1 = nn.Linear(vision_dim, lm_dim, bias=bias)
        self.act = ACTIVATIONS[act]()
        self.linear_2 = nn.Linear(lm_dim, lm_dim, bias=bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(features)))


class PatchMerger(nn.Module):
    """Qwen2-VL's connector: each ``merge`` x ``merge`` block of neighbouring patches is
    concatenated and passed through an MLP, so the LM reads ``merge**2`` times fewer visual tokens:
    (B, N, vision_dim) -> (B, N / merge**2, lm_dim) for a square grid of N patches, blocks in
    row-major order. ``positions`` > 0 adds a learned embedding to each of that many output
    tokens, telling the LM where in the image each token lies (Qwen2-VL gives its visual tokens
    2-D rotary positions for the same purpose). Built in §40.4."""

    def __init__(self, vision_dim: int, lm_dim: int, merge: int = 2, act: str = "gelu",
                 positions: int = 0) -> None:
        super().__init__()
        self.merge = merge
        self.norm = nn.LayerNorm(vision_dim)
        self.mlp = MLPProjector(vision_dim * merge * merge, lm_dim, act)
        self.position = nn.Parameter(torch.zeros(positions, lm_dim)) if positions else None

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch, n, dim = features.shape
        side, m = int(round(n ** 0.5)), self.merge
        if side * side != n or side % m:
            raise ValueError(f"expected a square grid of patches whose side is divisible by "
                             f"{m}, got {n} patches")
        x = self.norm(features).view(batch, side // m, m, side // m, m, dim)  # rows, cols split
        x = x.permute(0, 1, 3, 2, 4, 5).reshape(batch, (side // m) ** 2, m * m * dim)
        x = self.mlp(x)  # (B, N / m^2, m^2 * D_v) -> (B, N / m^2, lm_dim)
        if self.position is not None:
            if len(self.position) != x.shape[1]:
                raise ValueError(f"this merger has {len(self.position)} position embeddings, "
                                 f"got {x.shape[1]} merged tokens")
            x = x + self.position
        return x


class QFormerConnector(nn.Module):
    """BLIP-2's connector: ``num_queries`` learned queries read the image features through a
    :class:`QFormer`, then a linear ``language_projection`` maps them to the LM's width:
    (B, N, vision_dim) -> (B, num_queries, lm_dim), whatever N is. Built in §40.4."""

    def __init__(self, vision_dim: int, lm_dim: int, num_queries: int = 16, dim: int = 64,
                 num_heads: int = 4, num_layers: int = 2, mlp_dim: int | None = None,
                 cross_attention_frequency: int = 1) -> None:
        super().__init__()
        self.query_tokens = nn.Parameter(torch.randn(1, num_queries, dim) * 0.02)
        self.qformer = QFormer(dim, num_heads, num_layers, mlp_dim or 4 * dim, vision_dim,
                               cross_attention_frequency)
        self.language_projection = nn.Linear(dim, lm_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        queries = self.query_tokens.expand(features.shape[0], -1, -1)  # (B, Q, dim)
        out = self.qformer(query_embeds=queries, encoder_hidden_states=features).last_hidden_state
        return self.language_projection(out)  # (B, Q, dim) -> (B, Q, lm_dim)


# ------------------------------------------------------------------------------ shared parts
def _select(tower: CLIPVisionTower, pixel_values: torch.Tensor, layer: int, keep_cls: bool
            ) -> torch.Tensor:
    """The tower's ``hidden_states[layer]``, without [CLS] unless ``keep_cls``:
    (n_images, C, H, W) -> (n_images, N, D_v)."""
    hidden = tower(pixel_values, output_hidden_states=True).hidden_states[layer]
    return hidden if keep_cls else hidden[:, 1:]


def _check_ids(input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> None:
    if input_ids.dim() != 2:
        raise ValueError(f"expected input_ids of shape (B, L), got {tuple(input_ids.shape)}")
    if attention_mask is not None and attention_mask.shape[0] != input_ids.shape[0]:
        raise ValueError(f"expected attention_mask with batch {input_ids.shape[0]}, "
                         f"got {tuple(attention_mask.shape)}")


class _GreedyDecoding:
    """Greedy decoding with the LM's key/value cache for a model whose ``forward(input_ids,
    attention_mask=, past_key_values=, use_cache=, **image)`` continues a cached sequence."""

    def _continue(self, ids: torch.Tensor, mask: torch.Tensor, past: KVCache, image: dict
                  ) -> LlamaOutput:
        return self(ids, attention_mask=mask, past_key_values=past, use_cache=True)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, max_new_tokens: int,
                 attention_mask: torch.Tensor | None = None, eos_token_id: int | None = None,
                 **image: torch.Tensor) -> torch.Tensor:
        """The prompt ``input_ids`` (B, L) (left-padded where ``attention_mask`` (B, L) is 0)
        followed by up to ``max_new_tokens`` greedy tokens: (B, L + T). The image arguments
        (``pixel_values=`` or ``vision_features=``) are read once, with the prompt; each later
        step feeds one token and the cache. Rows that produced ``eos_token_id`` continue with
        ``eos_token_id``; decoding stops when every row has. Built in §40.5."""
        if max_new_tokens < 0:
            raise ValueError(f"expected max_new_tokens >= 0, got {max_new_tokens}")
        mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        out = self(input_ids, attention_mask=mask, use_cache=True, **image)
        tokens, done = input_ids, torch.zeros(len(input_ids), dtype=torch.bool, device=input_ids.device)
        for step in range(max_new_tokens):
            nxt = out.logits[:, -1].argmax(-1)  # (B,)
            if eos_token_id is not None:
                nxt = nxt.masked_fill(done, eos_token_id)
                done = done | (nxt == eos_token_id)
            tokens = torch.cat((tokens, nxt[:, None]), dim=1)
            mask = torch.cat((mask, torch.ones_like(nxt[:, None])), dim=1)
            if bool(done.all()) or step == max_new_tokens - 1:
                break
            out = self._continue(nxt[:, None], mask, out.past_key_values, image)
        return tokens


# ------------------------------------------------------------------------------------ LLaVA
class LLaVA(_GreedyDecoding, nn.Module):
    """An image tower, a connector and a decoder LM, wired as LLaVA: the connector's visual tokens
    replace the prompt's ``<image>`` placeholders (``image_token_id``), image after image, in order.

    ``vision_feature_layer`` picks the tower's hidden state (-2, the one before the last block, as
    LLaVA does); [CLS] is dropped unless ``keep_cls`` (transformers' ``"default"`` strategy drops
    it, ``"full"`` keeps it). Every image must have as many placeholders as the connector makes
    tokens. Built in §40.4; ``from_transformers`` in §40.5.
    """

    def __init__(self, vision_tower: CLIPVisionTower, connector: nn.Module,
                 language_model: LlamaLM, image_token_id: int, vision_feature_layer: int = -2,
                 keep_cls: bool = False) -> None:
        super().__init__()
        if not 0 <= image_token_id < language_model.config.vocab_size:
            raise ValueError(f"image_token_id must be a token of the LM's vocabulary "
                             f"(0..{language_model.config.vocab_size - 1}), got {image_token_id}")
        self.vision_tower, self.connector, self.language_model = vision_tower, connector, language_model
        self.image_token_id, self.vision_feature_layer = image_token_id, vision_feature_layer
        self.keep_cls = keep_cls

    def vision_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The tower's selected features: (n_images, C, H, W) -> (n_images, N, D_v)."""
        return _select(self.vision_tower, pixel_values, self.vision_feature_layer, self.keep_cls)

    def embed(self, input_ids: torch.Tensor, vision_features: torch.Tensor | None) -> torch.Tensor:
        """The LM's input: token embeddings (B, L, D) with the placeholders replaced by the visual
        tokens of ``vision_features`` (n_images, N, D_v), image after image in reading order."""
        embeds = self.language_model.embed_tokens(input_ids)  # (B, L) -> (B, L, D)
        slots = input_ids == self.image_token_id  # (B, L)
        if vision_features is None:
            if slots.any():
                raise ValueError("input_ids hold <image> placeholders but no image was given")
            return embeds
        visual = self.connector(vision_features)  # (n_images, K, D)
        if int(slots.sum()) != visual.shape[0] * visual.shape[1]:
            raise ValueError(
                f"expected {visual.shape[1]} <image> placeholders for each of the "
                f"{visual.shape[0]} images, got {int(slots.sum())} placeholders")
        embeds = embeds.clone()
        embeds[slots] = visual.reshape(-1, visual.shape[-1]).to(embeds.dtype)  # row-major order
        return embeds

    def forward(self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None,
                vision_features: torch.Tensor | None = None,
                past_key_values: KVCache | None = None, use_cache: bool = False) -> LlamaOutput:
        """Next-token logits (B, L, vocab) for ``input_ids`` (B, L) whose placeholders hold the
        images ``pixel_values`` (n_images, C, H, W) or their precomputed ``vision_features``
        (n_images, N, D_v); ``attention_mask`` and the cache as in :class:`LlamaLM`."""
        _check_ids(input_ids, attention_mask)
        if pixel_values is not None and vision_features is not None:
            raise ValueError("expected pixel_values or vision_features, got both")
        if pixel_values is not None:
            vision_features = self.vision_features(pixel_values)
        embeds = self.embed(input_ids, vision_features)
        return self.language_model(inputs_embeds=embeds, attention_mask=attention_mask,
                                   past_key_values=past_key_values, use_cache=use_cache)

    @classmethod
    def from_transformers(cls, model: nn.Module) -> LLaVA:
        """Ours with the configuration and weights of ``model``, a transformers
        ``LlavaForConditionalGeneration`` with a CLIP vision tower and a Llama language model,
        in eval mode. Built in §40.5."""
        hf = getattr(model, "config", None)
        if getattr(hf, "model_type", None) != "llava":
            raise TypeError(f"expected a transformers LlavaForConditionalGeneration, "
                            f"got {type(model).__name__}")
        if not isinstance(hf.vision_feature_layer, int):
            raise ValueError("only one vision_feature_layer is supported, got "
                             f"{hf.vision_feature_layer}")
        if hf.vision_feature_select_strategy not in ("default", "full"):
            raise ValueError("expected vision_feature_select_strategy 'default' or 'full', got "
                             f"{hf.vision_feature_select_strategy!r}")
        inner = model.model
        hf_proj = inner.multi_modal_projector
        probe = torch.linspace(-4, 4, 17)  # several classes implement each activation: compare values
        act = next((name for name, make in ACTIVATIONS.items()
                    if torch.allclose(make()(probe), hf_proj.act(probe), atol=1e-6)), None)
        if act is None:
            raise ValueError(f"unsupported projector activation {type(hf_proj.act).__name__}, "
                             f"expected one of {sorted(ACTIVATIONS)}")
        projector = MLPProjector(hf_proj.linear_1.in_features, hf_proj.linear_2.out_features, act,
                                 bias=hf_proj.linear_1.bias is not None)
        projector.load_state_dict(hf_proj.state_dict())
        return cls(
            CLIPVisionTower.from_transformers(inner.vision_tower), projector,
            LlamaLM.from_transformers_parts(inner.language_model, model.lm_head),
            image_token_id=hf.image_token_id, vision_feature_layer=hf.vision_feature_layer,
            keep_cls=hf.vision_feature_select_strategy == "full",
        ).eval()


# --------------------------------------------------------------------------------- Flamingo
class FlamingoVLM(_GreedyDecoding, nn.Module):
    """A Flamingo-style model: the tower's features pass a :class:`PerceiverResampler`
    (``num_latents`` latents per image) and a :class:`GatedCrossAttentionBlock` before each layer
    of the language model lets the text read them. The gates start at 0, so before training the
    model is exactly its language model.

    ``<image>`` tokens (``image_token_id``) mark where images stand in the text, one token per
    image; a token reads only the latents of the last image marked at or before it (none before the
    first marker). Built in §40.4; interleaved sequences in §40.5.
    """

    def __init__(self, vision_tower: CLIPVisionTower, language_model: LlamaLM, image_token_id: int,
                 num_latents: int = 16, resampler_depth: int = 1, resampler_heads: int = 4,
                 xattn_heads: int = 4, xattn_mlp_dim: int | None = None,
                 vision_feature_layer: int = -2, keep_cls: bool = False) -> None:
        super().__init__()
        if not 0 <= image_token_id < language_model.config.vocab_size:
            raise ValueError(f"image_token_id must be a token of the LM's vocabulary "
                             f"(0..{language_model.config.vocab_size - 1}), got {image_token_id}")
        vision_dim, dim = vision_tower.config.hidden_size, language_model.config.hidden_size
        self.vision_tower, self.language_model = vision_tower, language_model
        self.resampler = PerceiverResampler(vision_dim, resampler_depth, resampler_heads,
                                            vision_dim // resampler_heads, num_latents)
        self.xattn = nn.ModuleList(
            GatedCrossAttentionBlock(dim, xattn_heads, xattn_mlp_dim or 2 * dim, mlp="swiglu",
                                     norm="rmsnorm", bias=False, media_dim=vision_dim)
            for _ in language_model.layers
        )
        self.image_token_id, self.vision_feature_layer = image_token_id, vision_feature_layer
        self.keep_cls, self.num_latents = keep_cls, num_latents

    def vision_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The tower's selected features: (n_images, C, H, W) -> (n_images, N, D_v)."""
        return _select(self.vision_tower, pixel_values, self.vision_feature_layer, self.keep_cls)

    def image_index(self, input_ids: torch.Tensor, offset: torch.Tensor | None = None
                    ) -> torch.Tensor:
        """Which image each token reads: (B, L) -> (B, L), the number of ``<image>`` markers at or
        before the token, minus one (-1: none yet). ``offset`` (B,) adds markers seen earlier."""
        index = (input_ids == self.image_token_id).long().cumsum(1) - 1
        return index if offset is None else index + offset[:, None]

    def media(self, vision_features: torch.Tensor, images_per_row: int) -> torch.Tensor:
        """The latents every row's tokens may read: (B * images_per_row, N, D_v) ->
        (B, images_per_row * num_latents, D_v), image after image."""
        latents = self.resampler(vision_features)  # (B * I, K, D_v)
        return latents.reshape(-1, images_per_row * self.num_latents, latents.shape[-1])

    def forward(self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None,
                vision_features: torch.Tensor | None = None,
                past_key_values: KVCache | None = None, use_cache: bool = False,
                image_index: torch.Tensor | None = None) -> LlamaOutput:
        """Next-token logits (B, L, vocab). The images are ``pixel_values`` (B * I, C, H, W) or
        ``vision_features`` (B * I, N, D_v): the same number I per row, in the order of that row's
        ``<image>`` markers. ``image_index`` (B, L) overrides :meth:`image_index` (generation
        continues from a cached prompt whose markers the new tokens do not hold)."""
        _check_ids(input_ids, attention_mask)
        if pixel_values is not None and vision_features is not None:
            raise ValueError("expected pixel_values or vision_features, got both")
        if pixel_values is not None:
            vision_features = self.vision_features(pixel_values)
        before_layer = None
        if vision_features is not None:
            batch = input_ids.shape[0]
            if vision_features.shape[0] % batch:
                raise ValueError(f"expected the same number of images for each of the {batch} rows,"
                                 f" got {vision_features.shape[0]} images")
            images = vision_features.shape[0] // batch
            index = self.image_index(input_ids) if image_index is None else image_index
            if int(index.max()) >= images:
                raise ValueError(f"a row marks {int(index.max()) + 1} images, "
                                 f"but {images} per row were given")
            media = self.media(vision_features, images)  # (B, I * K, D_v)
            owner = torch.arange(images, device=input_ids.device).repeat_interleave(self.num_latents)
            media_mask = index[:, :, None] == owner  # (B, L, I * K): the token's own image only

            def before_layer(i: int, x: torch.Tensor) -> torch.Tensor:
                return self.xattn[i](x, media, media_mask)[0]

        return self.language_model(input_ids, attention_mask=attention_mask,
                                   past_key_values=past_key_values, use_cache=use_cache,
                                   before_layer=before_layer)

    def _continue(self, ids: torch.Tensor, mask: torch.Tensor, past: KVCache, image: dict
                  ) -> LlamaOutput:
        """A generation step: the new token reads the prompt's last image (recomputing the
        resampler on the cached features is cheap at this size)."""
        if not image:
            return self(ids, attention_mask=mask, past_key_values=past, use_cache=True)
        features = image.get("vision_features")
        if features is None:
            features = self.vision_features(image["pixel_values"])
        last = torch.full_like(ids, features.shape[0] // ids.shape[0] - 1)  # (B, 1)
        return self(ids, attention_mask=mask, vision_features=features, past_key_values=past,
                    use_cache=True, image_index=last)


# ------------------------------------------------------------------------- the §40.4 zoo
#: the four connectors §40.4 compares, by name
CONNECTORS: tuple[str, ...] = ("linear", "mlp", "qformer", "flamingo")


def connector_model(kind: str, vision_tower: CLIPVisionTower, language_model: LlamaLM,
                    image_token_id: int) -> tuple[nn.Module, int]:
    """One of §40.4's four vision-language models on a given tower and LM, and the number of
    ``<image>`` tokens its prompt holds per image: ``"linear"`` (LLaVA) and ``"mlp"`` (LLaVA-1.5),
    one visual token per patch; ``"qformer"`` (BLIP-2), 16 learned queries of width 64 in 2 layers;
    ``"flamingo"``, a resampler to 16 latents and a gated cross-attention block before each LM
    layer, one ``<image>`` marker. Built in §40.4."""
    vision_dim, lm_dim = vision_tower.config.hidden_size, language_model.config.hidden_size
    patches = vision_tower.config.num_patches
    if kind == "linear":
        return LLaVA(vision_tower, nn.Linear(vision_dim, lm_dim), language_model, image_token_id), patches
    if kind == "mlp":
        return LLaVA(vision_tower, MLPProjector(vision_dim, lm_dim), language_model,
                     image_token_id), patches
    if kind == "qformer":
        connector = QFormerConnector(vision_dim, lm_dim, num_queries=16, dim=64, num_heads=4,
                                     num_layers=2)
        return LLaVA(vision_tower, connector, language_model, image_token_id), 16
    if kind == "flamingo":
        return FlamingoVLM(vision_tower, language_model, image_token_id, num_latents=16), 1
    raise ValueError(f"unknown connector {kind!r}, expected one of {CONNECTORS}")


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors of ``model``'s trainable parameters by name (what a checkpoint of a connector
    trained between a frozen tower and a frozen LM needs to store)."""
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def load_trainable(model: nn.Module, tensors: dict[str, torch.Tensor], prefix: str = "") -> nn.Module:
    """Load into ``model`` the tensors of ``tensors`` named ``prefix + name`` for each of its
    trainable parameters (what :func:`trainable_state` saved), checking that they are exactly
    those; the frozen parts are left as they are. Returns ``model``."""
    stored = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
    expected = {name for name, p in model.named_parameters() if p.requires_grad}
    if set(stored) != expected:
        raise ValueError(f"the stored tensors do not match the model's trainable parameters: "
                         f"{sorted(set(stored) ^ expected)[:3]} ...")
    model.load_state_dict(stored, strict=False)
    return model


# ------------------------------------------------------------------- shipped checkpoints
def read_notes(path) -> dict:
    """The ``notes`` JSON a checkpoint made by scripts/make_connectors.py or scripts/make_vlm.py
    holds in its metadata (recipe, curves, scores, command, time)."""
    import json

    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata() or {}
    if "notes" not in metadata:
        raise ValueError(f"{path} has no 'notes' in its metadata (got {sorted(metadata)})")
    return json.loads(metadata["notes"])


def load_connectors(path, vision_tower: CLIPVisionTower, language_model: LlamaLM,
                    image_token_id: int) -> tuple[dict[str, tuple[nn.Module, int]], dict]:
    """§40.4's four connectors as scripts/make_connectors.py saved them: ``{kind: (model, visual
    tokens)}`` on the given frozen tower and LM (shared, not copied), in eval mode, on the tower's
    device, and the notes."""
    from safetensors.torch import load_file

    device = model_device(vision_tower)
    for p in list(vision_tower.parameters()) + list(language_model.parameters()):
        p.requires_grad = False
    stored, models = load_file(str(path)), {}
    for kind in CONNECTORS:
        model, tokens = connector_model(kind, vision_tower, language_model, image_token_id)
        models[kind] = (load_trainable(model, stored, f"{kind}.").eval().to(device), tokens)
    return models, read_notes(path)


def llava_connector(name: str, vision_dim: int, lm_dim: int) -> tuple[nn.Module, int]:
    """The connectors scripts/make_vlm.py can train, by name, and the visual tokens each makes
    from 64 patches: ``"merger"`` (2 x 2 patches per token with learned positions, 16 tokens),
    ``"merger-nopos"`` (the same without positions) and ``"mlp"`` (one token per patch)."""
    if name == "merger":
        return PatchMerger(vision_dim, lm_dim, merge=2, positions=16), 16
    if name == "merger-nopos":
        return PatchMerger(vision_dim, lm_dim, merge=2), 16
    if name == "mlp":
        return MLPProjector(vision_dim, lm_dim), 64
    raise ValueError(f"unknown connector {name!r}, expected 'merger', 'merger-nopos' or 'mlp'")


def load_llava(path, vision_tower: CLIPVisionTower, lm_path, image_token_id: int
               ) -> tuple[dict[str, nn.Module], dict]:
    """§40.5's models as scripts/make_vlm.py saved them, in eval mode, by name: ``"llava"`` (on
    ``vision_tower``, frozen; its connector and fine-tuned LM), ``"frozen"`` (the same trained
    with the LM frozen) and ``"blind"`` (the text-only baseline LM) — those the file holds — and
    the notes. ``lm_path`` is the pretrained LM they all started from (data/tiny-lm.safetensors):
    the file stores only trained tensors, the LM's architecture and frozen weights come from
    there. The models are put on ``vision_tower``'s device."""
    from safetensors.torch import load_file

    device = model_device(vision_tower)
    notes = read_notes(path)
    config, stored, models = notes["config"], load_file(str(path)), {}
    for name in notes["scores"]:
        lm = LlamaLM.from_checkpoint(lm_path)
        if name == "blind":
            models[name] = load_trainable(lm, stored, "blind.").eval().to(device)
            continue
        connector, _ = llava_connector(config["connector"], vision_tower.config.hidden_size,
                                       lm.config.hidden_size)
        vlm = LLaVA(vision_tower, connector, lm, image_token_id,
                    vision_feature_layer=config["layer"])
        frozen = list(vlm.vision_tower.parameters())
        if name == "frozen":
            frozen += list(vlm.language_model.parameters())
        for p in frozen:
            p.requires_grad = False
        models[name] = load_trainable(vlm, stored, f"{name}.").eval().to(device)
    return models, notes
