"""`flowinv`: the conditional flow's density and inverse, reparameterised draws, conditioning, spaces, a run."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from augbench.errors import ConfigError
from augbench.methods import MethodContext, StepContext, create_method
from augbench.methods.flowinv.controller import EntropyController
from augbench.methods.flowinv.flow import ConditionalFlow
from augbench.rundir import RunDir
from augbench.runs import execute, resolve
from augbench.transforms.geometry import crop, rotate


def ctx(family: str = "rotation", shape=(3, 32, 32)) -> MethodContext:
    return MethodContext(num_classes=4, image_shape=shape, families=frozenset({family}))


def perturbed_flow(dim: int, layers: int, seed: int = 0, scale: float = 0.3, **kw) -> ConditionalFlow:
    """A flow whose couplings and base are far from their near-identity initialisation."""
    torch.manual_seed(seed)
    flow = ConditionalFlow(dim, emb_dim=5, n_layers=layers, width=16, n_modes=3, loc_std=0.5, start_scale=0.3, **kw)
    with torch.no_grad():
        for p in flow.parameters():
            p.add_(scale * torch.randn_like(p))
    return flow.double().requires_grad_(False)


# ------------------------------------------------------------------------------ the density
def test_density_without_couplings_is_the_closed_form_tanh_gaussian():
    """0 blocks, 1 component: w = a tanh(z / a), z ~ N(mu, sigma^2), so log q = log N(z) - log(1 - tanh^2(z / a))."""
    torch.manual_seed(0)
    flow = ConditionalFlow(2, emb_dim=3, n_layers=0, width=8, n_modes=1, loc_std=0.5, start_scale=0.4,
                           out_bound=0.8).double()
    e = torch.randn(500, 3, dtype=torch.float64)
    w, log_q = flow.rsample(e)
    loc, log_scale, _ = flow.base.params(e)
    z = 0.8 * torch.atanh(w / 0.8)
    normal = torch.distributions.Normal(loc[:, 0], log_scale[:, 0].exp())
    closed = (normal.log_prob(z) - torch.log1p(-torch.tanh(z / 0.8) ** 2)).sum(-1)
    assert w.abs().max() < 0.8
    assert torch.allclose(log_q, closed, atol=1e-8)
    assert torch.allclose(flow.log_prob(w, e), closed, atol=1e-8)


@pytest.mark.parametrize("dim", [1, 4, 6])
def test_log_density_is_the_change_of_variables_of_the_whole_flow(dim):
    """log q(w) = log p0(z) - log |det dw/dz| with the Jacobian from autograd, for sampled and given points."""
    flow = perturbed_flow(dim, layers=3)
    e = torch.randn(6, 5, dtype=torch.float64)
    z = flow.base.rsample(e, tau=0.1).detach()
    w, log_det = flow.push(z, e)
    for i in range(len(z)):
        ei = e[i:i + 1]
        jac = torch.autograd.functional.jacobian(lambda v, ei=ei: flow.push(v[None], ei)[0][0], z[i])
        expected = flow.base.log_prob(z[i:i + 1], e[i:i + 1])[0] - torch.linalg.slogdet(jac).logabsdet
        assert log_det[i] == pytest.approx(torch.linalg.slogdet(jac).logabsdet.item(), abs=1e-8)
        assert flow.log_prob(w[i:i + 1], e[i:i + 1])[0].item() == pytest.approx(expected.item(), abs=1e-6)
    torch.manual_seed(3)
    w_s, log_q = flow.rsample(e)
    assert torch.allclose(log_q, flow.log_prob(w_s, e), atol=1e-6)


def test_one_dimensional_density_integrates_to_one():
    flow = perturbed_flow(1, layers=4, scale=0.2)
    e = torch.randn(3, 5, dtype=torch.float64)
    grid = torch.linspace(-1, 1, 40001, dtype=torch.float64)[1:-1]
    for i in range(3):
        dens = flow.log_prob(grid[:, None], e[i:i + 1].expand(len(grid), 5)).exp()
        assert torch.trapezoid(dens, grid).item() == pytest.approx(1.0, abs=2e-3)


@pytest.mark.parametrize("dim", [1, 2, 4, 6])
def test_the_flow_is_invertible(dim):
    flow = perturbed_flow(dim, layers=5, scale=0.2)  # larger perturbations saturate the tanh bounds numerically
    e = torch.randn(64, 5, dtype=torch.float64)
    z = 0.5 * torch.randn(64, dim, dtype=torch.float64)
    w, fwd = flow.push(z, e)
    back, inv = flow.inverse(w, e)
    assert torch.allclose(back, z, atol=1e-6)
    assert torch.allclose(fwd + inv, torch.zeros_like(fwd), atol=1e-6)


# ------------------------------------------------------------------------------ the method
def test_draws_are_reparameterised_the_task_loss_reaches_flow_base_and_embedding():
    torch.manual_seed(0)
    m = create_method("flowinv", ctx(), alpha=0.0, flow_layers=2)
    x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 4, (8,))
    views = m.sample(x, StepContext(y=y), n_views=2)
    task = F.cross_entropy(views.x.flatten(1)[:, :4] * 10, y.repeat(2), reduction="none")
    loss, _ = m.objective(task, views)
    loss.backward()
    for name in ("flow.layers.0.net.0.weight", "flow.base.loc", "flow.base.project.weight", "embed.net.0.weight"):
        grad = dict(m.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_objective_is_task_loss_plus_alpha_mean_log_density():
    torch.manual_seed(0)
    m = create_method("flowinv", ctx(), alpha=0.3)
    views = m.sample(torch.rand(4, 3, 32, 32), StepContext(), n_views=3)
    per = torch.rand(12)
    loss, logs = m.objective(per, views)
    log_q = views.info["log_q"]
    assert loss.item() == pytest.approx((per.mean() + 0.3 * log_q.mean()).item(), rel=1e-6)
    assert logs["entropy"].item() == pytest.approx(-log_q.mean().item(), rel=1e-6)
    assert views.entropy.shape == (4,)


def test_distributions_depend_on_the_input():
    torch.manual_seed(0)
    m = create_method("flowinv", ctx(), flow_layers=2)
    a, b = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    x = torch.cat([a, a, b])
    torch.manual_seed(1)
    w, log_q = m.draw(x, 1)
    grid = torch.linspace(-0.9, 0.9, 7)[:, None]
    dens = [m.log_prob(img.expand(7, -1, -1, -1), grid) for img in (a, b)]
    assert not torch.allclose(dens[0], dens[1], atol=1e-5)  # different images, different densities
    assert torch.allclose(m.log_prob(x[:1].expand(7, -1, -1, -1), grid), dens[0])
    torch.manual_seed(1)
    w2, _ = m.draw(torch.cat([a, b, b]), 1)  # the same noise: the first row matches, the second does not
    assert torch.allclose(w[0], w2[0]) and not torch.allclose(w[1], w2[1], atol=1e-6)


def test_a_seed_fixes_the_method_and_its_draws():
    def build_and_draw():
        torch.manual_seed(4)
        m = create_method("flowinv", ctx("crop"))
        x = torch.rand(5, 3, 32, 32)
        return m.state_dict(), m.sample(x, StepContext(), 2).x

    (s1, v1), (s2, v2) = build_and_draw(), build_and_draw()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert torch.equal(v1, v2)


def test_rotation_space_rotates_by_pi_w_and_reports_quantile_ranges():
    torch.manual_seed(0)
    m = create_method("flowinv", ctx(), inspect_samples=400, range_quantile=0.05)
    assert m.space.name == "rotation" and m.space.dim == 1
    x = torch.rand(6, 3, 32, 32)
    torch.manual_seed(2)
    views = m.sample(x, StepContext(), 1)
    assert torch.allclose(views.x, rotate(x, math.pi * views.info["w"][:, 0]), atol=1e-6)
    ins = m.inspect(x, StepContext(training=False))
    rng = ins["rotation_range"]
    assert rng.shape == (6, 2) and (rng[:, 0] < rng[:, 1]).all() and rng.abs().max() < math.pi
    torch.manual_seed(5)
    angles = math.pi * m.draw(x, 400)[0].view(400, 6)
    inside = ((angles >= rng[:, 0]) & (angles <= rng[:, 1])).float().mean()
    assert inside.item() == pytest.approx(0.9, abs=0.05)  # [5%, 95%] holds about 90% of fresh draws
    assert ins["entropy"].shape == (6,)


def test_crop_space_boxes_stay_inside_start_large_and_are_the_views():
    torch.manual_seed(0)
    m = create_method("flowinv", ctx("crop"), crop_min_side=0.2, crop_init_side=0.85)
    assert m.space.name == "crop" and m.space.dim == 4
    x = torch.rand(16, 3, 32, 32)
    boxes = m.inspect(x, StepContext(training=False))["crop_boxes"]
    assert boxes.shape == (16, 8, 4)
    cy, cx, h, w = boxes.unbind(-1)
    assert (h >= 0.2).all() and (h <= 1).all() and (w >= 0.2).all() and (w <= 1).all()
    assert (cy - h / 2 >= -1e-6).all() and (cy + h / 2 <= 1 + 1e-6).all()
    assert (cx - w / 2 >= -1e-6).all() and (cx + w / 2 <= 1 + 1e-6).all()
    assert h.mean().item() == pytest.approx(0.85, abs=0.08) and cy.mean().item() == pytest.approx(0.5, abs=0.05)
    torch.manual_seed(1)
    views = m.sample(x, StepContext(), 1)
    ref = crop(x, *m.space.boxes(views.info["w"]).unbind(-1))
    assert torch.allclose(views.x, ref, atol=1e-6)


def test_spaces_follow_the_family_and_affine_reports_rotation():
    with pytest.raises(ConfigError, match="space=rotation"):
        create_method("flowinv", ctx("crop"), space="rotation")
    with pytest.raises(ConfigError, match="space=crop"):
        create_method("flowinv", ctx("rotation"), space="crop")
    with pytest.raises(ConfigError, match="init_side"):
        create_method("flowinv", ctx("crop"), crop_min_side=0.5, crop_init_side=0.4)
    torch.manual_seed(0)
    m = create_method("flowinv", ctx("rotation"), space="affine")
    assert m.space.dim == 6
    x = torch.rand(3, 3, 32, 32)
    out = m.inspect(x, StepContext(training=False))
    assert out["rotation_range"].shape == (3, 2) and "crop_boxes" not in out
    assert m.sample(x, StepContext(), 2).x.shape == (6, 3, 32, 32)


def test_burnin_trains_on_untransformed_images_only():
    m = create_method("flowinv", ctx(), burnin_epochs=2)
    x = torch.rand(4, 3, 32, 32)
    views = m.sample(x, StepContext(epoch=1), 2)
    assert torch.equal(views.x, x.repeat(2, 1, 1, 1)) and views.entropy is None
    loss, logs = m.objective(torch.ones(8, requires_grad=True), views)
    assert loss.item() == 1.0 and not logs
    assert m.sample(x, StepContext(epoch=2), 1).entropy is not None
    assert m.sample(x, StepContext(epoch=0, training=False), 1).entropy is not None  # evaluation is never burn-in


def test_combine_views_averages_probabilities_or_logits():
    outs = torch.randn(5, 3, 4)
    m = create_method("flowinv", ctx())
    assert torch.allclose(m.combine_views(outs).exp(), outs.softmax(-1).mean(0), atol=1e-6)
    m = create_method("flowinv", ctx(), tta_combine="logit")
    assert torch.allclose(m.combine_views(outs), outs.mean(0))


def reference_pid(entropies, target, gains, lo, hi):
    """The public code's loop written out: EMA -> PID(EMA input, integral from 10, EMA output) -> clip."""
    def ema(last, v):
        return v if last is None else 0.1 * v + 0.9 * last

    kp, ki, kd = gains
    e1 = e2 = out_ema = last_err = None
    integral, alphas = 10.0, []
    for h in entropies:
        e1 = ema(e1, h)
        e2 = ema(e2, e1)
        err = target - e2
        integral += err
        deriv = 0.0 if last_err is None else err - last_err
        last_err = err
        out_ema = ema(out_ema, min(max(kp * err + ki * integral + kd * deriv, lo), hi))
        alphas.append(min(max(out_ema, lo), hi))
    return alphas


