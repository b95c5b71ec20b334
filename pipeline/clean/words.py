"""One word split per document, shared by every filter of the recipe, and a spaCy that remembers words.

datatrove's Gopher, C4 and FineWeb filters each ask `datatrove.utils.text.split_into_words` (or
`split_into_sentences`) for the words of the text they judge. For English that is spaCy's blank tokenizer, called
inside a `memory_zone()`: every word spaCy meets is forgotten after each call, so every call builds the lexemes of
all its words again. That rebuild is most of the cost of the whole filter chain.

`SharedWordTokenizer` is a datatrove `WordTokenizer` (the filters accept one in place of a language code, see
`datatrove.utils.word_tokenizers.load_word_tokenizer`), so the filters' own logic runs unchanged. It uses the same
blank spaCy pipeline datatrove builds for the language, outside a memory zone (bounded: a fresh pipeline starts
once the vocabulary passes `max_vocab` entries), and
  * keeps the words of the last text it split, so the filters that look at the same text share one split;
  * remembers the words of every whitespace-free chunk it has seen. spaCy splits a text at whitespace and splits
    each chunk on its own (prefixes, suffixes, infixes, exceptions); the one thing that looks across chunks is its
    special-case matcher, which can only match tokens whose concatenation is part of an exception (such as "''" or
    ":)"). So the words of a text are the words of its chunks, unless two neighbouring chunks end/start with tokens
    that together form part of an exception: then the whole text goes through spaCy as one piece. New chunks are
    split together in one spaCy call, separated by newlines (no exception spans a newline);
  * counts C4's sentences (line by line) by running spaCy's sentencizer rule over those remembered tokens (with
    spaCy itself, outside the memory zone, where an exception could join chunks), remembering the answer for
    lines it has seen (boilerplate lines recur across pages).
Chinese (`cmn_Hani`, `zh_Hani`, ...: spaCy with the jieba segmenter) gets jieba's words directly, chunk by chunk.
spaCy's Chinese tokenizer in jieba mode is `[w for w in jieba.cut(text, cut_all=False) if w]` made into a Doc, and
datatrove strips the words and drops the blank ones. jieba cuts a text into blocks of [Han a-zA-Z0-9+#&._%-] and
cuts each block on its own (anything else, whitespace included, becomes single-character words), so the words of a
text are those of its whitespace-free chunks, in order: remembered per chunk like the English path (boilerplate
lines of a site recur). Never ask datatrove for "zh": in 0.10.1 that is spaCy's `xx`, which does not segment.
Languages whose datatrove tokenizer is another (ja, ko, vi, th, ...) use it as is; the split is still shared.
`bench/bench_clean.py` and tests/test_clean_words.py check that words, sentences and decisions are identical.
"""
import re

from datatrove.utils.word_tokenizers import (SpaCyTokenizer, WordTokenizer, load_tokenizer_assignments,
                                             load_word_tokenizer, strip_strings)

# spaCy fails on this string inside a memory zone from its second call on, and datatrove then drops it from the
# text; texts holding it go to datatrove's tokenizer so that they get datatrove's words, whatever spaCy's state.
STATEFUL_SPACY_FAILURE = "IS_ALPHA"
JIEBA_CONFIG = {"nlp": {"tokenizer": {"segmenter": "jieba"}}}  # datatrove's SpaCyTokenizer for Chinese
WHITESPACE_OR_NOT = re.compile(r"\s+|\S+")  # (re's \s is str.isspace, the whitespace spaCy splits at)


