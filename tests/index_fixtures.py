"""Hand-built Documents for the index/search tests (independent of the parser): three policies and a re-rendering."""
from __future__ import annotations

import hashlib

from index.types import Document, Provision, Source

GBA_TITLE = "湖南省对接粤港澳大湾区实施方案（2020—2025年）"
GBA_RAIL = "1．加快建设高速铁路大通道"
GBA_MED = "18．强化医疗卫生合作"
GBA = [
    (("一、总体要求",), "以全方位、多领域、深层次的开放合作，进一步增强区域经济发展动力和活力，加快推进湖南高质量发展。"),
    (("二、重点任务", "（一）构建便捷高效对接通道", GBA_RAIL),
     "规划建设广清永高铁，加快建设张吉怀高铁、常益长高铁，建设湖南至大湾区3—5小时便捷通达圈。"),
    (("二、重点任务", "（五）深化公共服务对接合作", GBA_MED),
     "推动与大湾区医疗机构开展合作，推进医保异地就医即时结算，支持大湾区医疗机构来湘设立分支机构。"),
    (("二、重点任务", "（五）深化公共服务对接合作", "19．加强文化旅游合作"),
     "联合开发精品旅游线路，推动湘粤两地旅游景区互惠互利，共同打造高铁3小时旅游圈。"),
]
CZT = [
    (("三、公共服务一体化",), "推进长株潭三市医保同城同结算，实现社会保障卡一卡通用，异地就医直接结算。"),
    (("四、交通一体化",), "加快长株潭城际铁路公交化运营，推进三市公交一卡通。"),
]
PX = [
    (("二、主要任务", "（三）公共服务共享"), "推进医保结算系统平台互联互通，实现湘赣边区域参保人员就医结算便利。"),
    (("二、主要任务", "（四）产业协作"), "共建萍乡—株洲产业合作园区，发展新材料和电子信息产业。"),
]
LAW = [
    (("第一章 总则", "第一条"), "为了保障公民的合法权益，制定本法。"),
    (("第一章 总则", "第二条"), "本法自公布之日起施行。"),
]


def make_document(doc_id: str, title: str, items, sep: str = "\n", **meta) -> Document:
    """A Document whose text is its provisions joined by ``sep``, with correct offsets and stable ids."""
    text, provs = "", []
    for path, body in items:
        if text:
            text += sep
        start = len(text)
        text += body
        pid = f"{doc_id}#" + hashlib.sha256(("/".join(path) + "\0" + body).encode()).hexdigest()[:12]
        provs.append(Provision(pid, doc_id, tuple(path), body, start, start + len(body)))
    src = Source(path=f"{doc_id}.txt", format="txt", sha256=hashlib.sha256(text.encode()).hexdigest())
    return Document(id=doc_id, title=title, text=text, provisions=tuple(provs), sources=(src,), **meta)


def corpus() -> list[Document]:
    """The three policies, a second rendering of the Greater Bay Area plan, and a short law."""
    return [
        make_document("gba", GBA_TITLE, GBA, doc_number="湘政办发〔2020〕8号", region="湖南省",
                      issuer="湖南省人民政府办公厅", date="2020-03-09"),
        make_document("czt", "长株潭区域一体化发展规划纲要", CZT, region="湖南省", issuer="湖南省发展和改革委员会",
                      date="2021-05-01"),
        make_document("px", "萍乡市对接长株潭一体化实施方案", PX, doc_number="萍府办发〔2019〕5号", region="江西省萍乡市",
                      issuer="萍乡市人民政府办公室", date="2019-06-10"),
        make_document("gba_html", GBA_TITLE, GBA, sep="\n\n", region="湖南省", issuer="湖南省人民政府办公厅",
                      date="2020-03-09"),
        make_document("law", "某某法", LAW, issuer="全国人民代表大会常务委员会", date="2018-01-01"),
    ]
