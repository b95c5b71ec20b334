"""Pretrain the GPT on token shards with DeepSpeed ZeRO: `python -m model.train --config configs/NAME.yaml`.

    # one process (CPU demo)
    DS_ACCELERATOR=cpu python -m model.train --config configs/tiny-cpu.yaml --data data/sample --run-dir runs/tiny
    # 8 GPUs on one node
    torchrun --nproc-per-node 8 -m model.train --config configs/gpt2-124m.yaml --data data/fineweb
    deepspeed --num_gpus 8 --module model.train --config configs/gpt2-124m.yaml --data data/fineweb
    # Slurm: srun starts one task per GPU; ranks and the rendezvous come from SLURM_* (cluster/env.py)

The order of a run: read and check everything (config, shards, checkpoint, output folder) on every rank before
any process group exists, so bad input fails fast with one line; then join the group, build the engine, load
the checkpoint, and loop: one optimizer step = grad_accum micro-batches per rank; log, evaluate and checkpoint
on their schedules; checkpoint at the end or when request_stop() was called (a signal before preemption).
"""
from __future__ import annotations

import argparse
import math
import shutil
import signal
import sys
import time
from pathlib import Path

import torch

from cluster.env import DistEnv, resolve_dist_env
from cluster.lifeline import stop_if_launcher_gone, watch_launcher
from gptstack.cli_args import ArgumentParser, add_force_argument
from gptstack.errors import GPTStackError, exit_with_error
from gptstack.files import check_writable_dir
from gptstack.folder_lock import FolderLock, describe_takeover
from gptstack.output_folder import claim_output_folder
from model import checkpoint as ckpt
from model.bits_per_byte import token_byte_lengths, validation_loss_and_bpb
from model.build import build_model, count_parameters
from model.config import ConfigError, TrainConfig, batch_layout, batch_summary, describe, load_config, save_config
from model.data.mixture_batches import data_flag_values
from model.data.training_data import TrainingData
from model.engine import build_engine, device, init_distributed, seed_everything
from model.metrics import MetricsLogger, accelerator_name, mfu
from model.optim import build_lr_scheduler, build_optimizer, learning_rate
from model.run_tokenizer import check_resume_tokenizer, data_tokenizer, sized_model_config

RUN_LOCK = ".lock"  # RUN_DIR/.lock: one trainer per run folder (gptstack/folder_lock.py)
# What a run writes at the top of its folder: only these are ever replaced there (an older run folder, with its
# .lock or checkpoints/, counts as ours; anything else needs --force)
RUN_WRITES = (RUN_LOCK, "config.yaml", "metrics.jsonl", "loss.png", "tb", "checkpoints")
RUN_FOLDER_SIGNS = (RUN_LOCK, "checkpoints", "slurm_failures.txt")  # (the last: slurm/pretrain.sh's failure count)


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="python -m model.train",
        description="Pretrain a GPT on uint16 token shards with DeepSpeed ZeRO (CPU or GPUs, 1 or many ranks).",
        epilog="examples:\n"
               "  DS_ACCELERATOR=cpu python -m model.train --config tiny-cpu --data data/sample --run-dir runs/tiny\n"
               "  torchrun --nproc-per-node 8 -m model.train --config gpt2-124m --data data/fineweb --set optim.lr=3e-4\n"
               "Launch with plain python (1 rank), torchrun, the deepspeed launcher, or srun (Slurm).\n--config takes a "
               "file or a built-in name (tiny-cpu, gpt2-124m, ...; configs/*.yaml lists every key with comments);\n"
               "every key can be overridden with --set KEY=VALUE.")
    parser.add_argument("--config", type=Path, help="YAML config (configs/tiny-cpu.yaml, configs/gpt2-124m.yaml, ...)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key, e.g. --set optim.lr=3e-4 (repeatable; applied in order)")
    parser.add_argument("--data", help="shard folder from `python -m pipeline.prepare` (= --set data.dir=DIR), or a "
                                       "mixture NAME=DIR:WEIGHT,... (= data.sources), e.g. zh=data/zh:0.6,en=data/en:0.4")
    parser.add_argument("--run-dir", help="output folder: config.yaml, metrics, checkpoints (= --set run_dir=DIR)")
    parser.add_argument("--max-steps", type=int, help="optimizer steps to train to (= --set train.max_steps=N)")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config with the model's shape, parameter count and batch layout "
                             "for this launch's world size, then exit without training")
    parser.add_argument("--resume", default="auto",
                        help="auto (default): continue from the latest valid checkpoint of the run folder, or "
                             "start fresh if it has none; none: start fresh (refused if the run folder already "
                             "holds checkpoints); PATH: a checkpoint folder step_N (or a run folder) to continue "
                             "from, written with any number of ranks")
    add_force_argument(parser, "--run-dir")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def resolve_config(args: argparse.Namespace) -> TrainConfig:
    """--config, then --data, then every --set in order, then --run-dir/--max-steps, which win. --data comes before
    --set because a --set may edit the mixture it names (docs/training.md: --data ... --set
    data.sources.NAME.weight=W, an annealing phase)."""
    flags = {"run_dir": args.run_dir, "train.max_steps": args.max_steps}
    values = {key: value for key, value in flags.items() if value is not None}
    config = load_config(args.config, args.overrides, values, base=data_flag_values(args.data))
    if not config.data.dir and not config.data.sources and not args.print_config:
        raise ConfigError("no training data: give --data DIR (a shard folder from `python -m pipeline.prepare`) "
                          "or a mixture --data NAME=DIR:WEIGHT,...")
    return config


