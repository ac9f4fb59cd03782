"""The §41.1 recogniser's machinery: the multitask token format, batches, decoding."""
import numpy as np
import pytest
import torch

from mmcourse import asr
from mmcourse.audio import whisper_log_mel
from mmcourse.models import Whisper, WhisperConfig

TEXTS = ["a small red circle", "there are two shapes", "un petit cercle rouge",
         "il y a deux formes", "the large blue square is above the small red circle"]


@pytest.fixture(scope="module")
def tokenizer():
    return asr.SpeechTokenizer.train(TEXTS, vocab_size=300)


@pytest.fixture(scope="module")
def corpus():
    return asr.speech_corpus(6, "train", seed=3)


def tiny(tokenizer, seed=0):
    torch.manual_seed(seed)
    config = WhisperConfig(vocab_size=tokenizer.vocab_size, d_model=32, encoder_layers=1,
                           decoder_layers=1, encoder_ffn_dim=64, decoder_ffn_dim=64,
                           max_source_positions=400, max_target_positions=48)
    return Whisper(config).eval()


def test_tokenizer_round_trip_and_prompt(tokenizer):
    ids = tokenizer.encode("un petit cercle rouge à gauche")  # accents are bytes, never unknown
    assert tokenizer.decode(ids) == "un petit cercle rouge à gauche"
    assert tokenizer.tokens("a small")[0] == "Ġa"  # a space before the text, as Whisper
    prompt = tokenizer.prompt("fr", "translate")
    names = [tokenizer.tokenizer.id_to_token(i) for i in prompt]
    assert names == ["<|startoftranscript|>", "<|fr|>", "<|translate|>", "<|notimestamps|>"]
    assert tokenizer.prompt(None) == [tokenizer.sot]
    assert tokenizer.decode(prompt + ids + [tokenizer.eot]) == "un petit cercle rouge à gauche"
    again = asr.SpeechTokenizer.from_str(tokenizer.to_str())
    assert again.encode("a small red circle") == tokenizer.encode("a small red circle")


def test_bad_tokenizer_arguments(tokenizer):
    with pytest.raises(ValueError, match="language"):
        tokenizer.prompt("de")
    with pytest.raises(ValueError, match="task"):
        tokenizer.prompt("en", "summarise")
    with pytest.raises(ValueError, match="vocab_size"):
        asr.SpeechTokenizer.train(TEXTS, vocab_size=100)
    with pytest.raises(ValueError, match="token"):
        tokenizer.token_id("<|de|>")


def test_normalize():
    assert asr.normalize("A small red circle, a BLUE star.") == "a small red circle a blue star"
    assert asr.normalize("sur l'image,  au-dessus") == "sur l'image au-dessus"


def test_corpus_is_deterministic_and_split(corpus):
    again = asr.speech_corpus(6, "train", seed=3)
    assert [u.text for u in again] == [u.text for u in corpus]
    assert all(np.array_equal(a.waveform, b.waveform) for a, b in zip(again, corpus))
    held = asr.speech_corpus(6, "heldout", seed=3, languages=("fr",))
    assert all(u.language == "fr" and asr.speech.voice_split(u.voice) == "heldout" for u in held)
    assert all(asr.speech.voice_split(u.voice) == "train" for u in corpus)
    with pytest.raises(ValueError, match="split"):
        asr.speech_corpus(2, "test")
    with pytest.raises(ValueError, match="language"):
        asr.speech_corpus(2, languages=("de",))


def test_training_sequence_learns_language_text_and_end(tokenizer, corpus):
    u = corpus[0]
    tokens, targets = asr.training_sequence(tokenizer, u)
    text = tokenizer.encode(u.text)
    assert tokens == tokenizer.prompt(u.language) + text
    lang = tokenizer.token_id(f"<|{u.language}|>")
    assert targets == [lang, asr.IGNORE, asr.IGNORE] + text + [tokenizer.eot]
    tokens, _ = asr.training_sequence(tokenizer, u, "translate")
    assert tokens[4:] == tokenizer.encode(u.translation)


def test_features_pad_with_their_floor(corpus):
    feats = [asr.log_mel(u.waveform) for u in corpus[:2]]
    assert feats[0].shape[0] == 80 and feats[0].shape[1] % 2 == 0
    batch = asr.pad_features(feats)
    short = int(np.argmin([f.shape[1] for f in feats]))
    tail = batch[short, :, feats[short].shape[1]:]
    assert torch.allclose(tail, feats[short].max() - 2.0)
    with pytest.raises(ValueError, match="waveform"):
        asr.log_mel(np.zeros(0))


def test_batches_and_loss(tokenizer, corpus):
    batches = asr.WhisperBatches(tokenizer, corpus, batch_size=4, translate=0.5)
    features, tokens, targets = batches(0)
    assert features.shape[:2] == (4, 80) and tokens.shape == targets.shape
    model = tiny(tokenizer)
    loss = asr.whisper_loss(model, (features, tokens, targets))
    assert abs(loss.item() - np.log(tokenizer.vocab_size)) < 0.5  # about uniform at the start


