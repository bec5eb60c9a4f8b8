"""plot() and plot_activation(): the figure is inspected, not looked at."""
from __future__ import annotations

import math

import matplotlib
import pytest
import torch

import kanext
from kanext.plotting import EDGE_GID, NUMERIC_COLOR, SYMBOLIC_COLOR, SYMBOLIC_MIXED_COLOR
from helpers import assert_close, gen

F64 = torch.float64


def _model_and_data():
    model = kanext.KAN([3, 4, 2], grid=5, seed=2, dtype=F64)
    x = torch.rand(300, 3, generator=gen(3), dtype=F64) * 2 - 1
    model.remove_edge(0, 1, 2)
    model.remove_edge(1, 3, 0)
    model.remove_node(1, 0)  # masks its 3 incoming and 2 outgoing edges
    return model, x


def _insets(fig):
    return {ax.get_gid(): ax for ax in fig.axes if (ax.get_gid() or "").startswith("kanext-edge-")}


def _edge_alone(model, l, i, j, xs):
    """phi_lji on the points xs, computed independently: the layer cut down
    to edge i -> j by subset, fed only input i."""
    return model.act_fun[l].subset([i], [j])(xs.reshape(-1, 1))[:, 0].detach()


def test_plot_draws_one_inset_per_active_edge_with_its_curve_and_score_alpha(tmp_path):
    import matplotlib.pyplot as plt

    model, x = _model_and_data()
    before = plt.get_fignums()
    fig = model.plot(x=x, beta=3, in_vars=["a", "b", "c"], out_vars=["u", "v"], title="T", folder=tmp_path)
    assert plt.get_fignums() == before, "plot must not create pyplot figures"
    insets = _insets(fig)
    active = {EDGE_GID.format(l=l, i=i, j=j) for l, layer in enumerate(model.act_fun)
              for i in range(layer.in_features) for j in range(layer.out_features) if float(layer.mask[i, j]) != 0}
    assert len(active) == 12 + 8 - 2 - 5  # all edges, less 2 removed ones and node 0's 5 edges
    assert set(insets) == active
    model.attribute(x=x)
    for gid, ax in insets.items():
        l, i, j = (int(v) for v in gid.split("-")[2:])
        (line,) = ax.get_lines()
        xs, ys = torch.tensor(line.get_xdata()), torch.tensor(line.get_ydata())
        seen = model.layer_inputs(x)[l][:, i]
        assert math.isclose(xs[0], float(seen.min())) and math.isclose(xs[-1], float(seen.max())), "range seen"
        assert_close(ys, _edge_alone(model, l, i, j, xs), 1e-12, msg=f"curve {gid}")
        assert math.isclose(line.get_alpha(), math.tanh(3 * float(model.edge_scores[l][j, i])), rel_tol=1e-12)
        assert line.get_color() == NUMERIC_COLOR
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {"a", "b", "c", "u", "v", "T"} <= texts
    assert (tmp_path / "kan.png").stat().st_size > 0


def test_plot_metrics_and_samples():
    model, x = _model_and_data()
    model.attribute(x=x, metric="forward")
    l1 = model.edge_scores
    fig = model.plot(x=x, metric="forward", beta=1, sample=True)
    ax = _insets(fig)[EDGE_GID.format(l=0, i=2, j=1)]
    curve, dots = ax.get_lines()
    assert math.isclose(curve.get_alpha(), math.tanh(float(l1[0][1, 2])), rel_tol=1e-12)
    assert len(dots.get_xdata()) == 200
    assert_close(torch.tensor(dots.get_ydata()), _edge_alone(model, 0, 2, 1, torch.tensor(dots.get_xdata())), 1e-12,
                 msg="sample dots")
    for metric in ("forward_n", "forward_u"):
        assert len(_insets(model.plot(x=x, metric=metric))) == 13
    with pytest.raises(ValueError, match="metric"):
        model.plot(x=x, metric="sideways")
    with pytest.raises(ValueError, match="in_vars needs 3 names"):
        model.plot(x=x, in_vars=["a"])


