"""The optimizers of symprop.tools.solvers against independent implementations.

SGD and Adam are compared step by step with scikit-learn's own optimizer classes
(``sklearn.neural_network._stochastic_optimizers``), which are what ``MLPClassifier`` runs; the
flat-vector updates here are written separately, so agreement to 1e-12 relative (a few roundings
of float64 per step, over 25 steps) shows the same rule.  L-BFGS is checked on a problem with a
closed-form minimum: a single identity layer with the mse loss is least squares, solved by
``np.linalg.lstsq``.
"""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest

from symprop.emit import generate
from symprop.spec import Layer, Spec
from symprop.tools.solvers import SGD, Adam, FlatParams, SolverError, check_solver_options, lbfgs
from symprop.tools.train import TrainError, load_generated, train

sgd_sklearn = pytest.importorskip("sklearn.neural_network._stochastic_optimizers")


def gradients(seed: int, steps: int, size: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=size) for _ in range(steps)]


@pytest.mark.parametrize(("momentum", "nesterov"), [(0.0, False), (0.9, False), (0.9, True), (0.5, True)])
@pytest.mark.parametrize("schedule", ["constant", "invscaling"])
def test_sgd_matches_scikit_learn(momentum: float, nesterov: bool, schedule: str) -> None:
    p = np.random.default_rng(0).normal(size=7)
    ours = SGD(0.05, momentum, nesterov, schedule)
    theirs_p = p.copy()
    theirs = sgd_sklearn.SGDOptimizer(
        [theirs_p], learning_rate_init=0.05, lr_schedule=schedule, momentum=momentum, nesterov=nesterov
    )
    mine = p.copy()
    for step, g in enumerate(gradients(1, 25, 7), start=1):
        ours.update(mine, g)
        theirs.update_params([theirs_p], [g])
        if step % 5 == 0:  # an "epoch" of 5 steps of 10 samples: the schedule moves
            ours.end_epoch(step * 10)
            theirs.iteration_ends(step * 10)
        np.testing.assert_allclose(mine, theirs_p, rtol=1e-12, atol=1e-15)


def test_adam_matches_scikit_learn() -> None:
    p = np.random.default_rng(2).normal(size=9)
    ours = Adam(0.01)
    theirs_p = p.copy()
    theirs = sgd_sklearn.AdamOptimizer([theirs_p], learning_rate_init=0.01)
    mine = p.copy()
    for g in gradients(3, 25, 9):
        ours.update(mine, g)
        theirs.update_params([theirs_p], [g])
        np.testing.assert_allclose(mine, theirs_p, rtol=1e-12, atol=1e-15)


def test_adaptive_divides_by_five_until_one_in_a_million() -> None:
    sgd = SGD(0.1, schedule="adaptive")
    rates = []
    while sgd.on_plateau():
        rates.append(sgd.lr)
    assert rates[0] == pytest.approx(0.02) and rates[-1] <= 1e-6 < rates[-2]
    assert not SGD(0.1).on_plateau(), "a constant rate never changes"


def test_flat_params_are_views_of_one_vector() -> None:
    params = {"W1": np.arange(6.0).reshape(3, 2), "b1": np.array([7.0, 8.0, 9.0])}
    flat = FlatParams.of(params, ["W1", "b1"], np.float64)
    assert flat.vector.tolist() == [0, 1, 2, 3, 4, 5, 7, 8, 9]
    flat.vector[0] = 42.0
    assert flat.views["W1"][0, 0] == 42.0
    out = flat.gather({"W1": np.ones((3, 2)), "b1": np.full(3, 2.0)}, np.empty(9))
    assert out.tolist() == [1] * 6 + [2] * 3


@pytest.mark.parametrize(
    ("solver", "schedule", "momentum", "nesterov", "message"),
    [
        ("adam", "adaptive", 0.0, False, "--lr-schedule adaptive is for --solver sgd only"),
        ("lbfgs", "constant", 0.9, False, "--momentum is for --solver sgd only"),
        ("sgd", "constant", 0.0, True, "--nesterov needs --momentum > 0"),
        ("rmsprop", "constant", 0.0, False, "--solver 'rmsprop'"),
    ],
)
def test_options_scikit_learn_would_ignore_are_refused(
    solver: str, schedule: str, momentum: float, nesterov: bool, message: str
) -> None:
    with pytest.raises(SolverError, match=message):
        check_solver_options(solver, schedule, momentum, nesterov)


@pytest.fixture(scope="module")
def linear_module(tmp_path_factory: pytest.TempPathFactory) -> types.ModuleType:
    spec = Spec("linear", 3, (Layer.of(1, "identity"),), "mse")
    return load_generated(generate(spec, tmp_path_factory.mktemp("linear"), "vectorized"))


def linear_data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(60, 3))
    Y = X @ np.array([[1.5], [-2.0], [0.5]]) + 0.3 + 0.1 * rng.normal(size=(60, 1))
    return X, Y


