"""Sample-quality metrics computed from a classifier's outputs: NumPy and SciPy only.

Each metric is also computed for real held-out images, the reference a reader needs:
- Fréchet classifier distance (FCD): Fréchet distance between Gaussians fitted to the
  classifier's penultimate-layer features of two image sets (the FID recipe with an MNIST
  classifier instead of Inception). Real train vs real test gives the floor.
- MNIST score: the Inception Score with the MNIST classifier, exp(E_x KL(p(y|x) || p(y))).
  At most 10; real test images give the ceiling (about 9.9 on full MNIST).
- Class coverage: share of samples per predicted digit; smallest/largest share and the KL
  divergence of that histogram from uniform (0 is perfectly balanced).
- Confidence: mean max-softmax.
- Memorisation: L2 distance of each sample to its nearest training image; the ratio of the
  generated mean to the real-test mean is well below 1 when the generator copies.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.linalg

from dcgan.contract import NUM_CLASSES


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between two (N, D) feature sets."""
    a = np.asarray(features_a, dtype=np.float64)
    b = np.asarray(features_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"need two (N >= 2, D) feature sets of equal D, got {a.shape}, {b.shape}")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    diff = mu_a - mu_b
    return float(
        max(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2 * _trace_sqrt(cov_a, cov_b), 0.0)
    )


def _trace_sqrt(cov_a: np.ndarray, cov_b: np.ndarray) -> float:
    """Tr((cov_a cov_b)^(1/2)), by scipy's sqrtm as the FID code computes it.

    ReLU features leave some dimensions constant, so the product is often singular; its square
    root is still well defined. A collapsed generator (early in training, say) can make it so
    near-singular that sqrtm gives a non-finite result or fails outright (SciPy's own
    "Internal error in scipy.linalg.sqrtm"); then the trace is the sum of the square roots of
    the product's eigenvalues, which are real and non-negative for two covariances (negative
    rounding is clipped)."""
    product = cov_a @ cov_b
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            covmean, _ = scipy.linalg.sqrtm(product, disp=False)
        if np.isfinite(covmean).all():
            return float(np.trace(np.real(covmean)))  # rounding leaves tiny imaginary parts
    except (np.linalg.LinAlgError, ValueError):
        pass
    eigenvalues = np.real(scipy.linalg.eigvals(product))
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


def mnist_score(probs: np.ndarray, eps: float = 1e-12) -> float:
    """exp(mean over x of KL(p(y|x) || p(y))): 1 (useless) to 10 (confident and balanced)."""
    p = np.asarray(probs, dtype=np.float64)
    marginal = p.mean(axis=0, keepdims=True)
    kl = (p * (np.log(p + eps) - np.log(marginal + eps))).sum(axis=1)
    return float(np.exp(kl.mean()))


def class_coverage(probs: np.ndarray, eps: float = 1e-12) -> dict[str, float | list[float]]:
    """Shares of predicted digits, their extremes, and KL(shares || uniform)."""
    counts = np.bincount(np.argmax(probs, axis=1), minlength=NUM_CLASSES)
    shares = counts / counts.sum()
    kl = float(np.sum(shares * (np.log(shares + eps) - np.log(1.0 / NUM_CLASSES))))
    return {
        "class_shares": [round(float(s), 4) for s in shares],
        "min_class_share": float(shares.min()),
        "max_class_share": float(shares.max()),
        "class_kl_from_uniform": max(kl, 0.0),
    }


def confidence(probs: np.ndarray) -> float:
    """Mean max-softmax: how sure the classifier is about each sample's digit."""
    return float(np.asarray(probs).max(axis=1).mean())


def nearest_distances(queries: np.ndarray, references: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """L2 distance from each query image to its nearest reference image (flattened pixels).

    One (chunk, len(references)) float32 block at a time: 245 MB against 60 000 images.
    """
    q = np.asarray(queries, dtype=np.float32).reshape(len(queries), -1)
    r = np.asarray(references, dtype=np.float32).reshape(len(references), -1)
    r_sq = np.einsum("ij,ij->i", r, r)
    out = np.empty(len(q), dtype=np.float64)
    for start in range(0, len(q), chunk):
        block = q[start : start + chunk]
        # ||q - r||^2 = |q|^2 + |r|^2 - 2 q.r, one matrix product per chunk.
        d2 = np.einsum("ij,ij->i", block, block)[:, None] + r_sq[None, :] - 2.0 * block @ r.T
        out[start : start + chunk] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


def memorisation_ratio(
    generated: np.ndarray, real_test: np.ndarray, train: np.ndarray
) -> dict[str, float]:
    """Mean nearest-training-image distance of generated vs real test images, and their ratio."""
    gen = float(nearest_distances(generated, train).mean())
    real = float(nearest_distances(real_test, train).mean())
    return {
        "nn_distance_generated": gen,
        "nn_distance_real": real,
        "memorisation_ratio": gen / real if real > 0 else float("nan"),
    }
