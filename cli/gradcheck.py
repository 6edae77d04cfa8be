"""``robnp gradcheck``: the analytic gradients against finite differences."""

from __future__ import annotations

import sys

import click

from .options import INT_LIST


@click.command()
@click.option("--hidden", type=INT_LIST, default="17,17", show_default=True,
              help="Hidden widths (comma-separated).")
@click.option("--features", type=int, default=2, show_default=True, help="Input dimension.")
@click.option("--classes", type=int, default=3, show_default=True, help="Number of classes.")
@click.option("--samples", type=int, default=33, show_default=True, help="Batch size.")
@click.option("--loss", type=click.Choice(["cross_entropy", "cw_margin"]),
              default="cross_entropy", show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--h", "step", type=float, default=1e-6, show_default=True,
              help="Finite-difference step.")
@click.option("--tol", type=float, default=1e-6, show_default=True,
              help="Largest relative error that passes.")
def gradcheck(hidden, features, classes, samples, loss, seed, step, tol):
    """Compare every weight, bias and input gradient with central differences.

    In float64, on a random MLP and a batch kept away from ReLU kinks. The error of a
    block is ||analytic - numeric|| / max(||analytic||, ||numeric||). Exits 1 if any
    block exceeds --tol.
    """
    from robnp.gradcheck import check_gradients

    report = check_gradients(hidden, features, classes, samples, loss=loss, seed=seed,
                             h=step, tol=tol)
    click.echo(f"gradient check: layers {report.layer_sizes}, {report.n_samples} samples, "
               f"loss {report.loss}, tolerance {report.tol:g}")
    click.echo(f"  {'block':<8}{'shape':>12}{'max abs err':>14}{'rel err':>12}  result")
    for block in report.blocks:
        shape = "x".join(str(s) for s in block.shape)
        click.echo(f"  {block.name:<8}{shape:>12}{block.max_abs_error:>14.3e}"
                   f"{block.rel_error:>12.3e}  "
                   f"{'FAIL' if not block.passed else 'vacuous' if block.vacuous else 'ok'}")
    if report.vacuous:
        click.echo(f"note: {', '.join(report.vacuous)}: both gradients exactly 0 (dead "
                   f"units), so the check says nothing there; try more --samples, another "
                   f"--seed or wider layers")
    if report.passed:
        click.echo(f"PASSED: worst relative error {report.worst.rel_error:.3e} ({report.worst.name})")
        return
    failed = [block.name for block in report.blocks if not block.passed]
    click.echo(f"FAILED: {', '.join(failed)} exceed {tol:g}")
    sys.exit(1)
