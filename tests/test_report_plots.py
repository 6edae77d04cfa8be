"""Specification of robnp.plots: three drawn PNGs, one row of panels per dataset."""

import numpy as np
import pytest

from robnp.report import document, plots
from study_records import study_records

SEEDS = (1, 2)
WIDTHS = (8, 16, 32)
EPSILONS = (0.05, 0.2)
ENVIRONMENT = {"python": "3.11", "numpy": "2", "numba": "0.60", "scipy": "1.14",
               "platform": "Linux", "robnp": "0.1.0"}


def make_doc(datasets):
    def clean(dataset, seed, width):
        return 0.9 + 0.02 * SEEDS.index(seed)

    def robust(attack, dataset, seed, width, eps):
        d_index, s_index, w_index = datasets.index(dataset), SEEDS.index(seed), WIDTHS.index(width)
        fgsm = clean(dataset, seed, width) - eps - 0.03 * w_index * (1 - 2 * d_index) - 0.01 * s_index
        return fgsm - (0.02 if attack == "pgd" else 0.0)

    records = study_records(datasets, SEEDS, WIDTHS, EPSILONS, clean=clean, robust=robust,
                            epochs=lambda width: 10, task_seconds=1.0)
    config = {"datasets": [{"name": name, "noise": 0.1} for name in datasets],
              "hidden_widths": list(WIDTHS), "epsilons": list(EPSILONS), "seeds": list(SEEDS)}
    return document.build_results(records, config, ENVIRONMENT)


def read_png(path):
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return imread(path)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    from matplotlib._pylab_helpers import Gcf

    open_before = Gcf.get_num_fig_managers()
    out = {}
    for datasets in (("moons",), ("circles", "moons")):
        out_dir = tmp_path_factory.mktemp("figures")
        out[len(datasets)] = plots.write_figures(make_doc(datasets), out_dir)
    out["newly_open"] = Gcf.get_num_fig_managers() - open_before
    return out


@pytest.mark.parametrize("n_datasets", [1, 2])
def test_three_drawn_pngs(written, n_datasets):
    paths = written[n_datasets]
    assert [path.name for path in paths] == list(plots.FIGURE_FILES)
    assert [path.name for path in paths] == [
        "clean_vs_robust.png", "robustness_gap.png", "param_scaling.png"]
    for path in paths:
        assert path.stat().st_size > 10_000
        pixels = read_png(path)
        assert np.ptp(pixels) > 0
        # drawn content, not a near-empty canvas: many pixels differ from the background
        background = pixels[0, 0]
        assert np.mean(np.any(pixels != background, axis=-1)) > 0.02
    assert not [p for p in paths[0].parent.iterdir() if p.name.startswith(".")]


def test_each_dataset_gets_a_row_of_panels(written):
    for one, two in zip(written[1], written[2]):
        assert read_png(two).shape[0] > 1.5 * read_png(one).shape[0]


def test_panels_name_dataset_and_attack_and_show_spread():
    doc = make_doc(("circles", "moons"))
    for build in (plots.figure_clean_vs_robust, plots.figure_robustness_gap,
                  plots.figure_param_scaling):
        fig = build(doc)
        titles = [ax.get_title() for ax in fig.axes]
        assert len(titles) == 4
        for dataset in ("circles", "moons"):
            for attack in ("FGSM", "PGD"):
                assert any(dataset in t and attack in t for t in titles), titles
        for ax in fig.axes:
            assert ax.get_xlabel() and ax.get_ylabel()
    # every per-eps curve carries a band of the spread across seeds
    fig = plots.figure_robustness_gap(doc)
    ax = fig.axes[0]
    assert len(ax.collections) == len(EPSILONS)
    labels = [text.get_text() for text in fig.legends[0].get_texts()]
    assert labels == [f"ε = {eps:g}" for eps in EPSILONS]


def test_plotting_leaves_no_open_figures(written):
    # Figures drawn through pyplot stay registered until closed; robnp draws
    # without it, so a long sweep or report session accumulates nothing.
    assert written["newly_open"] == 0


def _drawn(fig):
    fig.canvas.draw()
    return fig


def test_every_panel_shows_its_own_y_numbers():
    doc = make_doc(("circles", "moons"))
    for build in (plots.figure_clean_vs_robust, plots.figure_robustness_gap,
                  plots.figure_param_scaling):
        for ax in _drawn(build(doc)).axes:
            shown = [t.get_text() for t in ax.get_yticklabels() if t.get_visible() and t.get_text()]
            assert len(shown) >= 3, (build.__name__, ax.get_title())


