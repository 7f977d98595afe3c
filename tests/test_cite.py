"""Citation strings: 《title》（文号） › path."""
from __future__ import annotations

from app.cite import format_citation
from index.types import Document


def _doc(title="湖南省对接粤港澳大湾区实施方案（2020—2025年）", number="湘政办发〔2020〕8号") -> Document:
    return Document(id="d", title=title, text="", provisions=(), sources=(), doc_number=number)


def test_full_citation_matches_the_issue_example():
    path = ("二、重点任务", "（五）深化公共服务对接合作", "18．强化医疗卫生合作")
    assert format_citation(_doc(), path) == (
        "《湖南省对接粤港澳大湾区实施方案（2020—2025年）》（湘政办发〔2020〕8号） › 二、重点任务 › "
        "（五）深化公共服务对接合作 › 18．强化医疗卫生合作")


def test_no_doc_number_no_brackets_and_empty_path():
    assert format_citation(_doc(number=None), ()) == "《湖南省对接粤港澳大湾区实施方案（2020—2025年）》"


def test_title_already_in_book_marks_and_blank_headings_skipped():
    assert format_citation(_doc(title="《某某法》", number=" "), ("第一章", " ", "第二条")) == "《某某法》 › 第一章 › 第二条"
