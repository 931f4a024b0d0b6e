"""Losses against brute-force python loops over every permutation / assignment."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from core.losses import (
    best_permutation,
    mixit_assignments,
    mixit_loss,
    neg_si_sdr,
    pit_bce,
    pit_si_sdr_loss,
    pixit_loss,
    si_sdr,
)

torch.set_num_threads(2)


def _np_si_sdr(est: np.ndarray, ref: np.ndarray, eps: float = 1e-8) -> float:
    est = est.astype(np.float64) - est.mean()
    ref = ref.astype(np.float64) - ref.mean()
    alpha = np.dot(est, ref) / (np.dot(ref, ref) + eps)
    target = alpha * ref
    noise = est - target
    return float(10 * np.log10(np.dot(target, target) / (np.dot(noise, noise) + eps) + eps))


def test_si_sdr_matches_numpy_and_is_scale_invariant():
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(4, 3, 800, generator=g)
    est = ref + 0.3 * torch.randn(4, 3, 800, generator=g)
    got = si_sdr(est, ref)
    assert got.shape == (4, 3)
    for b in range(4):
        for k in range(3):
            assert got[b, k].item() == pytest.approx(_np_si_sdr(est[b, k].numpy(), ref[b, k].numpy()), abs=1e-3)
    # scale and offset of the estimate do not matter
    assert torch.allclose(si_sdr(5.0 * est + 2.0, ref), got, atol=1e-3)
    assert torch.allclose(neg_si_sdr(est, ref), -got)
    # a perfect estimate is very high, noise is about 0 dB at equal power
    assert si_sdr(ref, ref).min() > 60
    noise = torch.randn(800, generator=g)
    assert abs(si_sdr(ref[0, 0] + noise * ref[0, 0].std() / noise.std(), ref[0, 0]).item()) < 1.0


def test_si_sdr_silence_is_finite_and_has_finite_gradient():
    est = torch.zeros(2, 100, requires_grad=True)
    ref = torch.zeros(2, 100)
    value = si_sdr(est, ref)
    assert torch.isfinite(value).all() and value.max() < -70
    value.sum().backward()
    assert torch.isfinite(est.grad).all()
    est2 = torch.zeros(2, 100, requires_grad=True)
    out = si_sdr(est2, torch.randn(2, 100))
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(est2.grad).all()


def test_mixit_assignments_cover_all_partitions():
    A = mixit_assignments(3, 2)
    assert A.shape == (8, 2, 3)
    assert torch.all(A.sum(1) == 1)  # each source in exactly one mixture
    assert len({tuple(a.flatten().tolist()) for a in A}) == 8  # all distinct, empty sets included
    assert any(a[0].sum() == 0 for a in A) and any(a[1].sum() == 0 for a in A)


@pytest.mark.parametrize("num_sources", [2, 3, 4])
def test_mixit_matches_brute_force(num_sources):
    g = torch.Generator().manual_seed(num_sources)
    B, T = 5, 400
    est = torch.randn(B, num_sources, T, generator=g, dtype=torch.float64)
    mixtures = torch.randn(B, 2, T, generator=g, dtype=torch.float64)
    # make one example have a clear best partition
    if num_sources > 2:
        mixtures[0, 0] = est[0, 0] + est[0, -1]
        mixtures[0, 1] = est[0, 1:-1].sum(0)
    else:
        mixtures[0] = 3.0 * est[0, [1, 0]]
    loss, assignment = mixit_loss(est, mixtures, return_assignment=True)
    assert loss.shape == (B,) and assignment.shape == (B, 2, num_sources)
    for b in range(B):
        best, best_parts = math.inf, None
        for parts in itertools.product(range(2), repeat=num_sources):  # source m goes to mixture parts[m]
            value = 0.0
            for n in range(2):
                remix = sum((est[b, m] for m in range(num_sources) if parts[m] == n), torch.zeros(T, dtype=torch.float64))
                value += -_np_si_sdr(remix.numpy(), mixtures[b, n].numpy())
            value /= 2
            if value < best:
                best, best_parts = value, parts
        assert loss[b].item() == pytest.approx(best, abs=1e-5)
        expected = torch.zeros(2, num_sources, dtype=assignment.dtype)
        expected[list(best_parts), list(range(num_sources))] = 1
        assert torch.equal(assignment[b], expected)
    assert loss[0].item() < -60  # exact reconstruction found


def test_mixit_gradient_flows_and_default_returns_tensor():
    g = torch.Generator().manual_seed(1)
    est = torch.randn(2, 3, 200, generator=g, requires_grad=True)
    loss = mixit_loss(est, torch.randn(2, 2, 200, generator=g))
    assert isinstance(loss, torch.Tensor) and loss.shape == (2,)
    loss.sum().backward()
    assert torch.isfinite(est.grad).all() and est.grad.abs().sum() > 0


def test_pit_bce_matches_brute_force():
    g = torch.Generator().manual_seed(2)
    B, K, F = 6, 3, 50
    pred = torch.rand(B, K, F, generator=g, dtype=torch.float64)
    target = (torch.rand(B, K, F, generator=g) > 0.6).double()
    target[0] = (pred[0, [2, 0, 1]] > 0.5).double()  # example 0: known best permutation
    loss, perm = pit_bce(pred, target, return_permutation=True)
    assert loss.shape == (B,) and perm.shape == (B, K)
    for b in range(B):
        values = {}
        for p in itertools.permutations(range(K)):
            values[p] = sum(
                torch.nn.functional.binary_cross_entropy(pred[b, p[k]], target[b, k]).item() for k in range(K)
            ) / K
        best = min(values, key=values.get)
        assert loss[b].item() == pytest.approx(values[best], rel=1e-9, abs=1e-9)
        assert tuple(perm[b].tolist()) == best
    assert tuple(perm[0].tolist()) == (2, 0, 1)
    # aligned predictions give the same loss without permutation
    aligned = torch.stack([pred[b, perm[b]] for b in range(B)])
    plain = torch.nn.functional.binary_cross_entropy(aligned, target, reduction="none").mean((1, 2))
    assert torch.allclose(plain, loss)


def test_pit_bce_saturated_predictions_are_finite():
    pred = torch.tensor([[[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]]], requires_grad=True)
    target = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]])
    loss = pit_bce(pred, target)
    assert torch.isfinite(loss).all() and loss.item() == pytest.approx(0.0, abs=1e-6)  # swapped = perfect
    loss.sum().backward()
    assert torch.isfinite(pred.grad).all()


def test_best_permutation_against_loops():
    g = torch.Generator().manual_seed(3)
    cost = torch.rand(4, 4, 4, generator=g)
    total, perm = best_permutation(cost)
    for b in range(4):
        brute = min(sum(cost[b, k, p[k]].item() for k in range(4)) for p in itertools.permutations(range(4)))
        assert total[b].item() == pytest.approx(brute, abs=1e-6)
        assert sum(cost[b, k, perm[b, k]].item() for k in range(4)) == pytest.approx(brute, abs=1e-6)


def test_pit_si_sdr_ignores_invalid_references():
    g = torch.Generator().manual_seed(4)
    refs = torch.randn(2, 3, 300, generator=g)
    est = refs[:, [1, 2, 0]] + 0.1 * torch.randn(2, 3, 300, generator=g)
    valid = torch.tensor([[True, True, True], [True, False, True]])
    got = pit_si_sdr_loss(est, refs, valid)
    for b in range(2):
        brute = min(
            -sum(_np_si_sdr(est[b, p[k]].numpy(), refs[b, k].numpy()) for k in range(3) if valid[b, k]) / valid[b].sum().item()
            for p in itertools.permutations(range(3))
        )
        assert got[b].item() == pytest.approx(brute, abs=1e-3)


def test_pixit_loss_combination_and_lambda_one():
    g = torch.Generator().manual_seed(5)
    B, K, F, T = 3, 3, 20, 320
    act = [torch.rand(B, K, F, generator=g) for _ in range(3)]
    ys = [(torch.rand(B, K, F, generator=g) > 0.5).float() for _ in range(3)]
    mix1, mix2 = torch.randn(B, T, generator=g), torch.randn(B, T, generator=g)
    sources = torch.randn(B, K, T, generator=g)
    out = pixit_loss(*act, *ys, sources_mom=sources, mix1=mix1, mix2=mix2, lambda_=0.5)
    pit = sum(pit_bce(a, y).mean() for a, y in zip(act, ys))
    mixit = mixit_loss(sources, torch.stack([mix1, mix2], 1)).mean()
    assert out.pit.item() == pytest.approx(pit.item(), rel=1e-5)
    assert out.mixit.item() == pytest.approx(mixit.item(), rel=1e-5)
    assert out.loss.item() == pytest.approx(0.5 * pit.item() + 0.5 * mixit.item(), rel=1e-5)
    # lambda = 1: diarization only, no separation inputs needed
    only = pixit_loss(*act, *ys, lambda_=1.0)
    assert only.loss.item() == pytest.approx(pit.item(), rel=1e-5) and only.mixit.item() == 0.0
    # supervised term adds sup_weight * PIT-SI-SDR
    sup = pixit_loss(*act, *ys, sources_mom=sources, mix1=mix1, mix2=mix2, lambda_=0.5,
                     true_sources=sources + 0.01, true_sources_valid=torch.ones(B, K, dtype=torch.bool), sup_weight=0.1)
    assert sup.sup.item() < -30
    assert sup.loss.item() == pytest.approx(out.loss.item() + 0.1 * sup.sup.item(), rel=1e-4)
    with pytest.raises(ValueError):
        pixit_loss(*act, *ys, lambda_=0.5)