def test_lbfgs_finds_the_least_squares_solution(linear_module: types.ModuleType) -> None:
    X, Y = linear_data()
    result = train(linear_module, X, Y, solver="lbfgs", epochs=100)
    A = np.hstack([X, np.ones((60, 1))])
    coef = np.linalg.lstsq(A, Y, rcond=None)[0][:, 0]
    # gtol 1e-4 on the gradient of a cost with Hessian eigenvalues ~1: parameters within ~1e-4.
    np.testing.assert_allclose(result.params["W1"][0], coef[:3], atol=2e-4)
    assert result.params["b1"][0] == pytest.approx(coef[3], abs=2e-4)
    assert result.history.epochs < 100 and "scipy L-BFGS-B: CONVERGENCE" in result.history.stop_reason


@pytest.mark.parametrize("solver", ["newton-cg", "trust-krylov"])
def test_newton_solvers_find_the_least_squares_solution_with_the_modules_hvp(solver: str, tmp_path: Path) -> None:
    """A quadratic cost: the Hessian-vector products make Newton's method exact in a few iterations.
    Both stop at scikit-learn's tolerance 1e-4 (step or gradient norm); with Hessian eigenvalues ~1
    the parameters are then within ~1e-4 of the least-squares solution."""
    from symprop.emit import render
    from symprop.tools.train import module_from_source

    spec = Spec("linear", 3, (Layer.of(1, "identity"),), "mse")
    module = module_from_source(render(spec, "vectorized", second_order=True), tmp_path / "linear.py")
    X, Y = linear_data()
    result = train(module, X, Y, solver=solver, epochs=50)
    A = np.hstack([X, np.ones((60, 1))])
    coef = np.linalg.lstsq(A, Y, rcond=None)[0][:, 0]
    np.testing.assert_allclose(result.params["W1"][0], coef[:3], atol=2e-4)
    assert result.params["b1"][0] == pytest.approx(coef[3], abs=2e-4)
    assert result.history.epochs <= 10


def test_newton_solvers_need_the_hvp(linear_module: types.ModuleType) -> None:
    X, Y = linear_data()
    with pytest.raises(TrainError, match="needs the module's hvp"):
        train(linear_module, X, Y, solver="newton-cg", epochs=5)


def test_lbfgs_objective_sees_every_iteration_and_can_stop_it() -> None:
    seen: list[int] = []

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        return float(np.sum((x - 3.0) ** 2 * np.arange(1, 5))), 2 * (x - 3.0) * np.arange(1, 5)

    def on_iteration(iteration: int, loss: float, x: np.ndarray) -> bool:
        seen.append(iteration)
        return iteration < 2

    result = lbfgs(objective, np.zeros(4), 50, on_iteration)
    assert seen == [1, 2] and result.stopped_by_callback


def test_adam_and_sgd_lower_the_loss_and_are_seeded(linear_module: types.ModuleType) -> None:
    X, Y = linear_data()
    start = linear_module.loss(linear_module.init_params(0), X, Y)
    for solver, lr in (("adam", 0.05), ("sgd", 0.05)):
        a = train(linear_module, X, Y, solver=solver, lr=lr, epochs=30, batch_size=8, seed=5, evaluate=False)
        b = train(linear_module, X, Y, solver=solver, lr=lr, epochs=30, batch_size=8, seed=5, evaluate=False)
        assert linear_module.loss(a.params, X, Y) < 0.1 * start
        assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)


def test_early_stopping_returns_the_params_of_the_best_validation_epoch(linear_module: types.ModuleType) -> None:
    X, Y = linear_data()
    rng = np.random.default_rng(9)
    Xv = rng.normal(size=(20, 3))
    Yv = rng.normal(size=(20, 1)) * 5  # unrelated targets: the validation loss soon rises
    result = train(
        linear_module,
        X,
        Y,
        solver="adam",
        lr=0.05,
        epochs=300,
        batch_size=8,
        validation=(Xv, Yv),
        early_stopping=True,
        patience=5,
    )
    h = result.history
    assert h.epochs < 300 and "validation loss did not improve" in h.stop_reason
    best = int(np.argmin(h.val_loss))
    assert h.best_epoch == best + 1
    assert linear_module.loss(result.params, Xv, Yv) == pytest.approx(h.val_loss[best], rel=1e-12)


def test_early_stopping_needs_a_validation_set(linear_module: types.ModuleType) -> None:
    X, Y = linear_data()
    with pytest.raises(TrainError, match="--validation-fraction"):
        train(linear_module, X, Y, early_stopping=True)


def test_lbfgs_without_scipy_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import builtins

    real_import = builtins.__import__

    def no_scipy(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith("scipy"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    with pytest.raises(SolverError, match=r'pip install "symprop\[train\]"'):
        lbfgs(lambda x: (0.0, x), np.zeros(2), 5)
