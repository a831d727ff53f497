"""``symprop report``: the derivation of a spec as one self-contained HTML page.

The page has no script, no stylesheet or font from elsewhere and no network request: an
inline SVG picture of the network (:mod:`symprop.spec.diagram`), the derivation in MathML
(printed by :mod:`symprop.explain.notation` from the same :class:`~symprop.explain.Explanation`
that ``symprop explain`` prints), a worked example with numbers and the spec with the
generated module's header.

Worked example (:mod:`symprop.explain.worked`): the params of ``--params P.npz`` and the sample
of ``--sample`` (or, for what is not given, the seeded random problem of ``--at SEED``, stated
as such): every W and b, one substitution line per z, a and δ, each gradient and one
gradient-descent step with ``--lr``.  Every number comes from the IR interpreter
(:mod:`symprop.ir.interpret`), the one numeric path; the tests compare it with the module.

The page is the Jinja template ``templates/report/page.html.jinja``, rendered with autoescape:
everything that comes from the spec (names, expressions, the TOML) is escaped, by the template or
by :func:`html.escape` in the pieces built here.  The output is deterministic (no dates), so it is pinned by goldens.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import jinja2
import sympy as sp
from markupsafe import Markup
from sympy.printing.precedence import PRECEDENCE, precedence

from symprop import __version__
from symprop.backends.templating import environment
from symprop.emit import render
from symprop.explain.model import (
    WHOLE_CHAIN_PATH,
    WHOLE_CHAIN_SCALAR,
    Equation,
    ExplainError,
    Explanation,
    Section,
    chain_rule,
    notation_legend,
    parameter,
    parse_entry,
    parse_label,
)
from symprop.explain.notation import (
    DEFAULT_DIGITS,
    Equality,
    Printers,
    chain_product,
    mathml_lines,
    note_html,
    note_latex,
    note_mathml,
    note_text,
    whole_chain,
)
from symprop.explain.worked import DEFAULT_LR, Worked, blocks, compute, problem
from symprop.explain.worked import render_html as render_worked_html
from symprop.ir.notes import Note
from symprop.spec import Spec, validate
from symprop.spec.diagram import LayerPicture, network_svg
from symprop.symbolic.layer_math import activation_math

WORKED_DIGITS = 4  # the worked example's numbers: few enough digits to redo by hand
esc = html.escape


class ReportError(ValueError):
    """A bad report option: one line, exit 2 on the command line."""


# ------------------------------------------------------------------- MathML --
def math(content: str, block: bool = True) -> str:
    display = ' display="block"' if block else ""
    return f"<math{display}>{content}</math>"


def lhs_mathml(eq: Equation, p: Printers) -> str:
    """The left side of an equation, its sides joined by ``=`` (δ^(2)_j = ∂C_k/∂z^(2)_j)."""
    return "<mo>=</mo>".join(p.mathml(side) for side in eq.sides)


def rhs_mathml(eq: Equation, p: Printers) -> str:
    if not eq.factors:
        return p.mathml(eq.rhs)
    return "<mo>·</mo>".join(_factor_mathml(f, p) for f in eq.factors)


def _factor_mathml(f: sp.Expr, p: Printers) -> str:
    inner = p.mathml(f)
    return f"<mrow><mo>(</mo>{inner}<mo>)</mo></mrow>" if precedence(f) < PRECEDENCE["Mul"] else inner


def vector_mathml(v: Note | Equality, p: Printers) -> str:
    """A whole-layer row: a note of the program (the module's comment) or a chain-rule product."""
    return note_mathml(v, p) if isinstance(v, Note) else f"<mrow>{v.mathml()}</mrow>"


# ----------------------------------------------------------------- sections --
def _equation_html(eq: Equation, p: Printers) -> str:
    lines = mathml_lines(eq.rhs, p.digits) if not eq.factors else []
    if len(lines) > 1:  # a long formula: one table row per line, the first after "lhs ="
        cell = '<mtd><mrow displaystyle="true">{}</mrow></mtd>'.format
        rows = [f"<mtr>{cell(lhs_mathml(eq, p) + '<mo>=</mo>')}{cell(lines[0])}</mtr>"]
        rows += [
            f"<mtr><mtd></mtd>{cell(f'<mspace width={chr(34)}1em{chr(34)}></mspace>{line}')}</mtr>"
            for line in lines[1:]
        ]
        row = math(f'<mtable class="lines">{"".join(rows)}</mtable>')
    else:
        row = math(f"<mrow>{lhs_mathml(eq, p)}<mo>=</mo>{rhs_mathml(eq, p)}</mrow>")
    words = f'<p class="note">{note_html(eq.note, p)}</p>' if eq.note else ""
    return f'<div class="eq">{row}{words}</div>'


def _section_html(section: Section, p: Printers, level: int = 3) -> str:
    p = Printers(p.digits, section.scalar)
    out = [f"<h{level}>{note_html(section.title, p)}</h{level}>"]
    out += [f'<p class="note">{note_html(n, p)}.</p>' for n in section.notes]
    out += [f'<div class="eq vector">{math(vector_mathml(v, p))}</div>' for v in section.vector]
    out += [_equation_html(eq, p) for eq in section.equations]
    return "\n".join(out)


def derivation_html(ex: Explanation, p: Printers) -> str:
    """The chain-rule view: the cost, then per layer (output first) the whole-layer statements
    (the program's notes) and f, f', δ, ∂C/∂W, ∂C/∂b; in scalars for a one-unit chain."""
    return "\n".join(_section_html(section, p) for section in ex.sections)


def parameter_html(spec: Spec, label: str, p: Printers, symbolic_params: bool = False) -> str:
    """One parameter: the chain-rule product in the paper's form, then compact (with definitions) and expanded."""
    compact = parameter(spec, label, symbolic_params=symbolic_params)
    try:
        expanded = parameter(spec, label, expand=True, symbolic_params=symbolic_params)
        expanded_html = _section_html(expanded.sections[0], p, level=4)
    except ExplainError as exc:  # too big to write out: say so, the compact form above is complete
        expanded_html = f'<p class="note">Not written out in x, y, W and b: {esc(str(exc))}.</p>'
    entry = parse_entry(label, spec)
    lead = Printers(p.digits, compact.scalar)
    product = chain_product(entry, len(spec.layers), spec.loss == "softmax_ce", p.digits, compact.scalar)
    whole = whole_chain(entry, spec.layer_sizes, spec.loss == "softmax_ce", p.digits)
    label_of_whole = WHOLE_CHAIN_SCALAR if all(n == 1 for n in spec.layer_sizes) else WHOLE_CHAIN_PATH
    out = [
        f'<section class="param"><h3>{note_html(compact.heading, lead)}</h3>',
        f"<p>{note_html(compact.intro[0], lead)} By the chain rule, in the paper's form:</p>",
        f'<div class="eq chain">{math(f"<mrow>{product.mathml()}</mrow>")}</div>',
        f'<div class="eq chain whole">{math(f"<mrow>{whole.mathml()}</mrow>")}</div>',
        f'<p class="note">{esc(label_of_whole.replace("second line", "Second line", 1))}.</p>',
    ]
    for section in compact.sections:
        out.append(_section_html(replace(section, vector=()), p, level=4))
    out.append(expanded_html)
    out.append("</section>")
    return "\n".join(out)


# ----------------------------------------------------------- worked example --
def worked_html(w: Worked, p: Printers) -> str:
    """The worked example (:mod:`symprop.explain.worked`), numbers from the IR interpreter, as MathML."""
    return render_worked_html(blocks(w, min(p.digits, WORKED_DIGITS)))


# ------------------------------------------------------------------ the page --
def diagram(spec: Spec, p: Printers) -> str:
    """The network picture with each layer's size, activation and formula."""
    pictures = [LayerPicture(spec.inputs, "inputs x")]
    for l, layer in enumerate(spec.layers, 1):
        formula = f"a = {p.label(activation_math(layer).f)}"
        pictures.append(LayerPicture(layer.units, f"layer {l}", (layer.describe(), formula)))
    return network_svg(pictures, cost="C(a, y)")


CSS = """
body { font-family: Georgia, 'DejaVu Serif', serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem;
  color: #1a1a1a; line-height: 1.45; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ccc; }
.eq { margin: 0.6rem 0; overflow-x: auto; } .eq > math { font-size: 1.15em; }
.note math { font-size: 1.05em; } mtd { text-align: left; }
.note { color: #555; margin: 0 0 0 2rem; font-size: 0.95em; }
.vector math { color: #113f7a; }
mtable.lines mtd:first-child { text-align: right; }
pre { background: #f6f6f6; padding: 0.7rem; overflow-x: auto; font-size: 0.85em; }
table.numbers { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.92em; }
table.numbers th { text-align: right; padding: 0.2rem 0.8rem; font-weight: normal; }
table.numbers td { font-family: 'DejaVu Sans Mono', monospace; padding: 0.2rem 0.5rem; }
svg.network { max-width: 100%; height: auto; color: #333; }
svg .edge { stroke: #b9c3cf; stroke-width: 0.8; }
svg .unit { stroke: #333; stroke-width: 1.2; fill: #fff; } svg .unit.input { fill: #e8f0e8; }
svg .unit.output { fill: #fbe9d8; } svg .unit.hidden { fill: #e6eef8; }
svg text { font-family: 'DejaVu Sans', sans-serif; fill: #222; }
svg .direction line { stroke: currentColor; stroke-width: 1.5; }
svg .backward { color: #a33; } svg .forward { color: #264; }
"""


def report(
    spec: Spec,
    params: Sequence[str] = (),
    seed: int = 0,
    digits: int = DEFAULT_DIGITS,
    symbolic_params: bool = False,
    values: str | Path | None = None,
    sample: str | None = None,
    lr: float = DEFAULT_LR,
) -> str:
    """The whole HTML page; :class:`ReportError` (or ExplainError, WorkedError) for a bad option.

    ``symbolic_params`` shows activation parameters as symbols (β, μ, σ, ...) in the derivation;
    the worked example and the module header are always numeric.  ``values`` (a ``.npz`` of the
    params), ``sample`` (``"x1,...;y1,..."``) and ``lr`` choose the worked example's numbers;
    what is not given is drawn with ``seed``."""
    if digits < 1:
        raise ReportError(f"--digits must be >= 1, got {digits}")
    if seed < 0:
        raise ReportError(f"--at must be a seed >= 0, got {seed}")
    spec = validate(spec)
    labels = [parse_label(label, spec) for label in params]  # fail before any work
    w = compute(spec, problem(spec, values, sample, seed), lr)
    p = Printers(digits)
    ex = chain_rule(spec, symbolic_params)
    source = render(spec)
    header = source.split('"""', 2)[1].strip("\n")
    given = values is not None or sample is not None
    context = {
        "title": note_text(ex.title),
        "heading": Markup(note_html(ex.title, p)),
        "lead": [Markup(note_html(line, Printers(digits, ex.scalar))) for line in ex.intro[:2]],
        "css": Markup(CSS),
        "version": __version__,
        "spec_hash": spec.hash(),
        "legend": notation_legend(ex),
        "diagram": Markup(diagram(spec, p)),
        "intro": [Markup(note_html(line, p)) for line in ex.intro[2:]],
        "derivation": Markup(derivation_html(ex, p)),
        "parameters": [Markup(parameter_html(spec, label, p, symbolic_params)) for label in labels],
        "worked_title": "Worked example" + ("" if given else f" (seed {seed})"),
        "worked": Markup(worked_html(w, p)),
        "toml": spec.to_toml(),
        "header": header,
    }
    return _page_template().render(context)


@lru_cache(maxsize=1)
def _page_template() -> jinja2.Template:
    return environment(autoescape=True).get_template("report/page.html.jinja")


def explanation_html(ex: Explanation, digits: int = DEFAULT_DIGITS) -> str:
    """An explanation as an HTML fragment (MathML), for Jupyter's ``_repr_html_``."""
    p = Printers(digits)
    lead = Printers(digits, ex.scalar)
    intro = "".join(f"<p>{note_html(line, lead)}</p>" for line in (*ex.intro, *notation_legend(ex)))
    sections = "\n".join(_section_html(s, p) for s in ex.sections)
    heading = f"{note_html(ex.title, p)}: {note_html(ex.heading, p)}"
    return f'<div class="symprop"><h2>{heading}</h2>{intro}{sections}</div>'


# ------------------------------------------------------------------ Jupyter --
@dataclass(frozen=True)
class Explained:
    """An explanation that Jupyter shows as MathML (``_repr_html_``) or LaTeX (``_repr_latex_``).

    ``str()`` is the text ``symprop explain`` prints.  Made by :func:`explained`."""

    explanation: Explanation
    digits: int = DEFAULT_DIGITS

    def __str__(self) -> str:
        from symprop.explain.model import render as render_explanation

        return render_explanation(self.explanation, "text", self.digits)

    def _repr_html_(self) -> str:
        return explanation_html(self.explanation, self.digits)

    def _repr_latex_(self) -> str:
        """One align* per section, its title as the first (bold) row: the headings are kept."""
        from symprop.explain.model import lhs_latex, rhs_latex, vector_latex

        ex = self.explanation
        title = f"{note_latex(ex.title)}: {note_latex(ex.heading)}"
        blocks = [rf"\begin{{align*}}&\textbf{{{title}}}\end{{align*}}"]
        for s in ex.sections:
            p = Printers(self.digits, s.scalar)
            rows = [rf"&\textbf{{{note_latex(s.title, p)}}}"]
            rows += [vector_latex(v, p).replace(" = ", " &= ", 1) for v in s.vector]
            rows += [f"{lhs_latex(eq, p)} &= {rhs_latex(eq, p)}" for eq in s.equations]
            blocks.append(r"\begin{align*}" + r" \\ ".join(rows) + r"\end{align*}")
        return "\n".join(blocks)


def explained(
    spec: Spec,
    param: str | None = None,
    expand: bool = False,
    collapse: bool = False,
    digits: int = DEFAULT_DIGITS,
    symbolic_params: bool = False,
) -> Explained:
    """What ``symprop explain`` shows, as an object a notebook renders (MathML or LaTeX)."""
    from symprop.explain.model import collapsed, every_parameter_expanded

    spec = validate(spec)
    if collapse:
        ex = collapsed(spec)
    elif param is not None:
        ex = parameter(spec, parse_label(param, spec), expand, symbolic_params=symbolic_params)
    elif expand:
        ex = every_parameter_expanded(spec, symbolic_params=symbolic_params)
    else:
        ex = chain_rule(spec, symbolic_params)
    return Explained(ex, digits)
