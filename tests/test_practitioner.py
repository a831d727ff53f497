"""The practitioner's path of `symprop train` (issue 18): class weights, stratified splits, the
metrics JSON (checked against sklearn.metrics), missing values, and one meaning per flag."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from symprop.cli import main
from symprop.spec import load_spec
from symprop.tools import datasets
from symprop.tools.paramfile import load_params
from symprop.tools.train import balanced_weights, confusion, load_generated, per_class_scores

metrics = pytest.importorskip("sklearn.metrics")

SPEC = """name = "imb"
inputs = 3
loss = "softmax_ce"

[[layers]]
units = 8
activation = "tanh"

[[layers]]
units = 3
activation = "identity"
"""


def imbalanced_csv(path: Path, blanks: int = 0, n: tuple[int, int, int] = (150, 40, 10), seed: int = 0) -> Path:
    """Three classes in proportions 150:40:10, overlapping; ``blanks`` feature cells left empty."""
    rng = np.random.default_rng(seed)
    rows = []
    for name, count, centre in zip(("common", "middle", "rare"), n, ((0, 0, 0), (1.5, 0, 0), (0, 1.5, 0)), strict=True):
        for _ in range(count):
            rows.append([*(np.array(centre) + rng.normal(0, 0.8, 3)), name])
    order = rng.permutation(len(rows))
    rows = [rows[i] for i in order]
    cells = [[f"{v:.5f}" for v in r[:3]] + [r[3]] for r in rows]
    for k in range(blanks):
        cells[(7 * k + 3) % len(cells)][k % 3] = ""
    text = "a,b,c,label\n" + "\n".join(",".join(r) for r in cells) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "imb.toml"
    path.write_text(SPEC, encoding="utf-8")
    return path


def test_balanced_weights_are_scikit_learns() -> None:
    from sklearn.utils.class_weight import compute_class_weight

    codes = np.array([0] * 30 + [1] * 7 + [2] * 3)
    ours = balanced_weights(codes, 3)
    theirs = compute_class_weight("balanced", classes=np.array([0, 1, 2]), y=codes)
    np.testing.assert_allclose(ours, theirs, rtol=1e-15)


def test_confusion_and_per_class_scores_are_sklearns() -> None:
    rng = np.random.default_rng(0)
    true, pred = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    pred[true == 3] = 0  # class 3 is never predicted: precision undefined (0, as zero_division=0)
    m = confusion(true, pred, 4)
    np.testing.assert_array_equal(m, metrics.confusion_matrix(true, pred, labels=[0, 1, 2, 3]))
    p, r, f, support = metrics.precision_recall_fscore_support(true, pred, labels=[0, 1, 2, 3], zero_division=0)
    scores = per_class_scores(m)
    np.testing.assert_allclose(scores["precision"], p, rtol=1e-12)
    np.testing.assert_allclose(scores["recall"], r, rtol=1e-12)
    np.testing.assert_allclose(scores["f1"], f, rtol=1e-12)
    assert scores["support"] == list(support)


def test_stratified_split_keeps_the_class_shares() -> None:
    codes = np.array([0] * 150 + [1] * 40 + [2] * 10)
    train, test = datasets.split_indices(len(codes), 0.25, 3, codes)
    assert len(test) == 50 and sorted(np.concatenate([train, test])) == list(range(200))
    assert np.bincount(codes[test]).tolist() == [38, 10, 2] or np.bincount(codes[test]).tolist() == [37, 10, 3]
    _, plain_test = datasets.split_indices(len(codes), 0.25, 3)
    assert len(plain_test) == 50  # same size without strata


def test_class_weight_metrics_json_against_sklearn(
    tmp_path: Path, spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = imbalanced_csv(tmp_path / "imb.csv")
    out_json, save = tmp_path / "m.json", tmp_path / "p.npz"
    common = ["train", str(spec), "--data", str(data), "--module-dir", str(tmp_path / "g"), "--epochs", "60"]
    code, out, err = run(
        [
            *common,
            "--class-weight",
            "balanced",
            "--validation-fraction",
            "0.2",
            "--metrics-json",
            str(out_json),
            "-o",
            str(save),
        ],
        capsys,
    )
    assert code == 0, err
    assert "class weights (balanced" in out and "split: stratified by class" in out
    assert "test confusion matrix (rows: true class, columns: predicted):" in out
    assert "test loss" not in "".join(line for line in out.splitlines() if line.startswith("epoch"))
    report = json.loads(out_json.read_text())
    assert report["classes"] == ["common", "middle", "rare"]
    assert len(report["history"]) == 60 and {"epoch", "train_loss", "val_loss", "val_accuracy"} <= set(
        report["history"][0]
    )
    # recompute the test split and the predictions independently of the report
    dataset = datasets.load(str(data), load_spec(spec), 0.25, 0, validation_fraction=0.2)
    raw_test = dataset.X_test * dataset.scale + dataset.mean
    module = load_generated(tmp_path / "g" / "imb.py")
    params = load_params(save, load_spec(spec)).params
    predicted = np.argmax(module.forward(params, raw_test), axis=1)
    true = np.argmax(dataset.Y_test, axis=1)
    test = report["test"]
    assert test["confusion_matrix"] == metrics.confusion_matrix(true, predicted, labels=[0, 1, 2]).tolist()
    p, r, f, _ = metrics.precision_recall_fscore_support(true, predicted, labels=[0, 1, 2], zero_division=0)
    for i, name in enumerate(report["classes"]):
        assert test["per_class"][name]["precision"] == pytest.approx(p[i], rel=1e-12)
        assert test["per_class"][name]["recall"] == pytest.approx(r[i], rel=1e-12)
        assert test["per_class"][name]["f1"] == pytest.approx(f[i], rel=1e-12)
    assert test["accuracy"] == pytest.approx(metrics.accuracy_score(true, predicted), rel=1e-12)
    # the rare class is found more often with balanced weights than without
    code, _, err = run(
        [*common, "--validation-fraction", "0.2", "--metrics-json", str(tmp_path / "plain.json")], capsys
    )
    assert code == 0, err
    plain = json.loads((tmp_path / "plain.json").read_text())["test"]
    assert test["per_class"]["rare"]["recall"] >= plain["per_class"]["rare"]["recall"]


def test_blank_cells_error_names_row_and_column(tmp_path: Path, spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = imbalanced_csv(tmp_path / "holes.csv", blanks=1)
    code, out, err = run(["train", str(spec), "--data", str(data), "--module-dir", str(tmp_path / "g")], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "line 5" in err and "column 'a'" in err and "--missing" in err


def test_missing_drop_counts_rows(tmp_path: Path, spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = imbalanced_csv(tmp_path / "holes.csv", blanks=6)
    args = ["train", str(spec), "--data", str(data), "--module-dir", str(tmp_path / "g"), "--epochs", "3"]
    code, out, err = run([*args, "--missing", "drop"], capsys)
    assert code == 0, err
    assert "dropped 6 of 200 rows with missing values" in out
    assert "194 rows" not in out and "145 train / 49 test rows" in out


def test_missing_mean_saves_the_means_and_predict_applies_them(
    tmp_path: Path, spec: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = imbalanced_csv(tmp_path / "holes.csv", blanks=9)
    save = tmp_path / "p.npz"
    args = ["train", str(spec), "--data", str(data), "--module-dir", str(tmp_path / "g"), "--epochs", "5"]
    code, out, err = run([*args, "--missing", "mean", "-o", str(save)], capsys)
    assert code == 0, err
    assert "filled 9 missing value(s)" in out
    saved = load_params(save, load_spec(spec))
    # the means are those of the train split's present values, computed here from the raw rows
    raw = datasets.csv_raw(data, datasets.TableOptions(missing="mean"))
    codes = np.array([{"common": 0, "middle": 1, "rare": 2}[v] for v in raw.labels])
    train_rows, _ = datasets.split_indices(len(codes), 0.25, 0, codes)
    assert saved.impute_means is not None
    np.testing.assert_allclose(saved.impute_means, np.nanmean(raw.X[train_rows], axis=0), rtol=1e-12)
    # predict fills the blanks with the same means: same output as on rows filled by hand
    rows = tmp_path / "rows.csv"
    rows.write_text("a,b,c\n,0.5,1.0\n0.2,,\n", encoding="utf-8")
    filled = tmp_path / "filled.csv"
    m = [float(v) for v in saved.impute_means]
    filled.write_text(f"a,b,c\n{m[0]!r},0.5,1.0\n0.2,{m[1]!r},{m[2]!r}\n", encoding="utf-8")
    outputs = []
    for path in (rows, filled):
        target = tmp_path / f"pred_{path.stem}.csv"
        predict = ["predict", str(spec), "--params", str(save), "--data", str(path), "--proba", "-o", str(target)]
        code, _, err = run([*predict, "--module-dir", str(tmp_path / "g")], capsys)
        assert code == 0, err
        outputs.append(target.read_text())
    assert outputs[0] == outputs[1]


def test_regression_prints_true_mse_rmse_r2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 2))
    y = 3 * X[:, 0] - X[:, 1] + rng.normal(0, 0.3, 120) + 10
    data = tmp_path / "lin.csv"
    data.write_text("x1,x2,y\n" + "\n".join(f"{a:.6f},{b:.6f},{c:.6f}" for (a, b), c in zip(X, y, strict=True)))
    spec = tmp_path / "lin.toml"
    spec.write_text('name = "lin"\ninputs = 2\nloss = "mse"\n\n[[layers]]\nunits = 1\nactivation = "identity"\n')
    save, out_json = tmp_path / "p.npz", tmp_path / "m.json"
    common = ["train", str(spec), "--data", str(data), "--module-dir", str(tmp_path / "g"), "--epochs", "50"]
    code, out, err = run([*common, "-o", str(save), "--metrics-json", str(out_json)], capsys)
    assert code == 0, err
    assert "loss: the mse cost, 1/2 (a - y)^2" in out
    dataset = datasets.load(str(data), load_spec(spec), 0.25, 0)
    raw_test = dataset.X_test * dataset.scale + dataset.mean
    y_test = dataset.raw_targets(dataset.Y_test)[:, 0]
    params = load_params(save, load_spec(spec)).params
    pred = (raw_test @ params["W1"].T + params["b1"])[:, 0]
    mse = metrics.mean_squared_error(y_test, pred)
    test = json.loads(out_json.read_text())["test"]
    assert test["mse"] == pytest.approx(mse, rel=1e-9)
    assert test["rmse"] == pytest.approx(np.sqrt(mse), rel=1e-9)
    assert test["r2"] == pytest.approx(metrics.r2_score(y_test, pred), rel=1e-9)
    assert test["loss"] == pytest.approx(mse / 2, rel=1e-9)  # the cost is 1/2 MSE
    printed = {line.split(": ")[0]: float(line.split(": ")[1]) for line in out.splitlines() if line.startswith("test ")}
    assert printed["test mse"] == pytest.approx(mse, rel=1e-5)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--solver", "lbfgs", "--lr", "0.5"], "so --lr would be ignored"),
        (["--solver", "lbfgs", "--batch-size", "16"], "so --batch-size would be ignored"),
        (["--out", "gen"], "--module-dir"),
        (["--module", "gen"], "unrecognized arguments: --module"),  # no abbreviations
        (["--module-dir", "preds.csv"], "looks like a file name"),
        (["--class-weight", "balanced", "--missing", "maybe"], "invalid choice"),
        (["--partitions", "2"], "--partitions is for --engine dask"),
        (["--engine", "dask", "--solver", "lbfgs", "--missing", "mean"], "--missing is for --engine local only"),
    ],
)
def test_refusals_are_one_line_exit_2(
    tmp_path: Path, spec: Path, capsys: pytest.CaptureFixture[str], extra: list[str], needle: str
) -> None:
    data = imbalanced_csv(tmp_path / "imb.csv")
    code, out, err = run(["train", str(spec), "--data", str(data), "--epochs", "1", *extra], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and needle in err, err
    assert not (Path.cwd() / "preds.csv").exists()


def test_predict_output_is_a_file(tmp_path: Path, spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = imbalanced_csv(tmp_path / "imb.csv")
    save = tmp_path / "p.npz"
    code, _, err = run(
        [
            "train",
            str(spec),
            "--data",
            str(data),
            "--epochs",
            "1",
            "--module-dir",
            str(tmp_path / "g"),
            "-o",
            str(save),
        ],
        capsys,
    )
    assert code == 0, err
    preds = tmp_path / "preds.csv"
    code, out, err = run(
        [
            "predict",
            str(spec),
            "--params",
            str(save),
            "--data",
            str(data),
            "--module-dir",
            str(tmp_path / "g"),
            "--output",
            str(preds),
        ],
        capsys,
    )
    assert code == 0, err
    assert preds.is_file() and out == ""
    assert preds.read_text().splitlines()[0] == "prediction"
