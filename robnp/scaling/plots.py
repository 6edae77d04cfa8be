"""Figures of the scaling analysis, after the paper's Figs. 1, 3, 4, 5 and 7.

Each function draws one figure from a :class:`~robnp.scaling.analysis.ScalingReport`
and writes it atomically as PNG.  Figures are built on matplotlib's
object-oriented API with the Agg canvas (no pyplot, no global state, no
display needed).  matplotlib is imported only here, so the rest of
``robnp.scaling`` works without it.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from robnp._io import atomic_write_bytes, ensure_writable_dir as ensure_out_dir

_DPI = 120


def _figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # Constrained layout fits labels in one drawing pass; bbox_inches="tight"
    # would draw every figure twice.
    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return atomic_write_bytes(path, buffer.getvalue())


def _qname(q):
    return "Q=inf (FID=0)" if math.isinf(q) else f"Q={q:g}"


def _flops_range(report):
    t = report.table
    return float(t.flops.min()), float(max(t.flops.max(), report.budgets.max()))


def plot_envelope(report, path) -> Path:
    """Approach 1 (paper, Fig. 3): curves with the envelope, N*(F) and D*(F)."""
    env = report.envelope
    fig = _figure(13, 3.8)
    ax_l, ax_n, ax_d = fig.subplots(1, 3)
    sub = report.table
    sub = sub.take(sub.quality == env.quality) if np.isfinite(env.quality) else sub.take(np.isinf(sub.quality))
    codes = sub.curve_codes()
    n_all = np.log(sub.N)
    span = max(np.ptp(n_all), 1e-12)
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    for c in np.unique(codes):
        rows = np.flatnonzero(codes == c)
        rows = rows[np.argsort(sub.flops[rows])]
        color = cmap((np.log(sub.N[rows[0]]) - n_all.min()) / span)
        ax_l.plot(sub.flops[rows], sub.loss[rows], color=color, lw=1, alpha=0.8)
    covered = np.isfinite(env.loss)
    ax_l.plot(env.flops[covered], env.loss[covered], color="k", lw=2, label="envelope")
    kept = env.status == 0
    F = np.geomspace(env.flops[covered].min(), _flops_range(report)[1], 100)
    ax_l.plot(F, env.L_star(F), "r--", lw=1.2, label=f"L* ~ F^{env.L_star.exponent:.3f}")
    ax_l.set(xscale="log", yscale="log", xlabel="training FLOPs", ylabel="loss",
             title=f"training curves ({_qname(env.quality)})")
    ax_l.legend(fontsize=8)
    for ax, values, law, name in ((ax_n, env.N, env.N_star, "N*"), (ax_d, env.D, env.D_star, "D*")):
        ax.scatter(env.flops[kept], values[kept], s=6, color="k", label="envelope (used)")
        dropped = covered & ~kept
        ax.scatter(env.flops[dropped], values[dropped], s=4, color="0.75", label="envelope (dropped)")
        ax.plot(F, law(F), "r--", lw=1.2, label=f"{name} ~ F^{law.exponent:.3f}")
        ax.set(xscale="log", yscale="log", xlabel="training FLOPs", ylabel=name, title=f"{name} against FLOPs")
        ax.legend(fontsize=8)
    return _save(fig, path)


def _primary(report):
    return report.approach2 if report.approach2 is not None else report.approach3


def plot_isoloss(report, path) -> Path:
    """Iso-loss contours over (D, N) with the compute-optimal curve (paper, Fig. 4)."""
    fit = _primary(report)
    t = report.table
    q = report.quality
    f_lo, f_hi = _flops_range(report)
    N_grid = np.geomspace(t.N.min() / 3, t.N.max() * 3, 120)
    D_grid = np.geomspace(t.D.min() / 3, t.D.max() * 3, 120)
    DD, NN = np.meshgrid(D_grid, N_grid)
    LL = fit.predict(NN, DD, q)
    fig = _figure(7, 5.2)
    ax = fig.subplots()
    levels = np.geomspace(LL.min(), np.percentile(LL, 95), 14)
    cs = ax.contourf(DD, NN, LL, levels=levels, cmap="magma")
    fig.colorbar(cs, ax=ax, label=f"predicted loss ({_qname(q)})")
    F = np.geomspace(f_lo / 10, f_hi, 80)
    opt = fit.optimal(F, q)
    inside = (opt.D >= D_grid[0]) & (opt.D <= D_grid[-1]) & (opt.N >= N_grid[0]) & (opt.N <= N_grid[-1])
    ax.plot(opt.D[inside], opt.N[inside], color="cyan", lw=2, label="compute-optimal (N*, D*)")
    for Fb in report.budgets:
        D_line = np.geomspace(D_grid[0], D_grid[-1], 50)
        N_line = Fb / (fit.flops_per_nd * D_line)
        ok = (N_line >= N_grid[0]) & (N_line <= N_grid[-1])
        ax.plot(D_line[ok], N_line[ok], color="w", lw=0.8, ls=":")
    ax.scatter(t.D, t.N, s=8, color="w", edgecolor="k", linewidth=0.3, label="runs")
    ax.set(xscale="log", yscale="log", xlabel="D (training samples)", ylabel="N (parameters)",
           title=f"Approach {fit.approach}: iso-loss contours; dotted: budgets")
    ax.legend(fontsize=8, loc="lower left")
    return _save(fig, path)


def plot_fit_vs_data(report, path, approach) -> Path:
    """Fitted curves against data, one panel per quality level (paper, Fig. 5)."""
    fit = report.approach2 if approach == 2 else report.approach3
    t = report.table
    levels = t.quality_levels()[::-1][:6]
    ncol = min(3, levels.size)
    nrow = int(math.ceil(levels.size / ncol))
    fig = _figure(4.3 * ncol, 3.4 * nrow)
    axes = np.atleast_1d(fig.subplots(nrow, ncol)).reshape(-1)
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    for ax, q in zip(axes, levels):
        rows = np.flatnonzero(t.quality == q)
        sizes = np.unique(t.N[rows])
        D_line = np.geomspace(t.D[rows].min(), t.D[rows].max(), 60)
        for i, n in enumerate(sizes):
            color = cmap(i / max(sizes.size - 1, 1))
            r = rows[t.N[rows] == n]
            ax.scatter(t.D[r], t.loss[r], s=8, color=color)
            ax.plot(D_line, fit.predict(n, D_line, q), color=color, lw=1, label=f"N={n:.3g}")
        ax.set(xscale="log", yscale="log", xlabel="D", ylabel="loss", title=_qname(q))
        if sizes.size <= 8:
            ax.legend(fontsize=6)
    for ax in axes[levels.size:]:
        ax.set_visible(False)
    fig.suptitle(f"Approach {approach}: fitted law (lines) against runs (points)")
    return _save(fig, path)


def plot_best_loss(report, path) -> Path:
    """Predicted best loss against FLOPs per quality (paper, Fig. 1, left)."""
    t = report.table
    f_lo, f_hi = _flops_range(report)
    F = np.geomspace(f_lo, f_hi * 100, 100)
    acc = report.loss_accuracy
    fig = _figure(12 if acc else 6.5, 4.6)
    axes = fig.subplots(1, 2 if acc else 1)
    axes = np.atleast_1d(axes)
    from matplotlib import colormaps

    levels = t.quality_levels()
    qualities = list(levels) + ([math.inf] if not np.isinf(levels).any() else [])
    cmap = colormaps["plasma"]
    for i, q in enumerate(qualities):
        color = cmap(i / max(len(qualities) - 1, 1) * 0.85)
        for fit, style in ((report.approach2, "-"), (report.approach3, "--")):
            if fit is None or (not fit.quality_terms and not np.any(levels == q)):
                continue
            L = fit.optimal(F, q).loss
            label = f"A{fit.approach} {_qname(q)}"
            axes[0].plot(F, L, style, color=color, lw=1.4, label=label)
            if acc:
                # A straight line is only trusted over the losses it was fitted on.
                inside = (L >= acc.loss_range[0]) & (L <= acc.loss_range[1])
                axes[1].plot(F[inside], acc.predict(L[inside]), style, color=color, lw=1.4, label=label)
        rows = t.quality == q
        if rows.any():
            axes[0].scatter(t.flops[rows], t.loss[rows], s=6, color=color, alpha=0.5)
    if report.envelope is not None:
        env = report.envelope
        axes[0].plot(F, env.L_star(F), ":", color="k", lw=1.2, label=f"A1 {_qname(env.quality)}")
    axes[0].set(xscale="log", yscale="log", xlabel="training FLOPs", ylabel="predicted best loss L*",
                title="best loss against compute")
    axes[0].legend(fontsize=7)
    if acc:
        axes[1].set(xscale="log", xlabel="training FLOPs", ylabel="predicted accuracy",
                    title="via the loss-to-accuracy map (within its fitted loss range)")
        axes[1].legend(fontsize=7)
    return _save(fig, path)


def plot_overhead(report, path) -> Path:
    """Compute overhead of smaller or larger models (paper, Fig. 7)."""
    fig = _figure(6.5, 4.4)
    ax = fig.subplots()
    top = 0.0
    for number, style in ((2, "-"), (3, "--")):
        ov = report.overhead.get(number)
        if ov is None:
            continue
        ok = ov.feasible
        (line,) = ax.plot(ov.omega_N[ok] * ov.N_star, 100 * (ov.overhead[ok] - 1), style, lw=1.6,
                          label=f"Approach {number} (N* = {ov.N_star:.3g})")
        if (~ok).any():
            ax.axvspan(ov.omega_N.min() * ov.N_star, ov.omega_N[~ok].max() * ov.N_star,
                       color=line.get_color(), alpha=0.12, label=f"A{number}: L* unreachable")
        ax.axvline(ov.N_star, color="0.5", lw=0.8, ls=":")
        near = ok & (ov.omega_N >= 0.25) & (ov.omega_N <= 4)
        if near.any():
            top = max(top, 100 * (ov.overhead[near].max() - 1))
    ax.set(xscale="log", xlabel="model size N", ylabel="compute overhead (%)",
           title=f"overhead to reach L* at {report.budgets[0]:.3g} FLOPs ({_qname(report.quality)})")
    # Near the smallest feasible model the overhead diverges; show the useful range.
    ax.set_ylim(-5, max(top, 10.0) * 1.1)
    ax.legend(fontsize=8)
    return _save(fig, path)


def write_figures(report, out_dir) -> list:
    """Draw every figure the report supports into ``out_dir``.

    Returns
    -------
    list of Path
        Files written.
    """
    out = ensure_out_dir(out_dir)
    written = []
    if report.envelope is not None:
        written.append(plot_envelope(report, out / "fig3_envelope.png"))
    if _primary(report) is not None:
        written.append(plot_isoloss(report, out / "fig4_isoloss.png"))
        written.append(plot_best_loss(report, out / "fig1_best_loss_vs_flops.png"))
    for number in (2, 3):
        if (report.approach2, report.approach3)[number - 2] is not None:
            written.append(plot_fit_vs_data(report, out / f"fig5_fit_vs_data_approach{number}.png", number))
    if report.overhead:
        written.append(plot_overhead(report, out / "fig7_overhead.png"))
    return written
