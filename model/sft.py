"""Supervised fine-tuning on conversations: `gptstack sft` (`python -m model.sft`), on model.train's DeepSpeed trainer.

    # from the quick start's pretrained run, on a jsonl of conversations (OpenAI messages or Alpaca lines)
    DS_ACCELERATOR=cpu python -m model.sft --config sft-tiny-cpu --base runs/quickstart-en --data chats.jsonl \\
        --run-dir runs/sft
    # LoRA instead of full fine-tuning
    ... --set sft.lora_rank=8
    # 2 ranks
    torchrun --nproc-per-node 2 -m model.sft --config sft-tiny-cpu --base runs/tiny --data chats.jsonl

What differs from pretraining, and nothing else does (steps, ZeRO, precision, checkpoints, resume after kill -9 with
bit-identical losses, signals, metrics are the trainer's): the model starts from --base's weights (either family;
GPT-2 BPE grows from 50,257 to 50,259 ids, the chat markers, inside its padding rows); the batches are ChatML
conversations (model/chat/data.py) whose loss falls on the assistant's tokens only; the validation loss is that of
held-out conversations. Everything the input can get wrong is one `error:` line before anything is written.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path

import torch

from cluster.env import resolve_dist_env
from cluster.lifeline import stop_if_launcher_gone, watch_launcher
from gptstack.cli_args import ArgumentParser, add_force_argument
from gptstack.errors import GPTStackError, InputError, exit_with_error
from model import checkpoint as ckpt
from model.build import count_parameters
from model.chat.data import RowBatches, build_rows, encode_all, fingerprint
from model.chat.template import ChatFormat
from model.checkpoint import weights
from model.config import ConfigError
from model.run_tokenizer import check_resume_tokenizer, weights_tokenizer
from model.sft_config import SFTConfig, lora_targets, model_values, resolve_sft_config
from model.train import Trainer, check_output_folder, train_to_the_end


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(
        prog="gptstack sft",
        description="Fine-tune a pretrained GPT-2 or Qwen3-style checkpoint on conversations (ChatML; loss on the "
                    "assistant's tokens only), fully or with LoRA, on the DeepSpeed trainer of model.train.",
        epilog="examples:\n"
               "  DS_ACCELERATOR=cpu gptstack sft --config sft-tiny-cpu --base runs/quickstart-en --data chats.jsonl\n"
               "  gptstack sft --config sft-tiny-cpu --base runs/tiny --data alpaca.jsonl --set sft.lora_rank=8\n"
               "  gptstack sft --config sft-tiny-cpu --base runs/tiny --data hf:HuggingFaceTB/smoltalk:all:train "
               "--set sft.limit=20000\n"
               "A jsonl line is {\"messages\": [{\"role\": \"user\", \"content\": ...}, ...]} or Alpaca's "
               "{\"instruction\", \"input\", \"output\"}; docs/chat.md has the rest.")
    parser.add_argument("--config", type=Path, help="YAML config (configs/sft-tiny-cpu.yaml): train/optim/eval/"
                                                    "checkpoint sections as model.train's, plus sft")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key, e.g. --set sft.lora_rank=8 (repeatable)")
    parser.add_argument("--base", help="pretrained run folder, checkpoint step_N or weights folder (= sft.base)")
    parser.add_argument("--data", help="conversations: FILE.jsonl or hf:NAME[:CONFIG]:SPLIT (= sft.data)")
    parser.add_argument("--val-data", help="held-out conversations (= sft.val_data; default: the last "
                                           "sft.val_fraction of --data)")
    parser.add_argument("--run-dir", help="output folder (= --set run_dir=DIR)")
    parser.add_argument("--max-steps", type=int, help="optimizer steps (= --set train.max_steps=N)")
    parser.add_argument("--resume", default="auto", help="auto (default), none, or a checkpoint PATH: as model.train")
    add_force_argument(parser, "--run-dir")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def base_model_values(base: Path) -> dict:
    """The model section of --base: its own config, the vocabulary grown to its tokenizer's chat markers."""
    folder = weights.resolve_checkpoint(base)
    gpt = weights.load_config(folder)
    tokenizer = weights_tokenizer(folder)
    chat = ChatFormat.for_tokenizer(tokenizer)
    if gpt.vocab_size not in (tokenizer.vocab_size, chat.vocab_size):
        raise InputError(f"--base {base}: the model has {gpt.vocab_size:,} ids but its tokenizer {tokenizer.label!r} "
                         f"{tokenizer.vocab_size:,}: a checkpoint of another tokenizer")
    return model_values(dataclasses.replace(gpt, vocab_size=chat.vocab_size))