def test_compression_ratio_flags_loops():
    assert asr.compression_ratio("a small red circle and a large blue star") < 1.5
    assert asr.compression_ratio("a large purple star and " * 6) > 2.4
    assert asr.compression_ratio("") == 0.0


def test_greedy_sampling_equals_generate_and_beam_of_one(tokenizer, corpus):
    model = tiny(tokenizer, seed=2)
    features = asr.pad_features([asr.log_mel(u.waveform) for u in corpus[:2]])
    prompt = torch.tensor([tokenizer.prompt("en")] * 2)
    everything = torch.ones(tokenizer.vocab_size, dtype=torch.bool)
    audio = model.encoder(features)
    ours, _ = asr.sample(model, audio, prompt, everything, eot=-1, max_new_tokens=6)
    expected = model.generate(features, prompt, max_new_tokens=6)
    assert [row for row in ours] == expected[:, 4:].tolist()
    allowed = asr.text_mask(tokenizer)
    greedy, total = asr.sample(model, audio[:1], prompt[:1], allowed, tokenizer.eot, 6)
    beam, mean = asr.beam_search(model, audio[:1], prompt[0], allowed, tokenizer.eot, 1, 6)
    assert beam == greedy[0]
    assert all(tokenizer.eot != t and t not in tokenizer.special_ids.values() for t in beam)


def test_beam_search_finds_at_least_the_greedy_score(tokenizer, corpus):
    model = tiny(tokenizer, seed=4)
    audio = model.encoder(asr.pad_features([asr.log_mel(corpus[1].waveform)]))
    prompt = torch.tensor(tokenizer.prompt("en"))
    allowed = asr.text_mask(tokenizer)
    scores = [asr.beam_search(model, audio, prompt, allowed, tokenizer.eot, k, 8)[1]
              for k in (1, 4)]
    assert scores[1] >= scores[0] - 1e-6
    with pytest.raises(ValueError, match="beam_size"):
        asr.beam_search(model, audio, prompt, allowed, tokenizer.eot, 0)


def test_transcribe_checks_and_falls_back(tokenizer, corpus):
    model = tiny(tokenizer, seed=1)
    waves = [u.waveform for u in corpus[:3]]
    out = asr.transcribe(model, tokenizer, waves, language=None, max_new_tokens=5)
    assert len(out) == 3 and all(o.language in asr.LANGUAGES for o in out)
    retried = asr.transcribe(model, tokenizer, waves, language="en", max_new_tokens=5,
                             temperatures=(0.0, 1.0), logprob_threshold=0.0)
    assert all(o.temperature == 1.0 for o in retried)  # an untrained model is never confident
    with pytest.raises(ValueError, match="language"):
        asr.transcribe(model, tokenizer, waves, language="de")
    with pytest.raises(ValueError, match="task"):
        asr.transcribe(model, tokenizer, waves, task="summarise")
    with pytest.raises(ValueError, match="waveforms"):
        asr.transcribe(model, tokenizer, [])
    with pytest.raises(ValueError, match="sample_rate"):
        asr.transcribe(model, tokenizer, waves, sample_rate=22_050)
    with pytest.raises(ValueError, match="sample_rate"):
        whisper_log_mel(waves[0], sample_rate=8_000)
    with pytest.raises(ValueError, match="empty"):
        whisper_log_mel(np.zeros(0, dtype=np.float32))


def test_save_and_load_round_trip(tmp_path, tokenizer):
    model = tiny(tokenizer)
    asr.save_whisper(tmp_path / "w.safetensors", model, tokenizer, {"steps": 1})
    again, tok, notes = asr.load_whisper(tmp_path / "w.safetensors")
    assert notes == {"steps": 1} and tok.to_str() == tokenizer.to_str()
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-3), name
    with pytest.raises(ValueError, match="save_whisper"):
        from safetensors.torch import save_file
        save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
        asr.load_whisper(tmp_path / "other.safetensors")


def test_char_vocabulary_and_ctc_collapse():
    vocab = asr.CharVocabulary.from_texts(["a small red circle", "un carré à gauche"])
    assert vocab.symbols[0] == "<blank>" and "|" in vocab.symbols and "à" in vocab.symbols
    ids = vocab.encode("A red, circle")
    assert vocab.collapse(ids) == "a red circle"
    a, r, bar = vocab.index["a"], vocab.index["r"], vocab.index["|"]
    # repeats merge unless a blank separates them; blanks vanish
    assert vocab.collapse([a, a, 0, a, bar, bar, 0, r]) == "aa r"
    with pytest.raises(ValueError, match="outside the vocabulary"):
        vocab.encode("the zebra")


