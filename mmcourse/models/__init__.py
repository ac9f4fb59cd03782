"""The book's models, written from scratch; each says where the book builds it.

Names are imported lazily (``from mmcourse.models import ViT`` loads only ``vit.py``), so a section
pays only for the models it uses. To add a model, add its names to ``_EXPORTS``.
"""
import importlib

_EXPORTS: dict[str, str] = {
    "ViT": "vit",
    "ViTConfig": "vit",
    "ViTOutput": "vit",
    "CrossAttention": "fusion",
    "CrossAttentionBlock": "fusion",
    "GatedCrossAttentionBlock": "fusion",
    "SwiGLU": "fusion",
    "GatedMultimodalUnit": "fusion",
    "FiLM": "fusion",
    "FusionConfig": "fusion",
    "FusionModel": "fusion",
    "TextEncoder": "fusion",
    "EarlyFusion": "fusion",
    "LateFusion": "fusion",
    "CrossAttentionFusion": "fusion",
    "FlamingoFusion": "fusion",
    "GMUFusion": "fusion",
    "FiLMFusion": "fusion",
    "Wav2Vec2FeatureEncoder": "wav2vec2",
    "Wav2Vec2FeatureEncoderConfig": "wav2vec2",
    "DualEncoder": "dual_encoder",
    "DualEncoderConfig": "dual_encoder",
    "CLIP": "clip",
    "CLIPConfig": "clip",
    "CLIPTextConfig": "clip",
    "CLIPOutput": "clip",
    "CLIPVisionTower": "clip",
    "CLIPTextTransformer": "clip",
    "CaptionTokenizer": "clip",
    "CaptionerConfig": "captioning",
    "ShowAttendTellConfig": "captioning",
    "BottomUpTopDownConfig": "captioning",
    "CaptionerOutput": "captioning",
    "Captioner": "captioning",
    "SoftAttention": "captioning",
    "ShowAttendTell": "captioning",
    "BottomUpTopDown": "captioning",
    "BeamSearchOutput": "captioning",
    "grid_features": "captioning",
    "box_weights": "captioning",
    "region_features": "captioning",
    "caption_loss": "captioning",
    "doubly_stochastic_penalty": "captioning",
    "greedy_search": "captioning",
    "beam_step": "captioning",
    "beam_search": "captioning",
    "GridEncoder": "captioning",
    "cell_labels": "captioning",
    "caption_batches": "captioning",
    "captioner_loss": "captioning",
    "save_captioners": "captioning",
    "load_captioners": "captioning",
    "VisDialConfig": "visdial",
    "SentenceEncoder": "visdial",
    "ObjectSetEncoder": "visdial",
    "memory_read": "visdial",
    "fusion_mlp": "visdial",
    "LateFusionEncoder": "visdial",
    "MemoryNetworkEncoder": "visdial",
    "DiscriminativeDecoder": "visdial",
    "GenerativeDecoder": "visdial",
    "VisDialModel": "visdial",
    "LlamaConfig": "llama",
    "LlamaLM": "llama",
    "QFormer": "connectors",
    "QFormerLayer": "connectors",
    "QFormerOutput": "connectors",
    "PerceiverAttention": "connectors",
    "PerceiverResampler": "connectors",
    "BLIP": "blip",
    "BLIPConfig": "blip",
    "BLIPTextLayer": "blip",
    "mine_negatives": "blip",
    "pool_image_tokens": "blip",
    "save_blips": "blip",
    "load_blips": "blip",
    "MLPProjector": "vlm",
    "QFormerConnector": "vlm",
    "PatchMerger": "vlm",
    "LLaVA": "vlm",
    "FlamingoVLM": "vlm",
    "CONNECTORS": "vlm",
    "connector_model": "vlm",
    "trainable_state": "vlm",
    "load_trainable": "vlm",
    "read_notes": "vlm",
    "load_connectors": "vlm",
    "llava_connector": "vlm",
    "load_llava": "vlm",
    "module_tree": "inspect",
    "parameter_split": "inspect",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(_EXPORTS)


__all__ = sorted(_EXPORTS)
