"""``otnn snowflake``: the Koch snowflake demo (paper Fig. 2): one transport step lands an OTNN on its boundary."""
from __future__ import annotations

import argparse

from ..data import load_dataset, to_tensors
from ..figures import check_png_path, save_png
from ..figures.snowflake import boundary_report, snowflake_figure, snowflake_models
from ..devices import resolve_device
from ._args import shared_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "snowflake", parents=[shared_options("--device", "--quiet")], help="Fig. 2: move the snowflake test points onto the boundary, measure, draw a PNG",
        description="Train the snowflake OTNN (hKR, Eq. 1) and its unconstrained twin, or load their registry "
                    "weights; move every test point with x' = x - t f(x) grad f(x); report how close x' lands to "
                    "f = 0 and the mean gradient norm; draw level sets, boundary and moves.",
    )
    parser.add_argument("--pretrained", action="store_true", help="use the registry weights instead of training")
    parser.add_argument("--epochs", type=int, help="epochs of both training runs (default: the recipes' 60)")
    parser.add_argument("--t", type=float, default=1.0, help="step size t (default: %(default)s, Prop. 2)")
    parser.add_argument("--tolerance", type=float, default=0.05,
                        help="a point counts as on the boundary when |f(x')| <= tolerance * |f(x)| "
                             "(default: %(default)s)")
    parser.add_argument("--segments", type=int, default=200, help="moves drawn per panel (default: %(default)s)")
    parser.add_argument("--out", default="snowflake.png", help="PNG to write (default: %(default)s)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_png_path(args.out)
    if args.segments < 0:
        raise ValueError(f"--segments must be >= 0, got {args.segments}")
    models = snowflake_models(args.pretrained, args.epochs, args.device, progress=not args.quiet)
    points, labels = to_tensors(load_dataset("snowflake", "test"), device=resolve_device(args.device))
    reports = {name: boundary_report(model, points, args.t, args.tolerance) for name, model in models.items()}
    print(f"{len(points):,} snowflake test points moved with x' = x - t f(x) grad f(x), t = {args.t:g}")
    ratio, within = "median |f(x')|/|f(x)|", f"within {args.tolerance:g}"
    print(f"{'model':<30} {ratio:>22} {within:>12} {'mean ||grad f||':>16}")
    for name, report in reports.items():
        print(f"{name:<30} {report.median_ratio:>22.4g} {report.within_tolerance:>12.4f} "
              f"{report.mean_gradient_norm:>16.4g}")
    figure = snowflake_figure(models, points, labels, reports, segments=args.segments)
    print(f"figure: {save_png(figure, args.out)}")
    return 0
