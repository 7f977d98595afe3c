"""When a document applies: the planning, validity or implementation period its own text states (规划期, 有效期,
实施期限, 自…起施行), and whether that period has run out on a given day.  Pure: text and dates in, a record out."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

_DASH = r"\s*(?:—+|–|－|-|~|～|至|到)\s*"
_YEAR = r"((?:19|20)\d{2})"
#: "（2020—2025年）" in a title or the first lines: the period the plan covers.
_TITLE_SPAN = re.compile(rf"[（(]\s*{_YEAR}\s*年?{_DASH}{_YEAR}\s*年?\s*[）)]")
_PLAN_SPAN = re.compile(rf"(规划期|实施期限|实施期|执行期|规划期限)(?:为|是|限为)?\s*[:：]?\s*{_YEAR}\s*年?{_DASH}{_YEAR}\s*年")
_PLAN_UNTIL = re.compile(rf"(规划期|规划期限|实施期限|执行期)(?:为|是)?\s*至\s*{_YEAR}\s*年")
_DATE = r"((?:19|20)\d{2})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日"
_UNTIL_DATE = re.compile(rf"有效期(?:限)?(?:为|是)?\s*至\s*{_DATE}")
_CN_DIGITS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
_YEARS = re.compile(r"(有效期|有效期限|试行期)(?:为|暂定|是)?\s*([0-9一二两三四五六七八九十]{1,2})\s*年")
_FROM_DATE = re.compile(rf"自\s*{_DATE}\s*起(?:施行|实施|执行|试行|生效)")
_FROM_ISSUE = re.compile(r"自(?:印发|发布|公布|发文|下发|颁布)之日起(?:施行|实施|执行|试行|生效)")
#: A sentence about the document itself ("本办法…"), not about a licence or a plate ("临时行驶车号牌有效期…").
_SELF = re.compile(r"本(?:办法|规定|政策|方案|通知|细则|规范|措施|意见|规划|纲要|决定|条例|制度|规则|指南|标准|计划|"
                   r"实施方案|行动方案|政策措施|若干措施|若干政策|暂行办法|实施细则)")
_SENTENCE = re.compile(r"[^。；;！!？?\n]+")


@dataclass(frozen=True)
class Validity:
    """A stated period: its kind (规划期, 有效期, 实施期限, 施行), first and last day (None: not stated), the words
    it was read from, and whether only years were given."""

    kind: str
    start: date | None
    end: date | None
    evidence: str
    years_only: bool = False

    def state(self, today: date) -> str:
        """"未开始", "已届满", "在期内" (start ≤ today ≤ end), or "施行中" (started, no end stated)."""
        if self.start is not None and today < self.start:
            return "未开始"
        if self.end is not None:
            return "已届满" if today > self.end else "在期内"
        return "施行中"

    def label(self, today: date) -> str:
        """E.g. "规划期 2020—2025 年（已届满）", "有效期 2020-12-24 至 2025-12-23（已届满）", "自 2018-05-01 起施行"."""
        state = self.state(today)
        if self.years_only and self.end is not None:
            span = f" {self.start.year}—{self.end.year} 年" if self.start else f"至 {self.end.year} 年"
            return f"{self.kind}{span}（{state}）"
        if self.end is not None:
            span = f" {self.start.isoformat()} 至 {self.end.isoformat()}" if self.start else f"至 {self.end.isoformat()}"
            return f"{self.kind}{span}（{state}）"
        if self.start is not None:
            return f"自 {self.start.isoformat()} 起施行（{'未注明有效期' if state == '施行中' else state}）"
        return self.kind


def _day(y: str, m: str, d: str) -> date | None:
    try:
        value = date(int(y), int(m), int(d))
    except ValueError:  # 5355年65月06日: digits scrambled in the source
        return None
    return value if 1949 <= value.year <= 2100 else None


def _years(a: str, b: str) -> tuple[int, int] | None:
    start, end = int(a), int(b)
    return (start, end) if 1949 <= start <= end <= 2100 and end - start <= 30 else None


def _number(text: str) -> int | None:
    if text.isdigit():
        return int(text)
    if text == "十":
        return 10
    if text.startswith("十"):
        return 10 + _CN_DIGITS.get(text[1:], 0)
    return _CN_DIGITS.get(text)


def _issued(issued: str | None) -> date | None:
    if not issued or not re.match(r"^\d{4}-\d{2}-\d{2}", issued):
        return None
    return _day(*issued[:10].split("-"))


def find_validity(title: str, text: str, issued: str | None = None) -> Validity | None:
    """The period ``title`` and ``text`` state for the document itself (``issued``: its ISO date, the start of an
    "自发布之日起" or "规划期至 2025 年"), or None.  A span in the title wins, then 规划期/实施期限, then 有效期
    and 施行 sentences that name the document itself ("本办法…")."""
    head = f"{title}\n{text[:600]}"
    start_day = _issued(issued)
    if m := _TITLE_SPAN.search(head):
        if span := _years(m.group(1), m.group(2)):
            return Validity("规划期", date(span[0], 1, 1), date(span[1], 12, 31), m.group(0).strip(), True)
    if m := _PLAN_SPAN.search(text):
        if span := _years(m.group(2), m.group(3)):
            return Validity(m.group(1), date(span[0], 1, 1), date(span[1], 12, 31), m.group(0), True)
    if m := _PLAN_UNTIL.search(text):
        end = int(m.group(2))
        if 1949 <= end <= 2100:
            return Validity(m.group(1), None, date(end, 12, 31), m.group(0), True)  # the start is not stated
    found: Validity | None = None
    for sentence in _SENTENCE.findall(text):
        if not (_SELF.search(sentence) or sentence.lstrip().startswith(("有效期", "试行期"))):
            continue
        begin = None
        if m := _FROM_DATE.search(sentence):
            begin = _day(*m.groups())
        elif _FROM_ISSUE.search(sentence):
            begin = start_day
        if m := _UNTIL_DATE.search(sentence):
            end = _day(*m.groups())
            if end is not None:
                return Validity("有效期", begin, end, sentence.strip())
        if m := _YEARS.search(sentence):
            n = _number(m.group(2))
            begin = begin or start_day
            if n and begin is not None and n <= 30:
                end = _add_years(begin, n) - timedelta(days=1)
                return Validity("试行期" if m.group(1) == "试行期" else "有效期", begin, end, sentence.strip())
        if begin is not None and found is None and (_FROM_DATE.search(sentence) or _FROM_ISSUE.search(sentence)):
            found = Validity("施行", begin, None, sentence.strip())
    return found


def _add_years(day: date, n: int) -> date:
    try:
        return day.replace(year=day.year + n)
    except ValueError:  # 29 February
        return day.replace(year=day.year + n, day=28)
