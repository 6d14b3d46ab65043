"""Projectors, normalisers and the projector analysis: shapes, references and behaviour.

The behaviour tests check the claims the app makes: VkD's orthogonal projector keeps every
singular value at 1 while it trains; whitening gives an identity batch covariance; and a linear
projector trained on the squared error over whitened student features converges to the
teacher-student cross-covariance, following :func:`whitened_flow` step by step
(Miles & Mikolajczyk 2024, arXiv:2303.11098).
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from kdcore.losses.fitnets import fitnet_loss
from kdcore.projectors import (
    NORMALISERS,
    PROJECTORS,
    SPATIAL_ONLY,
    Standardise,
    Whiten,
    build_normaliser,
    build_projector,
    collapsed,
    cross_covariance,
    singular_values,
    synthetic_features,
    whitened_flow,
    whitening_matrix,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SETTINGS = settings(max_examples=30, deadline=None)


def close(
    got: torch.Tensor, want: torch.Tensor, rtol: float | None = None, atol: float | None = None
):
    """assert_allclose on tensors, with torch.testing's defaults for the dtype (float32 1.3e-6 /
    1e-5, float64 1e-7 / 1e-7). torch.testing itself costs seconds to import on a busy machine."""
    wide = got.dtype == torch.float64
    np.testing.assert_allclose(
        got.detach().numpy(),
        want.detach().numpy(),
        rtol=(1e-7 if wide else 1.3e-6) if rtol is None else rtol,
        atol=(1e-7 if wide else 1e-5) if atol is None else atol,
    )


def sgd_step(module: nn.Module, lr: float) -> None:
    """Plain SGD, p <- p - lr * grad: what torch.optim.SGD does without momentum or weight
    decay, minus the seconds of lazy imports its first step costs."""
    with torch.no_grad():
        for p in module.parameters():
            p -= lr * p.grad
            p.grad = None


def features(spatial: bool, b: int = 4, c: int = 5, hw: int = 3, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    shape = (b, c, hw, hw) if spatial else (b, c)
    return torch.randn(shape, generator=gen)


# ----------------------------------------------------------------------------- projectors


@pytest.mark.parametrize("spatial", [False, True])
@pytest.mark.parametrize("kind", PROJECTORS)
def test_each_projector_maps_shapes(kind, spatial):
    if kind in SPATIAL_ONLY and not spatial:
        with pytest.raises(ValueError, match="spatial"):
            build_projector(kind, 5, 7, spatial)
        return
    proj = build_projector(kind, 5, 7, spatial)
    x = features(spatial)
    y = proj(x)
    assert y.shape == ((4, 7, 3, 3) if spatial else (4, 7))
    assert proj.matrix().shape == (7, 5)
    y.sum().backward()  # every kind is trainable end to end
    assert all(p.grad is not None for p in proj.parameters())


def test_unknown_projector_lists_the_choices():
    with pytest.raises(ValueError, match="linear, conv1x1, conv-bn-relu, mlp, orthogonal"):
        build_projector("attention", 4, 4, False)


def test_projector_rejects_the_wrong_layout():
    with pytest.raises(ValueError, match=r"\(B, C, H, W\) with 5"):
        build_projector("linear", 5, 7, spatial=True)(features(False))
    with pytest.raises(ValueError, match=r"\(B, D\) with 5"):
        build_projector("linear", 5, 7, spatial=False)(torch.zeros(4, 6))


def test_linear_projector_is_its_matrix():
    proj = build_projector("linear", 5, 7, spatial=False)
    x = features(False)
    close(proj(x), x @ proj.matrix().T)
    assert not any(name.endswith("bias") for name, _ in proj.named_parameters())


def test_linear_per_position_equals_conv1x1():
    lin = build_projector("linear", 5, 7, spatial=True)
    conv = build_projector("conv1x1", 5, 7, spatial=True)
    with torch.no_grad():
        conv.net.weight.copy_(lin.matrix().reshape(7, 5, 1, 1))
    x = features(True)
    close(lin(x), conv(x))
    close(lin.matrix(), conv.matrix())


def test_matrix_is_the_first_layer_for_deep_projectors():
    mlp = build_projector("mlp", 5, 7, spatial=False)
    close(mlp.matrix(), mlp.net[0].weight.detach())
    cbr = build_projector("conv-bn-relu", 5, 7, spatial=True)
    close(cbr.matrix(), cbr.net[0].weight.detach().reshape(7, 5))
    assert (cbr(features(True)) >= 0).all()  # ends in a ReLU


def test_projector_kinds_table():
    assert PROJECTORS == ("linear", "conv1x1", "conv-bn-relu", "mlp", "orthogonal")
    assert set(SPATIAL_ONLY) <= set(PROJECTORS)


@pytest.mark.parametrize(("d_in", "d_out"), [(6, 6), (5, 8), (8, 5)])
def test_orthogonal_projector_singular_values_stay_one(d_in, d_out):
    """VkD (Miles et al. 2024): the orthogonality is a parametrisation, not a penalty, so after
    50 SGD steps every singular value is still 1 while the map itself has moved."""
    torch.manual_seed(d_in * 10 + d_out)
    proj = build_projector("orthogonal", d_in, d_out, spatial=False)
    w_start = proj.matrix().clone()
    np.testing.assert_allclose(singular_values(w_start).numpy(), 1.0, atol=1e-5)
    x, t = torch.randn(32, d_in), torch.randn(32, d_out)
    first = fitnet_loss(proj(x), t).item()
    for _ in range(50):
        loss = fitnet_loss(proj(x), t)
        loss.backward()
        sgd_step(proj, lr=0.5)
    sv = singular_values(proj.matrix())
    assert sv.shape == (min(d_in, d_out),)
    np.testing.assert_allclose(sv.numpy(), 1.0, atol=1e-5)
    assert (proj.matrix() - w_start).norm() > 0.1
    assert loss.item() < first
    assert collapsed(sv) == 0


def test_unconstrained_projector_singular_values_spread():
    # The contrast to the test above: a plain linear projector started at an orthogonal matrix
    # leaves it under the same training.
    torch.manual_seed(0)
    proj = build_projector("linear", 6, 6, spatial=False)
    with torch.no_grad():
        nn.init.orthogonal_(proj.net.weight)
    x, t = torch.randn(32, 6), 0.1 * torch.randn(32, 6)
    for _ in range(50):
        fitnet_loss(proj(x), t).backward()
        sgd_step(proj, lr=0.5)
    assert (singular_values(proj.matrix()) - 1).abs().max() > 0.1


# ----------------------------------------------------------------------------- normalisers


def batch_cov(rows: torch.Tensor) -> torch.Tensor:
    centred = rows - rows.mean(0)
    return centred.T @ centred / rows.shape[0]  # (D, D), normalised by N


def as_rows(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1]) if x.dim() == 4 else x  # (N, C)


def test_unknown_normaliser_lists_the_choices():
    assert NORMALISERS == ("none", "batchnorm", "standardise", "whiten")
    with pytest.raises(ValueError, match="none, batchnorm, standardise, whiten"):
        build_normaliser("layernorm", 4, False)


@pytest.mark.parametrize("spatial", [False, True])
def test_none_is_identity(spatial):
    x = features(spatial)
    assert build_normaliser("none", 5, spatial)(x) is x


@pytest.mark.parametrize("spatial", [False, True])
def test_batchnorm_has_no_affine_and_standardises(spatial):
    bn = build_normaliser("batchnorm", 5, spatial)
    assert list(bn.parameters()) == []
    rows = as_rows(bn(3.0 * features(spatial, b=16) + 2.0)).double()
    np.testing.assert_allclose(rows.mean(0).numpy(), 0.0, atol=1e-6)
    np.testing.assert_allclose(rows.var(0, unbiased=False).numpy(), 1.0, atol=1e-3)


@pytest.mark.parametrize("spatial", [False, True])
def test_standardise_is_batchnorm_written_out(spatial):
    std = build_normaliser("standardise", 5, spatial)
    bn = build_normaliser("batchnorm", 5, spatial)
    assert isinstance(std, Standardise)
    for seed in range(3):
        x = 2.0 * features(spatial, b=8, seed=seed) + seed
        x_std, x_bn = x.clone().requires_grad_(), x.clone().requires_grad_()
        y_std, y_bn = std(x_std), bn(x_bn)
        close(y_std, y_bn)
        (y_std * x).sum().backward()
        (y_bn * x).sum().backward()
        close(x_std.grad, x_bn.grad)  # gradients through batch stats too
    std.eval()
    bn.eval()
    x = features(spatial, seed=9)
    close(std(x), bn(x))  # same running statistics


def ref_zca(rows: np.ndarray, eps: float) -> np.ndarray:
    """Centre, then multiply by (C + eps I)^(-1/2) from numpy's eigendecomposition."""
    centred = rows - rows.mean(axis=0)
    cov = centred.T @ centred / len(rows) + eps * np.eye(rows.shape[1])
    evals, evecs = np.linalg.eigh(cov)
    return centred @ (evecs / np.sqrt(evals)) @ evecs.T