def test_symbolic_edges_are_coloured_and_labelled():
    model, x = _model_and_data()
    sym0 = model.symbolic_fun[0]
    # symbolic edges c f(a x + b) + d with (a, b, c, d) = (1, 0, 2, 0): their curve is 2 f(x)
    sym0.set_edge(1, 2, "sin", (1.0, 0.0, 2.0, 0.0))  # numeric edge (0, 1, 2) is masked: symbolic only
    sym0.set_edge(0, 1, "x^2", (1.0, 0.0, 2.0, 0.0))  # numeric edge (0, 0, 1) is active: both
    insets = _insets(model.plot(x=x))
    assert len(insets) == 14  # the symbolic-only edge is active again
    only, both = insets[EDGE_GID.format(l=0, i=1, j=2)], insets[EDGE_GID.format(l=0, i=0, j=1)]
    assert only.get_title() == "sin" and only.get_lines()[0].get_color() == SYMBOLIC_COLOR
    assert both.get_title() == "x^2" and both.get_lines()[0].get_color() == SYMBOLIC_MIXED_COLOR
    for ax, numeric, f in ((only, 0.0, torch.sin), (both, 1.0, torch.square)):
        xs, ys = (torch.tensor(v) for v in (ax.get_lines()[0].get_xdata(), ax.get_lines()[0].get_ydata()))
        i, j = (int(v) for v in ax.get_gid().split("-")[3:])
        assert_close(ys, 2 * f(xs) + numeric * _edge_alone(model, 0, i, j, xs), 1e-12, msg="symbolic curve")
    other = insets[EDGE_GID.format(l=0, i=0, j=2)]
    assert other.get_title() == "" and other.get_lines()[0].get_color() == NUMERIC_COLOR


def test_plot_activation_shows_spline_base_total_and_knots(tmp_path):
    model, x = _model_and_data()
    model.attribute(x=x)  # records the input range
    fig = model.plot_activation(0, 2, 3, folder=tmp_path)
    (ax,) = fig.axes
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    xs = torch.tensor(lines["total"].get_xdata())
    assert math.isclose(xs[0], float(x[:, 2].min())) and math.isclose(xs[-1], float(x[:, 2].max()))
    total = torch.tensor(lines["total"].get_ydata())
    assert_close(total, _edge_alone(model, 0, 2, 3, xs), 1e-12, msg="total")
    spline, base = torch.tensor(lines["spline"].get_ydata()), torch.tensor(lines["base"].get_ydata())
    assert_close(spline + base, total, 1e-14, msg="spline + base")
    layer = model.act_fun[0]
    assert_close(base, layer.scale_base[2, 3].detach() * torch.nn.functional.silu(xs), 1e-14, msg="base")
    knots = layer.grid[2]
    seen = knots[(knots >= xs[0]) & (knots <= xs[-1])]
    assert torch.equal(torch.tensor(lines["knots"].get_xdata()), seen)
    assert (tmp_path / "activation_0_2_3.png").stat().st_size > 0
    with pytest.raises(ValueError, match=r"j must be an int in \[0, 4\)"):
        model.plot_activation(0, 0, 4)


def test_plot_is_headless_and_writes_no_files_without_folder(tmp_path, monkeypatch):
    # The figures are plain matplotlib.figure.Figure objects, drawable with Agg.
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    monkeypatch.chdir(tmp_path)
    model, x = _model_and_data()
    fig = model.plot(x=x, sample=True)
    fig2 = model.plot_activation(0, 0, 0)
    assert isinstance(fig, matplotlib.figure.Figure) and isinstance(fig2, matplotlib.figure.Figure)
    FigureCanvasAgg(fig).draw()
    assert list(tmp_path.iterdir()) == []


