"""Sizes a user's numbers ask for: refused before allocation, in one line naming the size, within seconds;
what streams stays within its chunk whatever the count."""
import re

import pytest
import torch

from pyro_vae.inference import RunConfig
from pyro_vae.inference.data.datasets import MinibatchStream
from pyro_vae.inference.diagnostics import choose_points, diagnose
from pyro_vae.inference.errors import UserError
from pyro_vae.inference.evaluate import marginal_likelihood
from pyro_vae.inference.memory import available_bytes, format_bytes, require_memory
from pyro_vae.inference.runs.build import build_model_and_guide
from pyro_vae.inference.runs.folder import train_run
from pyro_vae.inference.runs.run import load_run, setup
from pyro_vae.inference.runs.sizes import parameter_count

from tests.helpers import refuse

BIG = 10 ** 9
EVENT = torch.Size([1, 28, 28])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sizes") / "run"
    cfg = RunConfig.from_dict({"model": {"latent_dim": 2, "hidden_dim": 16}, "guide": {"hidden_dim": 16},
                               "train": {"epochs": 1, "compile": "off"}})
    train_run(cfg, out, quiet=True, plots=False, tensorboard=False)
    return load_run(out)


def test_format_bytes_and_the_memory_check():
    assert (format_bytes(999), format_bytes(1500), format_bytes(2.5e9)) == ("999 bytes", "1.5 KB", "2.5 GB")
    free = available_bytes()
    total = int(next(line for line in open("/proc/meminfo") if line.startswith("MemTotal:")).split()[1]) * 1024
    assert 0 < free <= total
    require_memory(1024, "a kilobyte")  # fits
    with pytest.raises(UserError, match=r"^ten times what is free would need at least .* more than the .* this "
                                        r"machine has free; ask for less$"):
        require_memory(10 * free, "ten times what is free")


@pytest.mark.parametrize("config", [
    {},
    {"model": {"prior": "vamp", "prior_components": 50}},
    {"model": {"prior": "mog", "prior_components": 7, "num_hidden_layers": 2}},
    {"model": {"arch": "conv", "channels": 8}, "guide": {"arch": "conv", "channels": 8}},
    {"model": {"conditional": True, "num_classes": 10}},
    {"model": {"likelihood": "discretized_logistic_mixture", "likelihood_components": 3}},
], ids=["default", "vamp", "mog", "conv", "conditional", "logistic_mixture"])
def test_the_meta_count_is_the_built_networks_count(config):
    cfg = RunConfig.from_dict(config)
    model, guide = build_model_and_guide(cfg.model, cfg.guide, EVENT)
    built = sum(t.numel() for m in (model, guide) for t in list(m.parameters()) + list(m.buffers()))
    assert parameter_count(cfg, EVENT) == built


def test_flows_that_cannot_be_built_on_meta_are_counted_from_below():
    cfg = RunConfig.from_dict({"model": {"prior": "flow", "prior_flows": 3}, "guide": {"guide": "iaf", "flows": 2}})
    model, guide = build_model_and_guide(cfg.model, cfg.guide, EVENT)
    built = sum(t.numel() for m in (model, guide) for t in list(m.parameters()) + list(m.buffers()))
    flows = sum(t.numel() for f in list(model.prior.flows) + list(guide.flows) for t in f.parameters())
    count = parameter_count(cfg, EVENT)  # without flows (and the iaf encoder's context), plus each flow's least
    assert built - flows - guide.encoder.net[-1].weight.numel() <= count <= built


@pytest.mark.parametrize("config, what", [
    ({"model": {"latent_dim": BIG}}, "parameters"),
    ({"model": {"hidden_dim": BIG}, "guide": {"hidden_dim": BIG}}, "layers"),
    ({"model": {"num_hidden_layers": BIG}}, "layers"),
    ({"model": {"prior": "vamp", "prior_components": BIG}}, "parameters"),
    ({"model": {"prior": "mog", "prior_components": BIG}}, "parameters"),
    ({"model": {"prior": "flow", "prior_flows": BIG}}, "layers"),
    ({"guide": {"guide": "iaf", "flows": BIG}}, "layers"),
    ({"model": {"arch": "conv", "channels": BIG}, "guide": {"arch": "conv"}}, "layers"),
    ({"model": {"conditional": True, "num_classes": BIG}}, "parameters"),
    ({"objective": {"name": "iwae", "num_particles": BIG}}, "training step"),
    ({"data": {"image_size": [BIG, BIG]}}, "resized"),
    ({"model": {"hierarchy": [BIG], "latent_dim": 4}}, "layers"),
    ({"model": {"hierarchy": [4, BIG]}}, "layers"),
], ids=["latent", "hidden", "layers", "vamp", "mog", "prior_flows", "guide_flows", "channels", "classes",
        "particles", "image_size", "hierarchy_bottom", "hierarchy_middle"])