def test_param_scaling_ticks_every_width_and_shows_each_seed():
    doc = make_doc(("moons",))
    fig = _drawn(plots.figure_param_scaling(doc))
    for ax in fig.axes:
        labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        assert [label.split("\n")[1] for label in labels] == [f"h={w}" for w in WIDTHS]
        # one dot per seed and width, no annotation crossing the lines
        dots = [c for c in ax.collections if c.get_label() == "one seed"]
        assert len(dots) == 1 and len(dots[0].get_offsets()) == len(SEEDS) * len(WIDTHS)
        assert not ax.texts
        assert "too few widths for a 95% CI" in ax.get_title() and "n = 3 widths" in ax.get_title()


def test_a_flat_trend_is_not_zoomed_into_a_slope():
    # Gaps that differ by 0.001 across widths, with no seed noise: the y range
    # still spans at least 0.05, so the line looks as flat as it is.
    from study_records import study_records as make

    rows = make(("circles",), SEEDS, WIDTHS, EPSILONS, clean=lambda d, s, w: 0.9,
                robust=lambda a, d, s, w, e: 0.8 - e - 0.001 * WIDTHS.index(w))
    doc = document.build_results(rows, {"datasets": [{"name": "circles", "noise": 0.1}]},
                                 ENVIRONMENT)
    for ax in plots.figure_param_scaling(doc).axes:
        low, high = ax.get_ylim()
        assert high - low >= 0.05


def test_the_clean_line_is_drawn_above_every_eps_line():
    fig = plots.figure_clean_vs_robust(make_doc(("circles",)))
    for ax in fig.axes:
        clean = [line for line in ax.lines if line.get_label() == "clean"]
        others = [line for line in ax.lines if line.get_label().startswith("ε")]
        assert clean and all(clean[0].get_zorder() > line.get_zorder() for line in others)


def test_figures_of_a_recipe_say_how_the_models_were_trained():
    doc = make_doc(("circles",))
    assert "trained" not in plots.figure_robustness_gap(doc)._suptitle.get_text()
    doc["config"] = {**doc["config"], "recipe": "trades", "train_eps": 0.1}
    for build in (plots.figure_clean_vs_robust, plots.figure_robustness_gap,
                  plots.figure_param_scaling):
        assert build(doc)._suptitle.get_text().endswith("\nmodels trained by trades at eps 0.1")


def _many_attacks_doc(attacks, datasets=("circles", "moons")):
    def robust(attack, dataset, seed, width, eps):
        return 0.85 - eps - 0.01 * attacks.index(attack) - 0.002 * seed * WIDTHS.index(width)

    records = study_records(datasets, SEEDS, WIDTHS, EPSILONS, attacks=attacks,
                            clean=lambda dataset, seed, width: 0.9, robust=robust)
    config = {"datasets": [{"name": name, "noise": 0.1} for name in datasets],
              "hidden_widths": list(WIDTHS), "epsilons": list(EPSILONS), "seeds": list(SEEDS)}
    return document.build_results(records, config, ENVIRONMENT)


@pytest.mark.parametrize("attacks,grid", [
    (("fgsm", "pgd"), (1, 2)), (("fgsm", "pgd", "square"), (1, 3)),
    (("fgsm", "pgd", "apgd_ce", "square"), (2, 2)),
    (("fgsm", "pgd", "apgd_ce", "square", "fab"), (2, 3)),
    (("fgsm", "pgd", "pgd_cw", "apgd_ce", "apgd_dlr", "square", "fab"), (3, 3))])
def test_many_attacks_wrap_into_a_grid_per_dataset(attacks, grid):
    # Five attacks once gave one row of five panels per dataset (3288 x 492 pixels at
    # 120 dpi): unreadable. At most three panels side by side.
    doc = _many_attacks_doc(attacks)
    rows, columns = grid
    for build in (plots.figure_clean_vs_robust, plots.figure_robustness_gap,
                  plots.figure_param_scaling):
        fig = _drawn(build(doc))
        assert len(fig.axes) == 2 * len(attacks)  # no empty panel left in the grid
        width, height = fig.get_size_inches()
        assert width == pytest.approx(columns * 5.2 + 1.4)
        assert height == pytest.approx(2 * rows * 3.5 + 0.6)
        circles = [ax for ax in fig.axes if ax.get_title().startswith("circles")]
        assert len(circles) == len(attacks)
        # one dataset's panels share one y range, across the rows of its block
        assert len({ax.get_ylim() for ax in circles}) == 1
        spots = {(ax.get_subplotspec().rowspan.start, ax.get_subplotspec().colspan.start)
                 for ax in fig.axes}
        assert max(col for _, col in spots) == columns - 1
        assert max(row for row, _ in spots) == 2 * rows - 1