class SFTData:
    """Train rows and held-out rows of conversations; what Trainer.fit asks of its data (progress, summary)."""

    def __init__(self, config: SFTConfig, chat: ChatFormat, micro_batch: int, rank: int, world_size: int,
                 say=print):
        s, seq_len = config.sft, config.data.seq_len
        read = dict(form=s.format, limit=s.limit, too_long=s.too_long)
        conversations, skipped = encode_all(s.data, chat, seq_len, **read)
        val = []
        if s.val_data:
            val, skipped_val = encode_all(s.val_data, chat, seq_len, **read)
            skipped += skipped_val
        elif s.val_fraction > 0:
            held = max(1, round(len(conversations) * s.val_fraction))
            if held >= len(conversations):
                raise InputError(f"{s.data}: {len(conversations)} conversation(s) leave none to train on after "
                                 f"holding out sft.val_fraction={s.val_fraction}")
            conversations, val = conversations[:-held], conversations[-held:]
        ids, targets = build_rows(conversations, seq_len, s.packing, chat.eot)
        self.train = RowBatches(ids, targets, micro_batch, rank, world_size, config.data.seed, config.data.shuffle)
        self.val = build_rows(val, seq_len, s.packing, chat.eot) if val else None
        self.fingerprint = fingerprint(ids, targets)
        learned = int((targets[:, 1:] >= 0).sum())
        self.description = (f"{len(conversations):,} conversations in {len(ids):,} rows of {seq_len + 1} tokens "
                            f"({s.packing}; {learned:,} learned tokens, {learned / ids[:, 1:].size:.0%} of the "
                            f"rows), {len(val):,} held out" + (f", {skipped:,} skipped as too long" if skipped else ""))
        if say:
            say(self.description)

    def plan(self, tokens: int):
        rows = tokens / (self.train.ids.shape[1] - 1)
        return f"{rows / len(self.train.ids):.1f} epoch(s) of the conversations in train.max_steps"

    def progress(self) -> dict:
        return {"epoch": round(self.train.epoch(), 4)}

    def summary(self):
        return None


