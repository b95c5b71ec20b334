"""`eval.suite` in the training loop: the task suite scored on the model being trained, on its schedule.

Logged to metrics.jsonl (and TensorBoard) as `eval/<task>` (each task's accuracy, its own normalisation) and
`eval/<suite>_centered` (the mean centred accuracy, 0 = chance), plus its cost: `eval/suite_seconds` (this pass)
and `eval/suite_share` (this pass's share of the run's wall time since the previous pass ended: training,
validation and checkpoints included; 0 for the first pass, which has no previous one). The examples are read and
checked when the trainer starts, before the run folder is touched; a first pass at the starting step is timed and
reported in the plan line, and gives the curve its starting (chance) point. Every rank scores its share of the examples (the
numbers are summed across ranks), through the DeepSpeed engine so that every ZeRO stage works.
"""
from __future__ import annotations

import time

from gptstack.errors import InputError
from gptstack.eval_data import load_examples, resolve_tasks
from model.config import ConfigError
from model.eval.lm import OurModel
from model.eval.scoring import centered_mean, evaluate


class _EngineModel(OurModel):
    """The engine's forward gives (logits, loss); under ZeRO-3 it also gathers the partitioned weights."""

    def __init__(self, engine, encoding, block_size: int, device):
        self.model, self.encoding, self.name, self.device = engine, encoding, "training", device
        self.max_length, self.eot = block_size, encoding.eot_token


class InLoopSuite:
    def __init__(self, eval_section, encoding, block_size: int):
        self.spec, self.every = eval_section.suite, eval_section.suite_every
        self.limit, self.shots = eval_section.suite_limit, eval_section.suite_shots
        self.batch_size = eval_section.suite_batch_size
        try:
            self.tasks = resolve_tasks(self.spec)
            for task in self.tasks:  # read and checked now: a broken install fails before any training
                load_examples(task, self.limit)
        except InputError as error:
            raise ConfigError(f"eval.suite={self.spec}: {error}") from None
        self.name = self.spec if "," not in self.spec else "suite"
        self.encoding, self.block_size = encoding, block_size
        self.spent = 0.0
        self.last_end: float | None = None  # when the previous pass ended

    def due(self, step: int, final: bool) -> bool:
        return final or not self.every or step % self.every == 0

    def run(self, engine, device) -> dict:
        start = time.perf_counter()
        engine.module.eval()
        try:
            lm = _EngineModel(engine, self.encoding, self.block_size, device)
            results, _ = evaluate(lm, self.tasks, self.limit, self.batch_size, self.shots)
        finally:
            engine.module.train()
        end = time.perf_counter()
        seconds = end - start
        self.spent += seconds
        # the recurring cost: this pass against the run's time since the previous one ended (0 for the first)
        share = seconds / (end - self.last_end) if self.last_end is not None else 0.0
        self.last_end = end
        record = {f"eval/{task}": r["accuracy"] for task, r in results.items()}
        record[f"eval/{self.name}_centered"] = centered_mean(results)
        record["eval/suite_seconds"] = seconds
        record["eval/suite_share"] = share
        return record

    def plan_line(self, seconds: float, eval_every: int) -> str:
        every = self.every or eval_every
        return (f"eval.suite {self.spec}: {len(self.tasks)} tasks x {self.limit or 'all'} examples, "
                f"{self.shots}-shot; first pass {seconds:.1f} s, then every {every} steps and at the end "
                f"(eval/suite_share in metrics.jsonl: each pass's share of the run's time since the previous)")


def in_loop_suite(eval_section, encoding, block_size: int) -> InLoopSuite | None:
    """The suite `eval.suite` names (None when it is null)."""
    return InLoopSuite(eval_section, encoding, block_size) if eval_section.suite else None
