"""Hidden cases of the exercises of §41.1 (Whisper-style speech recognition)."""
from __future__ import annotations

from .core import Case, register


def _positions_cases() -> list[Case]:
    import torch

    from ..audio import whisper_log_mel

    cases = []
    conv = torch.nn.Conv1d(1, 1, kernel_size=3, stride=2, padding=1)  # Whisper's conv2
    for samples in (480_000, 16_000, 16_001, 16_159, 16_160, 16_320, 1_000, 47_123):
        frames = whisper_log_mel(torch.zeros(samples), num_samples=None).shape[-1]
        positions = conv(torch.zeros(1, 1, frames)).shape[-1]
        cases.append(Case((samples,), positions, f"{samples} samples",
                          hint="the front end gives num_samples // 160 frames (1 + n // 160 STFT "
                               "frames, the last dropped); conv2 gives (T + 2 - 3) // 2 + 1."))
    return cases


def _targets_cases() -> list[Case]:
    cases = []
    prompts = ([1, 2, 4, 7], [1, 3, 5, 7], [10, 11, 12, 13])
    texts = ([20, 21, 22], [30], [40, 41, 42, 43, 44, 45], [])
    for k, (prompt, text) in enumerate(zip(prompts * 2, texts)):
        inputs = prompt + text
        targets = inputs[1:] + [0]
        targets[1] = targets[2] = -100
        cases.append(Case((list(prompt), list(text), 0), (inputs, targets),
                          f"prompt {prompt}, text {text}",
                          hint="inputs = prompt + text; targets = inputs[1:] + [eot]; then the "
                               "targets at positions 1 and 2 (the task and <|notimestamps|>, "
                               "given to the model) become -100."))
    return cases


register("41.1.positions", _positions_cases, atol=0.0)
register("41.1.targets", _targets_cases, atol=0.0)


def _collapse_cases() -> list[Case]:
    rows = [([1, 1, 0, 1], 0, [1, 1]), ([1, 1, 1], 0, [1]), ([0, 0, 0], 0, []), ([], 0, []),
            ([2, 2, 3, 3, 0, 3, 4, 0, 0, 4], 0, [2, 3, 3, 4, 4]), ([5, 0, 5, 5, 1], 5, [0, 1]),
            ([3, 1, 2, 3], 9, [3, 1, 2, 3])]
    return [Case((list(labels), blank), expected, f"labels {labels}, blank {blank}",
                 hint="merge runs of the same label first, then drop the blank; a blank "
                      "between two equal labels keeps them apart.")
            for labels, blank, expected in rows]


register("41.1.ctc_collapse", _collapse_cases, atol=0.0)


def _forward_cases() -> list[Case]:
    import torch
    import torch.nn.functional as F

    cases = []
    for seed, (frames, vocab, target) in enumerate([(4, 3, [1, 2]), (6, 4, [1, 1]), (3, 2, [1]),
                                                   (10, 5, [2, 3, 3, 4]), (7, 6, []),
                                                   (12, 4, [1, 2, 1, 2, 3])]):
        g = torch.Generator().manual_seed(seed)
        log_probs = torch.randn(frames, vocab, generator=g, dtype=torch.float64).log_softmax(-1)
        nll = F.ctc_loss(log_probs[:, None], torch.tensor([target], dtype=torch.long),
                         torch.tensor([frames]), torch.tensor([len(target)]), blank=0,
                         reduction="sum")
        cases.append(Case((log_probs.clone(), list(target)), float(nll),
                          f"{frames} frames, {vocab} labels, target {target}",
                          hint="extend the target with blanks (blank, y1, blank, y2, ..., "
                               "blank); alpha[0] starts on the first two states; state s "
                               "receives from s and s - 1, and from s - 2 when y[s] is not a "
                               "blank and differs from y[s - 2]; the answer is -logsumexp of "
                               "the last two states at the last frame."))
    return cases


register("41.1.ctc_forward", _forward_cases, atol=1e-6)