class SFTTrainer(Trainer):
    """model.train's Trainer with a base model, conversation batches and a held-out conversation loss."""

    def _preflight(self, resume: str) -> None:
        c, env = self.config, self.env
        self.base_weights = weights.resolve_checkpoint(c.sft.base)
        self.tokenizer = weights_tokenizer(self.base_weights)
        self.chat = ChatFormat.for_tokenizer(self.tokenizer)
        self.data = SFTData(c, self.chat, self.micro_batch, env.rank, env.world_size,
                            say=print if self.is_main else None)
        self.train_batches, self.data_fingerprint = self.data.train, self.data.fingerprint
        self.hellaswag = self.suite = None  # pretraining's benchmarks (HellaSwag, eval.suite): not run here
        if self.is_main:  # the output-folder rule and the lock, as model.train
            self.claim_run_folder("model.sft")
        self.resume_from = ckpt.resolve_resume(resume, self.run_dir, say=print if self.is_main else None)
        self.resume_state = None
        if self.resume_from is not None:
            check_resume_tokenizer(self.resume_from, self.tokenizer)  # --base of another tokenizer: one line
            self.resume_state = ckpt.check_compatible(self.resume_from, self.gpt_config, c.data.seq_len, c.optim.name)
            saved_lora = self.resume_state.get("sft", {}).get("lora_rank", 0)
            if saved_lora != c.sft.lora_rank:
                raise ConfigError(f"checkpoint {self.resume_from} was trained with sft.lora_rank={saved_lora}, the "
                                  f"config has {c.sft.lora_rank}: a run continues with its own adapters")
            self.train_batches.load_state_dict(self.resume_state["loader"], str(self.resume_from))
            if self.is_main and self.resume_state.get("data_fingerprint") not in (None, self.data_fingerprint):
                print(f"warning: the conversations differ from those {self.resume_from.name} was trained on; "
                      f"continuing at the same row count", file=sys.stderr)
        self.finished = self.resume_state is not None and self.resume_state["step"] >= c.train.max_steps
        parameters = count_parameters(self.gpt_config, non_embedding=False)
        check_output_folder(self.run_dir, ckpt.estimated_checkpoint_bytes(parameters), c.checkpoint.keep_last)

    def new_model(self) -> torch.nn.Module:
        base = weights.load_model(self.base_weights)
        state = {name: t for name, t in base.state_dict().items()
                 if not (base.config.tied and name == weights.TIED_COPY)}
        model = weights.build_model(self.gpt_config, state, self.base_weights).train()
        if self.config.sft.lora_rank:
            from model.chat.lora import add_lora
            add_lora(model, self.config.sft.lora_rank, self.config.sft.lora_alpha, lora_targets(self.config.sft),
                     rows=[self.chat.im_start, self.chat.im_end])
        return model

    def setup(self) -> None:
        super().setup()
        if self.config.sft.lora_rank:
            from model.chat.lora import merged_state
            self.checkpoints.export_weights = merged_state

    def evaluate(self) -> dict:
        record = {"step": self.step}
        if self.data.val is not None:
            record["val_loss"] = self.val_loss()
        return record

    @torch.no_grad()
    def val_loss(self) -> float:
        """Mean loss per learned token of the held-out rows (at most eval.val_batches micro-batches per rank).
        Every rank runs the same number of forward passes (ZeRO-3 gathers in each); rows past the end count 0."""
        ids, targets = self.data.val
        micro, world = self.micro_batch, self.env.world_size
        batches = min(self.config.eval.val_batches, math.ceil(len(ids) / (micro * world)))
        self.engine.module.eval()
        total = torch.zeros(2, dtype=torch.float64, device=self.device)
        for b in range(batches):
            rows = [r for r in range((b * world + self.env.rank) * micro, (b * world + self.env.rank + 1) * micro)]
            x = torch.from_numpy(ids[[r % len(ids) for r in rows], :-1].copy()).to(self.device)
            y = torch.from_numpy(targets[[r % len(ids) for r in rows], 1:].copy())
            y[[i for i, r in enumerate(rows) if r >= len(ids)]] = -1  # wrapped rows: not counted twice
            y = y.to(self.device)
            _, loss = self.engine(x, y)
            count = (y >= 0).sum()
            if count:
                total += torch.stack([loss.double() * count, count.double()])
        self.engine.module.train()
        torch.distributed.all_reduce(total, op=torch.distributed.ReduceOp.SUM)
        return (total[0] / total[1]).item() if total[1] else float("nan")

    def save(self) -> Path:
        c = self.config
        state = {"loader": self.train_batches.state_dict(), "data_fingerprint": self.data_fingerprint,
                 "zero_stage": c.train.zero_stage, "optim": c.optim.name, "precision": c.train.precision,
                 "tokens_per_step": c.train.tokens_per_step, "tokenizer": self.tokenizer.record(),
                 "sft": {"base": str(c.sft.base), "chat_format": "chatml", "lora_rank": c.sft.lora_rank,
                         "lora_alpha": c.sft.lora_alpha, "lora_targets": c.sft.lora_targets}}
        path = self.checkpoints.save(self.engine, self.step, state)
        if c.sft.lora_rank and self.is_main:
            from model.chat.lora import save_adapters
            save_adapters(self.engine.module, self.run_dir / "lora_adapters.safetensors")
        return path


def main(argv=None) -> int:
    watch_launcher()
    args = parse_args(argv)
    try:
        flags = {"sft.base": args.base, "sft.data": args.data, "sft.val_data": args.val_data,
                 "run_dir": args.run_dir, "train.max_steps": args.max_steps}
        config = resolve_sft_config(args.config, args.overrides, {k: v for k, v in flags.items() if v is not None},
                                    base_model_values)
        dist_env = resolve_dist_env()
        return train_to_the_end(SFTTrainer(config, dist_env, args.resume, args.force))
    except GPTStackError as error:
        exit_with_error(error)
    except Exception:
        stop_if_launcher_gone()
        raise


if __name__ == "__main__":
    sys.exit(main())