def test_pid_controller_follows_the_public_loop_and_resumes_exactly():
    torch.manual_seed(0)
    entropies = (torch.randn(60) * 0.3 - 0.5).tolist()
    ctl = EntropyController(-0.2, 0.0, (0.05, 0.01, 0.02), 1e-3, 0.5)
    assert ctl.alpha == 1e-3  # before any step
    ours = [ctl.update(h) for h in entropies[:30]]
    resumed = EntropyController(-0.2, 0.0, (0.05, 0.01, 0.02), 1e-3, 0.5)
    resumed.load_state_dict(ctl.state_dict())
    ours += [resumed.update(h) for h in entropies[30:]]
    assert ours == pytest.approx(reference_pid(entropies, -0.1, (0.05, 0.01, 0.02), 1e-3, 0.5), abs=1e-12)
    low = EntropyController(-0.2, 0.0, (0.01, 0.01, 0.01), 1e-3, 0.5)
    assert [low.update(-3.0) for _ in range(200)][-1] == pytest.approx(0.5)  # too little entropy: alpha up
    high = EntropyController(-0.2, 0.0, (0.01, 0.01, 0.01), 1e-3, 0.5)
    assert [high.update(3.0) for _ in range(400)][-1] == pytest.approx(1e-3)  # too much: alpha down


