"""Strict specs: every bad input is one clear line naming the field and the fix."""

from __future__ import annotations

import pytest

from symprop.spec import Layer, Spec, SpecError, load_spec, spec_from_dict, validate

GOOD = {
    "name": "net",
    "inputs": 2,
    "loss": "mse",
    "layers": [{"units": 3, "activation": "tanh"}, {"units": 1, "activation": "sigmoid"}],
}


def with_changes(top: dict | None = None, layer: dict | None = None, drop: str | None = None) -> dict:
    data = {**GOOD, "layers": [dict(t) for t in GOOD["layers"]]}
    data.update(top or {})
    data["layers"][0].update(layer or {})
    if drop:
        data.pop(drop, None)
        data["layers"][0].pop(drop, None)
    return data


BAD = [
    (with_changes(layer={"activaton": "tanh"}), ["layers[1]", "'activaton'", "did you mean 'activation'"]),
    (with_changes(top={"los": "mse"}), ["'los'", "did you mean 'loss'"]),
    (with_changes(drop="loss"), ["missing key 'loss'"]),
    (with_changes(drop="units"), ["layers[1]", "missing key 'units'"]),
    (with_changes(layer={"activation": "sigmod"}), ["layers[1].activation", "'sigmod'", "did you mean 'sigmoid'"]),
    (with_changes(top={"loss": "mes"}), ["unknown loss 'mes'", "did you mean 'mse'"]),
    (with_changes(layer={"units": 0}), ["layers[1].units", "integer >= 1"]),
    (with_changes(layer={"units": 2.5}), ["layers[1].units", "integer >= 1"]),
    (with_changes(layer={"units": True}), ["layers[1].units"]),
    (with_changes(top={"inputs": 0}), ["inputs", "integer >= 1"]),
    (with_changes(top={"name": "my-net"}), ["name 'my-net'", "Python identifier"]),
    (with_changes(top={"name": "class"}), ["name 'class'", "not a keyword"]),
    (with_changes(layer={"activation": "gaussian", "sigma": 0.0}), ["layers[1].sigma", "> 0"]),
    (with_changes(layer={"activation": "gaussian", "sigma": -1}), ["layers[1].sigma", "> 0"]),
    (with_changes(layer={"activation": "sigmoid", "beta": 0}), ["layers[1].beta", "other than 0"]),
    (
        with_changes(layer={"activation": "piecewise_linear", "x_min": 1.0, "x_max": 1.0}),
        ["x_max must be greater than x_min"],
    ),
    (with_changes(layer={"activation": "tanh", "beta": 2.0}), ["'beta'", "unknown key"]),
    (with_changes(layer={"activation": "custom"}), ["needs expr"]),
    (with_changes(layer={"activation": "custom", "expr": "x.real"}), ["attribute access", "'x.real'"]),
    (with_changes(top={"loss": "custom"}), ["loss_expr"]),
    (with_changes(top={"loss_expr": "(a-y)**2"}), ['only used with loss = "custom"']),
    (with_changes(top={"loss": "softmax_ce"}), ["softmax_ce needs at least 2 output units"]),
    (
        {**GOOD, "loss": "softmax_ce", "layers": [{"units": 3, "activation": "tanh"}]},
        ['softmax_ce needs activation = "identity"'],
    ),
    ({**GOOD, "layers": []}, ["layers must be a non-empty list"]),
    (with_changes(layer={"activation": "sigmoid", "beta": float("nan")}), ["layers[1].beta"]),
]


@pytest.mark.parametrize("data,needles", BAD, ids=[n[0] for _, n in BAD])
def test_bad_spec_gets_one_clear_line(data: dict, needles: list[str]) -> None:
    with pytest.raises(SpecError) as info:
        spec_from_dict(data, source="spec.toml")
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, (needle, message)


def test_good_spec_round_trips_through_toml(tmp_path) -> None:
    spec = spec_from_dict(
        GOOD | {"layers": [{"units": 3, "activation": "sigmoid", "beta": 2}, {"units": 1, "activation": "identity"}]}
    )
    path = tmp_path / "net.toml"
    path.write_text(spec.to_toml())
    again = load_spec(path)
    assert again == spec and again.hash() == spec.hash()
    assert spec.layers[0].number("beta") == 2.0
    assert spec.param_shapes == {"W1": (3, 2), "b1": (3,), "W2": (1, 3), "b2": (1,)}


def test_hash_depends_on_content_not_formatting(tmp_path) -> None:
    a = tmp_path / "a.toml"
    b = tmp_path / "b.toml"
    a.write_text('name="n"\ninputs=1\nloss="mse"\n[[layers]]\nunits=1\nactivation="sigmoid"\nbeta=2.0\n')
    b.write_text(
        '# comment\nloss = "mse"\nname = "n"\ninputs = 1\n\n[[layers]]\nbeta = 2\nactivation = "sigmoid"\nunits = 1\n'
    )
    assert load_spec(a).hash() == load_spec(b).hash()
    c = tmp_path / "c.toml"
    c.write_text(a.read_text().replace("beta=2.0", "beta=2.5"))
    assert load_spec(c).hash() != load_spec(a).hash()


def test_python_specs_are_validated_by_the_same_rules() -> None:
    spec = Spec("net", 2, (Layer.of(3, "gaussian", sigma=-1.0), Layer.of(1, "sigmoid")), "mse")
    with pytest.raises(SpecError, match="sigma must be a number > 0"):
        validate(spec)


@pytest.mark.parametrize(
    "text,needle",
    [("name = ", "not valid TOML"), ("", "missing key 'name'")],
)
def test_file_errors(tmp_path, text: str, needle: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SpecError, match=needle):
        load_spec(path)


def test_missing_file() -> None:
    with pytest.raises(SpecError, match="no such file"):
        load_spec("does/not/exist.toml")
