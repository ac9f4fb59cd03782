"""The from-scratch EnCodec against transformers' EncodecModel (tiny random configurations, no
download), and the quantiser's training machinery, which has no reference: k-means
initialisation, EMA updates, dead-code restarts, the straight-through estimator, quantiser
dropout; and the multiscale spectral loss."""
import pytest
import torch
from transformers import EncodecConfig as HFEncodecConfig
from transformers import EncodecModel
from transformers.models.encodec.modeling_encodec import EncodecResidualVectorQuantizer

from mmcourse.losses import multiscale_spectral_loss
from mmcourse.models import Codebook, Codec, CodecConfig, ResidualVectorQuantizer, kmeans

# hop 6 at 600 Hz: 100 frames a second; 16 codes = 4 bits, so 0.4 kbit/s per codebook
TINY = dict(hidden_size=8, num_filters=4, upsampling_ratios=[2, 3], codebook_size=16,
            sampling_rate=600, target_bandwidths=[0.4, 0.8, 1.6], num_lstm_layers=1)
CONFIGS = {
    "causal-weight-norm": {},  # the 24 kHz model's kind
    "non-causal-group-norm": dict(  # the 48 kHz model's kind, mono and unchunked
        use_causal_conv=False, norm_type="time_group_norm", pad_mode="constant",
        upsampling_ratios=[3, 2, 2], sampling_rate=1200, num_residual_layers=2,
        use_conv_shortcut=False, compress=1, kernel_size=4, dilation_growth_rate=3),
}


def reference(seed: int = 0, **kw) -> EncodecModel:
    torch.manual_seed(seed)
    model = EncodecModel(HFEncodecConfig(**{**TINY, **kw})).eval()
    # transformers initialises the codebooks to zeros (every code would be 0): give them random
    # vectors on the scale of the embeddings, smaller for each later residual
    with torch.no_grad():
        scale = model.encoder(torch.randn(2, 1, 60)).std()
        for k, layer in enumerate(model.quantizer.layers):
            layer.codebook.embed.normal_().mul_(scale * 0.5 ** k)
    return model


def tiny_codec(**kw) -> Codec:
    torch.manual_seed(0)
    return Codec(CodecConfig(hidden_size=8, num_filters=4, upsampling_ratios=(2, 3),
                             codebook_size=16, num_quantizers=4, num_lstm_layers=1, **kw))


