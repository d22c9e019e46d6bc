"""Multinomial logistic regression, full batch, in NumPy float64: the linear probes' solver.

Minimises ``mean cross-entropy(x @ W.T + b, y) + weight_decay / 2 * ||W - anchor||^2`` (the bias is not
penalised; ``anchor`` is zero unless a probe starts from, and is pulled back to, a zero-shot head). With a
zero anchor this is scikit-learn's ``LogisticRegression(C=1 / (weight_decay * n))``.

Why not torch.optim.LBFGS or SciPy: constructing any torch optimizer imports torch._dynamo (about 1.7 s
here) and ``import scipy.optimize`` costs about 1 s, both more than a whole probe on cached features
otherwise takes. The problem is smooth and convex, so a plain L-BFGS with an Armijo backtracking line
search converges to the same optimum (tests compare the objective with scikit-learn's).
"""

from __future__ import annotations

from collections import deque

import numpy as np


def objective(x: np.ndarray, y: np.ndarray, weight: np.ndarray, bias: np.ndarray, weight_decay: float,
              anchor: np.ndarray | None = None) -> tuple[float, np.ndarray, np.ndarray]:
    """``(loss, dloss/dW, dloss/db)`` of the objective above."""
    n = len(y)
    logits = x @ weight.T + bias
    logits -= logits.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(logits).sum(axis=1, keepdims=True))
    log_probs = logits - log_norm
    delta = weight if anchor is None else weight - anchor
    loss = -log_probs[np.arange(n), y].mean() + 0.5 * weight_decay * float(np.vdot(delta, delta))
    residual = np.exp(log_probs)
    residual[np.arange(n), y] -= 1.0
    residual /= n
    return float(loss), residual.T @ x + weight_decay * delta, residual.sum(axis=0)


def fit_logistic(features, labels, num_classes: int, weight_decay: float, *, anchor=None,
                 start: tuple | None = None, max_iter: int = 500, gtol: float = 1e-7,
                 ftol: float = 1e-11) -> tuple[np.ndarray, np.ndarray]:
    """``(W (C, D), b (C,))`` float64 minimising the objective; deterministic for the same inputs.

    ``start`` (W, b) only changes where the solver begins (a warm start from a neighbouring weight decay),
    not the optimum; by default it starts at ``(anchor, 0)``.
    """
    x = np.ascontiguousarray(features, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    dim = x.shape[1]
    anchor = None if anchor is None else np.asarray(anchor, dtype=np.float64).reshape(num_classes, dim)
    if start is None:
        start = (np.zeros((num_classes, dim)) if anchor is None else anchor, np.zeros(num_classes))
    flat = np.concatenate([np.asarray(start[0], dtype=np.float64).reshape(-1),
                           np.asarray(start[1], dtype=np.float64).reshape(-1)])

    def loss_and_grad(params):
        loss, grad_w, grad_b = objective(x, y, params[: num_classes * dim].reshape(num_classes, dim),
                                         params[num_classes * dim :], weight_decay, anchor)
        return loss, np.concatenate([grad_w.reshape(-1), grad_b])

    solution = lbfgs(loss_and_grad, flat, max_iter=max_iter, gtol=gtol, ftol=ftol)
    return solution[: num_classes * dim].reshape(num_classes, dim).copy(), solution[num_classes * dim :].copy()


def lbfgs(loss_and_grad, x0: np.ndarray, *, max_iter: int = 500, gtol: float = 1e-7, ftol: float = 1e-11,
          history: int = 10) -> np.ndarray:
    """Minimise a smooth function with L-BFGS (two-loop recursion, Armijo backtracking).

    Stops when the largest gradient entry is below ``gtol``, the relative decrease of the loss in one step
    is below ``ftol`` (SciPy's criteria), or after ``max_iter`` steps.
    """
    x = x0.copy()
    loss, grad = loss_and_grad(x)
    memory: deque = deque(maxlen=history)
    for _ in range(max_iter):
        if np.max(np.abs(grad)) <= gtol:
            break
        direction = -_inverse_hessian_times(grad, memory)
        slope = float(grad @ direction)
        if slope >= 0:  # not a descent direction (numerical trouble): restart from steepest descent
            memory.clear()
            direction, slope = -grad, -float(grad @ grad)
        step = 1.0 if memory else min(1.0, 1.0 / np.abs(grad).sum())
        while True:
            candidate = x + step * direction
            new_loss, new_grad = loss_and_grad(candidate)
            if new_loss <= loss + 1e-4 * step * slope:
                break
            step *= 0.5
            if step < 1e-20:  # no decrease representable in float64: as converged as it gets
                return x
        s, change = candidate - x, new_grad - grad
        curvature = float(s @ change)
        if curvature > 1e-12 * float(change @ change):
            memory.append((s, change, 1.0 / curvature))
        converged = loss - new_loss <= ftol * max(abs(loss), abs(new_loss), 1.0)
        x, loss, grad = candidate, new_loss, new_grad
        if converged:
            break
    return x


def _inverse_hessian_times(grad: np.ndarray, memory: deque) -> np.ndarray:
    q = grad.copy()
    alphas = []
    for s, change, rho in reversed(memory):
        alpha = rho * float(s @ q)
        q -= alpha * change
        alphas.append(alpha)
    if memory:
        s, change, _ = memory[-1]
        q *= float(s @ change) / float(change @ change)
    for (s, change, rho), alpha in zip(memory, reversed(alphas)):
        q += (alpha - rho * float(change @ q)) * s
    return q

