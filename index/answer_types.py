"""Answer types: does a question ask for a quantity or a date, and does a provision state one.  Evidence for the
relevance stage (``index.relevance`` features ``q_quantity``, ``num``, ``num_missing``) that word overlap and cosines
cannot see: most questions the team wrote that the collection does not answer ask for such a detail."""
from __future__ import annotations

import re

import numpy as np

#: A question that asks for an amount, a share, a limit or a date ("补贴多少", "比例是多少", "截止日期是哪天", "how much").
QUANTITY_QUESTION = re.compile(
    r"多少|几[个年月天日倍成项次名家岁]|比例|额度|金额|标准是|上限|最高|最低|期限|时限|截止|哪天|何时|什么时候|多久|多长时间"
    r"|how much|how many|\bwhen\b|\brate\b|deadline|percentage", re.I)
#: A provision that states one: a number with a unit, a Chinese numeral with a unit, a percentage.
QUANTITY_TEXT = re.compile(
    r"[0-9０-９]+(?:\.[0-9]+)?\s*(?:%|％|万|亿|元|倍|年|个月|月|日|天|人|家|个|项|户|所|名|平方|公里|千米|米|吨|小时|岁)"
    r"|[一二三四五六七八九十百千万两]+(?:万元|元|倍|年|个月|天|日|个工作日|人|家|项|成|岁)|百分之")


def answer_types(query: str, texts) -> tuple[float, np.ndarray]:
    """(does the question ask for a quantity or a date, does each text state one).  Most questions the team wrote
    that the collection does not answer ask for a detail of this kind that the documents never give ("每艘能补贴多少钱",
    "申诉期限是几个工作日"), while their topic words match a provision well: "asks a number, the provision states
    none" is evidence the word and cosine features cannot see."""
    return float(bool(QUANTITY_QUESTION.search(query))), np.array([float(_states_quantity(t)) for t in texts])


_YEAR = re.compile(r"(?:19|20)[0-9]{2}\s*年")


def _states_quantity(text: str) -> bool:
    """A quantity other than a bare calendar year ("到2025年" is a plan's horizon in nearly every provision, not an
    amount, a share or a deadline)."""
    return any(not _YEAR.fullmatch(m.group()) for m in QUANTITY_TEXT.finditer(text))
