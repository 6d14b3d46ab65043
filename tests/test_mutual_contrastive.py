"""Mutual contrastive learning (MCL; Yang et al. 2022): the supervised contrastive loss against
a loop over anchors and positives written from its definition (the authors' masked form), the
soft terms against KL by hand, finite differences, which networks each term reaches, the
relation gap, and the preset on a slice of MNIST."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kdcore.losses.mutual_contrastive import (
    EmbedHead,
    mcl_parts,
    mcl_step,
    relation_gap,
    similarity_kl,
    sup_contrastive,
)
from kdcore.models import build_model
from kdcore.presets import PRESETS, run_preset
from kdcore.train import Batch

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _supcon_by_loops(sim: list[list[float]], labels: list[int]) -> float:
    """For each anchor with a positive: minus the mean over its positives of
    s_bp - log sum_{a != b} exp(s_ba); then the mean over those anchors."""
    total, anchors = 0.0, 0
    for b in range(len(labels)):
        pos = [p for p in range(len(labels)) if p != b and labels[p] == labels[b]]
        if not pos:
            continue
        log_den = math.log(sum(math.exp(sim[b][a]) for a in range(len(labels)) if a != b))
        total += -sum(sim[b][p] - log_den for p in pos) / len(pos)
        anchors += 1
    return total / anchors


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 2), min_size=2, max_size=7), st.integers(0, 2**16))
def test_the_contrastive_loss_is_its_definition(labels, seed):
    if len(set(labels)) == len(labels):  # no image shares its class: nothing to contrast
        with pytest.raises(ValueError, match="shares its class"):
            sup_contrastive(torch.zeros(len(labels), len(labels)), torch.tensor(labels))
        return
    g = torch.Generator().manual_seed(seed)
    sim = torch.randn(len(labels), len(labels), generator=g, dtype=torch.float64) * 3
    got = sup_contrastive(sim, torch.tensor(labels)).item()
    assert got == pytest.approx(_supcon_by_loops(sim.tolist(), labels), rel=1e-9)


def test_the_soft_term_is_t_squared_kl_row_by_row_and_leaves_the_target_alone():
    torch.manual_seed(0)
    s = torch.randn(4, 4, dtype=torch.float64, requires_grad=True)
    t = torch.randn(4, 4, dtype=torch.float64, requires_grad=True)
    T = 3.0
    p, q = F.softmax(t / T, 1), F.softmax(s / T, 1)
    want = T * T * (p * (p.log() - q.log())).sum(1).mean()
    assert similarity_kl(s, t, T).item() == pytest.approx(want.item(), rel=1e-9)
    similarity_kl(s, t, T).backward()
    assert t.grad is None and s.grad.abs().sum() > 0
    s2 = torch.randn(4, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: similarity_kl(s, t.detach(), T), (s2,))
    labels = torch.tensor([0, 1, 0, 1])
    assert torch.autograd.gradcheck(lambda s: sup_contrastive(s, labels), (s2,))


def test_the_four_terms_with_the_authors_weights_and_who_they_reach():
    torch.manual_seed(0)
    e = {k: F.normalize(torch.randn(6, 8), dim=1).requires_grad_() for k in ("a", "b")}
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    parts = mcl_parts(e, y, tau=0.5, T=2.0)
    assert set(parts) == {f"{k}/{t}" for k in "ab" for t in ("vcl", "soft_vcl", "icl",
                                                              "soft_icl")}  # fmt: skip
    ea, eb = e["a"], e["b"]
    assert parts["a/vcl"].item() == pytest.approx(0.1 * sup_contrastive(ea @ ea.T / 0.5, y).item())
    assert parts["a/icl"].item() == pytest.approx(0.1 * sup_contrastive(ea @ eb.T / 0.5, y).item())
    want = similarity_kl(ea @ ea.T / 0.5, eb @ eb.T / 0.5, 2.0)  # a's relations learn b's
    assert parts["a/soft_vcl"].item() == pytest.approx(want.item())
    parts["a/soft_vcl"].backward(retain_graph=True)  # b's distributions are a's targets only
    assert eb.grad is None and ea.grad.abs().sum() > 0
    ea.grad = None
    parts["a/icl"].backward()  # the contrast across networks moves both, as in their code
    assert ea.grad.abs().sum() > 0 and eb.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="two networks"):
        mcl_parts({"a": ea}, y)


def test_the_step_trains_each_peer_with_cross_entropy_and_the_contrast():
    torch.manual_seed(0)
    peers = {"a": build_model("mlp-30"), "b": build_model("mlp-30")}
    heads = {n: EmbedHead(30, 16) for n in peers}
    x, y = torch.rand(8, 1, 28, 28), torch.tensor([0, 1, 2, 3] * 2)
    out = mcl_step(heads)(peers, Batch(x, y, torch.arange(8)))
    assert {"a/ce", "b/ce", "a/soft_vcl", "b/icl"} <= set(out.parts)
    emb = heads["a"](peers["a"].forward_features(x).features["embedding"])
    assert torch.allclose(emb.norm(dim=1), torch.ones(8), atol=1e-5)  # on the unit sphere
    sum(out.parts.values()).backward()
    assert all(p.grad is not None for h in heads.values() for p in h.parameters())


def test_the_relation_gap_by_hand():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert relation_gap(a, 3 * a) == pytest.approx(0.0, abs=1e-6)  # scale does not matter
    b = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])  # every pair alike: cosine 1
    ca = [0.0, 1 / math.sqrt(2), 1 / math.sqrt(2)]  # a's three pairs
    assert relation_gap(a, b) == pytest.approx(sum(1 - c for c in ca) / 3, rel=1e-5)


def test_the_preset_trains_the_pair_two_ways_and_alone_on_a_slice_of_mnist():
    result = json.loads(json.dumps(run_preset("mutual-contrastive", epochs=1, per_class=20,
                                              probe=32)))  # fmt: skip
    assert result["status"] == "completed", result["message"]
    assert list(result["models"]) == ["mcl_1", "mcl_2", "dml_1", "dml_2", "alone_1", "alone_2"]
    mcl = result["settings"]["mcl"]["peers"]["mcl_1"]["history"][-1]
    assert {"ce", "vcl", "soft_vcl", "icl", "soft_icl"} <= set(mcl["losses"])
    assert 0 <= mcl["extra"]["relation_gap"] <= 2
    assert 0 <= result["alone_relation_gap"] <= 2
    assert PRESETS["mutual-contrastive"].seed_pairs["mcl_1"] == "alone_1"


def test_one_peer_is_refused_before_anything_trains():
    with pytest.raises(ValueError, match="at least two peers"):
        PRESETS["mutual-contrastive"].with_changes({"peers": ("mlp-30",)})
