"""The data-pipeline benches (bench/bench_tokenize.py, bench_dedup.py, bench_clean.py, bench_executors.py) run to
completion in their smallest setting (--quick). Their speeds are not checked (they mean nothing at this size); what
each bench checks itself is: the methods agree on the token count, both cleaning chains keep the same documents,
both executors write byte-identical shards, and the planted near duplicates are found. bench_executors starts a Ray
cluster, which tests/ray_cluster.py keeps in a loopback-only network namespace (as tests/test_ray_executor.py)."""
import re
import subprocess
import sys

from tests.support import REPO_ROOT


def run_bench(*args: str) -> str:
    result = subprocess.run([sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def test_bench_tokenize_quick_counts_the_same_tokens_three_ways():
    out = run_bench("bench/bench_tokenize.py", "--quick")
    # the script exits non-zero when the three methods disagree on the token count
    assert re.search(r"^200 documents, [\d,]+ tokens \(first 200 of the sample corpus x1\)", out, re.M), out
    for method in ("raw tiktoken", "our step", "build-nanogpt"):
        assert re.search(rf"^{method} +[\d,]+ +[\d,]+ +[\d.]+x +[\d.]+x +[\d,]+$", out, re.M), out


def test_bench_dedup_quick_finds_the_planted_duplicates():
    out = run_bench("bench/bench_dedup.py", "--quick")
    assert "corpus: 100 real documents (100 dclm web pages + Wikipedia leads), 10 planted near duplicates" in out, out
    bands = re.findall(r"^ +(0\.\d-\d\.\d) +(\d+) +([\d.]+) +([\d.]+) +[\d.]+$", out, re.M)
    assert [band for band, *_ in bands] == ["0.5-0.6", "0.6-0.7", "0.7-0.8", "0.8-0.9", "0.9-1.0"], out
    assert all(copies == "2" for _, copies, *_ in bands), out
    assert float(bands[-1][2]) == 1.0 and float(bands[-1][3]) == 1.0, out  # Jaccard >= 0.9: removed, original kept
    assert re.search(r"^recall at Jaccard >= 0\.8: [\d.]+ \(4 copies; target >= 0\.95\)$", out, re.M), out
    assert re.search(r"^false positives: 0 of 100 original documents removed", out, re.M), out
    for corpus in ("half the originals", "all originals", "all originals, 2x duplicates"):
        assert re.search(rf"^ +{corpus} +[\d,]+ +[\d,]+ +(?:[\d.]+ +){{3}}[\d.]+$", out, re.M), out


def test_bench_clean_quick_both_chains_keep_the_same_documents():
    out = run_bench("bench/bench_clean.py", "--quick")
    row = r"^(filter chain|whole pipeline), .+? +(\d+) +[\d.]+ +[\d.]+ +[\d.]+x +[\d.]+x +(\d+) +(\d+) +(\S+)$"
    rows = re.findall(row, out, re.M)
    assert [kind for kind, *_ in rows] == ["filter chain", "filter chain"], out  # (--quick skips the whole pipeline)
    for _, documents, kept_datatrove, kept_ours, identical in rows:
        # (the script exits non-zero when a row is not identical)
        assert identical == "yes" and kept_datatrove == kept_ours and 0 < int(kept_ours) <= int(documents), out


def test_bench_clean_quick_quality_scores_the_kept_documents():
    out = run_bench("bench/bench_clean.py", "--quick", "--quality")
    assert re.search(r"^documents 20 \(good \d+, bad \d+\); kept [1-9]\d*, of which good \d+; accounting ok: True$",
                     out, re.M), out
    assert re.search(r"^precision of kept vs good: [\d.]+ +recall of good: [\d.]+", out, re.M), out


def test_bench_executors_quick_gives_the_same_shards_on_ray():
    out = run_bench("bench/bench_executors.py", "--quick")
    # the script stops with an AssertionError when the two executors' shards differ
    assert re.search(r"^200 documents, [\d,]+ tokens, 2 tasks per stage, 1 cores; shards byte-identical: yes$", out,
                     re.M), out
    assert re.search(r"^local \(1 workers\) +[\d.]+ +[\d,]+ +[\d,]+ +1\.00x$", out, re.M), out
    assert re.search(r"^ray \(1 nodes x 1 CPU\) +[\d.]+ +[\d,]+ +[\d,]+ +[\d.]+x$", out, re.M), out
    stages = re.findall(r"^  (\S+) +local +[\d.]+ +ray +[\d.]+$", out, re.M)
    assert stages[0] == "read" and "tokenize" in stages and "dedup-signatures" not in stages, out  # (--no-dedup)
