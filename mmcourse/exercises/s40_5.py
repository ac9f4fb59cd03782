"""Hidden cases for the exercises of §40.5 (training a vision-language model)."""
from __future__ import annotations

import torch

from .core import Case, register


def _targets(ids: torch.Tensor, assistant: int, eos: int, pad: int) -> torch.Tensor:
    """The reference: walk each row, switching on after <assistant> and off after <eos>."""
    out = torch.zeros_like(ids, dtype=torch.bool)
    for r, row in enumerate(ids.tolist()):
        inside = False
        for c, token in enumerate(row):
            out[r, c] = inside and token != pad
            if token == assistant:
                inside = True
            elif token == eos and inside:
                inside = False
    return out


def _assistant_cases() -> list[Case]:
    g = torch.Generator().manual_seed(405)
    cases = []
    for batch, length, turns in ((1, 8, 1), (3, 14, 2), (4, 20, 3), (2, 6, 0)):
        ids = torch.randint(3, 9, (batch, length), generator=g)  # 9 = <assistant>, 10 = <eos>
        for r in range(batch):
            pos = 1
            for _ in range(turns):
                if pos + 3 >= length:
                    break
                answer = int(torch.randint(1, 3, (1,), generator=g))
                ids[r, pos] = 9
                ids[r, pos + answer + 1] = 10
                pos += answer + 3
            ids[r, :int(torch.randint(0, 2, (1,), generator=g))] = 0  # left padding
        cases.append(Case((ids, 9, 10, 0), _targets(ids, 9, 10, 0),
                          f"{batch} rows of {length} tokens, {turns} assistant turns each",
                          hint="count the <assistant> tokens strictly before each position, minus "
                               "the <eos> tokens strictly before it; inside means > 0"))
    return cases


register("40.5.assistant_targets", _assistant_cases)


def _index_cases() -> list[Case]:
    g = torch.Generator().manual_seed(4051)
    cases = []
    for batch, length, marker in ((1, 6, 7), (2, 12, 5), (3, 9, 1)):
        ids = torch.randint(0, 9, (batch, length), generator=g)
        expected = torch.full((batch, length), -1)
        for r, row in enumerate(ids.tolist()):
            seen = -1
            for c, token in enumerate(row):
                seen += token == marker
                expected[r, c] = seen
        cases.append(Case((ids, marker), expected,
                          f"{batch} rows of {length} tokens, marker id {marker}",
                          hint="a running count of the markers seen so far (the token itself "
                               "included), minus one"))
    return cases


register("40.5.image_index", _index_cases)
