"""Ingest end to end: the default corpus' done-when checks, duplicate merging, bad files, shared corpora."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from index.dedup import THRESHOLD, find_duplicates, shingles
from index.ingest import IngestError, IngestResult, iter_files, load_documents
from index.parse import parse_document
from index.read import read_path

FIXTURES = Path(__file__).parent / "fixtures" / "mini"


@pytest.fixture(scope="module")
def corpus_result(corpus_dir) -> IngestResult:
    return load_documents([corpus_dir], progress=False)


def test_default_corpus_yields_four_documents(corpus_result):
    r = corpus_result
    assert r.errors == () and r.files == 5 and r.bytes > 100_000 and r.seconds > 0
    assert len(r.documents) == 4
    merged = next(d for d in r.documents if len(d.sources) > 1)
    assert sorted(s.path for s in merged.sources) == ["000_f620c4800d4537e4.txt", "001_bf613616185b5f44.txt"]
    # the canonical rendering is the typeset (PDF) one; the web page contributes its 原文链接
    assert merged.id == "001_bf613616185b5f44"
    assert merged.url.startswith("http://fgw.hunan.gov.cn/")
    assert merged.title == "湖南省对接粤港澳大湾区实施方案（2020—2025年）"


def test_done_when_item_18(corpus_result):
    doc = next(d for d in corpus_result.documents if d.id == "001_bf613616185b5f44")
    [item] = [p for p in doc.provisions if p.path == ("二、重点任务", "（五）深化公共服务对接合作", "18．强化医疗卫生合作")]
    assert "实现异地就医即时结算并报销医保费用" in item.text


def test_done_when_doc_numbers_units_and_no_markers(corpus_result):
    numbers = {d.id: d.doc_number for d in corpus_result.documents}
    assert numbers == {"001_bf613616185b5f44": "湘政办发〔2020〕8号", "002_2d4ce1e0f90a91da": "湘政发〔2016〕21号",
                       "003_52071bc060105621": None, "004_5bed96e789233213": "萍府办发〔2019〕5号"}
    pingxiang = next(d for d in corpus_result.documents if d.id.startswith("004"))
    item10 = next(p for p in pingxiang.provisions if p.path and p.path[-1].startswith("10."))
    assert item10.lead_units == "市卫健委、市医保局"
    assert pingxiang.region == "萍乡市" and pingxiang.issuer == "萍乡市人民政府办公室" and pingxiang.date == "2019-02-20"
    for doc in corpus_result.documents:
        for p in doc.provisions:
            assert "— 11 —" not in p.text and "—11—" not in p.text
            assert not any(w in p.text for w in ("服务热线", "您当前位置", "扫描二维码", "ICP备", "版权所有", "运营支持"))


def test_renderings_merge_but_boilerplate_does_not(corpus_dir):
    docs = [parse_document(read_path(p, corpus_dir)[0]) for p in sorted(corpus_dir.glob("*.txt"))]
    sets = [shingles(d.text) for d in docs]
    jaccard = lambda a, b: len(a & b) / len(a | b)  # noqa: E731
    assert jaccard(sets[0], sets[1]) >= THRESHOLD + 0.1  # the web page and the PDF of the same 通知
    assert all(jaccard(sets[i], sets[j]) < 0.2 for i in range(5) for j in range(i + 1, 5) if (i, j) != (0, 1))
    assert find_duplicates(docs) == [[0, 1]]


def test_versions_of_a_law_stay_apart(tmp_path):
    body = "\n\n".join(f"第{n}条 本条规定第{n}项具体制度，有关部门应当按照职责分工做好相关工作。" for n in "一二三四五六七八九十")
    (tmp_path / "某法(2018-01-01).md").write_text(f"# 某法\n\n<!-- INFO END -->\n\n{body}\n", encoding="utf-8")
    (tmp_path / "某法(2024-01-01).md").write_text(f"# 某法\n\n<!-- INFO END -->\n\n{body}\n", encoding="utf-8")
    (tmp_path / "某法副本.md").write_text(f"# 某法\n\n2018年1月1日 通过\n\n<!-- INFO END -->\n\n{body}\n",
                                         encoding="utf-8")
    r = load_documents([tmp_path], progress=False)
    assert len(r.documents) == 2  # the undated-name copy merges with the 2018 version, 2024 stays apart
    assert sorted(len(d.sources) for d in r.documents) == [1, 2]


def test_bad_files_are_reported_and_the_rest_continues(tmp_path):
    (tmp_path / "good.txt").write_text("一、总体要求\n\n加快推进高质量发展，建设现代化经济体系。\n", encoding="utf-8")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "bin.md").write_bytes(bytes(range(256)))
    (tmp_path / "sheet.xls").write_bytes(b"\xd0\xcf\x11\xe0")
    (tmp_path / "README.md").write_text("notes about this folder", encoding="utf-8")
    (tmp_path / "recs.jsonl").write_text(json.dumps({"_id": "r1", "text": "第一条 内容。"}, ensure_ascii=False)
                                         + "\nnot json\n", encoding="utf-8")
    r = load_documents([tmp_path], progress=False)
    assert sorted(d.id for d in r.documents) == ["good", "r1"]
    reasons = {Path(e.path.split(":")[0]).name: e.reason for e in r.errors}
    assert set(reasons) == {"empty.txt", "bin.md", "sheet.xls", "recs.jsonl"}
    assert "empty" in reasons["empty.txt"] and "binary" in reasons["bin.md"]
    assert "unsupported" in reasons["sheet.xls"] and "bad line" in reasons["recs.jsonl"]
    assert [p.name for p in iter_files([tmp_path])] == ["bin.md", "empty.txt", "good.txt", "recs.jsonl"]


def test_progress_bar_goes_to_stderr(tmp_path, capsys):
    load_documents([FIXTURES], progress=True)
    out, err = capsys.readouterr()
    assert out == "" and "ingest" in err


def test_explicit_file_path_and_duplicate_ids(tmp_path):
    a = tmp_path / "a"
    b = tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for d in (a, b):
        (d / "x.txt").write_text("一、要求\n\n加快推进。\n", encoding="utf-8")
    r = load_documents([a, b], progress=False)
    assert [d.id for d in r.documents] == ["x"] and "duplicate document id" in r.errors[0].reason
    r = load_documents([a / "x.txt"], progress=False)
    assert [d.id for d in r.documents] == ["x"]


@pytest.mark.shared
def test_lawrefbook_sample_parses_into_articles(shared_dir):
    law = next((shared_dir / "corpora" / "lawrefbook" / "民法商法").glob("电子商务法*.md"))
    r = load_documents([law], progress=False)
    [doc] = r.documents
    assert doc.title == "中华人民共和国电子商务法"
    art9 = next(p for p in doc.provisions if p.path[-1] == "第九条")
    assert art9.path == ("第二章 电子商务经营者", "第一节 一般规定", "第九条")
    assert sum(1 for p in doc.provisions if p.path[-1].startswith("第")) == len(doc.provisions) >= 80


@pytest.mark.shared
def test_policies_jsonl_fields_are_mapped(shared_dir):
    r = load_documents([shared_dir / "corpora" / "policies.jsonl"], progress=False)
    assert len(r.documents) > 200 and all(d.date and d.issuer for d in r.documents)
    rate = sum(1 for d in r.documents for p in d.provisions if p.path) / sum(len(d.provisions) for d in r.documents)
    assert rate > 0.9


@pytest.mark.shared
def test_beir_records_stay_whole(shared_dir, tmp_path):
    """A BEIR record is the benchmark's unit: one provision per record, its text complete (whitespace aside)."""
    lines = (shared_dir / "bench" / "stard" / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:3000]
    (tmp_path / "corpus.jsonl").write_text("\n".join(lines), encoding="utf-8")
    r = load_documents([tmp_path / "corpus.jsonl"], progress=False)
    records = {rec["_id"]: rec["text"] for rec in map(json.loads, lines)}
    assert r.errors == () and sorted(d.id for d in r.documents) == sorted(records)
    squash = lambda s: "".join(s.split()).replace("\u200b", "")  # noqa: E731
    for doc in r.documents:
        assert len(doc.provisions) == 1
        assert squash(doc.provisions[0].text) == squash(records[doc.id])