@pytest.mark.parametrize("spatial", [False, True])
def test_whiten_gives_identity_covariance(spatial):
    zs, _ = synthetic_features(64, 5, 3, seed=1)
    x = zs.reshape(4, 4, 4, 5).permute(0, 3, 1, 2) if spatial else zs  # (4, 5, 4, 4) or (64, 5)
    y = build_normaliser("whiten", 5, spatial)(x)
    assert y.shape == x.shape
    cov = batch_cov(as_rows(y).double())
    # Off by eps / eigenvalue at most: the smallest variance is 1/4 and eps is 1e-5.
    np.testing.assert_allclose(cov.numpy(), np.eye(5), atol=1e-4)
    exact = Whiten(5, spatial, eps=1e-12)(x.double())
    np.testing.assert_allclose(batch_cov(as_rows(exact)).numpy(), np.eye(5), atol=1e-9)


def test_whiten_matches_reference_zca():
    zs, _ = synthetic_features(40, 6, 2, seed=2, dtype=torch.float64)
    got = Whiten(6, False, eps=1e-3)(zs).numpy()
    np.testing.assert_allclose(got, ref_zca(zs.numpy(), 1e-3), rtol=1e-10, atol=1e-12)


def test_whiten_spatial_treats_positions_as_samples():
    x = features(True, b=3, c=4, hw=5, seed=3).double()  # (3, 4, 5, 5): 75 samples of a 4-vector
    got = as_rows(Whiten(4, True)(x)).numpy()
    np.testing.assert_allclose(got, ref_zca(as_rows(x).numpy(), 1e-5), rtol=1e-9, atol=1e-12)