def test_networks_and_data_that_cannot_fit_are_refused_before_allocation(config, what):
    with pytest.raises(UserError, match=rf"{what}.* would need at least [\d.]+ [KMGTP]B of memory at once, more "
                                        rf"than the [\d.]+ [KMGTP]B this machine has free"):
        setup(RunConfig.from_dict(config))


def test_a_huge_batch_is_the_whole_training_set():
    cfg = RunConfig.from_dict({"model": {"latent_dim": 2, "hidden_dim": 16}, "guide": {"hidden_dim": 16},
                               "train": {"batch_size": BIG, "eval_batch_size": BIG, "epochs": 1, "compile": "off"}})
    run = setup(cfg)  # batches are cut from the data: min(batch, N) points, which are in memory already
    stream = MinibatchStream(run.data.train_x, BIG)
    batches = list(stream.batches(stream.permutation()))
    assert len(stream) == len(batches) == 1 and batches[0][1].shape == run.data.train_x.shape


def test_command_line_sizes_end_in_one_line_with_status_2(tiny_run, tmp_path, capsys):
    cases = [("sample", tiny_run.path, "-n", BIG, "--out", tmp_path / "s.png"), "at most 4096 images",
             ("train", "--out", tmp_path / "never", "--latent-dim", BIG, "--quiet"), "would need at least",
             ("diagnose", tiny_run.path, "--points", 2, "--draws", BIG), "would need at least",
             ("evaluate", tiny_run.path, "--iw-samples", 10 ** 12, "--limit", 2), "more than 1,000,000 importance"]
    for args, reason in zip(cases[::2], cases[1::2]):
        assert reason in refuse(capsys, args)
    assert not (tmp_path / "never").exists() and not (tmp_path / "s.png").exists()


@pytest.mark.parametrize("option", ["draws", "chains", "guide_samples"])
def test_diagnose_refuses_what_it_would_hold_at_once(tiny_run, tmp_path, option):
    sizes = {"chains": 2, "draws": 10, "warmup": 10, "guide_samples": 10, option: BIG}
    with pytest.raises(UserError, match=r"diagnosing 2 points .* would need at least"):
        diagnose(tiny_run, tmp_path / "d", {"test": choose_points(500, 2, None, 0)}, **sizes)
    assert not (tmp_path / "d").exists()


def test_the_importance_sampler_streams_any_k_in_bounded_chunks(tiny_run, monkeypatch):
    """k = 10^9 draws per point: each model pass asks for at most max_points_per_pass / batch of them."""
    asked = []
    real = marginal_likelihood.weight_terms

    class Enough(Exception):
        pass

    def counting(model, guide, k, x, y=None):
        asked.append((k, x.shape[0]))
        if len(asked) == 3:
            raise Enough
        return real(model, guide, k, x, y=y)

    monkeypatch.setattr(marginal_likelihood, "weight_terms", counting)
    with pytest.raises(Enough):
        marginal_likelihood.importance_log_likelihood(tiny_run.model, tiny_run.guide, tiny_run.data.test_x[:50],
                                                      num_samples=BIG, batch_size=50, max_points_per_pass=5000)
    assert asked == [(100, 50)] * 3  # 5000 pairs a pass, whatever k is


def test_the_sample_grid_limit_is_named(tiny_run, tmp_path):
    from pyro_vae.inference.report.outputs import MAX_PICTURES, check_picture_count

    check_picture_count(MAX_PICTURES, tiny_run)
    with pytest.raises(UserError, match=re.escape(f"a grid holds at most {MAX_PICTURES} images, not {MAX_PICTURES + 1}")):
        check_picture_count(MAX_PICTURES + 1)


@pytest.mark.parametrize("prior, guide, extra", [("normal", "diagonal_normal", 0), ("mog", "diagonal_normal", 4 * 50),
                                                 ("vamp", "diagonal_normal", 4 * 50),
                                                 ("vamp", "full_covariance", 50 * (8 + 4))])
def test_the_evaluators_passes_count_what_a_mixture_prior_holds(prior, guide, extra):
    """A mixture prior's K = 50 component densities per draw (float64 then float32 for diagonal components;
    MixtureSameFamily's K x D for full-covariance ones) shrink the pass beside the 784 decoder outputs."""
    cfg = RunConfig.from_dict({"model": {"prior": prior, "prior_components": 50, "latent_dim": 8},
                               "guide": {"guide": guide}})
    model, _ = build_model_and_guide(cfg.model, cfg.guide, EVENT)
    x = torch.zeros(3, *EVENT)
    assert marginal_likelihood.points_per_pass(model, x) == marginal_likelihood.DECODED_PER_PASS // (784 + extra)