def test_pykan_idioms_model_x_then_plot_and_fix_symbolic_without_save_act():
    """pykan records every forward; in kanext model(x) keeps a reference to x, so the pykan
    idioms `model(x); model.plot()` and `model(x); model.fix_symbolic(...)` work."""
    import kanext

    model = kanext.KAN([2, 3, 1], grid=5, seed=0, dtype=torch.float64)
    x = torch.rand(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    model(x)
    fig = model.plot()
    assert fig.axes
    r2 = model.fix_symbolic(0, 0, 0, "sin", verbose=False)
    assert 0.0 <= r2 <= 1.0
    # the fit used x: the same r2 as on a twin that recorded x with save_act
    other = kanext.KAN([2, 3, 1], grid=5, seed=0, dtype=torch.float64)
    other.save_act = True
    other(x)
    assert other.fix_symbolic(0, 0, 0, "sin", verbose=False) == r2
    lan = kanext.LAN([2, 3, 1], seed=0, dtype=torch.float64)
    lan(x)
    assert lan.plot().axes
    # compiled and functorch calls do not overwrite it with their internal tensors
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    compiled(x[:5])
    torch.func.vmap(model)(x[:3])
    assert model._last_input.shape == (64, 2)


def test_the_kept_input_holds_no_graph():
    """model(x) keeps x for model.plot() without keeping any autograd graph alive: x itself when it
    needs no gradient, a detached alias (same values, no grad_fn) when it does."""
    import kanext

    model = kanext.KAN([2, 3, 1], grid=5, seed=0, dtype=torch.float64)
    x = torch.rand(16, 2, dtype=torch.float64)
    model(x)
    assert model._last_input is x
    w = torch.rand(16, 2, dtype=torch.float64, requires_grad=True)
    h = w * 2  # a non-leaf with a graph
    model(h)
    kept = model._last_input
    assert not kept.requires_grad and kept.grad_fn is None and torch.equal(kept, h.detach())


def test_plot_tick_and_varscale_as_pykan():
    """tick=True labels each inset with the ends of its input range and of its
    curve; varscale scales the in_vars / out_vars font only; bad varscale raises."""
    model, x = _model_and_data()
    plain = model.plot(x=x, in_vars=["a", "b", "c"], out_vars=["u", "v"], title="T")
    ticked = model.plot(x=x, in_vars=["a", "b", "c"], out_vars=["u", "v"], title="T", tick=True, varscale=2.0)
    for gid, ax in _insets(plain).items():
        assert list(ax.get_xticks()) == [] and list(ax.get_yticks()) == [], gid
    for gid, ax in _insets(ticked).items():
        (line,) = ax.get_lines()
        xs, ys = line.get_xdata(), line.get_ydata()
        assert list(ax.get_xticks()) == pytest.approx([xs[0], xs[-1]]), gid
        assert list(ax.get_yticks()) == pytest.approx([ys.min(), ys.max()]), gid
        assert [t.get_text() for t in ax.get_xticklabels()] == [f"{v:.2g}" for v in (xs[0], xs[-1])]
    size = lambda fig: {t.get_text(): t.get_fontsize() for t in fig.axes[0].texts}
    a, b = size(plain), size(ticked)
    assert all(b[n] == 2 * a[n] for n in "abcuv") and b["T"] == a["T"]
    for bad in (0, -1.0, float("nan"), "2"):
        with pytest.raises(ValueError, match="varscale must be a number > 0"):
            model.plot(x=x, varscale=bad)


def test_attribute_plot_draws_the_returned_scores():
    model, x = _model_and_data()
    model(x)
    assert not hasattr(model, "attribution_figure") or model.attribution_figure is None
    scores = model.attribute(1, 1, x=x, plot=True)
    heights = [p.get_height() for p in model.attribution_figure.axes[0].patches]
    assert heights == pytest.approx(scores.tolist()) and len(heights) == 3
    fig = model.attribution_figure
    model.attribute(x=x, plot=True)  # no (l, i): nothing to draw, as pykan
    assert model.attribution_figure is fig
