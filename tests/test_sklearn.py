"""The scikit-learn estimators: scikit-learn's own estimator checks, agreement with sklearn.metrics
and MLPClassifier's conventions, sample weights, a Pipeline and GridSearchCV, and the module cache."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.datasets import load_diabetes, load_iris
from sklearn.metrics import log_loss, r2_score
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from symprop.sklearn import SympropClassifier, SympropRegressor, module_for
from tests.support import ROOT

# The one check expected to fail, with its reason: the default solver (adam) walks shuffled
# mini-batches, so weight 2 and a repeated row give different batches and different params.  The
# weighted cost itself equals the repeated-rows cost (tests/test_sample_weight.py and below).
EXPECTED = {
    "check_sample_weight_equivalence_on_dense_data": "mini-batch solver: a weight of 2 and a repeated row "
    "fall in different shuffled batches, so the trajectories differ (the weighted cost itself is equal)"
}


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYMPROP_CACHE", str(tmp_path_factory.getbasetemp() / "symprop-cache"))


@pytest.mark.parametrize("estimator", [SympropClassifier(max_iter=100), SympropRegressor(max_iter=100)])
def test_scikit_learn_estimator_checks(estimator: object) -> None:
    check_estimator(estimator, expected_failed_checks=EXPECTED)


def test_parameters_and_defaults_are_mlps() -> None:
    ours = SympropClassifier().get_params()
    theirs = MLPClassifier().get_params()
    for name in (
        "hidden_layer_sizes",
        "activation",
        "solver",
        "alpha",
        "batch_size",
        "learning_rate_init",
        "max_iter",
        "tol",
        "early_stopping",
        "validation_fraction",
        "n_iter_no_change",
        "random_state",
    ):
        assert ours[name] == theirs[name], name
    assert ours["spec"] is None


def test_classifier_on_iris_agrees_with_sklearn_metrics() -> None:
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = SympropClassifier(hidden_layer_sizes=(8,), solver="lbfgs", alpha=0.0, max_iter=200, random_state=0)
    clf.fit(X, names)
    assert list(clf.classes_) == ["setosa", "versicolor", "virginica"]
    assert clf.n_features_in_ == 4
    assert [c.shape for c in clf.coefs_] == [(4, 8), (8, 3)]  # MLPClassifier's (fan_in, fan_out)
    assert [b.shape for b in clf.intercepts_] == [(8,), (3,)]
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    # the module's softmax cross-entropy (alpha = 0) is sklearn's log loss of predict_proba
    module = module_for(clf.spec_)
    Y = (names[:, None] == clf.classes_[None, :]).astype(float)
    assert module.loss(clf.params_, X, Y) == pytest.approx(log_loss(names, proba, labels=clf.classes_), rel=1e-9)
    assert clf.score(X, names) > 0.95
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]


def test_coefs_are_the_forward_pass() -> None:
    X, y = load_iris(return_X_y=True)
    clf = SympropClassifier(hidden_layer_sizes=(5,), activation="tanh", max_iter=5, random_state=1).fit(X, y)
    logits = np.tanh(X @ clf.coefs_[0] + clf.intercepts_[0]) @ clf.coefs_[1] + clf.intercepts_[1]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_allclose(clf.predict_proba(X), e / e.sum(axis=1, keepdims=True), rtol=1e-12)


def test_regressor_on_diabetes() -> None:
    X, y = load_diabetes(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    y = (y - y.mean()) / y.std()
    reg = SympropRegressor(hidden_layer_sizes=(16,), max_iter=300, random_state=0).fit(X, y)
    assert reg.predict(X).shape == (len(y),)
    assert reg.score(X, y) == pytest.approx(r2_score(y, reg.predict(X)), rel=1e-12)
    assert reg.score(X, y) > 0.4  # MLPRegressor's (16,) reaches about 0.5 on this split


def test_integer_sample_weights_equal_repeated_rows_with_lbfgs() -> None:
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    counts = np.random.default_rng(0).integers(1, 4, size=len(y))
    rows = np.repeat(np.arange(len(y)), counts)
    # full batch, alpha = 0 (the penalty scales with the row count): the two costs are the same
    # function, so L-BFGS takes the same steps up to rounding in the sums
    kw = dict(hidden_layer_sizes=(4,), solver="lbfgs", alpha=0.0, max_iter=15, random_state=3)
    weighted = SympropClassifier(**kw).fit(X, y, sample_weight=counts)
    repeated = SympropClassifier(**kw).fit(X[rows], y[rows])
    for a, b in zip(weighted.coefs_, repeated.coefs_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_balanced_weights_shift_predictions_to_the_rare_class() -> None:
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (300, 2)), rng.normal(1.0, 1, (20, 2))])
    y = np.array([0] * 300 + [1] * 20)
    w = len(y) / (2 * np.bincount(y))[y]  # scikit-learn's "balanced"
    kw = dict(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=100, random_state=0)
    plain = SympropClassifier(**kw).fit(X, y)
    balanced = SympropClassifier(**kw).fit(X, y, sample_weight=w)
    assert np.sum(balanced.predict(X) == 1) > np.sum(plain.predict(X) == 1)


def test_spec_path_uses_its_layers() -> None:
    X, y = load_iris(return_X_y=True)
    clf = SympropClassifier(spec=ROOT / "examples" / "iris_classifier.toml", max_iter=3, random_state=0).fit(X, y)
    assert [c.shape for c in clf.coefs_] == [(4, 8), (8, 3)]
    with pytest.raises(ValueError, match="inputs = 4"):
        SympropClassifier(spec=ROOT / "examples" / "iris_classifier.toml").fit(X[:, :3], y)


def test_pipeline_and_grid_search() -> None:
    X, y = load_iris(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), SympropClassifier(solver="lbfgs", max_iter=100, random_state=0))
    grid = GridSearchCV(pipe, {"sympropclassifier__hidden_layer_sizes": [(4,), (8,)]}, cv=3)
    grid.fit(X, y)
    assert grid.best_score_ > 0.8


def test_early_stopping_keeps_validation_scores() -> None:
    X, y = load_iris(return_X_y=True)
    clf = SympropClassifier(early_stopping=True, max_iter=50, random_state=0).fit(X, y)
    assert len(clf.validation_scores_) == clf.n_iter_


def test_cached_fit_imports_no_sympy(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        from symprop.sklearn import SympropClassifier
        X = np.random.default_rng(0).normal(size=(40, 3)); y = (X[:, 0] > 0).astype(int)
        SympropClassifier(hidden_layer_sizes=(3,), max_iter=2).fit(X, y)
        SympropClassifier(hidden_layer_sizes=(3,), max_iter=2).fit(X, y)  # memory cache
        print("sympy" in sys.modules)
        """
    )
    env = {**os.environ, "SYMPROP_CACHE": str(tmp_path), "PYTHONPATH": str(ROOT)}

    def run() -> str:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
        return done.stdout.strip()

    assert run() == "True"  # the first process generates the module (SymPy)
    assert run() == "False"  # the second reads it from the disk cache
    assert len(list(tmp_path.glob("*/sklearn_mlp.py"))) == 1
