"""Chinese tokens for BM25: jieba search mode with a private dictionary (policy terms + terms harvested from the corpus)."""
from __future__ import annotations

import functools
import hashlib
import logging
import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import jieba

from index.normalize import normalize_for_match
from index.types import Document

jieba.setLogLevel(logging.WARNING)

USERDICT_FILE = "userdict.txt"
STOPWORDS_FILE = "stopwords.txt"

_CJK = "\u4e00-\u9fff"
_QUOTED = re.compile(f"[“\"「]([{_CJK}A-Za-z0-9]{{2,12}})[”\"」]")
_TITLE = re.compile(f"《([{_CJK}A-Za-z0-9]{{2,12}})》")  # longer titles would swallow the words inside them
_DOC_NUMBER = re.compile(f"[{_CJK}]{{1,10}}[〔\\[［(（【]\\d{{4}}[〕\\]］)）】]\\d{{1,4}}号")
_NAME_SUFFIXES = ("经开区", "高新区", "示范区", "试验区", "新区", "经济带", "城市群", "都市圈", "高铁", "机场", "平台",
                  "省", "市", "县", "区")  # longest first, so "湘潭经开区" yields the stem "湘潭"
# A stem that opens with a verb, preposition, adverb, pronoun... is a clause ("建设张吉怀"), not a name.
_NOT_NAME_START = ("v", "p", "d", "u", "r", "f", "c", "a", "m", "q")
# A name counts only when it stands between list/clause boundaries ("、张吉怀高铁、"), so that a clause such as
# "加快建设张吉怀高铁" is not taken for one word.
_NAME = re.compile(
    f"(?:(?<=^)|(?<=[、，,；;：:（(“\"\\s和与及至]))([{_CJK}]{{2,4}}?(?:{'|'.join(_NAME_SUFFIXES)}))(?=[、，,；;。）)”\"\\s等和与及]|$)",
    re.M,
)
_WORDLIKE = re.compile(r"\w")


def _read_lines(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def default_stopwords() -> list[str]:
    """The bundled stopword list (index/data/stopwords.txt)."""
    return _read_lines(resources.files("index").joinpath("data", STOPWORDS_FILE).read_text(encoding="utf-8"))


def policy_terms() -> list[str]:
    """The bundled hand list of policy terms (index/data/policy_terms.txt)."""
    return _read_lines(resources.files("index").joinpath("data", "policy_terms.txt").read_text(encoding="utf-8"))


def harvest_terms(documents: Iterable[Document]) -> list[str]:
    """Terms worth keeping whole, found in the corpus: quoted terms, short 《titles》, 文号, and place/programme names."""
    terms: set[str] = set()
    names: set[str] = set()
    for doc in documents:
        for text in (doc.title, doc.text):
            text = normalize_for_match(text) if text else ""
            terms.update(_QUOTED.findall(text))
            terms.update(_TITLE.findall(text))
            for m in _DOC_NUMBER.finditer(text):
                # the issuer code never contains these; they belong to the title before it ("…的通知湘政发〔…〕")
                terms.add(re.split("[的知件》和与及]", m.group(0))[-1])
            names.update(_NAME.findall(text))
        if doc.doc_number:
            terms.add(normalize_for_match(doc.doc_number))
    pos = _pos_tagger()
    for name in names:
        stem = next(name[: -len(s)] for s in _NAME_SUFFIXES if name.endswith(s))
        tags = [w.flag for w in pos.cut(stem)]
        if len(stem) < 2 or not tags or tags[0].startswith(_NOT_NAME_START) or any(t[0] in "puc" for t in tags):
            continue
        terms.update((name, stem))  # the bare stem too ("张吉怀" of "张吉怀高铁"), so it also matches alone
    return sorted(t for t in terms if len(t) >= 2)


@functools.lru_cache(maxsize=1)
def _base_frequencies() -> tuple[dict[str, int], int]:
    # Loading jieba's main dictionary takes ~0.8 s; do it once per process and give each tokenizer a copy (~10 ms).
    base = jieba.Tokenizer()
    base.initialize()
    return base.FREQ, base.total


def _private_jieba() -> jieba.Tokenizer:
    freq, total = _base_frequencies()
    tk = jieba.Tokenizer()
    tk.FREQ, tk.total, tk.initialized = dict(freq), total, True
    return tk


@functools.lru_cache(maxsize=1)
def _pos_tagger():
    import jieba.posseg

    return jieba.posseg.POSTokenizer(_private_jieba())


class ChineseTokenizer:
    """jieba search-mode tokenizer over ``normalize_for_match`` text, with its own user words and stopwords.

    Each instance owns a private ``jieba.Tokenizer`` so that one index's dictionary never leaks into another's.
    """

    def __init__(
        self, user_words: Iterable[str] = (), stopwords: Iterable[str] | None = None, with_policy_terms: bool = True
    ):
        words = [*user_words, *(policy_terms() if with_policy_terms else [])]
        self.user_words = sorted({normalize_for_match(w) for w in words if w.strip()})
        self.stopwords = frozenset(default_stopwords() if stopwords is None else stopwords)
        self._jieba = _private_jieba()
        for word in self.user_words:
            # suggest_freq(tune=True) raises the word's frequency just enough for jieba to keep it whole.
            self._jieba.add_word(word)
            self._jieba.suggest_freq(word, tune=True)

    @classmethod
    def for_corpus(cls, documents: Iterable[Document]) -> ChineseTokenizer:
        """A tokenizer whose dictionary holds the bundled policy terms plus the terms harvested from ``documents``."""
        return cls(user_words=harvest_terms(documents))

    @property
    def dictionary_hash(self) -> str:
        """sha256 over jieba's version, the user words and the stopwords (recorded in the manifest)."""
        h = hashlib.sha256(f"jieba {jieba.__version__} search\n".encode())
        h.update("\n".join(self.user_words).encode())
        h.update(b"\n--stopwords--\n")
        h.update("\n".join(sorted(self.stopwords)).encode())
        return h.hexdigest()

    def tokenize(self, text: str) -> list[str]:
        """Tokens of ``text`` (NFKC, traditional -> simplified, lower case), stopwords and punctuation dropped."""
        return [
            t
            for t in self._jieba.lcut_for_search(normalize_for_match(text))
            if t.strip() and t not in self.stopwords and _WORDLIKE.search(t)
        ]

    def save(self, directory: Path) -> None:
        """Write the user dictionary and stopwords into ``directory`` (so the index is self-contained)."""
        (directory / USERDICT_FILE).write_text("\n".join(self.user_words) + "\n", encoding="utf-8")
        (directory / STOPWORDS_FILE).write_text("\n".join(sorted(self.stopwords)) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> ChineseTokenizer:
        """The tokenizer saved by ``save``."""
        words = (directory / USERDICT_FILE).read_text(encoding="utf-8").splitlines()
        stops = (directory / STOPWORDS_FILE).read_text(encoding="utf-8").splitlines()
        # exactly the saved words: the packaged policy list may have changed since the index was built
        return cls(user_words=[w for w in words if w], stopwords=[s for s in stops if s], with_policy_terms=False)
