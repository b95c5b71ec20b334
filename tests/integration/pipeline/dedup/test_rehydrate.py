"""--rehydrate with the fineweb2 recipe on a crawl of one's own: our dedup records each kept document's cluster size,
and rehydration repeats it with FineWeb-2's weights (a cluster of 3 -> 3 copies, of 5 -> 5), after the quality
filters and before the shuffle; the counts before and after are in the manifest."""
import json
from collections import Counter

from pipeline.prepare import main as prepare_main
from pipeline.shards import read_manifest
from tests.support.hub_mirrors import chinese_articles
from tests.support.shards import decoded_documents


def test_fineweb2_recipe_rehydrates_the_clusters_its_dedup_found(tmp_path):
    zh = chinese_articles(12)
    crawl = tmp_path / "crawl.jsonl"
    with open(crawl, "w", encoding="utf-8") as f:
        for i, text in enumerate(zh + [zh[0]] * 2 + [zh[1]] * 4):  # clusters of 3 and 5 exact duplicates
            f.write(json.dumps({"text": text, "id": f"d{i}", "url": f"http://www.people.com.cn/{i}.html"},
                               ensure_ascii=False) + "\n")
    out = tmp_path / "out"
    prepare_main(["--input", str(crawl), "--recipe", "fineweb2", "--languages", "zh", "--rehydrate",
                  "--output", str(out), "--tasks", "1", "--val-tokens", "0"])
    manifest = read_manifest(out)
    kept = manifest["cleaning"]["documents"]["kept"]
    counts = Counter(decoded_documents(out))
    assert counts[zh[0]] == 3 and counts[zh[1]] == 5 and set(counts) <= set(zh)
    rehydration = manifest["rehydration"]
    assert (rehydration["documents_before"], rehydration["documents_after"]) == (kept, kept + 6)
    assert rehydration["tokens_after"] + rehydration["documents_after"] == manifest["totals"]["tokens"]
