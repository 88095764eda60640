"""The hierarchical VAE as a Pyro program: Trace_ELBO is the hand-written sum of its log-densities, the
importance-sampled log p(x) matches the closed form of a linear-Gaussian hierarchy, and SVI trains it."""
import json
import math
import re

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO
from torch import nn

from pyro_vae.guides.hierarchical import BottomUpGuide
from pyro_vae.models import BernoulliLikelihood, StandardNormalPrior
from pyro_vae.models.hierarchical import GaussianLayer, HierarchicalVAEModel
from pyro_vae.models.likelihoods import FixedScaleGaussianLikelihood
from pyro_vae.models.networks import MLPDecoder

from pyro_vae.inference import RunConfig
from pyro_vae.inference.cli.main import main
from pyro_vae.inference.errors import UserError
from pyro_vae.inference.evaluate.elbo import evaluate_elbo
from pyro_vae.inference.evaluate.marginal_likelihood import importance_log_likelihood
from pyro_vae.inference.runs.folder import train_run
from pyro_vae.inference.runs.run import load_run

EVENT = torch.Size([1, 28, 28])


def _burda_like(latent=(6, 3), hidden=(32, 16)):
    """Burda et al.'s two-layer shape, scaled down: x -[h1, h1]- z1 -[h2, h2]- z2, tanh."""
    pyro.set_rng_seed(0)
    model = HierarchicalVAEModel(StandardNormalPrior(latent[1]), [GaussianLayer(latent[1], latent[0], hidden[1])],
                                 MLPDecoder(latent[0], EVENT, hidden[0], 2, "tanh"), BernoulliLikelihood(EVENT),
                                 latent)
    guide = BottomUpGuide([GaussianLayer(784, latent[0], hidden[0]), GaussianLayer(latent[0], latent[1], hidden[1])],
                          EVENT)
    return model, guide


def test_trace_elbo_is_the_hand_written_sum_of_log_densities(embedded):
    model, guide = _burda_like()
    x = embedded.train_x[:7].round()
    pyro.set_rng_seed(3)
    loss = Trace_ELBO().loss(model, guide, x)
    pyro.set_rng_seed(3)  # the same draws: Trace_ELBO runs the guide first, on the same stream
    trace = poutine.trace(guide).get_trace(x)
    z1, z2 = trace.nodes["z1"]["value"], trace.nodes["z2"]["value"]
    q1, q2 = guide.layers[0].params(x.flatten(1)), guide.layers[1].params(z1)
    p1 = model.conditionals[0].params(z2)
    logits = model.decoder(z1).flatten(1)
    by_hand = (torch.distributions.Normal(0.0, 1.0).log_prob(z2).sum(-1)
               + torch.distributions.Normal(*p1).log_prob(z1).sum(-1)
               + (x.flatten(1) * logits - nn.functional.softplus(logits)).sum(-1)
               - torch.distributions.Normal(*q1).log_prob(z1).sum(-1)
               - torch.distributions.Normal(*q2).log_prob(z2).sum(-1)).sum()
    assert loss == pytest.approx(-by_hand.item(), rel=1e-5)


class _LinearGaussian(nn.Module):
    """h -> N(h W^T + c, cov): a linear link with a fixed covariance (full or diagonal)."""

    def __init__(self, weight, bias, cov):
        super().__init__()
        self.weight, self.bias, self.tril = weight, bias, torch.linalg.cholesky(cov)

    def forward(self, h):
        return dist.MultivariateNormal(h @ self.weight.T + self.bias, scale_tril=self.tril)


