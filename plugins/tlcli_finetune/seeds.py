"""`tlcli finetune --seeds 1,2,3`: one training per seed (``tlcli.cli.seeds``), each a run of its own in
``RUN_DIR/seed-N/``, and the mean and std of their best validation accuracy (adversarial training varies from
seed to seed). The set's summary also names the model and the domain adaptation.
"""

from __future__ import annotations

from tlcli.cli import seeds


def run_seeds(cfg, run, report) -> dict:
    from tlcli_finetune.job import train_one

    return seeds.run_seeds(cfg, run, report, command="finetune", plugin="finetune", train_one=train_one,
                           extra={"model": cfg.model, "domain_adapt": cfg.domain_adapt,
                                  "dann_weight": cfg.dann_weight if cfg.domain_adapt else None})
