"""Evaluate OTNNs and their unconstrained twins side by side: configs, the resumable runner, leaderboards.

    config = load_config("evaluations/quick.yaml")                 # validated, with "did you mean" errors
    summary = run_evaluation(prepare(config), "evaluations/results/quick")   # results.jsonl, resumable
    results = [read_results("evaluations/results/quick")]
    board = build_leaderboard(results, load_paper_numbers(), claims=load_paper_claims())  # ranks, CIs, verdicts
    write_report(board, results, "evaluations/results/quick")      # leaderboard.{md,csv,json,html}, figures/

Paper: arXiv:2206.06854, Sec. 5.1 and appendix A.4 (Tables 1-4, 10-12).
"""
from .claims import load_paper_claims
from .config import EvalConfig, load_config
from .leaderboard import build_leaderboard, load_paper_numbers
from .report import write_report
from .results import read_results
from .runner import prepare, run_evaluation

__all__ = ["EvalConfig", "build_leaderboard", "load_config", "load_paper_claims", "load_paper_numbers", "prepare", "read_results",
           "run_evaluation", "write_report"]