def _linear_hierarchy(perturb: float):
    """z2 ~ N(0, I_2), z1 | z2 ~ N(A z2 + b, S1), x | z1 ~ N(C z1 + d, s0^2 I_5), and its exact posterior
    q(z1 | x) q(z2 | z1) = p(z1 | x) p(z2 | z1), with means shifted and covariances widened by ``perturb``."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 2, generator=g, dtype=torch.float64), torch.randn(3, generator=g, dtype=torch.float64)
    c, d = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, generator=g, dtype=torch.float64)
    s1, s0 = torch.diag(torch.tensor([0.5, 0.8, 0.3], dtype=torch.float64) ** 2), 0.6
    decoder = nn.Linear(3, 5).double()
    with torch.no_grad():
        decoder.weight.copy_(c)
        decoder.bias.copy_(d)
    prior = StandardNormalPrior(2).double()
    model = HierarchicalVAEModel(prior, [_LinearGaussian(a, b, s1)], decoder,
                                 FixedScaleGaussianLikelihood(torch.Size([5]), s0), (3, 2))
    p1 = a @ a.T + s1  # z1's marginal covariance (mean b)
    post1 = torch.linalg.inv(torch.linalg.inv(p1) + c.T @ c / s0 ** 2)
    w1 = post1 @ c.T / s0 ** 2  # E[z1 | x] = post1 (p1^-1 b + C^T (x - d) / s0^2) = w1 x + c1
    c1 = post1 @ (torch.linalg.inv(p1) @ b - c.T @ d / s0 ** 2)
    post2 = torch.linalg.inv(torch.eye(2, dtype=torch.float64) + a.T @ torch.linalg.inv(s1) @ a)
    w2 = post2 @ a.T @ torch.linalg.inv(s1)  # E[z2 | z1] = w2 (z1 - b)
    widen = 1.0 + perturb
    guide = BottomUpGuide([_LinearGaussian(w1, c1 + perturb, widen * post1),
                           _LinearGaussian(w2, -w2 @ b + perturb, widen * post2)], torch.Size([5]))
    marginal = dist.MultivariateNormal(c @ b + d, c @ p1 @ c.T + s0 ** 2 * torch.eye(5, dtype=torch.float64))
    return model, guide, marginal


def test_importance_sampling_matches_the_exact_marginal_of_a_linear_gaussian_hierarchy():
    exact_model, exact_guide, marginal = _linear_hierarchy(perturb=0.0)
    torch.manual_seed(0)
    x = marginal.sample(torch.Size([40]))
    exact = marginal.log_prob(x)
    report, est, se = importance_log_likelihood(exact_model, exact_guide, x, 4, per_point=True)
    assert torch.allclose(est, exact, atol=1e-9)  # the exact posterior: every weight is p(x)
    model, guide, _ = _linear_hierarchy(perturb=0.1)  # means shifted by 0.1, covariances 10 % wider
    report, est, se = importance_log_likelihood(model, guide, x, 5000, per_point=True, seed=1)
    assert (se > 1e-3).all()  # the weights vary now
    assert ((est - exact) / se).abs().max() < 4  # each point within 4 of its Monte Carlo standard errors
    assert abs(report.log_likelihood - exact.mean().item()) < 4 * report.standard_error + 1e-3


def test_svi_raises_the_test_elbo_of_a_two_layer_vae(embedded):
    model, guide = _burda_like()
    x, test = embedded.train_x.round(), embedded.test_x.round()
    before = evaluate_elbo(model, guide, test, seed=0).elbo
    pyro.clear_param_store()
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 3e-3}), Trace_ELBO())
    pyro.set_rng_seed(0)
    for step in range(300):
        idx = torch.randint(0, x.shape[0], (64,))
        svi.step(x[idx], num_data=x.shape[0], subsample=idx)
    after = evaluate_elbo(model, guide, test, seed=0).elbo
    assert after > before + 200 and math.isfinite(after)  # from about -545 nats


@pytest.fixture(scope="module")
def hierarchy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("hierarchy") / "run"
    cfg = RunConfig.from_dict({"model": {"hierarchy": [12], "latent_dim": 4, "num_hidden_layers": 2,
                                         "activation": "tanh"},
                               "guide": {"num_hidden_layers": 2, "activation": "tanh"},
                               "train": {"epochs": 2, "compile": "off"}})
    train_run(cfg, out, quiet=True, plots=False, tensorboard=False)
    return out


def test_a_hierarchical_run_trains_evaluates_by_layer_and_samples(hierarchy_run, capsys):
    run = load_run(hierarchy_run)
    assert isinstance(run.model, HierarchicalVAEModel) and run.model.latent_dims == (12, 4)
    assert [m.net[0].out_features for m in run.guide.layers] == [24, 8]  # twice the layer above each link
    assert main(["evaluate", str(hierarchy_run), "--limit", "100", "--iw-samples", "20"]) == 0
    printed = capsys.readouterr().out
    found = re.search(r"active units (\d+) of 16 .*; by layer: z1 (\d+) of 12, z2 (\d+) of 4", printed)
    assert found and int(found[1]) == int(found[2]) + int(found[3]), printed
    figures = json.loads((hierarchy_run / "evaluation.json").read_text())
    assert figures["collapse"]["layers"] == {"z1": {"active_units": int(found[2]), "units": 12},
                                             "z2": {"active_units": int(found[3]), "units": 4}}
    assert figures["log_likelihood"]["log_likelihood"] >= figures["elbo"]["elbo"] - 1.0  # the IW bound is tighter
    assert main(["sample", str(hierarchy_run), "-n", "16"]) == 0 and (hierarchy_run / "samples.png").is_file()


def test_the_top_layers_activity_averages_over_the_layer_below(hierarchy_run):
    """E_q[z_2 | x] = E_{q(z_1 | x)} E[z_2 | z_1]: the collapse report's means against 4000 draws by hand."""
    from pyro_vae.inference.evaluate.collapse import _means
    from pyro_vae.inference.objectives.weights import particle_trace, sample_sites

    run = load_run(hierarchy_run)
    x = run.data.test_x[:5]
    torch.manual_seed(0)
    with torch.no_grad():
        sites = sample_sites(particle_trace(run.guide, 1, x))
        means = _means(run.guide, x, None, sites)
        z1 = run.guide.posterior(x).sample(torch.Size([4000]))
        by_hand = run.guide.layers[1](z1).mean.mean(0)
    assert torch.allclose(means[:, :12], run.guide.code(x), atol=1e-6)
    assert torch.allclose(means[:, 12:], by_hand, atol=0.15)