class SharedWordTokenizer(WordTokenizer):
    def __init__(self, language: str = "en", max_vocab: int = 500_000, max_chunks: int = 300_000):
        super().__init__(language)
        self.max_vocab, self.max_chunks = max_vocab, max_chunks
        load_word_tokenizer(language)  # raises for a language datatrove cannot split
        # our own instance of datatrove's tokenizer (spaCy's state must follow our calls only)
        self._datatrove_tokenizer = load_tokenizer_assignments()[language]()
        self._spacy_fast_path = (
            isinstance(self._datatrove_tokenizer, SpaCyTokenizer) and self._datatrove_tokenizer.config is None
        )
        self._jieba_path = (isinstance(self._datatrove_tokenizer, SpaCyTokenizer)
                            and self._datatrove_tokenizer.config == JIEBA_CONFIG)
        self._nlp, self._chunk_words, self._exception_parts, self._line_spans = None, {}, set(), {}
        self._sentencizer = None  # (punctuation that ends a sentence, spaCy's is_punct) once the pipeline exists
        self._last_text, self._last_words = None, None

    def __getstate__(self):  # sent to worker processes: the spaCy pipeline is rebuilt there on first use
        state = self.__dict__.copy()
        state.update(_nlp=None, _chunk_words={}, _exception_parts=set(), _line_spans={}, _sentencizer=None,
                     _last_text=None, _last_words=None)
        return state

    @property
    def nlp(self):
        if self._nlp is None or len(self._nlp.vocab) > self.max_vocab:
            self._nlp = SpaCyTokenizer(self.language).tokenizer  # the same blank pipeline + sentencizer datatrove uses
            self._chunk_words = {}
            # every piece (2+ characters) of every exception: two neighbouring chunks whose boundary tokens form one
            # could be joined by spaCy's special-case matcher
            self._exception_parts = {key[i:j] for key in self._nlp.tokenizer.rules
                                     for i in range(len(key)) for j in range(i + 2, len(key) + 1)}
            self._longest_exception = max(map(len, self._nlp.tokenizer.rules), default=0)
        return self._nlp

    def word_tokenize(self, text: str) -> list[str]:
        if text == self._last_text:
            return self._last_words
        words = None
        if self._jieba_path and STATEFUL_SPACY_FAILURE not in text:
            words = self._jieba_words(text)
        elif self._spacy_fast_path and STATEFUL_SPACY_FAILURE not in text:
            try:
                words = self._words_by_chunk(text)
                if words is None:  # neighbouring chunks that an exception could join
                    words = self._spacy_words(text)
            except Exception:  # any other spaCy failure: datatrove's own handling decides
                words = None
        if words is None:
            words = self._datatrove_tokenizer.word_tokenize(text)
        self._last_text, self._last_words = text, words
        return words

    def _jieba_words(self, text: str) -> list[str]:
        import jieba

        known, words = self._chunk_words, []
        for chunk in text.split():  # (str.split and jieba's re_skip agree on whitespace: both are str.isspace)
            chunk_words = known.get(chunk)
            if chunk_words is None:
                if len(known) >= self.max_chunks:
                    known.clear()
                chunk_words = known[chunk] = [word for word in jieba.cut(chunk, cut_all=False) if word.strip()]
            words += chunk_words
        return words

    def _spacy_words(self, text: str) -> list[str]:
        from spacy.attrs import ORTH

        nlp = self.nlp
        strings = nlp.vocab.strings
        return strip_strings([strings[orth] for orth in nlp.tokenizer(text).to_array(ORTH).tolist()])

    def _words_by_chunk(self, text: str) -> list[str] | None:
        from spacy.attrs import ORTH

        nlp = self.nlp
        chunks = text.split()  # str.split() and spaCy agree on what whitespace is (str.isspace)
        known = self._chunk_words
        new = [chunk for chunk in dict.fromkeys(chunks) if chunk not in known]
        if new:
            if len(known) + len(new) > self.max_chunks:
                known.clear()
            strings = nlp.vocab.strings
            newline = strings.add("\n")
            position, current = 0, []
            for orth in nlp.tokenizer("\n".join(new)).to_array(ORTH).tolist():
                if orth == newline:
                    known[new[position]], position, current = current, position + 1, []
                else:
                    current.append(strings[orth])
            known[new[position]] = current
        words, previous_last = [], None
        parts = self._exception_parts
        for chunk in chunks:
            chunk_words = known[chunk]
            if previous_last is not None and previous_last + chunk_words[0] in parts \
                    and self._exception_across(words, chunk_words):
                return None
            words += chunk_words
            previous_last = chunk_words[-1]
        return words

    def _exception_across(self, before: list[str], after: list[str]) -> bool:
        """Could an exception match the last tokens of `before` followed by the first tokens of `after`?"""
        rules, longest = self._nlp.tokenizer.rules, self._longest_exception
        tails, tail = [], ""
        for token in reversed(before):
            tail = token + tail
            if len(tail) >= longest:
                break
            tails.append(tail)
        head = ""
        for token in after:
            head += token
            if len(head) >= longest:
                break
            if any(t + head in rules for t in tails):
                return True
        return False

    def _sentence_spans(self, text: str) -> list[tuple[int, int]] | None:
        """spaCy's sentencizer (spacy/pipeline/sentencizer.pyx, `predict`) run over the tokens spaCy would make of
        `text`: the remembered words of each chunk, plus a token for each whitespace run other than the single space
        spaCy attaches to the word before it. None when neighbouring chunks could be joined by an exception."""
        nlp = self.nlp
        if self._sentencizer is None:
            from spacy.attrs import IS_PUNCT

            self._sentencizer = (set(nlp.get_pipe("sentencizer").punct_chars), nlp.vocab.lex_attr_getters[IS_PUNCT], {})
        punct_chars, is_punct, known_punct = self._sentencizer
        pieces = WHITESPACE_OR_NOT.findall(text)
        known = self._chunk_words
        missing = [piece for piece in pieces if piece not in known and not piece.isspace()]
        if missing:
            self._words_by_chunk(" ".join(missing))  # (only to remember their words)
            known = self._chunk_words
        # tokens: (start, end, text). previous_words: the chunk just before, when only one space separates them
        tokens, position, previous_words, after_chunk = [], 0, None, False
        for piece in pieces:
            if piece.isspace():
                start = position + 1 if after_chunk and piece[0] == " " else position
                if start < position + len(piece):
                    tokens.append((start, position + len(piece), text[start:position + len(piece)]))
                position += len(piece)
                if not (after_chunk and piece == " "):
                    previous_words = None
                after_chunk = False
                continue
            words = known[piece]
            if previous_words is not None and previous_words[-1] + words[0] in self._exception_parts \
                    and self._exception_across(previous_words, words):
                return None
            for word in words:
                tokens.append((position, position + len(word), word))
                position += len(word)
            previous_words, after_chunk = words, True
        if not tokens:
            return []
        starts, seen_period = [0], False
        for i, (_, _, token) in enumerate(tokens):
            in_punct_chars = token in punct_chars
            if seen_period and not in_punct_chars:
                punct = known_punct.get(token)
                if punct is None:
                    punct = known_punct[token] = is_punct(token)
                if not punct:
                    starts.append(i)
                    seen_period = False
            elif in_punct_chars:
                seen_period = True
        ends = starts[1:] + [len(tokens)]
        return [(tokens[a][0], tokens[b - 1][1]) for a, b in zip(starts, ends)]

    def sent_tokenize(self, text: str) -> list[str]:
        return self._datatrove_tokenizer.sent_tokenize(text)

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        if self._spacy_fast_path and STATEFUL_SPACY_FAILURE not in text:
            spans = self._line_spans.get(text)  # C4 asks line by line; boilerplate lines come back again and again
            if spans is not None:
                return spans
            try:
                spans = self._sentence_spans(text)
                if spans is None:  # neighbouring chunks that an exception could join
                    nlp = self.nlp
                    nlp.max_length = len(text) + 10
                    spans = [(s.start_char, s.end_char) for s in nlp(text, disable=["parser", "tagger", "ner"]).sents]
            except Exception:
                spans = None
            if spans is not None:
                if len(self._line_spans) >= self.max_chunks:
                    self._line_spans.clear()
                self._line_spans[text] = spans
                return spans
        return self._datatrove_tokenizer.span_tokenize(text)
