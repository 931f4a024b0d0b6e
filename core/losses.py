"""Losses of PixIT training: SI-SDR, generalized MixIT, permutation-invariant BCE, their combination.

Small composable functions (asteroid style, own code), all vectorised over the batch:

- `si_sdr` / `neg_si_sdr`: scale-invariant SDR in dB over the last axis (zero-mean, eps-safe).
- `mixit_loss`: generalized MixIT. Every one of the 2**M assignments of the M estimated sources to
  the 2 mixtures (empty sets included) is scored at once from Gram matrices, then the loss of the
  best assignment is recomputed exactly on the remixed waveforms (so the gradient is exact and no
  (B, 2**M, 2, T) tensor is ever built).
- `pit_bce`: binary cross-entropy under the best of the K! speaker permutations (K=3: 6).
- `pixit_loss`: lambda * (PIT(mix1) + PIT(mix2) + PIT(MoM)) + (1 - lambda) * MixIT(MoM), plus an
  optional supervised permutation-invariant SI-SDR term on the MoM sources (synthetic data only).

Convention for permutations: `perm[b, k]` is the index of the *prediction* matched with reference
(target) `k`, i.e. `pred[b, perm[b]]` is aligned with `target[b]`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

EPS = 1e-8
BCE_EPS = 1e-7


# --------------------------------------------------------------------------------------- SI-SDR
def si_sdr(estimate: Tensor, reference: Tensor, eps: float = EPS, zero_mean: bool = True) -> Tensor:
    """Scale-invariant SDR in dB over the last axis (broadcasting over the others).

    Both signals are zero-meaned first. A silent reference or estimate gives about -80 dB (never NaN),
    which is why an empty MixIT assignment is never chosen when a better one exists.
    """
    if zero_mean:
        estimate = estimate - estimate.mean(dim=-1, keepdim=True)
        reference = reference - reference.mean(dim=-1, keepdim=True)
    dot = (estimate * reference).sum(dim=-1, keepdim=True)
    ref_energy = (reference**2).sum(dim=-1, keepdim=True)
    target = dot / (ref_energy + eps) * reference
    noise = estimate - target
    ratio = (target**2).sum(dim=-1) / ((noise**2).sum(dim=-1) + eps)
    return 10 * torch.log10(ratio + eps)


def neg_si_sdr(estimate: Tensor, reference: Tensor, eps: float = EPS) -> Tensor:
    """Negative SI-SDR (dB): the separation loss, lower is better."""
    return -si_sdr(estimate, reference, eps=eps)


def _si_sdr_from_stats(dot: Tensor, est_energy: Tensor, ref_energy: Tensor, eps: float = EPS) -> Tensor:
    """SI-SDR (dB) from <est, ref>, ||est||^2 and ||ref||^2 of zero-mean signals (same as `si_sdr`)."""
    alpha = dot / (ref_energy + eps)
    target_energy = alpha**2 * ref_energy
    noise_energy = (est_energy - 2 * alpha * dot + alpha**2 * ref_energy).clamp_min(0.0)
    return 10 * torch.log10(target_energy / (noise_energy + eps) + eps)


# ---------------------------------------------------------------------------------------- MixIT
# the caches hold plain tuples, not tensors: a tensor cached while tracing with fake tensors
# (core.memory) would otherwise come back in real training
@lru_cache(maxsize=None)
def _assignment_rows(num_sources: int, num_mixtures: int) -> tuple:
    return tuple(itertools.product(range(num_mixtures), repeat=num_sources))


def mixit_assignments(num_sources: int, num_mixtures: int = 2, device=None, dtype=torch.float32) -> Tensor:
    """(A, num_mixtures, num_sources) 0/1 matrices: each source goes to exactly one mixture."""
    combos = torch.tensor(_assignment_rows(num_sources, num_mixtures), dtype=torch.long, device=device)
    return F.one_hot(combos, num_mixtures).permute(0, 2, 1).to(dtype)  # (A, N, M)


def mixit_loss(
    estimates: Tensor, mixtures: Tensor, return_assignment: bool = False, eps: float = EPS
) -> Tensor | tuple[Tensor, Tensor]:
    """Generalized MixIT: negative SI-SDR (mean over mixtures) of the best remix, per example.

    estimates (B, M, T), mixtures (B, N, T) (N = 2 in PixIT). Returns the loss (B,) and, with
    `return_assignment`, the best mixing matrix (B, N, M) (0/1, each column sums to 1).
    """
    if estimates.dim() != 3 or mixtures.dim() != 3 or estimates.shape[0] != mixtures.shape[0]:
        raise ValueError(f"mixit_loss expects (B, M, T) and (B, N, T), got {tuple(estimates.shape)} and {tuple(mixtures.shape)}")
    num_sources, num_mixtures = estimates.shape[1], mixtures.shape[1]
    est = estimates - estimates.mean(dim=-1, keepdim=True)
    mix = mixtures - mixtures.mean(dim=-1, keepdim=True)
    A = mixit_assignments(num_sources, num_mixtures, device=est.device, dtype=est.dtype)  # (A, N, M)
    with torch.no_grad():  # score every assignment from second-order statistics
        gram = torch.einsum("bmt,bkt->bmk", est, est)  # (B, M, M)
        cross = torch.einsum("bmt,bnt->bnm", est, mix)  # (B, N, M)
        mix_energy = (mix**2).sum(-1)  # (B, N)
        dot = torch.einsum("anm,bnm->ban", A, cross)  # (B, A, N)
        remix_energy = torch.einsum("anm,bmk,ank->ban", A, gram, A)  # (B, A, N)
        scores = _si_sdr_from_stats(dot, remix_energy, mix_energy[:, None, :], eps).mean(-1)  # (B, A)
        best = scores.argmax(dim=1)  # (B,)
    best_A = A[best]  # (B, N, M)
    remix = torch.bmm(best_A, est)  # (B, N, T): exact loss and gradient of the chosen assignment
    loss = -si_sdr(remix, mix, eps=eps, zero_mean=False).mean(-1)
    return (loss, best_A) if return_assignment else loss


# ------------------------------------------------------------------------------------- PIT BCE
@lru_cache(maxsize=None)
def _permutation_rows(k: int) -> tuple:
    return tuple(itertools.permutations(range(k)))


def permutations(k: int, device=None) -> Tensor:
    """All k! permutations of range(k) as a (k!, k) long tensor (identity first)."""
    return torch.tensor(_permutation_rows(k), dtype=torch.long, device=device)


def best_permutation(cost: Tensor) -> tuple[Tensor, Tensor]:
    """Minimum-total-cost matching on a (B, K, K) matrix cost[b, ref, pred], over all K! permutations.

    Returns (total cost (B,), perm (B, K)) with perm[b, k] = prediction matched with reference k.
    Differentiable through the chosen entries.
    """
    k = cost.shape[-1]
    perms = permutations(k, cost.device)  # (P, K)
    ref_index = torch.arange(k, device=cost.device)
    totals = cost[:, ref_index[None, :], perms].sum(-1)  # (B, P)
    best = totals.detach().argmin(dim=1)
    return totals.gather(1, best[:, None])[:, 0], perms[best]


def pairwise_bce(pred: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
    """(B, K, F) probabilities x (B, K, F) 0/1 targets -> (B, K_ref, K_pred) mean BCE over frames."""
    # saturated sigmoids give exactly 0 or 1: clamp so that loss and gradient stay finite
    p = pred.clamp(BCE_EPS, 1.0 - BCE_EPS)
    log_p, log_1mp = torch.log(p), torch.log1p(-p)
    t = target.to(pred.dtype)
    # bce[b, i, j] = -mean_f t[b,i,f] log p[b,j,f] + (1 - t[b,i,f]) log(1 - p[b,j,f])
    cost = -(torch.einsum("bif,bjf->bij", t, log_p) + torch.einsum("bif,bjf->bij", 1 - t, log_1mp))
    return cost / pred.shape[-1]


def pit_bce(
    pred: Tensor, target: Tensor, return_permutation: bool = False
) -> Tensor | tuple[Tensor, Tensor]:
    """Permutation-invariant BCE per example: min over P of mean_k BCE(target_k, pred_P(k)).

    pred (B, K, F) in [0, 1], target (B, K, F) 0/1. Loss (B,) is the mean over speakers and frames
    (the paper's sum over k divided by K, which keeps it on the 0..1 BCE scale). With
    `return_permutation`, also perm (B, K): pred[b, perm[b]] is aligned with target[b].
    """
    if pred.shape != target.shape or pred.dim() != 3:
        raise ValueError(f"pit_bce expects two (B, K, F) tensors, got {tuple(pred.shape)} and {tuple(target.shape)}")
    total, perm = best_permutation(pairwise_bce(pred, target))
    loss = total / pred.shape[1]
    return (loss, perm) if return_permutation else loss


# --------------------------------------------------------------------------- supervised (PIT SI-SDR)
def pit_si_sdr_loss(estimates: Tensor, references: Tensor, valid: Tensor | None = None) -> Tensor:
    """Permutation-invariant negative SI-SDR per example over the valid references.

    estimates (B, K, T), references (B, K, T), valid (B, K) bool (references that exist; silent
    padding columns are ignored). Returns (B,), the mean over valid references (0 where none).
    """
    cost = -si_sdr(estimates[:, None, :, :], references[:, :, None, :])  # (B, K_ref, K_est)
    if valid is None:
        valid = torch.ones(cost.shape[:2], dtype=torch.bool, device=cost.device)
    cost = cost * valid[:, :, None].to(cost.dtype)
    total, _ = best_permutation(cost)
    return total / valid.sum(1).clamp_min(1).to(cost.dtype)


# ---------------------------------------------------------------------------------------- PixIT
@dataclass
class PixitLossOutput:
    """The PixIT loss and its parts (batch means; `mixit`/`sup` are 0 when not computed)."""

    loss: Tensor
    pit: Tensor  # PIT(mix1) + PIT(mix2) + PIT(MoM)
    mixit: Tensor
    sup: Tensor
    pit_mom_perm: Tensor | None = None
    mixit_assignment: Tensor | None = None


def pixit_loss(
    act1: Tensor,
    act2: Tensor,
    act_mom: Tensor,
    y1: Tensor,
    y2: Tensor,
    y_mom: Tensor,
    sources_mom: Tensor | None = None,
    mix1: Tensor | None = None,
    mix2: Tensor | None = None,
    lambda_: float = 0.5,
    true_sources: Tensor | None = None,
    true_sources_valid: Tensor | None = None,
    sup_weight: float = 0.0,
) -> PixitLossOutput:
    """lambda * (PIT(mix1) + PIT(mix2) + PIT(MoM)) + (1 - lambda) * MixIT(MoM) [+ sup_weight * PIT-SI-SDR].

    act* (B, K, F) activations, y* (B, K, F) targets, sources_mom (B, K, T) the MoM's estimated
    sources, mix1/mix2 (B, T). With lambda_ == 1 (diarization only) the separation inputs may be
    None and MixIT is not computed. The supervised term needs `true_sources` (B, K, T) (the MoM's
    reference sources) and `true_sources_valid` (B, K).
    """
    if not 0.0 <= lambda_ <= 1.0:
        raise ValueError(f"lambda_ must be in [0, 1], got {lambda_}")
    pit1 = pit_bce(act1, y1)
    pit2 = pit_bce(act2, y2)
    pit_mom, perm = pit_bce(act_mom, y_mom, return_permutation=True)
    pit = (pit1 + pit2 + pit_mom).mean()
    zero = pit.new_zeros(())
    mixit, assignment = zero, None
    if lambda_ < 1.0:
        if sources_mom is None or mix1 is None or mix2 is None:
            raise ValueError("pixit_loss needs sources_mom, mix1 and mix2 when lambda_ < 1")
        per_example, assignment = mixit_loss(sources_mom, torch.stack([mix1, mix2], dim=1), return_assignment=True)
        mixit = per_example.mean()
    loss = lambda_ * pit + (1.0 - lambda_) * mixit
    sup = zero
    if sup_weight > 0 and true_sources is not None and sources_mom is not None:
        sup = pit_si_sdr_loss(sources_mom, true_sources, true_sources_valid).mean()
        loss = loss + sup_weight * sup
    return PixitLossOutput(loss=loss, pit=pit, mixit=mixit, sup=sup, pit_mom_perm=perm, mixit_assignment=assignment)