def test_ctc_model_trains_and_decodes(corpus):
    from mmcourse.models import CTCConfig, CTCRecognizer

    vocab = asr.CharVocabulary.from_texts([u.text for u in corpus])
    torch.manual_seed(0)
    model = CTCRecognizer(CTCConfig(len(vocab), conv_dim=(8,) * 7, d_model=16, ffn_dim=32))
    batch = asr.CTCBatches(vocab, corpus, model.output_length, batch_size=3)(0)
    values, frames, targets, lengths = batch
    assert values.shape[0] == 3 and frames.max() == model(values).shape[1]
    assert lengths.sum() == len(targets)
    loss = asr.ctc_loss(model, batch)
    loss.backward()
    assert torch.isfinite(loss) and model.feature_encoder.conv_layers[0].conv.weight.grad is not None
    texts = asr.ctc_transcribe(model.eval(), vocab, [u.waveform for u in corpus[:2]])
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    # a clip reads the same alone as beside others (no padding by default)
    assert asr.ctc_transcribe(model, vocab, [corpus[1].waveform])[0] == texts[1]
    with pytest.raises(ValueError, match="position_kernel"):
        CTCConfig(10, position_kernel=4)


def test_listen_embeds_players_and_pictures():
    from mmcourse.viz import listen

    wave = np.sin(np.linspace(0, 2000, 8000)).astype(np.float32)
    html = listen({"tone": wave}, 16_000, texts={"tone": "a <tone>"}).data
    assert html.count("<audio") == 1 and "data:image/png;base64," in html
    assert "a &lt;tone&gt;" in html
    with pytest.raises(ValueError, match="1-D"):
        listen({"bad": np.zeros((2, 10))})


def test_joint_ctc_batches_and_loss(tokenizer, corpus):
    vocab = asr.CharVocabulary.from_texts([u.text for u in corpus])
    batches = asr.WhisperBatches(tokenizer, corpus, batch_size=3, translate=1.0, seed=0,
                                 ctc_vocab=vocab)
    features, tokens, targets, positions, chars, counts = batches(0)
    assert features.shape[0] == tokens.shape[0] == len(positions) == len(counts) == 3
    assert int(counts.sum()) == len(chars) and int(positions.max()) <= features.shape[-1] // 2
    # translated batches still align the encoder with the words spoken
    spoken = {u.text for u in corpus}
    first = "".join(vocab.symbols[c] for c in chars[: counts[0]]).replace("|", " ")
    assert first in {asr.normalize(t) for t in spoken}
    joint = asr.WhisperCTC(tiny(tokenizer), vocab).train()
    batch = (features, tokens, targets, positions, chars, counts)
    decoder_only = asr.whisper_loss(joint.whisper, batch)  # the first three fields
    no_ctc = float(asr.joint_loss(joint, batch, ctc_weight=0.0))
    assert no_ctc == pytest.approx(float(decoder_only), rel=1e-5)
    both = asr.joint_loss(joint, batch, ctc_weight=0.5)
    both.backward()
    assert joint.ctc_head.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="ctc_weight"):
        asr.joint_loss(joint, batch, ctc_weight=1.5)
    with pytest.raises(ValueError, match="ctc_vocab"):
        asr.joint_loss(joint, batch[:3])


def test_snap_to_lexicon_and_error_kinds():
    lexicon = ["a", "red", "circle", "square", "left"]
    assert asr.snap_to_lexicon("a redd sircle", lexicon) == "a red circle"
    assert asr.snap_to_lexicon("squar lft", lexicon) == "square left"
    assert asr.snap_to_lexicon("", lexicon) == ""
    with pytest.raises(ValueError, match="lexicon"):
        asr.snap_to_lexicon("a", [])
    kinds = asr.error_kinds(["a red circle", "a square"], ["a redd circle", "a square a"], lexicon)
    assert kinds["wer"] == pytest.approx(2 / 5) and kinds["non_words"] == pytest.approx(1 / 6)
    assert kinds["length_ratio"] == pytest.approx(6 / 5) and 0 < kinds["cer"] < kinds["wer"]
    with pytest.raises(ValueError, match="as many"):
        asr.error_kinds(["a"], [], lexicon)


def test_ctc_forward_exercise_has_a_solution():
    from mmcourse.exercises import check

    def ctc_nll(log_probs, target):  # the forward algorithm, in log space
        states = [0]
        for y in target:
            states += [y, 0]
        alpha = torch.full((len(states),), -float("inf"), dtype=log_probs.dtype)
        alpha[0] = log_probs[0, 0]
        if len(states) > 1:
            alpha[1] = log_probs[0, states[1]]
        for t in range(1, len(log_probs)):
            new = alpha.clone()
            for s in range(1, len(states)):
                terms = [alpha[s], alpha[s - 1]]
                if s > 1 and states[s] != 0 and states[s] != states[s - 2]:
                    terms.append(alpha[s - 2])
                new[s] = torch.logsumexp(torch.stack(terms), 0)
            alpha = new + log_probs[t, states]
        return -float(torch.logsumexp(alpha[-2:], 0))

    assert check("41.1.ctc_forward", ctc_nll, verbose=False)
    assert not check("41.1.ctc_forward", lambda lp, y: 0.0, verbose=False)