def check_output_folder(run_dir: Path, needed_bytes: int, keep_last: int) -> None:
    """The run folder must be creatable, writable, and have room for at least one more checkpoint."""
    check_writable_dir(run_dir, "run folder", ConfigError)
    free = shutil.disk_usage(run_dir).free
    if free < needed_bytes:
        raise ConfigError(f"run folder {run_dir}: {free / 1e9:.2f} GB free but one checkpoint of this model "
                          f"needs about {needed_bytes / 1e9:.2f} GB (keep_last={keep_last} keeps that many)")


class Trainer:
    """One training run on this rank. Build with Trainer(config, dist_env, resume), then .fit()."""

    def __init__(self, config: TrainConfig, dist_env: DistEnv, resume: str = "auto", force: bool = False):
        self.config, self.env, self.force = config, dist_env, force
        self.run_dir = Path(config.run_dir)
        self.is_main = dist_env.is_main
        self._stop_requested = False
        self.micro_batch, self.grad_accum = batch_layout(config, dist_env.world_size)
        self.gpt_config = config.gpt_config()
        self._preflight(resume)

    # ---- before any process group: everything that can be wrong with the input -----------------------------
    def _preflight(self, resume: str) -> None:
        c, env = self.config, self.env
        # One folder or a mixture (model/data/training_data.py); a mixture of two tokenizers is refused here.
        self.data = TrainingData(c.data, self.micro_batch, env.rank, env.world_size, c.eval.every > 0)
        self.train_batches, data_dir = self.data.train, self.data.describe()
        # The shards' tokenizer sizes the embedding; a config or checkpoint that disagrees is refused (one line).
        self.tokenizer = data_tokenizer(self.data.first)
        self.gpt_config = sized_model_config(self.gpt_config, c.model.vocab_size, self.tokenizer, data_dir)
        if self.is_main and c.data.verify_checksums:
            self.data.verify()
        if self.is_main:  # ids the embedding has no row for would train on garbage or fail mid-run
            from model.data.token_check import check_token_range
            for folder in self.data.folders.values():
                check_token_range(folder, self.gpt_config.vocab_size)
        self.data_fingerprint = self.data.fingerprint()
        self.hellaswag = None  # read and checked before the run folder is touched: a bad file writes nothing
        if c.eval.hellaswag:
            from model.evaluation import hellaswag_path, load_hellaswag
            self.hellaswag = load_hellaswag(hellaswag_path(c.eval.hellaswag), c.eval.hellaswag_examples)
        from model.eval.in_loop import in_loop_suite  # eval.suite: its examples read and checked here too
        self.suite = in_loop_suite(c.eval, self.tokenizer.encoding, self.gpt_config.block_size)
        if self.is_main:
            check_writable_dir(self.run_dir, "run folder", ConfigError)
            self.claim_run_folder("model.train")  # one trainer per run folder (gptstack/folder_lock.py)
        self.resume_from = ckpt.resolve_resume(resume, self.run_dir, say=print if self.is_main else None)
        self.resume_state = None
        if self.resume_from is not None:
            check_resume_tokenizer(self.resume_from, self.tokenizer)
            self.resume_state = ckpt.check_compatible(self.resume_from, self.gpt_config, c.data.seq_len, c.optim.name)
            # World-size free: the global sample counter continues whatever the number of ranks now. Raises
            # (one line) when the shards cut into another number of windows: the stream could not continue.
            changed = self.data.resume(self.resume_state["loader"])
            if self.is_main and changed:
                print(changed, flush=True)
            saved_fingerprint = self.resume_state.get("data_fingerprint")
            if self.is_main and saved_fingerprint not in (None, self.data_fingerprint):
                print(f"warning: the shards in {data_dir} differ from those {self.resume_from.name} was trained on "
                      f"(manifest checksums changed); continuing at the same position of the new stream",
                      file=sys.stderr)
        # A finished run started again (a requeued job, a repeated command) has nothing left to do: say so and
        # succeed, so that a job script can always just start the trainer.
        self.finished = self.resume_state is not None and self.resume_state["step"] >= c.train.max_steps
        parameters = count_parameters(self.gpt_config, non_embedding=False)
        check_output_folder(self.run_dir, ckpt.estimated_checkpoint_bytes(parameters), c.checkpoint.keep_last)

    # ---- set-up -----------------------------------------------------------------------------------------------
    def claim_run_folder(self, command: str) -> None:
        """The output-folder rule (gptstack/output_folder.py: a run folder, a new or empty one, or --force), then the
        one-trainer lock; under it, unfinished saves go before anything counts the checkpoints or free space."""
        claim_output_folder(self.run_dir, command, self.force, "--run-dir", RUN_WRITES,
                            legacy=lambda path: any((path / name).exists() for name in RUN_FOLDER_SIGNS)
                            ).record(RUN_WRITES)  # all of them before the first is written
        self.lock = FolderLock(self.run_dir / RUN_LOCK, self.run_dir, "trainer", hint="or give another --run-dir")
        if self.lock.acquire().took_over:
            print(describe_takeover(self.lock.took_over), flush=True)
        ckpt.remove_unfinished_saves(self.run_dir)

    def setup(self) -> None:
        c, env = self.config, self.env
        init_distributed(env)
        self.device = device()
        seed_everything(c.train.seed)  # identical initial weights on every rank
        model = self.new_model()
        self.num_parameters = model.num_parameters()  # before ZeRO-3 partitions the tensors away
        self.flops_per_token = model.flops_per_token(c.data.seq_len)
        self.universal = self.resume_state is not None and ckpt.needs_universal(
            self.resume_state, env.world_size, c.train.zero_stage, c.train.precision)
        self.checkpoints = ckpt.CheckpointManager(self.run_dir, env.rank, env.world_size, c.checkpoint.keep_last,
                                                  c.checkpoint.every, c.train.max_steps)
        self.checkpoints.tokenizer = self.tokenizer  # a folder is copied into every checkpoint's model/
        self.token_bytes = token_byte_lengths(self.tokenizer.encoding, self.gpt_config.padded_vocab_size)
        if self.is_main:
            self.checkpoints.remove_unfinished()
            save_config(c, self.run_dir)
            if self.universal:
                print(f"converting {self.resume_from.name} (written by {self.resume_state['world_size']} "
                      f"rank(s)) to a universal checkpoint for {env.world_size} rank(s)", flush=True)
                ckpt.convert_to_universal(self.resume_from)
        torch.distributed.barrier()
        optimizer = build_optimizer(model, c.optim, fused=self.device.type != "cpu")
        self.engine = build_engine(model, optimizer, build_lr_scheduler(optimizer, c), c, env.world_size,
                                   load_universal=self.universal)
        seed_everything(c.train.seed + 1000 * env.rank + 1)  # per-rank stream (dropout) from here on
        self.step = 0
        if self.resume_from is not None:
            state = self.checkpoints.load(self.engine, self.resume_from, self.universal)
            self.step = state["step"]
        self.plain_fp32 = c.train.zero_stage == 0 and c.train.precision == "fp32"
        self.device_name = accelerator_name()
        self.metrics = MetricsLogger(self.run_dir, self.is_main, c.log.tensorboard, c.log.plot_every, self.step)
        if self.is_main:
            where = f"resumed from {self.resume_from} at step {self.step}" if self.resume_from else "fresh start"
            print(f"model {c.model.name}: {self.num_parameters:,} parameters | {env.world_size} rank(s) "
                  f"({env.launcher}) on {self.device.type} | ZeRO-{c.train.zero_stage} {c.train.precision} | "
                  f"{batch_summary(c, env.world_size)} | {where}", flush=True)
            if env.world_size == 1:  # the README promises no server: say what gloo opens on loopback anyway
                from cluster.ports import describe_listening
                listening = describe_listening()
                if listening:
                    print(listening, flush=True)
            plan = self.data.plan(c.train.max_steps * c.train.tokens_per_step)
            if plan:
                print(plan, flush=True)
        if self.suite:  # a timed first pass: the plan line's cost, and the curve's starting point
            self.metrics.log({"step": self.step, **self.suite.run(self.engine, self.device)})
            if self.is_main:
                print(self.suite.plan_line(self.suite.spent, c.eval.every), flush=True)

    def new_model(self) -> torch.nn.Module:
        """The model before DeepSpeed wraps it: fresh, of model.arch's family (model.sft starts from a base's)."""
        return build_model(self.gpt_config)

    # ---- the loop ---------------------------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Finish the current step, write a checkpoint and return from fit() (signal handlers call this)."""
        self._stop_requested = True

    def _all_ranks_stop(self) -> bool:
        flag = torch.tensor([1.0 if self._stop_requested else 0.0], device=self.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())

    def train_step(self) -> dict:
        engine = self.engine
        loss_sum = torch.zeros((), device=self.device)
        data_time, grad_norm = 0.0, None
        for micro_step in range(self.grad_accum):
            start = time.perf_counter()
            x, y = self.train_batches.next_batch()
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            data_time += time.perf_counter() - start
            _, loss = engine(x, y)
            engine.backward(loss)
            if self.plain_fp32 and micro_step == self.grad_accum - 1:
                # Without ZeRO and mixed precision DeepSpeed clips but does not report the norm: measure the
                # (already all-reduced) gradients before the step, as its other optimizers do.
                grad_norm = torch.nn.utils.get_total_norm([p.grad for p in engine.module.parameters()
                                                          if p.grad is not None]).item()
            engine.step()  # DeepSpeed applies the optimizer only at the last micro-batch of the step
            loss_sum += loss.detach().float()
        # mean over the step's micro-batches and all ranks = the loss of the whole global batch
        torch.distributed.all_reduce(loss_sum, op=torch.distributed.ReduceOp.SUM)
        loss = loss_sum.item() / (self.grad_accum * self.env.world_size)
        if grad_norm is None:
            grad_norm = engine.get_global_grad_norm()
        return {"loss": loss, "grad_norm": float(grad_norm) if grad_norm is not None else float("nan"),
                "data_time": data_time}

    def evaluate(self) -> dict:
        from model.evaluation import HELLASWAG_METRIC, hellaswag_accuracy
        c = self.config
        record = {"step": self.step}
        record.update(self.data.validate(lambda val_batches: validation_loss_and_bpb(  # val_loss and val_bpb
            self.engine, val_batches, c.eval.val_batches, self.device, self.token_bytes)))
        hellaswag_every = c.eval.hellaswag_every or c.eval.every
        if self.hellaswag and hellaswag_every and (self.step % hellaswag_every == 0 or self.step == c.train.max_steps):
            record[HELLASWAG_METRIC] = hellaswag_accuracy(self.engine, self.hellaswag, self.tokenizer.encoding,
                                                         self.env.rank, self.env.world_size, self.device)
        if self.suite and self.suite.due(self.step, final=self.step == c.train.max_steps):
            record.update(self.suite.run(self.engine, self.device))
        return record

    def save(self) -> Path:
        state = {"loader": self.train_batches.state_dict(), "data_fingerprint": self.data_fingerprint,
                 "zero_stage": self.config.train.zero_stage, "optim": self.config.optim.name,
                 "precision": self.config.train.precision, "tokens_per_step": self.config.train.tokens_per_step,
                 "tokenizer": self.tokenizer.record()}
        return self.checkpoints.save(self.engine, self.step, state)

    def fit(self) -> int:
        """Train to max_steps (or until request_stop); return the step reached."""
        from tqdm import tqdm

        c = self.config
        max_steps = c.train.max_steps
        bar = tqdm(total=max_steps, initial=self.step, desc="train", unit="step", disable=not self.is_main,
                   dynamic_ncols=True, file=sys.stdout)
        tokens_per_step = c.train.tokens_per_step
        while self.step < max_steps:
            lr = learning_rate(self.step, c)
            start = time.perf_counter()
            result = self.train_step()
            if not math.isfinite(result["loss"]):  # the same all-reduced value on every rank: all stop here
                raise TrainingDiverged(
                    f"step {self.step + 1}: the loss is {result['loss']} (not finite); stopped without "
                    f"checkpointing the broken model (last checkpoint: step {self.checkpoints.saved_step or 'none'} "
                    f"in {self.checkpoints.dir}); lower optim.lr or check the data, then resume")
            elapsed = time.perf_counter() - start
            self.step += 1
            tokens_per_s = tokens_per_step / elapsed
            utilisation = mfu(self.flops_per_token, tokens_per_s, self.env.world_size, self.device_name)
            if self.step % c.log.every == 0 or self.step == max_steps:
                self.metrics.log({"step": self.step, "loss": result["loss"], "lr": lr,
                                  "grad_norm": result["grad_norm"], "tokens_per_s": tokens_per_s,
                                  "mfu": utilisation, "step_time_s": elapsed,
                                  "data_time_s": result["data_time"], "tokens": self.step * tokens_per_step,
                                  **self.data.progress()})
            bar.update(1)
            bar.set_postfix(loss=f"{result['loss']:.4f}", lr=f"{lr:.2e}", tok_s=f"{tokens_per_s:,.0f}",
                            mfu="n/a" if utilisation is None else f"{100 * utilisation:.1f}%")
            final = self.step == max_steps
            if c.eval.every and (self.step % c.eval.every == 0 or final):
                record = self.evaluate()
                self.metrics.log(record)
                if self.is_main:
                    shown = " ".join(f"{k} {v:.4f}" for k, v in record.items() if k != "step")
                    bar.write(f"step {self.step}: {shown}")
            stop = self._all_ranks_stop()
            if self.checkpoints.should_save(self.step, ending=stop):
                path = self.save()
                if self.is_main:
                    bar.write(f"step {self.step}: checkpoint {path}")
            if stop:
                if self.is_main:
                    bar.write(f"step {self.step}: stopped on request after checkpointing")
                break
        if self.checkpoints.should_save(self.step, ending=True):
            self.save()
        bar.close()
        summary = self.data.summary()
        if self.is_main and summary:
            print(summary, flush=True)
        self.metrics.close()
        return self.step

    def close(self) -> None:
        if torch.distributed.is_initialized():
            torch.distributed.barrier()
            torch.distributed.destroy_process_group()
        if getattr(self, "lock", None) is not None:  # the run folder is free for the next trainer
            self.lock.release()


