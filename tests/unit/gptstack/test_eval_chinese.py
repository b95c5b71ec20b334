"""C-Eval and CMMLU read from csv files written in their published formats (the data itself is not shipped)."""
import pytest

from gptstack import eval_data
from gptstack.errors import InputError

CEVAL = ("id,question,A,B,C,D,answer,explanation\n"
         "0,下列关于长城的说法，正确的是____,始建于明朝,位于南方,是古代军事防御工程,长度不足百里,C,\n"
         "1,水的化学式是____,CO2,H2O,NaCl,O2,B,1. 水由氢和氧组成\n")
CMMLU = (",Question,A,B,C,D,Answer\n"
         "0,肉牛屠宰后，胴体的哪个部位肉质较好,胸,腹,大腿,小腿,C\n"
         "1,\"下列鸭品种中，产蛋量最高的品种是\",高邮鸭,北京鸭,樱桃谷鸭,绍鸭,D\n")


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    (tmp_path / "ceval" / "val").mkdir(parents=True)
    (tmp_path / "ceval" / "val" / "high_school_chemistry_val.csv").write_text(CEVAL, encoding="utf-8")
    (tmp_path / "cmmlu" / "test").mkdir(parents=True)
    (tmp_path / "cmmlu" / "test" / "agronomy.csv").write_text(CMMLU, encoding="utf-8")
    monkeypatch.setenv("GPTSTACK_EVAL_DATA", str(tmp_path))
    return tmp_path


def test_ceval_and_cmmlu_rows_become_examples(data_dir):
    ceval = eval_data.load_examples("ceval")
    assert [e.gold for e in ceval] == [2, 1] and ceval[1].choices == ("CO2", "H2O", "NaCl", "O2")
    assert ceval[0].context.startswith("以下是关于high school chemistry的单项选择题")  # subject from the file name
    assert eval_data.example_text(ceval[1]).endswith("答案： H2O")
    cmmlu = eval_data.load_examples("cmmlu")
    assert [e.gold for e in cmmlu] == [2, 3] and "产蛋量最高" in cmmlu[1].context
    assert eval_data.resolve_tasks("chinese") == ["ceval", "cmmlu"]
    assert "ceval" not in eval_data.SUITES["core"]  # core never needs the fetched data


def test_missing_data_says_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("GPTSTACK_EVAL_DATA", str(tmp_path))
    with pytest.raises(InputError, match="not shipped.*--fetch cmmlu"):
        eval_data.load_examples("cmmlu")


def test_a_wrong_header_or_answer_names_the_file(data_dir):
    bad = data_dir / "cmmlu" / "test" / "agronomy.csv"
    bad.write_text("Question,A,B,C,D\n问,甲,乙,丙,丁\n", encoding="utf-8")
    with pytest.raises(InputError, match=f"{bad}: not a cmmlu csv file: no column Answer"):
        eval_data.load_examples("cmmlu")
    bad.write_text(CMMLU.replace(",C\n", ",E\n"), encoding="utf-8")
    with pytest.raises(InputError, match="row 0 of task cmmlu is malformed"):
        eval_data.load_examples("cmmlu")
