"""The shared word split gives datatrove's words, sentences and filter decisions exactly, only faster."""
import json
import pickle

from datatrove.data import Document
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter, GopherQualityFilter,
                                        GopherRepetitionFilter)
from datatrove.utils.word_tokenizers import SpaCyTokenizer

from pipeline.clean.words import SharedWordTokenizer

# spaCy exceptions across chunk boundaries, contractions, URLs, odd whitespace, the string that breaks spaCy
TRICKY = ["a : ) b :) c :-) d", "he said so.'' When I came (Month): 3 (1) - (2)", "don't can't U.S. e.g. 5 p.m.",
          "x\xa0y  \u2003z\n\n\tw", "IS_ALPHA is here", "", "   ", "http://example.com/a?b=c, foo@bar.com!",
          "' s ' 's '' ''' -- - ( ) :- ( :-( >< > <"]


def real_texts(shared_data, n=150):
    lines = (shared_data / "text" / "dclm_majority_data.jsonl").read_text().splitlines()[:n]
    return [json.loads(line)["text"] for line in lines]


def test_words_and_sentences_identical(shared_data):
    texts = real_texts(shared_data) + TRICKY
    datatrove, shared = SpaCyTokenizer("en"), SharedWordTokenizer("en")  # datatrove's tokenizer for English
    for text in texts + texts:  # the second pass runs on a warm cache
        assert shared.word_tokenize(text) == datatrove.word_tokenize(text)
    lines = [line.strip() for text in texts[:60] for line in text.splitlines() if line.strip()]
    assert [shared.span_tokenize(line) for line in lines] == [datatrove.span_tokenize(line) for line in lines]
    clone = pickle.loads(pickle.dumps(shared))  # what a worker process receives
    assert clone.word_tokenize(texts[0]) == datatrove.word_tokenize(texts[0])


def test_memory_bounds_do_not_change_words(shared_data):
    texts = real_texts(shared_data, 40)
    tiny = SharedWordTokenizer("en", max_vocab=2_000, max_chunks=500)  # forced to start afresh again and again
    datatrove = SpaCyTokenizer("en")
    assert [tiny.word_tokenize(t) for t in texts] == [datatrove.word_tokenize(t) for t in texts]


def test_filter_decisions_identical(shared_data):
    texts = real_texts(shared_data)

    def chain(language):
        return [GopherRepetitionFilter(language=language), GopherQualityFilter(language=language),
                C4QualityFilter(filter_no_terminal_punct=False, language=language),
                FineWebQualityFilter(language=language)]

    def kept(steps):
        data = (Document(text=t, id=str(i)) for i, t in enumerate(texts))
        for step in steps:
            data = step.run(data)
        return {doc.id: doc.text for doc in data}

    reference, ours = kept(chain("en")), kept(chain(SharedWordTokenizer("en")))
    assert 0 < len(reference) < len(texts)  # the filters do drop some of these documents
    assert ours == reference
