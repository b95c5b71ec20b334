"""Decontamination: the normalisation, the n-gram matching (English words, Chinese characters), the cached index of
the real evaluation examples, and the recipe step's checks."""
import json

import pytest
import yaml

from gptstack import eval_data
from pipeline.clean import RecipeError, build_cleaning_steps, load_recipe
from pipeline.clean.decontam import NGramIndex, Settings, tokens
from pipeline.clean.decontam_index import cached_index, contamination_text, load_index

EXAMPLE = ("A man is standing on a ladder next to a house. He uses a scraper to remove the old paint from "
           "the wooden siding, then wipes the boards down with a damp cloth before priming them.")  # 36 words
HOST = " Weekend projects around the house can save money. " * 3  # (spaces: no words run together)
ZH = "小明把一杯热水放进冰箱里，过了半个小时以后拿出来，发现杯子里的水已经变得很凉了。这说明冰箱可以降低物体的温度。"


def index_of(*texts, settings=Settings()):
    return NGramIndex.build([("task", i, text) for i, text in enumerate(texts)], settings)


def test_normalisation_lowercases_deletes_punctuation_and_splits_cjk_characters():
    assert tokens("Don't stop! The U.S. costs $5.") == ["dont", "stop", "the", "us", "costs", "5"]
    assert tokens("中文，测试。Hello, 世界") == ["中", "文", "测", "试", "hello", "世", "界"]
    assert tokens("日本語のテキスト 2023年") == ["日", "本", "語", "の", "テ", "キ", "ス", "ト", "2023", "年"]


def test_verbatim_example_is_found_whatever_its_case_and_punctuation():
    index = index_of("An unrelated example about the weather in spring, long enough to be indexed here.", EXAMPLE)
    match = index.match(HOST + EXAMPLE.upper().replace(",", " ;") + HOST)
    assert (match.task, match.index) == ("task", 1) and match.ngrams == len(tokens(EXAMPLE)) - 12
    assert match.ngram == " ".join(tokens(EXAMPLE)[:13])
    assert index.match(HOST * 3) is None


def test_paraphrased_example_and_near_miss():
    index = index_of(EXAMPLE)
    words = EXAMPLE.split()
    one_changed = " ".join(words[:18] + ["carefully"] + words[19:])  # 18 untouched words before it
    assert index.match(HOST + one_changed).index == 0
    every_tenth = " ".join("zzz" if i % 10 == 9 else w for i, w in enumerate(words))  # no 13 untouched in a row
    assert index.match(HOST + every_tenth) is None
    assert index.match(HOST + " ".join(words[:12]) + HOST) is None  # 12 words shared: below the 13-gram
    assert index.match(HOST + " ".join(words[:13]) + HOST).index == 0


def test_short_examples_whole_templates_left_out():
    index = index_of("The man turned on the faucet therefore water flowed out.", "Too short to index.")
    assert index.stats["task"] == {"examples": 2, "covered": 1, "uncovered": 1, "ngrams": 1}
    assert index.match("Yesterday the man turned on the faucet; therefore, water flowed out!").index == 0
    assert index.match("the man turned on the faucet therefore water flowed") is None  # 9 of 10 words
    template = "Which of the following statements best describes the main idea of this passage"
    shared = index_of(*[f"{template} number {i}?" for i in range(12)], settings=Settings(max_examples=10))
    assert shared.match(f"{template} in the reading section") is None  # in 12 examples: a template


def test_chinese_character_ngrams():
    index = index_of(ZH, EXAMPLE)
    assert index.cjk_lengths == {25}
    assert index.match("今天的科学课上，老师讲了一个例子：" + ZH + "同学们都明白了。").index == 0
    assert index.match("今天的科学课上" + ZH[:26] + "同学们") is None  # 24 characters, 2 commas: no 25-gram
    assert index.match("今天的科学课上" + ZH[:27] + "同学们").index == 0
    assert index.match("完全无关的新闻报道，讲的是北京的天气和交通情况，没有任何相同的内容。") is None