@pytest.mark.parametrize("sections, why", [
    ({"model": {"arch": "conv"}}, "takes MLP links only"),
    ({"model": {"conditional": True}}, "is not conditional"),
    ({"guide": {"guide": "iaf"}}, "has a bottom-up guide of diagonal Gaussians"),
    ({"guide": {"guide": "delta"}, "objective": {"name": "adversarial"}}, "has a bottom-up guide"),
    ({"objective": {"name": "adversarial"}}, "cannot train adversarially"),
    ({"model": {"hidden_dim": 64}}, "sets each link twice as wide as the layer above it, so --hidden-dim does not apply"),
])
def test_what_a_hierarchy_does_not_combine_with_is_refused_in_one_line(sections, why):
    raw = {"model": {"hierarchy": [10], **sections.get("model", {})}, **{k: v for k, v in sections.items()
                                                                         if k != "model"}}
    with pytest.raises(UserError, match=re.escape(f"a hierarchical VAE (--hierarchy 10) {why}")):
        RunConfig.from_dict(raw).validate()
    with pytest.raises(UserError, match="must be the units of one or more layers below the top"):
        RunConfig.from_dict({"model": {"hierarchy": [10, 0]}}).validate()


def test_the_vamp_prior_at_the_top_mixes_the_guides_top_factor_at_its_pseudo_inputs():
    """p(z_2) = (1/K) sum_k q(z_2 | E q(z_1 | u_k)): each component by hand from the guide's networks, and the
    mixture's density is the hand-written log-mean-exp of theirs."""
    from pyro_vae.inference.runs.build import build_model_and_guide

    cfg = RunConfig.from_dict({"model": {"hierarchy": [6], "latent_dim": 3, "prior": "vamp", "prior_components": 4,
                                         "num_hidden_layers": 2, "activation": "tanh"},
                               "guide": {"num_hidden_layers": 2, "activation": "tanh"}})
    cfg.validate()
    torch.manual_seed(0)
    model, guide = build_model_and_guide(cfg.model, cfg.guide, EVENT)
    u = model.prior.pseudo_inputs
    loc, scale = guide.layers[1].params(guide.layers[0].params(u.flatten(1))[0])
    z = torch.randn(5, 3)
    by_hand = torch.logsumexp(torch.distributions.Normal(loc, scale).log_prob(z[:, None]).sum(-1), -1) - math.log(4)
    with torch.no_grad():
        torch.testing.assert_close(model.prior(torch.Size([5])).log_prob(z), by_hand)
    x = torch.rand(7, *EVENT).round()
    pyro.set_rng_seed(0)
    loss = Trace_ELBO().loss(model, guide, x)
    assert math.isfinite(loss) and set(n for n, _ in model.named_parameters()) >= {"prior.pseudo_inputs"}


def test_the_joint_log_densities_of_model_and_guide_are_the_closed_form_ones():
    """With the exact posterior as guide, log q(z_1, z_2 | x) + log p(x) = log p(x, z_1, z_2) at every draw."""
    model, guide, marginal = _linear_hierarchy(perturb=0.0)
    torch.manual_seed(0)
    x = marginal.sample(torch.Size([6]))
    q = guide.joint_posterior(x)
    z = q.sample(torch.Size([4]))  # (S, P, 3 + 2)
    assert z.shape == (4, 6, 5) and q.event_shape == (5,)
    torch.testing.assert_close(q.log_prob(z) + marginal.log_prob(x), model.log_joint(x, z), rtol=0, atol=1e-9)
    assert model.layer_slices() == {"z1": slice(0, 3), "z2": slice(3, 5)}