class TrainingDiverged(GPTStackError):
    """The loss stopped being a finite number: the run stops before checkpointing the broken model."""


# EX_TEMPFAIL: stopped on a signal after writing a checkpoint; starting again continues (slurm/pretrain.sh requeues)
EXIT_STOPPED_ON_REQUEST = 75


def stop_on_signals(trainer: "Trainer") -> None:
    """USR1 (Slurm's warning before a time limit or preemption), TERM (scancel, requeue, node drain) and INT (Ctrl-C,
    which a learner presses and torchrun passes on): finish the current step on every rank, write a checkpoint, then
    exit with EXIT_STOPPED_ON_REQUEST. A second Ctrl-C stops at once, without a checkpoint."""
    def handler(signum, frame):
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        if trainer.is_main:
            again = " (Ctrl-C again to stop without it)" if signum == signal.SIGINT else ""
            print(f"received {signal.Signals(signum).name}: checkpointing after this step, then stopping{again}",
                  flush=True)
        trainer.request_stop()

    for signum in (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)


def main(argv=None) -> int:
    watch_launcher()  # a rank whose torchrun/deepspeed launcher dies stops at once, not at the last step
    args = parse_args(argv)
    try:
        config = resolve_config(args)
        dist_env = resolve_dist_env()
        if args.print_config:
            if dist_env.is_main:
                print(describe(config, dist_env.world_size), end="")
            return 0
        return train_to_the_end(Trainer(config, dist_env, args.resume, args.force))
    except GPTStackError as error:
        exit_with_error(error)
    except Exception:
        stop_if_launcher_gone()  # a peer that stopped because the launcher died: say that, not the collective's error
        raise


def train_to_the_end(trainer: Trainer) -> int:
    """Train until train.max_steps or a stop request (0, or EXIT_STOPPED_ON_REQUEST for the job script to requeue);
    a run already at max_steps says so and trains nothing. model.sft runs its trainer the same way."""
    stop_on_signals(trainer)
    max_steps = trainer.config.train.max_steps
    if trainer.finished:
        if trainer.is_main:
            print(f"{trainer.resume_from} is at step {trainer.resume_state['step']} >= train.max_steps={max_steps}: "
                  "nothing to train (raise --max-steps to continue)")
        return 0
    trainer.setup()
    step = trainer.fit()
    trainer.close()
    return EXIT_STOPPED_ON_REQUEST if step < max_steps else 0


if __name__ == "__main__":
    sys.exit(main())