def test_index_of_real_examples_is_cached_and_finds_them(tmp_path):
    folder = cached_index("copa,openbookqa", cache_dir=tmp_path)
    assert cached_index("copa,openbookqa", cache_dir=tmp_path) == folder  # the key is stable: no rebuild
    assert cached_index("copa,openbookqa", Settings(n=12), cache_dir=tmp_path) != folder
    index = load_index(folder)
    described = json.loads((folder / "index.json").read_text())
    assert described["tasks"] == ["copa", "openbookqa"] and index.stats["copa"]["examples"] == 100
    example = eval_data.load_examples("openbookqa")[7]
    assert "Answer:" not in contamination_text(eval_data.load_examples("piqa")[0])
    match = index.match(HOST + contamination_text(example) + HOST)
    assert (match.task, match.index) == ("openbookqa", 7)


def test_recipe_step_checks_its_suite(tmp_path):
    data = yaml.safe_load(open(load_recipe("fineweb").path))
    step = next(s for s in data["steps"] if s["step"] == "decontaminate")
    step["params"].update(suite="copa,no_such_task", cache_dir=str(tmp_path))
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(RecipeError, match=r"mine.yaml: step decontaminate: suite 'copa,no_such_task': unknown "
                                          r"evaluation task no_such_task"):
        build_cleaning_steps(load_recipe(str(path)), str(tmp_path), ["en"], html_input=False)
    step["params"].update(suite="copa", min_n=20)
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(RecipeError, match="need 1 <= min_n <= n"):
        build_cleaning_steps(load_recipe(str(path)), str(tmp_path), ["en"], html_input=False)
    (tmp_path / "a-file").write_text("")
    step["params"].update(min_n=8, cache_dir=str(tmp_path / "a-file" / "cache"))  # not a folder it can write
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(RecipeError, match=r"step decontaminate: suite 'copa': cannot write the decontamination index"):
        build_cleaning_steps(load_recipe(str(path)), str(tmp_path), ["en"], html_input=False)


def test_fetched_chinese_tasks_are_indexed_by_characters_without_their_frame(tmp_path, monkeypatch):
    folder = tmp_path / "eval" / "ceval" / "val"
    folder.mkdir(parents=True)
    question = "小明把一杯热水放进冰箱里，过了半个小时以后拿出来，发现杯子里的水变凉了，这说明冰箱能够"
    subject = folder / "physics_val.csv"  # C-Eval's published layout and header
    subject.write_text(f"id,question,A,B,C,D,answer\n0,{question},降低温度,升高温度,加热物体,产生热量,A\n",
                       encoding="utf-8")
    monkeypatch.setenv("GPTSTACK_EVAL_DATA", str(tmp_path / "eval"))
    monkeypatch.setattr(eval_data, "_CACHE", {})
    folder = cached_index("copa,ceval", cache_dir=tmp_path / "cache")
    index = load_index(folder)
    assert index.cjk_lengths == {25} and index.stats["ceval"]["covered"] == 1
    match = index.match("网友转帖：" + question + "降低温度。大家怎么看？")
    assert (match.task, match.index) == ("ceval", 0)
    assert index.match("以下是关于physics的单项选择题。题目：今天天气很好答案：") is None  # the frame is not content
    subject.write_text(subject.read_text(encoding="utf-8").replace(",A\n", ",B\n"), encoding="utf-8")
    monkeypatch.setattr(eval_data, "_CACHE", {})
    assert cached_index("copa,ceval", cache_dir=tmp_path / "cache") != folder  # changed files: a new index


def test_a_worker_without_the_parents_cache_builds_its_own(tmp_path):
    import pickle
    import shutil

    from datatrove.data import Document

    from pipeline.clean.steps import Decontaminate

    step = Decontaminate(suite="copa", cache_dir=str(tmp_path / "cache"))
    shutil.rmtree(tmp_path / "cache")  # as on a Slurm node that cannot see the machine that planned the run
    worker = pickle.loads(pickle.dumps(step))
    example = eval_data.load_examples("copa")[3]
    result = worker.filter(Document(text=HOST + contamination_text(example) + HOST, id="x"))
    assert result == (False, "contaminated_copa") and (tmp_path / "cache").is_dir()