def test_whiten_eval_uses_running_statistics():
    w = Whiten(5, False, momentum=1.0)  # momentum 1: the running stats are the last batch's
    x, other = features(False, b=32, seed=4), features(False, b=32, seed=5)
    train_out = w(x)
    w.eval()
    close(w(x), train_out)
    # A new batch is mapped with the stored statistics, not whitened afresh.
    assert (batch_cov(w(other)) - torch.eye(5)).abs().max() > 0.05


def test_whitening_matrix_gradient_against_finite_differences():
    """The inverse square root's backward, checked where eigh's own gradient is fine (distinct
    eigenvalues) and where it is not (a repeated one: eigh's divides by the zero gap)."""
    a = torch.randn(5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    distinct = a @ a.T + 0.5 * torch.eye(5, dtype=torch.float64)
    repeated = torch.diag(torch.tensor([2.0, 2.0, 1.0, 0.5, 0.5], dtype=torch.float64))
    for c in (distinct, repeated):
        c = c.clone().requires_grad_()
        assert torch.autograd.gradcheck(lambda m: whitening_matrix(m, 1e-9), (c,))
    repeated.requires_grad_()
    eigh_way = torch.linalg.eigh(repeated)
    ((eigh_way[1] / eigh_way[0].sqrt()) @ eigh_way[1].T).sum().backward()
    assert not torch.isfinite(repeated.grad).all()  # why the hand-written backward exists


def test_whiten_gradient_reaches_the_input_through_the_covariance():
    """Whitening differentiates its batch statistics, as BatchNorm does: a loss that depends
    only on the whitened output's scale gets (almost) no gradient, since that scale is fixed."""
    x = features(False, b=64, c=5, seed=8).double().requires_grad_()
    w = Whiten(5, False, eps=1e-12)
    (w(x) ** 2).sum().backward()  # = N * trace(identity covariance): constant in x
    assert x.grad.abs().max().item() < 1e-6
    x2 = x.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda v: Whiten(5, False, eps=1e-6)(v).sin().sum(), (x2,))


