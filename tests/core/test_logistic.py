"""The shared L-BFGS logistic regression reaches scikit-learn's optimum of the same objective."""

import numpy as np
import pytest

from tlcli.classify.logistic import fit_logistic, objective


def _blobs(seed, n, dim, classes, noise=2.2):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=n)
    x = rng.normal(size=(classes, dim))[labels] + rng.normal(0, noise, size=(n, dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True), labels


@pytest.mark.parametrize("n,dim,classes,weight_decay", [(400, 32, 4, 1e-3), (300, 512, 5, 1e-2),
                                                         (200, 64, 3, 1.0), (300, 128, 6, 1e-5)])
def test_reaches_scikit_learns_optimum(n, dim, classes, weight_decay):
    from sklearn.linear_model import LogisticRegression

    x, y = _blobs(0, n, dim, classes)
    weight, bias = fit_logistic(x, y, classes, weight_decay)
    reference = LogisticRegression(C=1.0 / (weight_decay * n), max_iter=20000, tol=1e-12).fit(x, y)
    ours = objective(x, y, weight, bias, weight_decay)[0]
    theirs = objective(x, y, reference.coef_, reference.intercept_, weight_decay)[0]
    assert ours <= theirs + 1e-7
    if weight_decay >= 1e-3:  # strongly convex enough for the minimiser itself to be well determined
        np.testing.assert_allclose(weight, reference.coef_, atol=1e-3)


def test_gradient_matches_finite_differences():
    x, y = _blobs(1, 20, 6, 3)
    rng = np.random.default_rng(2)
    weight, bias, anchor = rng.normal(size=(3, 6)), rng.normal(size=3), rng.normal(size=(3, 6))
    _, grad_w, grad_b = objective(x, y, weight, bias, 0.3, anchor)
    eps = 1e-6
    for index in [(0, 0), (1, 3), (2, 5)]:
        bumped = weight.copy()
        bumped[index] += eps
        numeric = (objective(x, y, bumped, bias, 0.3, anchor)[0] - objective(x, y, weight, bias, 0.3, anchor)[0]) / eps
        assert grad_w[index] == pytest.approx(numeric, abs=1e-4)
    bumped = bias.copy()
    bumped[1] += eps
    assert grad_b[1] == pytest.approx((objective(x, y, weight, bumped, 0.3, anchor)[0]
                                       - objective(x, y, weight, bias, 0.3, anchor)[0]) / eps, abs=1e-4)


def test_anchor_pulls_the_solution_and_start_does_not_move_the_optimum():
    x, y = _blobs(3, 200, 16, 4)
    anchor = np.random.default_rng(4).normal(size=(4, 16))
    free, _ = fit_logistic(x, y, 4, 10.0)
    pulled, _ = fit_logistic(x, y, 4, 10.0, anchor=anchor)
    assert np.linalg.norm(pulled - anchor) < np.linalg.norm(free - anchor)
    warm = fit_logistic(x, y, 4, 10.0, anchor=anchor, start=(np.ones((4, 16)), np.ones(4)))
    np.testing.assert_allclose(warm[0], pulled, atol=1e-5)
