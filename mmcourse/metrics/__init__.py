"""Metrics of the book, one module per family; each says where the book builds it."""
from .asr import cer, edit_distance, wer
from .caption import (bleu, cider_d, meteor, meteor_align, meteor_resources, ptb_tokenize,
                      ptb_tokenize_lines, rouge_l, spice)
from .documents import anls
from .embeddings import cone_statistics, gap_vector, modality_gap
from .generation import clip_score, fid, inception_score, kid
from .retrieval import recall_at_k, retrieval_scores
from .ranking import ndcg, ranking_metrics, scores_to_ranks
from .speaker import equal_error_rate
from .vqa import gqa_consistency, normalize_answer, vqa_accuracy, vqa_accuracy_by_type

__all__ = ["cone_statistics", "gap_vector", "modality_gap", "recall_at_k", "retrieval_scores",
           "ptb_tokenize", "ptb_tokenize_lines", "bleu", "rouge_l", "cider_d", "meteor",
           "meteor_align", "meteor_resources", "spice",
           "vqa_accuracy", "vqa_accuracy_by_type", "normalize_answer", "gqa_consistency", "wer",
           "cer", "edit_distance", "anls", "fid", "kid", "inception_score", "clip_score"]
__all__ += ["ndcg", "ranking_metrics", "scores_to_ranks", "equal_error_rate"]