def test_whiten_rank_deficient_batch_is_finite():
    x = features(False, b=3, c=8, seed=6)  # 3 samples of an 8-vector: covariance of rank 2
    y = Whiten(8, False)(x)
    assert torch.isfinite(y).all()


def test_normalisers_reject_the_wrong_layout():
    with pytest.raises(ValueError, match="Whiten expects"):
        Whiten(5, True)(features(False))
    with pytest.raises(ValueError, match="Standardise expects"):
        Standardise(5, False)(torch.zeros(4, 6))


# ----------------------------------------------------------------------------- analysis


def matrix_with_singular_values(s: list[float], m: int, n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(m, m, generator=gen, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    sigma = torch.zeros(m, n, dtype=torch.float64)
    sigma[range(len(s)), range(len(s))] = torch.tensor(s, dtype=torch.float64)
    return u @ sigma @ v.T  # (m, n) with exactly these singular values


def test_singular_values_descending_and_exact():
    s = [3.0, 1.0, 0.5, 0.02, 0.001, 0.0]
    W = matrix_with_singular_values(s, 6, 9)
    sv = singular_values(W.float())
    assert sv.dtype == torch.float64 and sv.shape == (6,)
    np.testing.assert_allclose(sv.numpy(), s, atol=1e-6)
    np.testing.assert_allclose(sv.numpy(), np.linalg.svd(W.numpy(), compute_uv=False), atol=1e-6)


def test_collapsed_counts_small_singular_values():
    sv = singular_values(matrix_with_singular_values([3.0, 1.0, 0.5, 0.02, 0.001, 0.0], 7, 6))
    assert collapsed(sv) == 3  # below 0.03: 0.02, 0.001, 0
    assert collapsed(sv, rel=0.5) == 5  # below 1.5
    assert collapsed(sv, rel=1e-6) == 1  # only the exact zero (to rounding)
    assert collapsed(torch.zeros(4)) == 4
    assert collapsed(torch.zeros(0)) == 0


@SETTINGS
@given(
    s=st.lists(st.floats(0.0, 100.0), min_size=1, max_size=8),
    rel=st.floats(1e-4, 1.0),
)
def test_collapsed_matches_a_direct_count(s, rel):
    sv = torch.tensor(sorted(s, reverse=True), dtype=torch.float64)
    top = max(s)
    want = len(s) if top == 0 else sum(v < rel * top for v in s)
    assert collapsed(sv, rel) == want


def test_cross_covariance_matches_numpy():
    zs, zt = synthetic_features(50, 4, 3, seed=7, dtype=torch.float64)
    c = cross_covariance(zs, zt)
    assert c.shape == (3, 4)  # (D_t, D_s): the shape of a projector's weight
    joint = np.cov(np.concatenate([zt.numpy(), zs.numpy()], axis=1).T, bias=True)
    np.testing.assert_allclose(c.numpy(), joint[:3, 3:], rtol=1e-12)
    with pytest.raises(ValueError, match="cross_covariance"):
        cross_covariance(zs, zt[:10])


def test_synthetic_features_are_deterministic_and_correlated():
    zs, zt = synthetic_features(200, 6, 4, seed=3)
    assert zs.shape == (200, 6) and zt.shape == (200, 4) and zs.dtype == torch.float32
    again = synthetic_features(200, 6, 4, seed=3)
    assert torch.equal(zs, again[0]) and torch.equal(zt, again[1])
    assert not torch.equal(zs, synthetic_features(200, 6, 4, seed=4)[0])
    # The student features are far from white (so whitening matters) and the teacher is mostly
    # explained by them: least squares leaves about the noise variance, 0.1^2.
    evals = torch.linalg.eigvalsh(batch_cov(zs.double()))
    assert evals.max() / evals.min() > 4
    sol = torch.linalg.lstsq(zs.double(), zt.double()).solution
    residual = (zt.double() - zs.double() @ sol).pow(2).mean()
    assert residual < 0.02


def test_whitened_flow_closed_form():
    gen = torch.Generator().manual_seed(8)
    c_st = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    w0 = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    lr = 0.3
    out = whitened_flow(c_st, steps=40, lr=lr, w0=w0, every=10)
    k = torch.arange(41, dtype=torch.float64)
    want = (1 - lr) ** k * torch.linalg.norm(w0 - c_st)  # W_k - C_st = (1 - lr)^k (W_0 - C_st)
    close(out["dist"], want)
    assert out["dist"][-1] < 1e-5
    assert out["sv_steps"].tolist() == [0, 10, 20, 30, 40]
    assert out["sv"].shape == (5, 3)
    close(out["sv"][-1], singular_values(c_st), atol=1e-5, rtol=0)
    close(out["w"], c_st, atol=1e-5, rtol=0)


def test_whitened_flow_from_zero_grows_every_direction_alike():
    c_st = matrix_with_singular_values([2.0, 1.0, 0.5], 3, 4)
    out = whitened_flow(c_st, steps=7, lr=0.5, every=3)
    assert out["sv_steps"].tolist() == [0, 3, 6, 7]
    np.testing.assert_allclose(out["sv"][0].numpy(), 0.0)
    for step, sv in zip(out["sv_steps"].tolist(), out["sv"], strict=True):
        np.testing.assert_allclose(sv.numpy(), (1 - 0.5**step) * np.array([2.0, 1.0, 0.5]))


def test_whitened_flow_without_whitening_goes_elsewhere():
    """With C_s != I the fixed point is C_st C_s^-1, not C_st: the normalisation decides what
    the projector learns."""
    zs, zt = synthetic_features(400, 4, 3, seed=9, dtype=torch.float64)
    c_st, c_s = cross_covariance(zs, zt), batch_cov(zs)
    out = whitened_flow(c_st, steps=400, lr=0.5, c_s=c_s)
    close(out["w"], c_st @ torch.linalg.inv(c_s), atol=1e-6, rtol=0)
    assert out["dist"][-1] > 0.1
    with pytest.raises(ValueError, match="whitened_flow"):
        whitened_flow(c_st, steps=1, lr=0.1, w0=torch.zeros(4, 3))


def train_linear_projector(zs: torch.Tensor, zt: torch.Tensor, lr: float, steps: int, w0):
    """The real thing: kdcore's linear projector, full-batch SGD on fitnet_loss. Returns the
    distance of its weight to ``cross_covariance(zs, zt)`` at every step."""
    proj = build_projector("linear", zs.shape[1], zt.shape[1], spatial=False).double()
    with torch.no_grad():
        proj.net.weight.copy_(w0)
    c_st = cross_covariance(zs, zt)
    dist = [torch.linalg.norm(proj.matrix() - c_st)]
    for _ in range(steps):
        fitnet_loss(proj(zs), zt).backward()
        sgd_step(proj, lr)
        dist.append(torch.linalg.norm(proj.matrix() - c_st))
    return torch.stack(dist), proj.matrix()


def test_trained_projector_on_whitened_features_converges_to_c_st():
    """Miles & Mikolajczyk (2024): on whitened student features a linear projector trained on
    the squared error learns the cross-covariance C_st, and its path is the whitened flow with
    rate 2 lr / D_t (fitnet_loss is a mean over D_t features per example)."""
    d_s, d_t, lr, steps = 6, 4, 1.0, 40
    zs, zt = synthetic_features(256, d_s, d_t, seed=10, dtype=torch.float64)
    zs_white = Whiten(d_s, False, eps=1e-12)(zs)  # (N, D_s) with batch covariance I
    c_st = cross_covariance(zs_white, zt)
    w0 = 0.3 * torch.randn(d_t, d_s, generator=torch.Generator().manual_seed(11), dtype=zs.dtype)
    dist, w = train_linear_projector(zs_white, zt, lr, steps, w0)
    flow = whitened_flow(c_st, steps=steps, lr=2 * lr / d_t, w0=w0)
    close(dist, flow["dist"], rtol=1e-8, atol=1e-10)
    assert dist[-1] < 1e-4 * dist[0]
    close(w, c_st, atol=1e-5, rtol=0)


def test_trained_projector_on_raw_features_misses_c_st():
    """The same training on unwhitened features converges to C_st C_s^-1 instead."""
    zs, zt = synthetic_features(256, 6, 4, seed=12, dtype=torch.float64)
    zs = zs - zs.mean(0)
    c_st, c_s = cross_covariance(zs, zt), batch_cov(zs)
    dist, w = train_linear_projector(zs, zt, lr=0.5, steps=300, w0=torch.zeros(4, 6).double())
    close(w, c_st @ torch.linalg.inv(c_s), atol=1e-5, rtol=0)
    assert dist[-1] > 0.1
