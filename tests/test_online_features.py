"""Online feature distillation (AFD; Chung et al. 2020): the least-squares discriminator and
generator terms against their definitions and finite differences, which module each term's
gradient reaches (the generator's stops at the features, the discriminator's at itself), the
paper's cycle of peers, the L1 baseline, the trainer's step, and the preset on a slice of MNIST."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcore.losses.modes import mutual_learning_parts
from kdcore.losses.online_features import (
    FeatureDiscriminator,
    adversarial_parts,
    discriminator_loss,
    discriminator_scores,
    frozen,
    generator_loss,
    l1_alignment_parts,
    online_feature_step,
    previous,
)
from kdcore.models import build_model
from kdcore.presets import PRESETS, run_preset
from kdcore.train import Batch, TrainConfig, fit
from tests.tiny_mnist import few_per_class

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

scores = st.lists(st.floats(-3, 3, allow_nan=False), min_size=1, max_size=16)


@pytest.fixture(scope="module")
def small():
    """20 training images per class, the first 300 test images."""
    return few_per_class(n_test=300)


def test_the_least_squares_terms_by_hand():
    d_peer, d_own = torch.tensor([1.0, 0.5]), torch.tensor([0.0, 0.5])
    # [1 - D(peer)]^2 averaged: (0 + 0.25) / 2; [D(own)]^2 averaged: (0 + 0.25) / 2
    assert discriminator_loss(d_peer, d_own).item() == pytest.approx(0.25)
    assert generator_loss(d_own).item() == pytest.approx((1 + 0.25) / 2)
    # a discriminator that is never wrong pays nothing; a generator it never doubts pays 1
    assert discriminator_loss(torch.ones(4), torch.zeros(4)).item() == 0.0
    assert generator_loss(torch.zeros(4)).item() == 1.0 and generator_loss(torch.ones(4)) == 0


@settings(max_examples=60, deadline=None)
@given(scores, scores)
def test_the_terms_are_squares_zero_only_at_their_targets(peer, own):
    d_peer, d_own = torch.tensor(peer, dtype=torch.float64), torch.tensor(own, dtype=torch.float64)
    want_d = sum((1 - p) ** 2 for p in peer) / len(peer) + sum(o * o for o in own) / len(own)
    assert discriminator_loss(d_peer, d_own).item() == pytest.approx(want_d, rel=1e-9, abs=1e-12)
    assert generator_loss(d_own).item() == pytest.approx(
        sum((1 - o) ** 2 for o in own) / len(own), rel=1e-9, abs=1e-12
    )
    assert discriminator_loss(d_peer, d_own) >= 0 and generator_loss(d_own) >= 0


def test_the_generator_term_matches_finite_differences_through_a_frozen_discriminator():
    torch.manual_seed(0)
    d = FeatureDiscriminator(5, 7).double()
    f = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda f: generator_loss(frozen(d, f)), (f,))
    f_peer = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: discriminator_loss(d(a), d(b)), (f_peer, f))


def test_each_term_trains_its_own_player_only():
    torch.manual_seed(0)
    feats = {n: torch.randn(6, 5, requires_grad=True) for n in ("a", "b")}
    discs = {n: FeatureDiscriminator(5, 8) for n in feats}
    parts = adversarial_parts(feats, discs, weight=0.5)
    assert set(parts) == {"a/adv", "a/disc", "b/adv", "b/disc"}
    parts["a/adv"].backward(retain_graph=True)  # network a fools D_a: reaches a's features only
    assert feats["a"].grad.abs().sum() > 0 and feats["b"].grad is None
    assert all(p.grad is None for d in discs.values() for p in d.parameters())
    feats["a"].grad = None
    parts["a/disc"].backward()  # D_a learns: reaches D_a only, neither network's features
    assert feats["a"].grad is None and feats["b"].grad is None
    assert all(p.grad.abs().sum() > 0 for p in discs["a"].parameters())
    assert all(p.grad is None for p in discs["b"].parameters())
    # the weight scales the generator's term only
    one = adversarial_parts(feats, discs, weight=1.0)
    assert parts["a/adv"].item() == pytest.approx(0.5 * one["a/adv"].item())
    assert parts["a/disc"].item() == pytest.approx(one["a/disc"].item())


def test_each_network_learns_from_the_one_before_it_in_a_cycle():
    assert previous(["a", "b"]) == {"a": "b", "b": "a"}
    assert previous(["1", "2", "3"]) == {"1": "3", "2": "1", "3": "2"}
    # D_2 takes network 1's features for real: fooling it moves network 2 towards network 1
    torch.manual_seed(0)
    feats = {n: torch.randn(8, 4) for n in ("1", "2", "3")}
    discs = {n: FeatureDiscriminator(4, 4) for n in feats}
    parts = adversarial_parts(feats, discs)
    d2 = discs["2"]
    want = (1 - d2(feats["1"])).pow(2).mean() + d2(feats["2"]).pow(2).mean()
    assert parts["2/disc"].item() == pytest.approx(want.item())
    sc = discriminator_scores(feats, discs)
    assert sc["2"]["peer"] == pytest.approx(d2(feats["1"]).mean().item(), abs=1e-4)


def test_the_l1_baseline_pulls_each_network_towards_its_peer_example_by_example():
    a = torch.tensor([[0.0, 2.0], [1.0, 1.0]], requires_grad=True)
    b = torch.tensor([[1.0, 0.0], [1.0, 3.0]], requires_grad=True)
    parts = l1_alignment_parts({"a": a, "b": b}, weight=2.0)
    assert parts["a/l1"].item() == pytest.approx(2.0 * (1 + 2 + 0 + 2) / 4)
    parts["a/l1"].backward()
    assert b.grad is None and a.grad.abs().sum() > 0  # the peer is a target, detached


def test_features_of_different_widths_and_unknown_alignments_are_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        adversarial_parts({"a": torch.zeros(2, 3), "b": torch.zeros(2, 4)},
                          {"a": FeatureDiscriminator(3), "b": FeatureDiscriminator(4)})  # fmt: skip
    with pytest.raises(ValueError, match="at least two"):
        l1_alignment_parts({"a": torch.zeros(2, 3)})
    with pytest.raises(ValueError, match="unknown alignment"):
        online_feature_step({}, align="cosine")


def test_the_step_adds_the_feature_terms_to_mutual_learning():
    torch.manual_seed(0)
    peers = {"a": build_model("mlp-30"), "b": build_model("mlp-30")}
    discs = {n: FeatureDiscriminator(30) for n in peers}
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    batch = Batch(x, y, torch.arange(8))
    plain = online_feature_step({}, align="none")(peers, batch)
    want = mutual_learning_parts({n: m(x) for n, m in peers.items()}, y)
    assert set(plain.parts) == set(want)
    for k, v in want.items():
        torch.testing.assert_close(plain.parts[k], v)
    afd = online_feature_step(discs, align="adversarial", weight=0.1)(peers, batch)
    assert set(afd.parts) == set(want) | {"a/adv", "a/disc", "b/adv", "b/disc"}
    l1 = online_feature_step({}, align="l1")(peers, batch)
    assert set(l1.parts) == set(want) | {"a/l1", "b/l1"}


def test_training_moves_both_peers_and_both_discriminators(small):
    torch.manual_seed(0)
    peers = {"a": build_model("mlp-30"), "b": build_model("mlp-30")}
    discs = {n: FeatureDiscriminator(30, 16) for n in peers}
    before = {n: d.net[0].weight.detach().clone() for n, d in discs.items()}
    result = fit(peers, small, TrainConfig(epochs=1, batch_size=50, lr=0.05),
                 online_feature_step(discs, weight=0.1), modules=list(discs.values()))  # fmt: skip
    assert result.ok
    for n in peers:
        assert not torch.equal(before[n], discs[n].net[0].weight)
        assert {"ce", "kl", "adv", "disc"} <= set(result.histories[n][-1].losses)


def test_the_preset_runs_three_ways_and_alone_on_a_slice_of_mnist():
    result = json.loads(json.dumps(run_preset("online-features", epochs=1, per_class=20)))
    assert result["status"] == "completed", result["message"]
    assert list(result["settings"]) == ["afd", "l1", "dml"]
    assert [s["align"] for s in result["settings"].values()] == ["adversarial", "l1", "none"]
    assert list(result["independent"]) == ["alone_1", "alone_2"]
    assert list(result["models"]) == ["afd_1", "afd_2", "l1_1", "l1_2", "dml_1", "dml_2",
                                      "alone_1", "alone_2"]  # fmt: skip
    extra = result["settings"]["afd"]["peers"]["afd_1"]["history"][-1]["extra"]
    assert {"agreement", "afd_1_own", "afd_1_peer", "afd_2_own", "afd_2_peer"} <= set(extra)
    assert "afd_1_own" not in result["settings"]["dml"]["peers"]["dml_1"]["history"][-1]["extra"]
    # the same initial weights and data order in every setting: the same first-step losses
    # differ only by the feature terms; each net is compared with its own twin trained alone
    assert PRESETS["online-features"].seed_pairs["afd_2"] == "alone_2"


def test_peers_of_different_widths_are_refused_before_anything_trains():
    preset = PRESETS["online-features"]
    with pytest.raises(ValueError, match=r"differ in width \(mlp-30 30, mlp-100 100\)"):
        preset.with_changes({"peers": ("mlp-30", "mlp-100")})
    with pytest.raises(ValueError, match="at least two peers"):
        preset.with_changes({"peers": ("mlp-30",)})
    assert preset.with_changes({"peers": ("mlp-30", "mlp-30", "mlp-30")}).peers[2] == "mlp-30"
