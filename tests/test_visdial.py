"""Tests of the visual dialogue models (mmcourse.models.visdial, §40.3)."""
import pytest
import torch

from mmcourse.data.dialogue import Vocab, answer_pool, make_dialogue, popular_answers, to_tensors
from mmcourse.data.shapes import ShapesWorld
from mmcourse.models import SentenceEncoder, VisDialConfig, VisDialModel, memory_read


@pytest.fixture(scope="module")
def setup():
    world = ShapesWorld(seed=0, image_size=32)
    dialogues = [make_dialogue(s) for s in world.scenes(6)]
    pool = answer_pool()
    vocab = Vocab([a.text for a in pool] + [t for d in dialogues
                                             for t in [d.caption] + [r.question for r in d.rounds]])
    data = to_tensors(dialogues, vocab, pool, popular_answers(dialogues))
    pool_ids = torch.tensor([vocab.encode(a.text, 8, bos=True, eos=True) for a in pool])
    return vocab, data, pool_ids


def test_memory_read():
    q, f = torch.randn(2, 4), torch.randn(2, 3, 4)
    mask = torch.tensor([[True, False, False], [True, True, True]])
    memory, w = memory_read(q, f, mask)
    assert torch.allclose(memory[0], f[0, 0]) and w[0].tolist() == [1.0, 0.0, 0.0]
    assert torch.allclose(w[1], (f[1] @ q[1]).softmax(0))
    with pytest.raises(ValueError, match="expected question"):
        memory_read(q, f[0], mask)


def test_sentence_encoder_ignores_padding():
    enc = SentenceEncoder(torch.nn.Embedding(10, 4, padding_idx=0), 6)
    a = enc(torch.tensor([[3, 4, 0, 0]]))
    b = enc(torch.tensor([[3, 4]]))
    assert torch.allclose(a, b)
    with torch.no_grad():
        enc.position.normal_()  # learned gates: then the order of words counts
    assert not torch.allclose(enc(torch.tensor([[3, 4]])), enc(torch.tensor([[4, 3]])))


@pytest.mark.parametrize("encoder,history,decoder", [
    ("late", True, "discriminative"), ("memory", True, "discriminative"),
    ("late", False, "generative"), ("memory", True, "generative")])
def test_models_shapes_and_learning(setup, encoder, history, decoder):
    vocab, data, pool_ids = setup
    torch.manual_seed(0)
    model = VisDialModel(VisDialConfig(len(vocab), vocab.attribute_ids(), encoder=encoder,
                                       history=history, decoder=decoder))
    batch = data.select(torch.arange(16))
    assert model.scores(batch, pool_ids).shape == (16, 100)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = model.loss(batch, pool_ids).item()
    for _ in range(30):
        opt.zero_grad()
        model.loss(batch, pool_ids).backward()
        opt.step()
    assert model.loss(batch, pool_ids).item() < 0.5 * first


def test_history_is_used_only_when_asked(setup):
    vocab, data, pool_ids = setup
    batch = data.select(torch.arange(8, 16))
    other = data.select(torch.arange(8, 16))
    donor = data.select(torch.arange(16, 24))  # the history of another dialogue
    other.history, other.facts, other.dialogue = donor.history, donor.facts, donor.dialogue
    for encoder, history, changes in (("late", False, False), ("late", True, True),
                                      ("memory", True, True)):
        torch.manual_seed(0)
        config = VisDialConfig(len(vocab), vocab.attribute_ids(), encoder=encoder, history=history)
        model = VisDialModel(config).eval()
        same = torch.allclose(model.scores(batch, pool_ids), model.scores(other, pool_ids))
        assert same != changes


def test_generate_and_config_errors(setup):
    vocab, data, pool_ids = setup
    model = VisDialModel(VisDialConfig(len(vocab), vocab.attribute_ids(), decoder="generative"))
    encoded = model.encoder(data.select(torch.arange(3)))
    assert model.decoder.generate(encoded, max_len=5).shape == (3, 5)
    with pytest.raises(ValueError, match="encoder must be"):
        VisDialConfig(10, tuple(range(13)), encoder="hierarchical")
    with pytest.raises(ValueError, match="memory network without history"):
        VisDialModel(VisDialConfig(10, tuple(range(13)), encoder="memory", history=False))


def test_sentence_encoder_position_gates():
    enc = SentenceEncoder(torch.nn.Embedding(10, 4, padding_idx=0), 6, max_len=5)
    with torch.no_grad():
        enc.position[1:] = 0  # only the last real word counts
    assert torch.allclose(enc(torch.tensor([[3, 4, 0]])), enc(torch.tensor([[7, 4, 0]])))
    assert not torch.allclose(enc(torch.tensor([[3, 4, 0]])), enc(torch.tensor([[3, 7, 0]])))
    with pytest.raises(ValueError, match="L <= 5"):
        enc(torch.ones(2, 6, dtype=torch.long))


def test_memory_network_reads_the_earlier_facts_only(setup):
    vocab, data, pool_ids = setup
    torch.manual_seed(0)
    model = VisDialModel(VisDialConfig(len(vocab), vocab.attribute_ids(), encoder="memory")).eval()
    batch = data.select(torch.arange(8))
    later = data.select(torch.arange(8))
    later.facts = later.facts.clone()
    later.facts[torch.arange(8), later.round + 1] = 5  # change each round's own (not yet said) fact
    _, weights = model.encoder(batch, return_attention=True)
    assert (weights[~batch.fact_mask] == 0).all()
    assert torch.allclose(model.scores(batch, pool_ids), model.scores(later, pool_ids))