@pytest.mark.slow  # a long NUTS run (4 chains of 800 iterations): make test, not make test-fast
def test_the_nuts_reference_of_a_hierarchy_finds_its_exact_posterior_layer_by_layer():
    from pyro_vae.inference.diagnostics.reference import nuts_reference

    model, guide, marginal = _linear_hierarchy(perturb=0.0)
    torch.manual_seed(1)
    x = marginal.sample(torch.Size([3]))
    exact = guide.joint_posterior(x).sample(torch.Size([20_000]))  # the exact posterior's draws
    ref = nuts_reference(model, x, [4, 5, 6], exact.mean(0), num_chains=4, num_draws=500, warmup=300, seed=0)
    post = ref.idata.posterior
    assert set(post.data_vars) == {"z1", "z2"} and post["z1"].shape == (4, 500, 3, 3) and post["z2"].shape[-1] == 2
    assert ref.max_rhat < 1.02 and ref.min_ess_bulk > 400
    for name, part in model.layer_slices().items():
        draws = torch.as_tensor(post[name].values).reshape(-1, 3, part.stop - part.start)
        sd = exact[..., part].std(0)
        error = (draws.mean(0) - exact[..., part].mean(0)).abs() / sd
        assert error.max() < 0.25, name  # well inside what 2,000 correlated draws allow
        assert ((draws.std(0) / sd - 1).abs() < 0.2).all(), name


def test_diagnose_examines_a_hierarchy_layer_by_layer(hierarchy_run, capsys):
    import arviz as az

    args = ["diagnose", str(hierarchy_run), "--points", "2", "--chains", "2", "--draws", "60", "--warmup", "60",
            "--guide-samples", "200", "--split", "test"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert re.search(r"z1 \(12 units, \d+ active\): mean error [\d.]+ posterior sd", out)
    assert re.search(r"z2 \(4 units, \d+ active\)", out)
    folder = hierarchy_run / "diagnostics" / "test"
    summary = json.loads((folder / "summary.json").read_text())
    assert set(summary["by_layer"]) == {"z1", "z2"} and summary["by_layer"]["z2"]["units"] == 4
    for name in ("reference.nc", "guide.nc"):
        idata = az.from_netcdf(folder / name)
        assert idata.posterior["z1"].shape[-2:] == (2, 12) and idata.posterior["z2"].shape[-2:] == (2, 4)
    assert az.summary(az.from_netcdf(folder / "reference.nc"), var_names=["z2"]).shape[0] == 8


def test_the_hierarchy_config_round_trips(capsys, tmp_path):
    assert main(["config", "--dump", "--hierarchy", "100", "--latent-dim", "50", "--format", "json"]) == 0
    dumped = json.loads(capsys.readouterr().out)
    assert dumped["model"]["hierarchy"] == [100] and dumped["model"]["latent_dim"] == 50
    (tmp_path / "c.json").write_text(json.dumps(dumped))
    assert main(["config", "--dump", "--config", str(tmp_path / "c.json"), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["hierarchy"] == [100]


def test_the_rate_takes_the_closed_form_kl_only_where_it_is_the_elbos_term():
    """With the exact posterior as guide the ELBO is log p(x). The bottom-up guide draws z_2 after z_1 and from
    it, so KL(q(z_1 | x) || p(z_1 | z_2)) at the guide's z_2 is not the ELBO's term: the rate takes
    log q - log p at the draw there (the top layer keeps its closed form). The test ELBO and the beta
    objective at beta = 1 both equal the closed-form log p(x), within their Monte Carlo error."""
    from pyro_vae.inference.objectives import BetaELBO

    model, guide, marginal = _linear_hierarchy(perturb=0.0)
    torch.manual_seed(0)
    x = marginal.sample(torch.Size([400]))
    exact = marginal.log_prob(x).mean().item()
    report = evaluate_elbo(model, guide, x, seed=0)
    assert report.elbo == pytest.approx(exact, abs=0.02)
    pyro.set_rng_seed(0)
    loss = BetaELBO(beta=1.0, num_particles=10).differentiable_loss(model, guide, x).item()
    assert -loss / len(x) == pytest.approx(exact, abs=0.02)
    with pytest.raises(UserError, match="cannot use --objective mean_field with the bottom-up guide"):
        RunConfig.from_dict({"model": {"hierarchy": [10]}, "objective": {"name": "mean_field"}}).validate()
    RunConfig.from_dict({"model": {"hierarchy": [10]}, "guide": {"hierarchy_guide": "ladder"},
                         "objective": {"name": "mean_field"}}).validate()  # top-down: the closed form is exact
