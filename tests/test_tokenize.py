"""jieba tokenizer: policy terms kept whole, traditional folded to simplified, private dictionaries, harvesting."""
from __future__ import annotations

from index.normalize import clean_query, fold, strip_invisible
from index.tokenize import ChineseTokenizer, harvest_terms
from index_fixtures import corpus


def test_policy_terms_are_not_missegmented():
    tokens = ChineseTokenizer().tokenize("推进长株潭一体化，医保异地就医即时结算")
    assert {"长株潭", "一体化", "医保", "异地就医", "结算"} <= set(tokens)


def test_traditional_query_gives_the_simplified_tokens():
    tk = ChineseTokenizer()
    assert tk.tokenize("醫保異地結算") == tk.tokenize("医保异地结算")


def test_stopwords_and_punctuation_dropped():
    tokens = ChineseTokenizer().tokenize("哪些条款涉及医保的结算？")
    assert "哪些" not in tokens and "的" not in tokens and "？" not in tokens and "医保" in tokens


def test_user_words_do_not_leak_between_tokenizers():
    with_word = ChineseTokenizer(user_words=["萍株合作园"])
    plain = ChineseTokenizer()
    assert "萍株合作园" in with_word.tokenize("共建萍株合作园")
    assert "萍株合作园" not in plain.tokenize("共建萍株合作园")
    assert with_word.dictionary_hash != plain.dictionary_hash


def test_harvest_finds_doc_numbers_names_and_quoted_terms():
    docs = corpus()
    terms = set(harvest_terms(docs))
    assert {"湘政办发〔2020〕8号", "萍府办发〔2019〕5号", "常益长高铁", "常益长"} <= terms
    assert "建设张吉怀高铁" not in terms  # a clause, not a name


def test_save_load_round_trip(tmp_path):
    tk = ChineseTokenizer(user_words=["萍株合作园"])
    tk.save(tmp_path)
    again = ChineseTokenizer.load(tmp_path)
    assert again.dictionary_hash == tk.dictionary_hash
    assert again.tokenize("共建萍株合作园") == tk.tokenize("共建萍株合作园")


def test_normalisation_strips_invisible_and_folds_width():
    assert strip_invisible("医\u200b保\u202e结\x07算") == "医保结算"
    assert fold("  ＡＢＣ１２３\t\n医保 ") == "ABC123 医保"


def test_clean_query_truncates_with_warning():
    cq = clean_query("医" * 2500)
    assert len(cq.text) == 2000 and cq.warnings
    assert clean_query("医保").warnings == ()
