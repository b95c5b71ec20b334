"""The cost table of docs/chat.md: hours and money for pretraining, SFT and LoRA on the cards learners rent, ESTIMATED
from the standard formula, not measured (no GPU run has measured them yet; bench/gpu_check.sh is the run that would).

    python bench/sft_cost_table.py            # prints the Markdown table

    FLOPs = 6 * N * D      pretraining and full SFT (forward 2ND + backward 4ND; attention's share ignored: small at
                           1,024 tokens for 124M parameters)
    FLOPs = 4 * N * D      LoRA: the frozen base still runs forward (2ND) and passes gradients back through every
                           layer (about 2ND), but computes no weight gradient for it
    hours = FLOPs / (cards * peak bf16 dense FLOP/s * MFU) / 3600, perfect scaling to 8 cards assumed

Peak dense bf16 tensor throughput with fp32 accumulation, from NVIDIA's architecture whitepapers: RTX 3090 71
TFLOP/s (GA102), RTX 4090 165.2 (AD102), A100 SXM 312, H100 SXM 989. MFU: 40% on A100/H100 (nanochat measures 41-46%
on 8xH100, Megatron-LM 41-47%); 25% on the consumer cards (an assumption: one 4090 user reported 13% with nanochat,
issue #157). Prices: RunPod on-demand per GPU-hour, March 2026 (deploybase.ai/articles/runpod-gpu-pricing): 3090
$0.39, 4090 $0.60, A100 SXM 80GB $2.45, H100 SXM $4.76; yuan at 7.1 per dollar. Cheaper offers exist (MiniMind quotes
a 3090 at about 1.3 yuan/h in China; spot prices run 30-60% lower).
"""
CARDS = {  # name: (peak bf16 dense TFLOP/s, MFU, $ per GPU-hour)
    "RTX 3090": (71.0, 0.25, 0.39),
    "RTX 4090": (165.2, 0.25, 0.60),
    "A100 80GB": (312.0, 0.40, 2.45),
    "H100 SXM": (989.0, 0.40, 4.76),
}
YUAN_PER_DOLLAR = 7.1
N = 124e6  # GPT-2 small (configs/gpt2-124m.yaml)
STAGES = {  # name: (FLOPs, what)
    "pretrain": (6 * N * 10e9, "10B tokens (configs/gpt2-124m.yaml: 19,073 steps x 0.5M)"),
    "SFT": (6 * N * 0.2e9, "200M tokens of conversations (about 2 epochs of SmolTalk's 0.4M-conversation 'everyday' "
                           "subsets, or 1 epoch of a 300k-conversation set)"),
    "LoRA": (4 * N * 0.2e9, "the same 200M tokens, base frozen"),
}


def table() -> str:
    lines = ["| stage | card | 1 card: hours | 1 card: $ / ¥ | 8 cards: hours | 8 cards: $ / ¥ |",
             "|---|---|---|---|---|---|"]
    for stage, (flops, _) in STAGES.items():
        for card, (tflops, mfu, price) in CARDS.items():
            hours = flops / (tflops * 1e12 * mfu) / 3600
            cost = hours * price
            lines.append(f"| {stage} | {card} | {hours:,.1f} | ${cost:,.2f} / ¥{cost * YUAN_PER_DOLLAR:,.1f} | "
                         f"{hours / 8:,.2f} | ${cost:,.2f} / ¥{cost * YUAN_PER_DOLLAR:,.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    for stage, (flops, what) in STAGES.items():
        print(f"{stage}: {flops:.3g} FLOPs = {what}")
    print(table())
