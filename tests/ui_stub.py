"""A hand-built stand-in for ``index.search.Searcher``: its answers are chosen by hand, so the app's rendering tests can
name exact cards (the app and API tests also run against a real Searcher over a small index: tests/test_app_real.py)."""
from __future__ import annotations

import socket
import time

from index.request import SearchRequest, SearchResponse
from index.types import Document, Hit, Provision, Source

XSS = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


def _doc(doc_id: str, title: str, number: str | None, region: str, issuer: str, date: str,
         items: list[tuple[tuple[str, ...], str, str | None, str | None]], sources: tuple[Source, ...]) -> Document:
    """A document whose text is its headings and provisions, with correct offsets."""
    text, provs, seen = "", [], set()
    for n, (path, body, lead, resp) in enumerate(items):
        for depth in range(len(path)):
            if path[: depth + 1] not in seen:
                seen.add(path[: depth + 1])
                text += path[depth] + "\n"
        start = len(text)
        text += body + "\n"
        provs.append(Provision(f"{doc_id}#p{n}", doc_id, path, body, start, start + len(body), lead, resp))
    return Document(doc_id, title, text, tuple(provs), sources, number, issuer, date, region)


DOCS = {
    d.id: d
    for d in (
        _doc("hn", "湖南省对接粤港澳大湾区实施方案（2020—2025年）", "湘政办发〔2020〕8号", "湖南省", "湖南省人民政府办公厅", "2020-03-02",
             [(("二、重点任务", "（五）推进公共服务共建共享"),
               "14.加强医疗卫生合作。推进医保异地结算，实现跨省异地就医直接结算。支持大湾区医疗机构来湘办医。",
               "省医保局", "省卫生健康委"),
              (("二、重点任务", "（一）构建便捷高效对接通道"), "1.加快建设高速铁路大通道。规划建设广清永高铁。", None, None),
              (("三、保障措施",), "加强组织领导。" + XSS, None, None)],
             (Source("000_f620c4800d4537e4.txt", "txt", "a" * 64, "http://fgw.hunan.gov.cn/x.html"),
              Source("001_bf613616185b5f44.txt", "txt", "b" * 64, "javascript:alert(1)"))),
        _doc("czt", "长株潭区域一体化发展规划纲要", None, "湖南省", "中共湖南省委、湖南省人民政府", "2021-03-05",
             [(("第六章 公共服务",), "推动医保异地结算便利化，实现三市医保目录统一。", None, None),
              (("第三章 交通",), "推进长株潭城际轨道交通建设。", None, None)],
             (Source("003_52071bc060105621.txt", "txt", "c" * 64),)),
        _doc("px", "萍乡对接粤港澳大湾区建设行动方案", "萍府办发〔2019〕5号", "萍乡市", "萍乡市人民政府办公室", "2019-02-20",
             [(("三、主要任务",), "开展异地就医结算合作，推动医保关系转移接续。", "市医保局", None)],
             (Source("004_5bed96e789233213.txt", "txt", "d" * 64),)),
    )
}


Response = SearchResponse


class StubSearcher:
    """Scores provisions by shared character bigrams with the query; enough to drive the UI."""

    def __init__(self, documents: dict[str, Document] | None = None):
        self.documents = dict(documents or DOCS)
        self.calls: list[tuple[str, dict]] = []

    def query(self, query: str, k: int = 10, **options) -> Response:
        """As ``Searcher.query``: validated by ``SearchRequest.parse``."""
        return self.run(SearchRequest.parse(query, k, **options))

    def run(self, request: SearchRequest) -> Response:
        """Answer a validated request."""
        query, k, doc, region, issuer, year = (request.query, request.k, request.doc, request.region, request.issuer,
                                               request.year)
        self.calls.append((query, dict(k=k, mode=request.mode, doc=doc, region=region, issuer=issuer, year=year)))
        if not query.strip():
            return Response((), (), "请输入问题", query=query)
        grams = {query[i : i + 2] for i in range(len(query) - 1)}
        scored = []
        for d in self.documents.values():
            if (doc and d.id != doc) or (region and d.region != region) or (issuer and issuer not in (d.issuer or "")) \
                    or (year and d.year != year):
                continue
            for p in d.provisions:
                score = sum(g in p.text for g in grams)
                if score:
                    scored.append(Hit(d.id, p.id, p.id, d.title, p.text, score / len(grams), p.path,
                                      d.doc_number, d.region, d.issuer, d.date, p.lead_units, p.resp_units,
                                      tuple(s.path for s in d.sources)))
        scored.sort(key=lambda h: -h.score)
        return Response(tuple(scored[:k]), (), None if scored else "没有足够相关的条款", query=query)


class SlowStub(StubSearcher):
    """Takes 2 s for queries containing 慢 (a stand-in for one expensive request); raises for 炸 (a bug inside the
    searcher, whose details must not reach the caller)."""

    def run(self, request):
        """Slow or failing for the marked questions."""
        if "慢" in request.query:
            time.sleep(2)
        if "炸" in request.query:
            raise RuntimeError("boom at /work/secret/path")
        return super().run(request)


def free_port() -> int:
    """A free TCP port on loopback for a test server."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def not_found(scope, receive, send):
    """The ASGI app behind ``SearchAPI`` in tests: every other path is a 404."""
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


class RelevanceStub(StubSearcher):
    """As StubSearcher, with a relevance stage: relevance = score^1.5, confident from 0.055 (the shipped threshold)."""

    THRESHOLD = 0.055

    def run(self, request):
        """Hits with ``relevance`` and ``confident`` set, best first."""
        from dataclasses import replace

        resp = super().run(request)
        hits = tuple(replace(h, relevance=round(h.score ** 1.5, 4), confident=h.score ** 1.5 >= self.THRESHOLD)
                     for h in resp.hits)
        reason = resp.reason if not hits or any(h.confident for h in hits) else "未找到直接回答该问题的条款"
        return Response(hits, resp.warnings, reason, query=resp.query)