def test_pid_rule_uses_the_previous_steps_alpha_and_needs_a_band():
    with pytest.raises(ConfigError, match="h_min"):
        create_method("flowinv", ctx(), alpha_rule="pid")
    torch.manual_seed(0)
    m = create_method("flowinv", ctx(), alpha_rule="pid", h_min=2.0, h_max=3.0, alpha_min=0.01, alpha_max=0.4)
    x = torch.rand(4, 3, 32, 32)
    views = m.sample(x, StepContext(), 1)
    per = torch.rand(4)
    loss, logs = m.objective(per, views)
    assert loss.item() == pytest.approx((per.mean() + 0.01 * views.info["log_q"].mean()).item(), rel=1e-6)
    assert logs["alpha"].item() == pytest.approx(0.01) and m.alpha > 0.01  # entropy far below the band


def test_training_averages_the_logits_of_train_views_draws(tmp_path, tiny):
    """The public CIFAR code's loss: cross-entropy of the mean logit over 20 draws per image (none in burn-in)."""
    from augbench.settings import create_benchmark
    from augbench.train.trainer import Trainer

    m = create_method("flowinv", ctx(), burnin_epochs=2)
    assert m.hp["train_views"] == 20 and m.hp["train_combine"] == "logit" and m.train_copies() == 1
    m.begin_epoch(2)
    assert m.train_copies() == 20
    cfg = resolve("glyphs-rotation", "flowinv", 0, {**tiny, "train_views": 3, "burnin_epochs": 0})
    trainer = Trainer(create_benchmark(cfg.benchmark, cfg.settings), "flowinv", cfg.hparams, 0, tmp_path / "run",
                      {"run_id": "t"})
    seen: dict[str, torch.Tensor] = {}
    forward, loss = trainer.forward, trainer.task.per_sample_loss

    def spy_forward(x):
        seen["out"] = forward(x)
        return seen["out"]

    def spy_loss(out, y, n_views, label_smoothing=0.0):
        seen["combined"], seen["y"] = out, y
        return loss(out, y, n_views, label_smoothing)

    trainer.forward, trainer.task.per_sample_loss = spy_forward, spy_loss
    trainer.method.begin_epoch(0)
    trainer._step(torch.arange(8))
    b = len(seen["y"])
    assert seen["out"].shape[0] == 3 * b
    torch.testing.assert_close(seen["combined"], seen["out"].view(3, b, -1).mean(0))


# ------------------------------------------------------------------------------ end to end
def test_glyphs_rotation_end_to_end_reports_coverage(tmp_path, tiny):
    cfg = resolve("glyphs-rotation", "flowinv", 0, tiny)
    metrics = execute(cfg, tmp_path / "run")
    assert RunDir(tmp_path / "run").state().state == "done"
    assert metrics["steps"] >= 1 and 0.0 <= metrics["coverage"] <= 1.0 and 0.0 <= metrics["violation"] <= 1.0
    saved = torch.load(tmp_path / "run" / "inspect.pt")
    assert saved["rotation_range"].shape == (32, 2)


def test_clutter_crop_end_to_end_reports_keeps_object(tmp_path, tiny):
    metrics = execute(resolve("clutter-crop", "flowinv", 0, {**tiny, "method.burnin_epochs": 0}), tmp_path / "run")
    assert 0.0 <= metrics["keeps_object"] <= 1.0 and 0.0 < metrics["crop_area"] <= 1.0