@pytest.mark.parametrize("bandwidth", [0.8, 1.6])
@pytest.mark.parametrize("name", CONFIGS)
def test_codes_and_audio_equal_the_reference(name, bandwidth):
    theirs = reference(**CONFIGS[name])
    ours = Codec.from_transformers(theirs)
    n = ours.config.num_quantizers_for_bandwidth(bandwidth)  # 2 and 4
    x = torch.randn(2, 1, 47, generator=torch.Generator().manual_seed(1))  # not a whole hop
    expected = theirs.encode(x, bandwidth=bandwidth).audio_codes  # (chunks, B, n_q, T)
    codes = ours.encode(x, num_quantizers=n)
    frames = -(-47 // ours.config.hop_length)
    assert expected.shape == (1, 2, n, frames) and codes.shape == (2, n, frames)
    assert torch.equal(codes, expected[0]) and codes.unique().numel() > 2
    with torch.no_grad():
        audio = theirs.decode(expected, audio_scales=[None]).audio_values
        whole = theirs(x, bandwidth=bandwidth).audio_values  # trimmed to the input
        out = ours(x, num_quantizers=n)
    got = ours.decode(codes)
    assert got.shape == audio.shape == (2, 1, frames * ours.config.hop_length)
    assert (got - audio).abs().max() < 1e-5
    assert out.audio_values.shape == whole.shape == x.shape
    assert (out.audio_values - whole).abs().max() < 1e-5 and torch.equal(out.audio_codes, codes)


def test_configuration_and_bandwidths_follow_transformers():
    theirs = reference()
    ours = Codec.from_transformers(theirs)
    assert not ours.training and ours.config.num_quantizers == theirs.config.num_quantizers == 4
    assert ours.config.hop_length == 6 and ours.config.frame_rate == 100
    assert ours.config.bandwidth(4) == pytest.approx(1.6)
    default = CodecConfig()  # facebook/encodec_24khz: 75 frames a second, 10 bits a code
    hf = HFEncodecConfig()
    assert (default.frame_rate, default.num_quantizers) == (hf.frame_rate, hf.num_quantizers)
    rvq = EncodecResidualVectorQuantizer(hf)
    for bandwidth in hf.target_bandwidths:  # 1.5 kbit/s -> 2 codebooks ... 24 -> 32
        n = default.num_quantizers_for_bandwidth(bandwidth)
        assert n == rvq.get_num_quantizers_for_bandwidth(bandwidth)
    assert default.num_quantizers_for_bandwidth(1.5) == 2
    with pytest.raises(ValueError, match="needs 33 codebooks"):
        default.num_quantizers_for_bandwidth(24.75)


def test_bad_input_is_refused():
    model = tiny_codec().eval()
    with pytest.raises(ValueError, match=r"input_values of shape \(B, 1, samples\)"):
        model.encode(torch.zeros(2, 47))
    with pytest.raises(ValueError, match=r"\(mono audio\), got \(2, 2, 47\)"):
        model.encode(torch.zeros(2, 2, 47))
    with pytest.raises(ValueError, match="input_values is empty"):
        model(torch.zeros(2, 1, 0))
    for n in (0, 5, 1.5):
        with pytest.raises(ValueError, match="num_quantizers must be an integer from 1 to 4"):
            model.encode(torch.zeros(1, 1, 12), num_quantizers=n)
    with pytest.raises(ValueError, match="integer codes of shape"):
        model.decode(torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match="num_quantizers must be"):
        model.decode(torch.zeros(1, 5, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="norm_type"):
        CodecConfig(norm_type="batch_norm")


def test_from_transformers_refuses_what_it_cannot_reproduce():
    with pytest.raises(TypeError, match="EncodecModel"):
        Codec.from_transformers(torch.nn.Linear(2, 2))
    for kw, message in [(dict(normalize=True), "normalize"),
                        (dict(chunk_length_s=0.05, overlap=0.01), "chunk_length_s"),
                        (dict(audio_channels=2), "mono")]:
        with pytest.raises(ValueError, match=message):
            Codec.from_transformers(EncodecModel(HFEncodecConfig(**{**TINY, **kw})))


def clustered(seed: int = 0, clusters: int = 8, per: int = 40) -> torch.Tensor:
    """(clusters * per, 4) points around well-separated centres."""
    g = torch.Generator().manual_seed(seed)
    centres = 4 * torch.randn(clusters, 4, generator=g)
    return (centres.repeat_interleave(per, 0) + 0.1 * torch.randn(clusters * per, 4, generator=g))


def error(vectors: torch.Tensor, codebook: torch.Tensor) -> float:
    return torch.cdist(vectors, codebook).min(1).values.pow(2).mean().item()


def test_kmeans_initialisation_beats_random_codebooks_and_is_reproducible():
    data = clustered()
    torch.manual_seed(3)
    book = Codebook(8, 4)
    book.initialise(data)
    torch.manual_seed(3)
    samples = data[torch.randperm(len(data))[:8]]  # k-means's own starting point
    gaussian = 4 * torch.randn(8, 4)
    assert error(data, book.embed) < 0.5 * min(error(data, samples), error(data, gaussian))
    assert book.inited.item() == 1 and book.cluster_size.sum() == len(data)
    assert torch.allclose(book.embed_avg / book.cluster_size.clamp_min(1)[:, None],
                          book.embed * (book.cluster_size > 0)[:, None])
    torch.manual_seed(3)
    centroids, counts = kmeans(data, 8, iters=10)
    assert torch.equal(centroids, book.embed)  # the same seed, the same codebook
    rvq = ResidualVectorQuantizer(2, 8, 4).train()  # training initialises every codebook used
    rvq(data.T[None], num_quantizers=1)  # (1, D, N)
    assert [book.inited.item() for book in rvq.layers] == [1, 0]


def test_ema_update_moves_codes_toward_their_vectors():
    book = Codebook(4, 2, decay=0.9, dead_code_threshold=0.0)
    book.embed.copy_(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]]))
    book.cluster_size.fill_(5.0)
    book.embed_avg.copy_(book.embed * 5)
    book.inited.fill_(1)
    vectors = torch.tensor([[2.0, 1.0], [2.0, -1.0], [9.0, 9.0]])  # codes 0, 0 and 3
    codes = book.assign(vectors)
    assert codes.tolist() == [0, 0, 3]
    before = book.embed.clone()
    book.update(vectors, codes)
    target = torch.tensor([2.0, 0.0])  # the mean of code 0's vectors
    assert (book.embed[0] - target).norm() < (before[0] - target).norm()
    assert (book.embed[3] - vectors[2]).norm() < (before[3] - vectors[2]).norm()
    assert torch.allclose(book.cluster_size, torch.tensor([4.7, 4.5, 4.5, 4.6]))
    assert (book.embed[1:3] - before[1:3]).abs().max() < 0.1  # unused codes barely move


