"""CLIP (Radford et al. 2021): an image tower and a text tower trained to agree, from scratch.

The image tower is the 39.1 ViT with CLIP's changes (no bias in the patch embedding, a LayerNorm
on the embeddings, the final LayerNorm on the pooled [CLS] token only); the text tower is a causal
transformer pooled at its end-of-text token. Linear projections without bias map both into one
space, where L2-normalised embeddings are compared by cosine similarity times a learned scale
``exp(t)``. The architecture is that of ``transformers.CLIPModel``: ``CLIP.from_transformers``
loads its weights and reproduces its outputs. A word-level ``CaptionTokenizer`` for ShapesWorld and
a safetensors checkpoint format (``save_checkpoint`` / ``from_checkpoint``) let later sections reuse
the CLIP trained here. Built in §40.1.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mmcourse.models.checkpoint import SafetensorsCheckpoint
from mmcourse.models.vit import ViT, ViTConfig, _square
from mmcourse.nn import ACTIVATIONS, EncoderBlock, PatchEmbedding


# ---------------------------------------------------------------------------- configuration
@dataclass
class CLIPTextConfig:
    """The text tower's hyper-parameters; the defaults are those of OpenAI's CLIP. Built in §40.1.

    ``eos_token_id`` marks the end of a text, where the tower reads its output (as in
    ``transformers``: with ``eos_token_id == 2``, an old configuration value, the token with the
    highest id is used instead, which is where OpenAI's tokenizer puts its end-of-text token).
    """

    vocab_size: int = 49408
    max_position_embeddings: int = 77
    hidden_size: int = 512
    num_hidden_layers: int = 12
    num_attention_heads: int = 8
    intermediate_size: int = 2048
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-5
    eos_token_id: int = 49407

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"hidden_size must be divisible by num_attention_heads, got hidden_size="
                f"{self.hidden_size} and num_attention_heads={self.num_attention_heads}"
            )
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(
                f"unknown hidden_act {self.hidden_act!r}, expected one of {sorted(ACTIVATIONS)}"
            )


@dataclass
class CLIPConfig:
    """CLIP's hyper-parameters: a ``ViTConfig`` for the image tower (its pooler is not used), a
    ``CLIPTextConfig`` for the text tower, the width ``projection_dim`` of the shared space and the
    initial value of the learned log-scale, ``log(1 / 0.07)`` as in CLIP. The defaults are those of
    ViT-B/32. ``image_mean`` and ``image_std`` are the per-channel statistics that
    ``CLIP.pixel_values`` standardises images with (OpenAI's by default; a processor's job in
    ``transformers``, kept here so that a checkpoint carries them). Built in §40.1."""

    vision: ViTConfig = field(default_factory=lambda: ViTConfig(
        patch_size=32, hidden_act="quick_gelu", layer_norm_eps=1e-5, add_pooling_layer=False))
    text: CLIPTextConfig = field(default_factory=CLIPTextConfig)
    projection_dim: int = 512
    logit_scale_init: float = math.log(1 / 0.07)
    image_mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    image_std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)

    def __post_init__(self) -> None:  # from a dict (e.g. the JSON of a checkpoint)
        if isinstance(self.vision, dict):
            self.vision = ViTConfig(**self.vision)
        if isinstance(self.text, dict):
            self.text = CLIPTextConfig(**self.text)
        self.image_mean, self.image_std = tuple(self.image_mean), tuple(self.image_std)

    @classmethod
    def tiny(cls, vocab_size: int, eos_token_id: int, max_length: int = 32,
             image_size: int = 64) -> CLIPConfig:
        """The book's small CLIP for ShapesWorld: the tiny ViT of §39.1 (8 x 8 patches, width 64,
        4 layers) and a 2-layer causal text tower of width 64, projected to 64 dimensions."""
        vision = replace(ViTConfig.tiny(), image_size=image_size, hidden_act="quick_gelu",
                         layer_norm_eps=1e-5, add_pooling_layer=False)
        text = CLIPTextConfig(vocab_size=vocab_size, max_position_embeddings=max_length,
                              hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                              intermediate_size=256, eos_token_id=eos_token_id)
        return cls(vision=vision, text=text, projection_dim=64)


@dataclass
class CLIPOutput:
    """What ``CLIP.forward`` returns, named as in ``transformers``. Built in §40.1.

    - ``logits_per_image``: (B_img, B_txt), ``exp(t) * cos(image i, text j)``.
    - ``logits_per_text``: (B_txt, B_img), its transpose.
    - ``image_embeds``, ``text_embeds``: (B, projection_dim), L2-normalised.
    """

    logits_per_image: torch.Tensor
    logits_per_text: torch.Tensor
    image_embeds: torch.Tensor
    text_embeds: torch.Tensor


# ---------------------------------------------------------------------------- the two towers
class CLIPVisionTower(ViT):
    """The ViT of §39.1 with CLIP's three changes: the patch embedding has no bias, a LayerNorm
    (``pre_norm``) follows the patch + position embeddings, and the final LayerNorm (``norm``) is
    applied to the pooled [CLS] token only. Built in §40.1.

    It overrides only the ViT's ``embed`` and ``head``; ``forward`` (the ViT's) returns a
    ``ViTOutput`` as ``transformers.CLIPVisionModel`` does: ``last_hidden_state`` (B, 1 + N, D) is
    the last block's output *without* a final LayerNorm, ``pooler_output`` (B, D) is
    ``norm(last_hidden_state[:, 0])``, and ``hidden_states`` holds the normalised embeddings and
    each block's output (LLaVA feeds ``hidden_states[-2]`` to its language model).
    """

    def __init__(self, config: ViTConfig) -> None:
        config = replace(config, add_pooling_layer=False)
        super().__init__(config)
        self.patch_embed = PatchEmbedding(config.patch_size, config.num_channels,
                                          config.hidden_size, bias=False)
        self._init_weights(self.patch_embed.proj)
        self.pre_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The ViT's embeddings followed by ``pre_norm``: (B, C, H, W) -> (B, 1 + N, D)."""
        return self.pre_norm(super().embed(pixel_values))

    def head(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """No LayerNorm on the tokens; ``norm`` on the [CLS] token only:
        (B, 1 + N, D) -> ``(x, pooled (B, D))``."""
        return x, self.norm(x[:, 0])

    @classmethod
    def from_transformers(cls, model: nn.Module) -> CLIPVisionTower:
        """The tower with the configuration and weights of ``model``, a
        ``transformers.CLIPVisionModel`` (e.g. ``CLIPModel.vision_model`` or LLaVA's
        ``vision_tower``), in eval mode. Built in §40.1."""
        hf = getattr(model, "config", None)
        if getattr(hf, "model_type", None) != "clip_vision_model":
            raise TypeError(f"expected a transformers CLIPVisionModel, got {type(model).__name__}")
        config = ViTConfig(
            image_size=_square(hf.image_size, "image_size"),
            patch_size=_square(hf.patch_size, "patch_size"), num_channels=hf.num_channels,
            hidden_size=hf.hidden_size, num_hidden_layers=hf.num_hidden_layers,
            num_attention_heads=hf.num_attention_heads, intermediate_size=hf.intermediate_size,
            hidden_act=hf.hidden_act, layer_norm_eps=hf.layer_norm_eps, add_pooling_layer=False,
        )
        state = model.state_dict()
        dim = config.hidden_size
        names = {"patch_embed.proj.weight": "embeddings.patch_embedding.weight"}
        names |= _norm_names({"pre_norm": "pre_layrnorm", "norm": "post_layernorm"})
        names |= _block_names(config.num_hidden_layers, "encoder.layers")
        ours = {o: state[t] for o, t in names.items()}
        ours["cls_token"] = state["embeddings.class_embedding"].reshape(1, 1, dim)
        ours["pos_embed"] = state["embeddings.position_embedding.weight"].reshape(1, -1, dim)
        tower = cls(config)
        tower.load_state_dict(ours)
        return tower.eval()


@dataclass
class TextOutput:
    """What ``CLIPTextTransformer.forward`` returns: ``last_hidden_state`` (B, L, D) after the final
    LayerNorm and ``pooler_output`` (B, D), its vector at the end-of-text token. Built in §40.1."""

    last_hidden_state: torch.Tensor
    pooler_output: torch.Tensor


class CLIPTextTransformer(nn.Module):
    """CLIP's text tower: token + position embeddings, pre-norm encoder blocks under a causal mask
    (and a padding mask), a final LayerNorm, and the vector at the end-of-text token as the text's
    summary; ids (B, L) -> ``TextOutput``. Built in §40.1."""

    def __init__(self, config: CLIPTextConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.hidden_size
        self.token_embed = nn.Embedding(config.vocab_size, dim)
        self.pos_embed = nn.Embedding(config.max_position_embeddings, dim)
        self.blocks = nn.ModuleList(
            EncoderBlock(dim, config.num_attention_heads, config.intermediate_size,
                         config.hidden_act, config.layer_norm_eps)
            for _ in range(config.num_hidden_layers)
        )
        self.norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)

    def eos_positions(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Where each text is read out, (B, L) -> (B,): the first ``eos_token_id``, or, for the
        legacy ``eos_token_id == 2``, the token with the highest id (as ``transformers`` does)."""
        if self.config.eos_token_id == 2:
            return input_ids.argmax(dim=-1)
        return (input_ids == self.config.eos_token_id).int().argmax(dim=-1)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> TextOutput:
        """Encode token ids (B, L) with ``attention_mask`` (B, L), 1 for tokens and 0 for padding
        (None: no padding)."""
        max_length = self.config.max_position_embeddings
        if input_ids.dim() != 2 or not 0 < input_ids.shape[1] <= max_length:
            raise ValueError(
                f"expected input_ids of shape (B, L) with 0 < L <= {max_length}, "
                f"got {tuple(input_ids.shape)}"
            )
        length = input_ids.shape[1]
        positions = torch.arange(length, device=input_ids.device)
        x = self.token_embed(input_ids) + self.pos_embed(positions)  # (B, L) -> (B, L, D)
        # query i may attend to key j <= i (causal) if key j is not padding: (B, 1, L, L)
        mask = torch.ones(length, length, dtype=torch.bool, device=input_ids.device).tril()
        if attention_mask is not None:
            if attention_mask.shape != input_ids.shape:
                raise ValueError(
                    f"expected attention_mask of shape {tuple(input_ids.shape)} like input_ids, "
                    f"got {tuple(attention_mask.shape)}"
                )
            mask = mask & attention_mask.bool()[:, None, None, :]
        for block in self.blocks:
            x, _ = block(x, attention_mask=mask)
        x = self.norm(x)
        pooled = x[torch.arange(len(x), device=x.device), self.eos_positions(input_ids)]  # (B, D)
        return TextOutput(last_hidden_state=x, pooler_output=pooled)


# ---------------------------------------------------------------------------- CLIP
class CLIP(SafetensorsCheckpoint, nn.Module):
    """CLIP: two towers, two projections without bias, one embedding space and a learned scale.
    Built in §40.1.

    ``forward(pixel_values, input_ids, attention_mask)`` returns a ``CLIPOutput`` whose
    ``logits_per_image`` (B_img, B_txt) are ``exp(t) * cos`` of every image with every text;
    ``encode_image`` / ``encode_text`` give the L2-normalised embeddings and ``vision_features``
    the image tower's patch features, which later sections feed to a language model.
    """

    config_class, config_name = CLIPConfig, "CLIP configuration"  # for the checkpoint methods

    def __init__(self, config: CLIPConfig) -> None:
        super().__init__()
        self.config = config
        self.vision = CLIPVisionTower(config.vision)
        self.text = CLIPTextTransformer(config.text)
        self.visual_projection = nn.Linear(config.vision.hidden_size, config.projection_dim,
                                           bias=False)
        self.text_projection = nn.Linear(config.text.hidden_size, config.projection_dim,
                                         bias=False)
        # t, the log of the scale: exp(t) stays positive whatever t the optimiser reaches
        self.log_logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init)))
        self._init_weights_as_clip()

    @torch.no_grad()
    def _init_weights_as_clip(self) -> None:
        """CLIP's initialisation (as ``transformers`` initialises ``CLIPModel``): standard
        deviations that shrink with the width D and the depth L, so that every block already
        changes its input at step 0 (the ViT's 0.02 everywhere leaves the image embeddings of
        different images almost equal at first)."""
        for tower in (self.vision, self.text):
            dim, depth = tower.config.hidden_size, tower.config.num_hidden_layers
            for block in tower.blocks:
                for proj in (block.attn.q_proj, block.attn.k_proj, block.attn.v_proj):
                    nn.init.normal_(proj.weight, std=dim**-0.5 * (2 * depth) ** -0.5)
                nn.init.normal_(block.attn.out_proj.weight, std=dim**-0.5)
                nn.init.normal_(block.mlp.fc1.weight, std=(2 * dim) ** -0.5)
                nn.init.normal_(block.mlp.fc2.weight, std=dim**-0.5 * (2 * depth) ** -0.5)
        nn.init.normal_(self.vision.cls_token, std=self.config.vision.hidden_size**-0.5)
        for weight in (self.vision.patch_embed.proj.weight, self.vision.pos_embed):
            nn.init.normal_(weight, std=0.02)
        for proj in (self.visual_projection, self.text_projection):
            nn.init.normal_(proj.weight, std=proj.in_features**-0.5)

    @property
    def logit_scale(self) -> torch.Tensor:
        """``exp(t)``, the inverse temperature (a scalar tensor)."""
        return self.log_logit_scale.exp()

    def pixel_values(self, images: torch.Tensor) -> torch.Tensor:
        """What the image tower reads: images (B, C, H, W) with values in [0, 1] (e.g.
        ``mmcourse.data.shapes.to_tensor``), standardised channel by channel with the config's
        ``image_mean`` and ``image_std``."""
        if images.dim() != 4 or images.shape[1] != len(self.config.image_mean):
            raise ValueError(
                f"expected images of shape (B, {len(self.config.image_mean)}, H, W), "
                f"got {tuple(images.shape)}"
            )
        mean = images.new_tensor(self.config.image_mean)[:, None, None]  # (C, 1, 1)
        std = images.new_tensor(self.config.image_std)[:, None, None]
        return (images - mean) / std

    def vision_features(self, pixel_values: torch.Tensor, layer: int = -1) -> torch.Tensor:
        """The image tower's tokens, (B, C, H, W) -> (B, 1 + N, D): ``hidden_states[layer]`` of
        ``CLIPVisionTower`` (-1: the last block's output; -2: the one before, LLaVA's choice).
        Token 0 is [CLS], the others are the N patches in row-major order."""
        out = self.vision(pixel_values, output_hidden_states=layer != -1)
        return out.last_hidden_state if layer == -1 else out.hidden_states[layer]

    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """L2-normalised image embeddings: (B, C, H, W) -> (B, projection_dim)."""
        pooled = self.vision(pixel_values).pooler_output  # (B, D_vision)
        return F.normalize(self.visual_projection(pooled), dim=-1)

    def encode_text(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """L2-normalised text embeddings: ids (B, L) and mask (B, L) -> (B, projection_dim)."""
        pooled = self.text(input_ids, attention_mask).pooler_output  # (B, D_text)
        return F.normalize(self.text_projection(pooled), dim=-1)

    def forward(
        self, pixel_values: torch.Tensor, input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> CLIPOutput:
        """Score every image of ``pixel_values`` (B_img, C, H, W) against every text of
        ``input_ids`` (B_txt, L); see ``CLIPOutput``."""
        image_embeds = self.encode_image(pixel_values)
        text_embeds = self.encode_text(input_ids, attention_mask)
        logits_per_image = self.logit_scale * image_embeds @ text_embeds.T  # (B_img, B_txt)
        return CLIPOutput(logits_per_image, logits_per_image.T, image_embeds, text_embeds)

    # ------------------------------------------------------------------------ loading and saving
    @classmethod
    def from_transformers(cls, model: nn.Module) -> CLIP:
        """A CLIP with the configuration and weights of ``model``, a ``transformers.CLIPModel``, in
        eval mode. Built in §40.1."""
        hf = getattr(model, "config", None)
        if getattr(hf, "model_type", None) != "clip":
            raise TypeError(f"expected a transformers CLIPModel, got {type(model).__name__}")
        vision = CLIPVisionTower.from_transformers(model.vision_model)
        t = hf.text_config
        text_config = CLIPTextConfig(
            vocab_size=t.vocab_size, max_position_embeddings=t.max_position_embeddings,
            hidden_size=t.hidden_size, num_hidden_layers=t.num_hidden_layers,
            num_attention_heads=t.num_attention_heads, intermediate_size=t.intermediate_size,
            hidden_act=t.hidden_act, layer_norm_eps=t.layer_norm_eps, eos_token_id=t.eos_token_id,
        )
        clip = cls(CLIPConfig(vision=vision.config, text=text_config,
                              projection_dim=hf.projection_dim,
                              logit_scale_init=model.logit_scale.item()))
        state = model.state_dict()
        names = {"token_embed.weight": "embeddings.token_embedding.weight",
                 "pos_embed.weight": "embeddings.position_embedding.weight"}
        names |= _norm_names({"norm": "final_layer_norm"})
        names |= _block_names(text_config.num_hidden_layers, "encoder.layers")
        clip.text.load_state_dict({o: state[f"text_model.{t}"] for o, t in names.items()})
        clip.vision.load_state_dict(vision.state_dict())
        with torch.no_grad():
            clip.visual_projection.weight.copy_(state["visual_projection.weight"])
            clip.text_projection.weight.copy_(state["text_projection.weight"])
            clip.log_logit_scale.copy_(state["logit_scale"])
        return clip.eval()


def _norm_names(modules: dict[str, str]) -> dict[str, str]:
    """Our LayerNorm names -> transformers' names, for weight and bias."""
    return {f"{o}.{p}": f"{t}.{p}" for o, t in modules.items() for p in ("weight", "bias")}


def _block_names(num_layers: int, prefix: str) -> dict[str, str]:
    """Our ``EncoderBlock`` parameter names -> those of ``transformers``' CLIPEncoderLayer."""
    modules = {}
    for i in range(num_layers):
        for ours, theirs in (("norm1", "layer_norm1"), ("attn.q_proj", "self_attn.q_proj"),
                             ("attn.k_proj", "self_attn.k_proj"), ("attn.v_proj", "self_attn.v_proj"),
                             ("attn.out_proj", "self_attn.out_proj"), ("norm2", "layer_norm2"),
                             ("mlp.fc1", "mlp.fc1"), ("mlp.fc2", "mlp.fc2")):
            modules[f"blocks.{i}.{ours}"] = f"{prefix}.{i}.{theirs}"
    return _norm_names(modules)


# ---------------------------------------------------------------------------- tokenizer
class CaptionTokenizer:
    """A word-level tokenizer for ShapesWorld captions, laid out as CLIP's: ``<pad>`` = 0,
    ``<unk>`` = 1, the words, then ``<bos>`` and ``<eos>`` as the two highest ids (so the
    end-of-text token is also the highest id of every text). Built in §40.1.

    ``tokenizer(texts)`` returns ``{"input_ids": (B, L), "attention_mask": (B, L)}``: each text
    as ``<bos> words <eos>``, padded with 0 to the longest text of the batch (or to
    ``max_length``).
    """

    SPLIT = re.compile(r"[a-z]+|[,:]")

    def __init__(self, vocab: list[str]) -> None:
        if vocab[:2] != ["<pad>", "<unk>"] or vocab[-2:] != ["<bos>", "<eos>"]:
            raise ValueError(
                "expected a vocabulary ['<pad>', '<unk>', words..., '<bos>', '<eos>'], got "
                f"{vocab[:2]} ... {vocab[-2:]}"
            )
        self.vocab = list(vocab)
        self.token_id = {w: i for i, w in enumerate(self.vocab)}
        self.pad_token_id, self.unk_token_id = 0, 1
        self.bos_token_id, self.eos_token_id = len(vocab) - 2, len(vocab) - 1

    @classmethod
    def from_texts(cls, texts: list[str]) -> CaptionTokenizer:
        """The tokenizer whose words are those of ``texts``, sorted."""
        words = sorted({w for text in texts for w in cls.SPLIT.findall(text.lower())})
        return cls(["<pad>", "<unk>"] + words + ["<bos>", "<eos>"])

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> CaptionTokenizer:
        """The tokenizer stored by ``CLIP.save_checkpoint`` at ``path``."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        if "vocab" not in metadata:
            raise ValueError(f"{path} stores no tokenizer vocabulary")
        return cls(json.loads(metadata["vocab"]))

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list[int]:
        """``<bos>``, the ids of the words of ``text`` (``<unk>`` for unknown ones), ``<eos>``."""
        words = self.SPLIT.findall(text.lower())
        return [self.bos_token_id, *(self.token_id.get(w, 1) for w in words), self.eos_token_id]

    def decode(self, ids: list[int] | torch.Tensor) -> str:
        """The words of ``ids`` joined by spaces, without the special tokens."""
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else ids
        special = {self.pad_token_id, self.bos_token_id, self.eos_token_id}
        return " ".join(self.vocab[i] for i in ids if i not in special)

    def __call__(self, texts: list[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
        if isinstance(texts, str):
            raise ValueError("expected a list of texts, got one string (wrap it in a list)")
        encoded = [self.encode(t) for t in texts]
        longest = max(len(e) for e in encoded)
        length = longest if max_length is None else max_length
        if longest > length:
            raise ValueError(f"a text has {longest} tokens, more than max_length={length}")
        ids = torch.zeros(len(texts), length, dtype=torch.long)
        for row, e in enumerate(encoded):
            ids[row, : len(e)] = torch.tensor(e)
        return {"input_ids": ids, "attention_mask": (ids != self.pad_token_id).long()}
