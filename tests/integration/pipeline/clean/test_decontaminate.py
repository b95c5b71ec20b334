"""End to end: `python -m pipeline.prepare --recipe fineweb` on real web documents, two of them holding an evaluation
example (one verbatim, one with a word changed): both land in the decontaminate step's exclusion folder with their
task and example, the report counts them per task, and the shards hold the other documents but not them."""
import gzip
import json
import subprocess
import sys

import numpy as np

from gptstack import eval_data
from pipeline.clean.decontam_index import contamination_text
from pipeline.shards import open_shard, read_manifest, shard_paths
from pipeline.tokenizer import get_tokenizer
from tests.support import REPO_ROOT


def test_planted_examples_are_excluded_with_task_and_example(shared_data, tmp_path):
    lines = (shared_data / "text" / "dclm_majority_data.jsonl").read_text().splitlines()[:30]
    docs = [json.loads(line) for line in lines]
    arc = eval_data.load_examples("arc_challenge")[41]
    hellaswag = eval_data.load_examples("hellaswag")[1234]
    words = contamination_text(hellaswag).split()
    paraphrased = " ".join(words[:len(words) // 2] + ["suddenly"] + words[len(words) // 2 + 1:])
    # documents 8 and 19 pass FineWeb's filters: the decontamination step, the last one, sees them
    planted = {8: contamination_text(arc), 19: paraphrased}
    for number, text in planted.items():
        paragraphs = docs[number]["text"].split("\n")
        middle = len(paragraphs) // 2
        docs[number]["text"] = "\n".join(paragraphs[:middle] + [text] + paragraphs[middle:])
    source = tmp_path / "docs.jsonl"
    source.write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "pipeline.prepare", "--input", str(source), "--output", str(out),
                             "--recipe", "fineweb", "--val-tokens", "1000", "--shard-tokens", "20000"],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]

    report = json.loads((out / "cleaning" / "report.json").read_text())
    step = report["steps"][-1]
    assert step["step"] == "decontaminate" and report["accounting_ok"]
    assert step["dropped"] == {"contaminated_arc_challenge": 1, "contaminated_hellaswag": 1}
    markdown = (out / "cleaning" / "report.md").read_text()
    assert "| decontaminate | contaminated_hellaswag | 1 |" in markdown
    assert f"2 of {step['docs_in']} documents shared an n-gram" in markdown and "| arc_challenge | 1 |" in markdown
    excluded = [json.loads(line) for path in sorted((out / step["exclusion_folder"]).glob("*.jsonl.gz"))
                for line in gzip.open(path, "rt")]
    found = {doc["id"].rsplit("/", 1)[-1]: doc["metadata"]["contamination"] for doc in excluded}
    assert {k: (v["task"], v["example"]) for k, v in found.items()} == {"8": ("arc_challenge", 41),
                                                                        "19": ("hellaswag", 1234)}
    assert found["8"]["ngrams"] == len(contamination_text(arc).split()) - 12  # every 13-gram of it

    encoding = get_tokenizer("gpt2").encoding
    tokens = np.concatenate([open_shard(p) for split in ("val", "train") for p in shard_paths(out, split)])
    text = encoding.decode(tokens.tolist())
    assert arc.context.split("\n")[0][10:] not in text and " ".join(words[:12]) not in text
    kept = report["documents"]["kept"]
    assert read_manifest(out)["totals"]["documents"] == kept == step["docs_in"] - 2 > 10
    assert docs[2]["text"][:200] in text  # a clean document went through