def test_dead_codes_restart_at_vectors_of_the_batch():
    torch.manual_seed(0)
    book = Codebook(4, 2, decay=0.99, dead_code_threshold=2.0)
    book.embed.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [50.0, 50.0], [60.0, 60.0]]))
    book.cluster_size.copy_(torch.tensor([10.0, 10.0, 0.5, 0.1]))  # codes 2 and 3 are dead
    book.embed_avg.copy_(book.embed * book.cluster_size[:, None])
    vectors = torch.randn(32, 2) * 0.3
    book.update(vectors, book.assign(vectors))
    for k in (2, 3):  # restarted at rows of the batch, and kept by the next EMA step
        assert (book.embed[k] - vectors).abs().sum(1).min() < 1e-6
    assert (book.embed[:2].abs() < 2).all() and (book.cluster_size[2:] == 2.0).all()
    # a restarted code starts at the threshold: used enough by the next batch, it lives on
    fresh = book.embed[2].clone()
    batch = torch.cat([fresh.repeat(4, 1), vectors[:8]])
    book.update(batch, book.assign(batch))
    assert (book.embed[2] - fresh).abs().max() < 0.01 and book.cluster_size[2] > 2.0


def test_codebooks_learn_only_in_train_mode():
    model = tiny_codec().train()
    x = torch.randn(2, 1, 60, generator=torch.Generator().manual_seed(0))
    model(x)
    assert all(book.inited.item() == 1 for book in model.quantizer.layers)
    state = {k: v.clone() for k, v in model.quantizer.state_dict().items()}
    model.eval()
    first = model(x)
    assert torch.equal(first.audio_values, model(x).audio_values)  # deterministic
    assert torch.equal(model.decode(model.encode(x))[..., :60], first.audio_values)
    assert all(torch.equal(v, state[k]) for k, v in model.quantizer.state_dict().items())
    model.train()
    model(x)
    assert not torch.equal(model.quantizer.layers[0].embed, state["layers.0.embed"])


def test_the_gradient_passes_straight_through_to_the_encoder():
    model = tiny_codec().train()
    x = torch.randn(2, 1, 60, generator=torch.Generator().manual_seed(0))
    out = model(x, num_quantizers=2)
    out.audio_values.pow(2).mean().backward(retain_graph=True)  # through the codes
    first = model.encoder.layers[0].conv.parametrizations.weight.original1
    assert first.grad is not None and first.grad.abs().sum() > 0
    model.zero_grad()
    out.commitment_loss.backward()  # pulls only the encoder
    assert first.grad.abs().sum() > 0 and out.commitment_loss > 0
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.decoder.parameters())
    assert not any(b.requires_grad for b in model.quantizer.buffers())


def test_quantizer_dropout_draws_the_number_of_codebooks_in_training_only():
    model = tiny_codec(quantizer_dropout=True).train()
    x = torch.randn(1, 1, 24, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(1)
    used = {model(x).audio_codes.shape[1] for _ in range(12)}
    assert used <= {1, 2, 3, 4} and len(used) > 1
    assert model.eval()(x).audio_codes.shape[1] == 4


def test_multiscale_spectral_loss():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 600, generator=g)
    assert multiscale_spectral_loss(x, x).item() == 0.0
    y = (x + 0.1 * torch.randn(2, 1, 600, generator=g)).requires_grad_()
    loss = multiscale_spectral_loss(x, y)
    loss.backward()
    assert loss > 0 and y.grad.abs().sum() > 0
    louder = multiscale_spectral_loss(x, 2 * x, windows=(64,))
    assert louder > multiscale_spectral_loss(x, 1.1 * x, windows=(64,))
    silence = torch.zeros(1, 100, requires_grad=True)  # a magnitude of 0 gives a finite grad
    multiscale_spectral_loss(silence, torch.ones(1, 100), windows=(16,)).backward()
    assert torch.isfinite(silence.grad).all()
    with pytest.raises(ValueError, match="same shape"):
        multiscale_spectral_loss(x, x[..., :500])
    with pytest.raises(ValueError, match="windows"):
        multiscale_spectral_loss(x, x, windows=(2,))