def test_directory_walk_survives_symlink_loops(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("一、要求\n\n加快推进高质量发展。\n", encoding="utf-8")
    (tmp_path / "sub" / "up").symlink_to(tmp_path)  # a directory loop
    (tmp_path / "x.txt").symlink_to(tmp_path / "y.txt")
    (tmp_path / "y.txt").symlink_to(tmp_path / "x.txt")  # a file loop
    r = load_documents([tmp_path, tmp_path / "missing"], progress=False)
    assert [d.id for d in r.documents] == ["sub/a"]
    reasons = sorted(e.reason.split(" (")[0] for e in r.errors)
    assert reasons == ["file not found", "symlink loop", "symlink loop", "symlink to a directory"]


def test_the_summary_counts_skipped_records_as_skipped_not_as_failed_files(tmp_path):
    """A JSON Lines file with one duplicate id: the file is indexed, one record skipped; the summary says so."""
    from index.pipeline import IngestReport

    report = IngestReport(documents=2, provisions=5, chunks=5, embedded=5, kept_previous=(),
                          errors=(IngestError("p.jsonl:3", "duplicate id 'x' (first on line 1); line skipped"),),
                          files=1, megabytes=0.1, seconds=0.5)
    last = report.summary().splitlines()[-1]
    assert "跳过 1 项" in last and "1 skipped" in last and "failed" not in last
    assert IngestReport(2, 5, 5, 5, (), (), 1, 0.1, 0.5).summary().endswith("no errors")