def test_multiscale_mel_loss():
    from mmcourse.audio import mel_filterbank
    from mmcourse.losses import multiscale_mel_loss

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 1600, generator=g)
    assert multiscale_mel_loss(x, x, 16_000).item() == 0.0
    y = (x + 0.1 * torch.randn(2, 1, 1600, generator=g)).requires_grad_()
    loss = multiscale_mel_loss(x, y, 16_000)
    loss.backward()
    assert loss > 0 and y.grad.abs().sum() > 0
    assert (multiscale_mel_loss(x, 2 * x, 16_000, windows=(256,))
            > multiscale_mel_loss(x, 1.1 * x, 16_000, windows=(256,)))
    # by hand for one window: mel filters on |STFT|, L1 of the mels plus L1 of their logs
    spec = [torch.stft(s.reshape(2, -1), 256, 64, window=torch.hann_window(256),
                       return_complex=True, pad_mode="constant").abs() for s in (x, 2 * x)]
    mels = [mel_filterbank(16_000, 256, 64) @ s for s in spec]
    expected = ((mels[0] - mels[1]).abs().mean()
                + (mels[0].clamp_min(1e-4).log() - mels[1].clamp_min(1e-4).log()).abs().mean())
    assert torch.allclose(multiscale_mel_loss(x, 2 * x, 16_000, windows=(256,)), expected)
    with pytest.raises(ValueError, match="same shape"):
        multiscale_mel_loss(x, x[..., :500], 16_000)
    with pytest.raises(ValueError, match="windows"):
        multiscale_mel_loss(x, x, 16_000, windows=(4,))
    with pytest.raises(ValueError, match="sample_rate"):
        multiscale_mel_loss(x, x, 0)

def test_codec_runs_whole_on_another_device():
    meta = torch.device("meta")  # stands in for a GPU (see test_device.py)
    model = tiny_codec().eval().to(meta)
    codes = model.encode(torch.zeros(2, 1, 47, device=meta), num_quantizers=3)
    assert codes.device == meta and tuple(codes.shape) == (2, 3, 8)
    audio = model.decode(codes)
    assert audio.device == meta and tuple(audio.shape) == (2, 1, 48)
    out = model(torch.zeros(2, 1, 47, device=meta))
    assert out.audio_values.device == out.commitment_loss.device == meta


def test_save_and_load_round_trip(tmp_path):
    from mmcourse.models import load_codec, save_codec

    torch.manual_seed(0)  # big enough that its LSTM and some convolutions go to int8
    codec = Codec(CodecConfig(hidden_size=16, num_filters=16, upsampling_ratios=(2, 3),
                              codebook_size=16, num_quantizers=4, num_lstm_layers=1)).train()
    audio = torch.randn(2, 1, 1000) * 0.1
    codec(audio)  # k-means initialises the codebooks
    codec.eval()
    save_codec(tmp_path / "c.safetensors", codec, {"steps": 3})
    loaded, notes = load_codec(tmp_path / "c.safetensors")
    assert notes == {"steps": 3} and not loaded.training and loaded.config == codec.config
    codes = codec.encode(audio)
    # int8 / float16 storage moves a few codes at most; decoding the same codes agrees closely
    assert (loaded.encode(audio) == codes).float().mean() > 0.9
    reference = codec.decode(codes)
    assert (loaded.decode(codes) - reference).abs().max() < 0.02 * reference.abs().max()
    from safetensors.torch import load_file
    stored = load_file(str(tmp_path / "c.safetensors"))
    big = [k for k, v in codec.state_dict().items() if v.numel() >= 4096]
    assert big and all(stored[k].dtype == torch.int8 for k in big)
    with pytest.raises(ValueError, match="save_codec"):
        from safetensors.torch import save_file
        save_file({"x": torch.zeros(1)}, str(tmp_path / "other.safetensors"))
        load_codec(tmp_path / "other.safetensors")


def test_a_new_codec_hears_its_input():
    # with PyTorch's default initialisation two inputs gave encoder outputs differing by ~1 %
    # of the outputs' spread, and training never recovered (see Codec.init_weights)
    torch.manual_seed(0)
    codec = Codec(CodecConfig(sampling_rate=16_000, num_filters=8, hidden_size=32,
                              upsampling_ratios=(8, 5, 4, 2), num_lstm_layers=1,
                              codebook_size=16, num_quantizers=2))
    g = torch.Generator().manual_seed(1)
    a, b = (0.1 * torch.randn(1, 1, 8000, generator=g) for _ in range(2))
    with torch.no_grad():
        za, zb = codec.encoder(a), codec.encoder(b)
    assert (za - zb).std() > 0.3 * za.std()
    conv = codec.encoder.layers[0].conv
    assert conv.bias.abs().max() == 0
    assert abs(conv.weight.var().item() * 7 - 1) < 0.6  # N(0, 1/fan_in), fan_in = 7
